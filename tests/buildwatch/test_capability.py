"""The buildwatch capability: the agent ships inside the user data, the unit is hardened, validators pass."""

import base64
import gzip
import json

import pytest

from lcai_core.errors import ValidationError
from lcai_core.testing import render_text, require_validators, validate_user_data, written

TPL = """\
name: bw-app
capabilities:
  runtime: docker
  features:
    - {feature}
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


def render(feature="buildwatch", **kw):
    return render_text(TPL.format(feature=feature), **kw)


def test_agent_shipped_in_user_data_never_downloaded():
    from lcai_buildwatch.capability import shipped_agent_source

    r = render()
    f = written(r)["/usr/local/bin/build-watcher"]
    assert f["encoding"] == "gz+b64" and f["permissions"] == "0755"
    shipped = gzip.decompress(base64.b64decode(f["content"])).decode()
    assert shipped == shipped_agent_source()
    compile(shipped, "build-watcher", "exec")
    assert "curl" not in json.dumps(r.doc["runcmd"]) and "wget" not in json.dumps(r.doc)


def test_config_unit_and_logrotate():
    r = render("{name: buildwatch, config: {port: 9191, log_retention_days: 14}}", deployment_id="dep12345")
    files = written(r)
    cfg = json.loads(files["/etc/build-watcher/config.json"]["content"])
    assert cfg["deployment_id"] == "dep12345" and cfg["app_name"] == "bw-app" and cfg["port"] == 9191
    assert cfg["bind"] == "127.0.0.1" and "/etc/build-watcher/token" not in files
    unit = files["/etc/systemd/system/build-watcher.service"]["content"]
    assert "Environment=BUILD_DEPLOYMENT_ID=dep12345" in unit and "ProtectSystem=strict" in unit
    assert "ExecStart=/usr/bin/python3 /usr/local/bin/build-watcher --config /etc/build-watcher/config.json run" in unit
    rot = files["/etc/logrotate.d/build-watcher"]["content"]
    assert "rotate 14" in rot and "maxage 14" in rot
    assert "9191" not in files["/etc/systemd/system/lcai-app.service"]["content"]


def test_non_loopback_bind_gets_a_private_token():
    r = render("{name: buildwatch, config: {bind: 0.0.0.0}}")
    tok = written(r)["/etc/build-watcher/token"]
    assert tok["permissions"] == "0600" and len(tok["content"].strip()) >= 32


@pytest.mark.parametrize("cfg,msg", [("{port: 80}", "1024-65535"), ("{port: 8080}", "clashes with the app's port"),
                                     ("{bind: anywhere}", "must be an IP address"),
                                     ("{log_retention_days: 0}", "1-365")])
def test_bad_config(cfg, msg):
    with pytest.raises(ValidationError) as e:
        render("{name: buildwatch, config: " + cfg + "}")
    assert any(msg in x for x in e.value.lines())


def test_validators_pass():
    require_validators()
    assert validate_user_data(render().text) == []
