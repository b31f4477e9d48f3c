"""A region, type or image that is not a Linode id never goes into an API path, whoever built the Spec (a plugin
through lcai_core.api, a record): refused before the first request, exit 2 (issue 21 item 11; the CLI's
--region/--type are checked earlier, in prepare)."""

import pytest

from lcai_core.errors import InputError
from lcai_core.providers import Spec


def _spec(**kw):
    base = dict(deployment_id="abcd1234", app="web", env="default", label="lcai-web-default-abcd1234", tags=(),
                region="us-ord", type="g6-standard-2", image="linode/ubuntu24.04", user_data="", user_data_b64="")
    return Spec(**{**base, **kw})


@pytest.mark.parametrize("field,value", [("region", "../profile"), ("region", "us-ord#x"), ("type", "g6?x=1"),
                                         ("type", "G6-standard-2"), ("type", "g6/../../profile"),
                                         ("image", "linode/.."), ("image", "private/x?y"), ("region", "")])
def test_preflight_refuses_what_is_not_an_id_before_any_request(sim, field, value):
    from lcai_linode.provider import LinodeProvider

    sim.clear_requests()
    with pytest.raises(InputError) as e:
        LinodeProvider().preflight(_spec(**{field: value}))
    assert e.value.exit_code == 2 and e.value.message.startswith(f"{field} {value!r} is not a Linode id"), e.value
    assert sim.requests() == []


def test_a_good_spec_still_passes(sim):
    from lcai_linode.provider import LinodeProvider

    assert "g6-standard-2" in LinodeProvider().preflight(_spec()).summary


def test_a_records_type_that_is_not_an_id_is_priced_unknown_without_a_request(sim):
    from lcai_linode.provider import LinodeProvider

    sim.clear_requests()
    assert LinodeProvider()._prices({"type": "../../profile", "region": "us-ord"}, 2) == {}
    assert not any(".." in r["path"] or "profile" in r["path"] for r in sim.requests())
