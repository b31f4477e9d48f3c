"""The buildwatch capability: the agent ships inside the user data, the unit is hardened, validators pass."""

import json
from pathlib import Path

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, require_validators, validate_user_data, written

TPL = """\
name: bw-app
capabilities:
  runtime: docker
  features:
    - {feature}
deploy:
  linode:
    image: {image}
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


def render(feature="buildwatch", image="linode/ubuntu24.04", **kw):
    return render_text(TPL.format(feature=feature, image=image), **kw)


def test_agent_shipped_in_user_data_never_downloaded():
    from lcai_buildwatch.capability import shipped_agent_source

    r = render()
    f = written(r)["/usr/local/bin/build-watcher"]
    # plain text, compressed once by the user data's own gzip (not gzip+base64 inside the gzip)
    assert "encoding" not in f and f["permissions"] == "0755"
    assert f["content"] == shipped_agent_source() and f["content"].startswith("#!/usr/bin/env python3\n")
    assert "\n  content: |\n    #!/usr/bin/env python3\n" in r.text  # a YAML literal block, readable on the instance
    compile(f["content"], "build-watcher", "exec")
    assert "curl" not in json.dumps(r.doc["runcmd"]) and "wget" not in json.dumps(r.doc)


def test_config_unit_and_logrotate():
    r = render("{name: buildwatch, config: {port: 9191, log_retention_days: 14}}", deployment_id="dep12345")
    files = written(r)
    cfg = json.loads(files["/etc/build-watcher/config.json"]["content"])
    assert cfg["deployment_id"] == "dep12345" and cfg["app_name"] == "bw-app" and cfg["port"] == 9191
    assert cfg["bind"] == "127.0.0.1" and "/etc/build-watcher/token" not in files
    unit = files["/etc/systemd/system/build-watcher.service"]["content"]
    assert "dep12345" in unit and "ProtectSystem=strict" in unit
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


@pytest.mark.parametrize("image", ["linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12"])
def test_validators_pass(image):
    require_validators()
    assert validate_user_data(render(image=image).text) == []


def test_shipped_agent_runs_as_shipped(tmp_path):
    """The stripped text that lands in /usr/local/bin/build-watcher, run as a program: usage, and a query."""
    import subprocess
    import sys

    agent = tmp_path / "build-watcher"
    agent.write_text(written(render())["/usr/local/bin/build-watcher"]["content"])
    r = subprocess.run([sys.executable, str(agent), "--config", str(tmp_path / "none.json"), "query", "status"],
                       capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and "the agent is not answering on 127.0.0.1:9090" in r.stderr


LLM_API = Path(__file__).resolve().parents[2] / "templates" / "llm-api" / "template.yml"


def _sizes(text):
    import base64
    import gzip

    gz = gzip.compress(text.encode(), 9, mtime=0)
    return len(gz), len(base64.b64encode(gz))


def test_agent_compressed_once_is_smaller_than_gzip_base64_inside_gzip():
    """The same user data with the agent as gz+b64 (as lcai shipped it before) is larger, gzip and base64."""
    import base64
    import gzip

    from lcai_buildwatch.capability import shipped_agent_source

    text = render().text
    twice = base64.b64encode(gzip.compress(shipped_agent_source().encode(), 9, mtime=0)).decode()
    block = "".join(f"    {line}\n" if line else "\n" for line in shipped_agent_source().splitlines())
    old = text.replace("content: |\n" + block, f"content: {twice}\n  encoding: gz+b64\n")
    assert old != text
    assert _sizes(text)[0] < _sizes(old)[0] and _sizes(text)[1] < _sizes(old)[1]


def _llm_api():
    from lcai_testing import render_text as rt

    return rt(LLM_API.read_text(), dotenv={"VLLM_API_KEY": "sk-test"})


def test_llm_api_within_both_of_linodes_limits():
    """llm-api (GPU, docker-optimize, BuildWatch) is the largest bundled template: its gzip bytes and the base64
    characters the API receives both fit (rendering raises otherwise)."""
    gz, b64 = _sizes(_llm_api().text)
    assert gz <= 16384 and b64 <= 16384, (gz, b64)
