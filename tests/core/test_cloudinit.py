"""Assembly and rendering: deterministic, de-duplicated, conflicts caught, secrets literal and private."""

import gzip
import base64

import pytest
import yaml

from lcai_core.capabilities import Fragments, Unit, WriteFile
from lcai_core.cloudinit import ConflictError, assemble, docker_env_file, exec_line, systemd_quote
from lcai_core.errors import InputError
from lcai_testing import render_text

TPL = """\
name: demo
capabilities:
  runtime: docker
  features: [docker-optimize]
  packages: [ffmpeg, curl]
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
      command: nginx -g 'daemon off;' -c ${CONF}
      env:
        CONF: /etc/nginx/nginx.conf
        GREETING: "hello ${NAME}"
      health: {type: http, path: /, initial_delay_seconds: 5, max_retries: 3}
env:
  optional:
    - name: NAME
      default: world
"""


def test_render_is_valid_yaml_with_header_and_round_trips():
    r = render_text(TPL)
    assert r.text.startswith("#cloud-config\n")
    assert yaml.safe_load(r.text) == r.doc


def test_render_is_deterministic():
    assert render_text(TPL).text == render_text(TPL).text


def test_packages_deduplicated_and_apt_index_refreshed_once():
    r = render_text(TPL)
    pkgs = r.doc["packages"]
    assert len(pkgs) == len(set(pkgs)) and "ffmpeg" in pkgs and pkgs.count("curl") == 1
    assert r.doc["package_update"] is True
    assert not any("apt-get update" in str(c) for c in r.doc["runcmd"])


def test_env_file_is_0600_literal_and_interpolated():
    hostile = {
        "Q": "it's \"quoted\"", "SUB": "$(rm -rf /)", "BT": "`id`", "H": "${HOME}", "P": "100%", "BS": "a\\b",
        "HASH": "x # not a comment", "U": "héllo ✓", "BIG": "x" * 4096, "NAME": "lcai",
    }
    r = render_text(TPL, dotenv=hostile)
    env = next(w for w in r.doc["write_files"] if w["path"] == "/etc/lcai/app.env")
    assert env["permissions"] == "0600"
    lines = env["content"].splitlines()
    for k, v in hostile.items():
        assert f"{k}={v}" in lines
    assert "GREETING=hello lcai" in lines  # ${NAME} from .env (wins over the optional default)
    assert "CONF=/etc/nginx/nginx.conf" in lines


def test_env_values_never_on_a_command_line():
    r = render_text(TPL, dotenv={"SECRET_TOKEN": "s3cr3t-value"})
    unit = next(w for w in r.doc["write_files"] if w["path"] == "/etc/systemd/system/lcai-app.service")
    assert "s3cr3t-value" not in unit["content"] and "--env-file /etc/lcai/app.env" in unit["content"]
    assert "s3cr3t-value" not in str(r.doc["runcmd"])


def test_newline_in_env_value_rejected_naming_the_variable():
    with pytest.raises(InputError, match="^BAD: the value contains a newline"):
        docker_env_file({"BAD": "a\nb"})


def test_unknown_reference_is_an_error():
    with pytest.raises(InputError, match=r"references \$\{NOPE\}"):
        render_text(TPL.replace("${NAME}", "${NOPE}"))


def test_command_is_split_and_systemd_quoted():
    r = render_text(TPL)
    unit = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("lcai-app.service"))
    assert 'nginx:1.27 nginx -g "daemon off;" -c /etc/nginx/nginx.conf' in unit
    assert "-p 8080:80" in unit


def test_systemd_quote_blocks_expansion_and_specifiers():
    assert systemd_quote("a$b%c") == '"a$$b%%c"'
    assert exec_line(["/bin/echo", 'x "y"', "\\"]) == '/bin/echo "x \\"y\\"" "\\\\"'
    with pytest.raises(InputError):
        systemd_quote("a\nb")


def test_internal_only_port_binds_loopback():
    r = render_text(TPL.replace("      external_port: 8080\n", ""))
    unit = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("lcai-app.service"))
    assert "-p 127.0.0.1:80:80" in unit


def test_health_probe_uses_published_port_and_template_settings():
    r = render_text(TPL)
    script = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("health-wait"))
    assert "http://127.0.0.1:8080/" in script and "max_retries=3" in script and "initial_delay=5" in script


def test_no_fixed_sleep_in_runcmd_or_bootcmd():
    r = render_text(TPL)
    for c in r.doc.get("runcmd", []) + r.doc.get("bootcmd", []):
        assert "sleep" not in str(c)


def test_conflicting_files_name_both_capabilities():
    a = Fragments(write_files=(WriteFile("/etc/x.conf", "a"),))
    b = Fragments(write_files=(WriteFile("/etc/x.conf", "b"),))
    with pytest.raises(ConflictError, match="'one' and 'two' both define file /etc/x.conf differently"):
        assemble([("one", a), ("two", b)])
    same = assemble([("one", a), ("two", a)])  # identical pieces merge
    assert len(same.write_files) == 1


def test_conflicting_units_and_env():
    with pytest.raises(ConflictError, match="unit x.service"):
        assemble([("a", Fragments(units=(Unit("x.service", "1"),))), ("b", Fragments(units=(Unit("x.service", "2"),)))])
    with pytest.raises(ConflictError, match="container env URL"):
        assemble([("a", Fragments(container_env={"URL": "1"})), ("b", Fragments(container_env={"URL": "2"}))])


def test_user_data_encoding_and_sizes():
    r = render_text(TPL)
    s = r.sizes()
    assert gzip.decompress(base64.b64decode(r.user_data_b64)).decode() == r.text
    assert s["raw"] == len(r.text.encode()) and s["gzip"] < s["raw"] and s["limit"] == 16384


def test_oversized_user_data_refused():
    import os

    blob = base64.b64encode(os.urandom(30000)).decode()  # incompressible
    tpl = TPL + f"setup:\n  files:\n    - path: /opt/blob\n      content: {blob}\n"
    with pytest.raises(InputError, match=r"user data is too large: \d+ bytes gzipped \(limit 16384\) and \d+ "
                       r"characters base64-encoded \(Linode's limit: about 16384\)") as e:
        render_text(tpl)
    assert e.value.exit_code == 2


def test_setup_script_and_post_start_are_units_with_markers():
    tpl = TPL + "setup:\n  script: |\n    echo setup\n"
    tpl = tpl.replace("      health:", "      post_start_script: |\n        docker exec app true\n      health:")
    r = render_text(tpl)
    paths = {w["path"]: w for w in r.doc["write_files"]}
    setup_unit = paths["/etc/systemd/system/lcai-setup.service"]["content"]
    post_unit = paths["/etc/systemd/system/lcai-post-start.service"]["content"]
    assert "ConditionPathExists=!/var/lib/lcai/setup.done" in setup_unit
    assert "After=multi-user.target lcai-health.service" in post_unit
    assert "ConditionPathExists=!/var/lib/lcai/post-start.done" in post_unit
    app_unit = paths["/etc/systemd/system/lcai-app.service"]["content"]
    assert "lcai-setup.service" in app_unit.split("Requires=")[1].splitlines()[0]
    assert paths["/usr/local/lib/lcai/setup"]["content"].startswith("#!/bin/bash\nset -euo pipefail; ")


def test_native_runtime():
    tpl = """\
name: nat
capabilities:
  runtime: native
  features: [python-3.11]
deploy:
  linode:
    image: linode/ubuntu22.04
    container:
      command: python3.11 -m http.server 8000
      internal_port: 8000
      external_port: 8000
"""
    r = render_text(tpl, dotenv={"X": 'a "b"'})
    unit = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("lcai-app.service"))
    assert "ExecStart=/usr/bin/env python3.11 -m http.server 8000" in unit
    assert "EnvironmentFile=/etc/lcai/app.env" in unit and "docker" not in unit
    assert "User=lcai-app" in unit and "ProtectSystem=strict" in unit
    env = next(w["content"] for w in r.doc["write_files"] if w["path"] == "/etc/lcai/app.env")
    assert env == 'X="a \\"b\\""\n'
    assert r.doc["apt"]["sources"]["deadsnakes"] == {"source": "ppa:deadsnakes/ppa"}
