"""Rendering in one direction: the capabilities' fragments first, then the app's environment (with the values
the capabilities provide), then the app's units — as `lcai plan` renders a deployment directory.

Uses the real redis and postgres capabilities (lcai-redis, lcai-postgres from plugins/)."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from lcai_core.cli import main
from lcai_core.cloudinit import Stack, build
from lcai_core.cloudinit.units import directives_of, oneshot_unit, unit_text
from lcai_core.errors import LcaiError
from lcai_core.plugins import get_host
from lcai_core.project import context_for
from lcai_core.template import load_template_text

pytest.importorskip("lcai_redis")
pytest.importorskip("lcai_postgres")

TPL = """\
name: broker-app
capabilities:
  runtime: docker
  features: [redis, postgresql]
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: ghcr.io/example/worker:1.0
      internal_port: 8000
      command: worker --queue ${BROKER}
      env:
        BROKER: ${REDIS_URL}
        RESULTS: "${DATABASE_URL}?sslmode=disable"
        MODE: prod
"""


@pytest.fixture(autouse=True)
def config_dir(lcai_config_dir):
    return lcai_config_dir


def plan(capsys, directory: Path, template: str, dotenv: str = ""):
    """`lcai plan` on a directory holding ``template`` (and ``dotenv`` as .env): exit code, stderr, the
    cloud-config (parsed) and the app's env file as NAME → value."""
    directory.mkdir(exist_ok=True)
    (directory / "deploy.yml").write_text(template)
    if dotenv:
        (directory / ".env").write_text(dotenv)
    ud = directory / "user-data.yaml"
    code = main(["plan", "--directory", str(directory), "--cloud-config", str(ud)])
    out, err = capsys.readouterr()
    if code != 0:
        return code, err, None, None
    doc = yaml.safe_load(ud.read_text())
    files = {w["path"]: w["content"] for w in doc["write_files"]}
    env = dict(line.split("=", 1) for line in files["/etc/lcai/app.env"].splitlines())
    return code, out + err, files, env


def redis_password(files) -> str:
    return re.search(r"^requirepass (\S+)$", files["/etc/redis/redis.conf"], re.M).group(1)


def test_container_env_gets_the_capabilities_values(capsys, tmp_path):
    code, out, files, env = plan(capsys, tmp_path / "svc", TPL)
    assert code == 0, out
    # the app's env file: the capability's URL, under the template's own name too, with the password redis uses
    assert env["BROKER"] == env["REDIS_URL"] == f"redis://default:{redis_password(files)}@host.docker.internal:6379/0"
    assert env["RESULTS"] == env["DATABASE_URL"] + "?sslmode=disable" and env["DATABASE_URL"].startswith("postgres")
    assert env["MODE"] == "prod"
    # the command's ${BROKER} is the same value, one argument (systemd-quoted in the unit, never split)
    unit = files["/etc/systemd/system/lcai-app.service"]
    assert f"worker --queue {env['BROKER']}" in unit or f'worker --queue "{env["BROKER"]}"' in unit
    assert "BROKER" in out and redis_password(files) not in out  # names in the plan, values never


def test_without_the_capability_its_variable_is_unknown(capsys, tmp_path):
    code, err, _, _ = plan(capsys, tmp_path / "svc", TPL.replace("[redis, postgresql]", "[postgresql]"))
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    line = next(i for i, x in enumerate(TPL.splitlines(), 1) if "BROKER: ${REDIS_URL}" in x)
    assert code == 2 and "Traceback" not in err
    assert lines == [f"error: {tmp_path}/svc/deploy.yml:{line}: deploy.linode.container.env.BROKER: references "
                     "${REDIS_URL}, which is not set in .env, has no default and no capability of the template "
                     "provides it"], err


def test_unknown_reference_names_file_line_and_field(capsys, tmp_path):
    code, err, _, _ = plan(capsys, tmp_path / "svc", TPL.replace("${BROKER}", "${NOPE}"))
    line = next(i for i, x in enumerate(TPL.splitlines(), 1) if "command:" in x)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0] == (f"error: {tmp_path}/svc/deploy.yml:{line}: deploy.linode.container.command: "
                                   "references ${NOPE}, which is not set in .env, has no default and no capability "
                                   "of the template provides it")
    assert "hint: add NOPE=… to .env" in err


def test_dotenv_wins_over_a_capability_and_says_so(capsys, tmp_path):
    managed = "redis://default:managed-secret@cache.example.com:6379/0"
    code, out, files, env = plan(capsys, tmp_path / "svc", TPL, f"# a managed Redis instead\nREDIS_URL={managed}\n")
    assert code == 0, out
    # .env wins everywhere: the variable itself and the template's references to it
    assert env["REDIS_URL"] == env["BROKER"] == managed
    assert redis_password(files) not in "".join(env.values())
    warnings = [x for x in out.splitlines() if x.startswith("warning:")]
    assert warnings == [f"warning: {tmp_path}/svc/.env:2: REDIS_URL replaces the value capability 'redis' provides; "
                        "the app gets the .env value (remove it from .env to use the capability's)"], out
    assert "managed-secret" not in out


def test_template_value_wins_over_a_capability_silently(capsys, tmp_path):
    tpl = TPL.replace("        MODE: prod\n", "        MODE: prod\n        REDIS_URL: redis://other:6379/1\n")
    code, out, _, env = plan(capsys, tmp_path / "svc", tpl)
    assert code == 0, out
    assert env["REDIS_URL"] == "redis://other:6379/1"
    assert env["BROKER"].startswith("redis://default:")  # ${REDIS_URL} resolves before container.env is applied
    assert "warning:" not in out


def test_the_templates_guide_example_renders(capsys, tmp_path):
    guide = (Path(__file__).parents[2] / "docs" / "templates.md").read_text()
    example = next(b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "${REDIS_URL}" in b)
    code, out, files, env = plan(capsys, tmp_path / "svc", example)
    assert code == 0, out
    assert env["CELERY_BROKER_URL"] == env["REDIS_URL"] and redis_password(files) in env["CELERY_BROKER_URL"]


def render(text: str, resolved_order=None):
    host = get_host()
    tpl = load_template_text(text, "template.yml", host.catalog)
    resolved = host.catalog.resolve(tpl)
    ctx = context_for(tpl, resolved, "t3stdepl", b"lcai-test-seed")
    return build(tpl, resolved_order(resolved) if resolved_order else resolved, ctx, {})


def test_the_runtime_is_found_by_kind_not_position():
    forward = render(TPL)
    runtime_last = render(TPL, lambda rs: [*rs[1:], rs[0]])
    # the runtime's fragments still come first: the same bytes wherever the list holds the runtime
    assert runtime_last.text == forward.text
    stack = Stack.of(get_host().catalog.resolve(load_template_text(TPL, "t.yml", get_host().catalog)))
    assert stack.runtime.name == "docker" and [r.name for r in stack.features] == ["postgresql", "redis"]
    with pytest.raises(LcaiError, match="one runtime"):
        Stack.of(list(stack.features))


def test_units_from_directives():
    text = unit_text([
        ("Unit", [("Description", "x"), ("After", ["a.service", "b.service", "a.service"]), ("Requires", []),
                  ("Wants", None)]),
        ("Service", [("CapabilityBoundingSet", ""), *directives_of("User=app\nEnvironment=A=b\n", "test")]),
    ])
    # a name list is de-duplicated, an empty list or None leaves the directive out, "" is kept (it means none)
    assert text == ("[Unit]\nDescription=x\nAfter=a.service b.service\n\n"
                    "[Service]\nCapabilityBoundingSet=\nUser=app\nEnvironment=A=b\n")
    with pytest.raises(LcaiError, match="expected Key=value lines"):
        directives_of("User=app\nnot a directive\n", "runtime 'x'")
    assert "Requires=" not in oneshot_unit("d", "/s", after=[], marker="/m", timeout=5)
    assert "Requires=a.service\n" in oneshot_unit("d", "/s", after=["a.service"], marker="/m", timeout=5)


def test_health_script_comes_from_the_package_data_file():
    r = render(TPL.replace("      internal_port: 8000\n",
                           "      internal_port: 8000\n      health: {type: tcp, max_retries: 7}\n"))
    script = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("/health-wait"))
    data = (Path(__file__).parents[2] / "lcai_core" / "data" / "health-wait.bash").read_text()
    before, marker, after = data.partition("# @lcai: the renderer defines probe() and running() here\n")
    assert marker and script.startswith("#!/bin/bash\n") and "\nmax_retries=7\n" in script
    assert before in script and script.endswith(after) and marker not in script
    assert "/dev/tcp/127.0.0.1/8000" in script.split("probe() {")[1].split("}")[0]


def test_wheel_ships_the_scripts(tmp_path):
    root = Path(__file__).parents[2]
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                        str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = zipfile.ZipFile(next(tmp_path.glob("lcai_core-*.whl")))
    for name in ("health-wait.bash", "image-pull.bash"):
        assert wheel.read(f"lcai_core/data/{name}") == (root / "lcai_core" / "data" / name).read_bytes()
