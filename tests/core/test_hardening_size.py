"""The user-data size check (issue 12, item 12): both public limits — the decoded bytes (the gzip stream,
16384: linode/cluster-api-provider-linode) and the base64 text the API receives (Linode's OpenAPI spec,
metadata.user_data: "Unencoded data must not exceed 65535 bytes, or about 16kb encoded") — with an error
naming both figures."""

import base64
import gzip
import os

import pytest

from lcai_core.cloudinit import USER_DATA_B64_LIMIT, USER_DATA_LIMIT, Rendered
from lcai_core.errors import InputError
from lcai_testing import render_text


def rendered_with(payload: bytes) -> Rendered:
    text = "#cloud-config\n# " + base64.b64encode(payload).decode() + "\n"
    return Rendered(doc={}, text=text, boot_plan=(), env_names=(), units=())


def test_base64_limit_is_checked_even_when_the_gzip_bytes_fit():
    r = rendered_with(os.urandom(13000))  # base64 text of random bytes: about 13.2 KB gzip, 17.6 K base64
    s = r.sizes()
    assert s["gzip"] <= USER_DATA_LIMIT < s["base64"]
    with pytest.raises(InputError) as e:
        r.check_size()
    msg = str(e.value)
    assert f"{s['gzip']} bytes gzipped (limit {USER_DATA_LIMIT})" in msg
    assert f"{s['base64']} characters base64-encoded (Linode's limit: about {USER_DATA_B64_LIMIT})" in msg
    assert e.value.exit_code == 2


def test_at_the_limit_is_accepted():
    for n in range(11000, 14000, 250):
        r = rendered_with(os.urandom(n))
        if r.sizes()["base64"] <= USER_DATA_B64_LIMIT:
            r.check_size()  # no error
        else:
            with pytest.raises(InputError):
                r.check_size()


def test_sizes_report_both_limits_and_the_real_encoding():
    r = render_text("name: small\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n")
    s = r.sizes()
    assert s["limit"] == 16384 and s["base64_limit"] == 16384
    assert s["base64"] == len(r.user_data_b64) and s["gzip"] == len(gzip.compress(r.text.encode(), 9, mtime=0))
