"""The CLI as a user meets it: contract spellings, exit codes, one-line errors, files and modes."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lcai_core.cli import main

LCAI = [sys.executable, "-m", "lcai_core"]


@pytest.fixture(autouse=True)
def config_dir(lcai_config_dir):
    return lcai_config_dir


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def lcai(*args, cwd=None, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run([*LCAI, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=60)


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == "lcai 0.1.0"
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in ("init", "plan", "plugins", "templates"))


def test_templates_list_one_name_per_row(capsys):
    code, out, _ = run(capsys, "templates", "list")
    assert code == 0
    assert out.splitlines() == ["chat-agent", "embeddings-python", "llm-api", "ml-pipeline"]
    code, out, _ = run(capsys, "templates", "list", "--json")
    rows = json.loads(out)
    assert {r["name"]: r["kind"] for r in rows}["llm-api"] == "bundled"
    assert rows[0]["source"].startswith("bundled (lcai-core")


def test_user_template_overrides_bundled_and_uninstall(capsys, tmp_path, config_dir):
    src = tmp_path / "llm-api"
    src.mkdir()
    text = Path(__file__).parents[2].joinpath("templates/llm-api/template.yml").read_text()
    (src / "template.yml").write_text(text.replace("version: 0.1.0", "version: 9.9.9"))
    code, out, err = run(capsys, "templates", "install", str(src))
    assert code == 0, err
    assert (config_dir / "templates" / "llm-api" / "template.yml").is_file()
    code, out, _ = run(capsys, "templates", "list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "llm-api")
    assert row["kind"] == "user" and row["version"] == "9.9.9" and row["overrides"][0].startswith("bundled")
    code, _, err = run(capsys, "templates", "install", str(src))
    assert code == 2 and "already installed" in err
    code, out, _ = run(capsys, "templates", "uninstall", "llm-api")
    assert code == 0
    code, _, err = run(capsys, "templates", "uninstall", "llm-api")  # the bundled one is left
    assert code == 2 and "llm-api is bundled with lcai-core and cannot be uninstalled" in err


def test_templates_show(capsys):
    code, out, _ = run(capsys, "templates", "show", "llm-api")
    assert code == 0
    for s in ("vllm/vllm-openai", "gpu-nvidia", "VLLM_API_KEY", "required", "curl http://{host}/health", "bundled"):
        assert s in out
    code, _, err = run(capsys, "templates", "show", "llm-apl")
    assert code == 2 and "did you mean 'llm-api'?" in err


def test_validate_file_and_folder_and_errors(capsys, tmp_path):
    root = Path(__file__).parents[2]
    assert run(capsys, "templates", "validate", str(root / "templates/chat-agent"))[0] == 0
    assert run(capsys, "templates", "validate", str(root / "templates/chat-agent/template.yml"))[0] == 0
    bad = tmp_path / "deploy.yml"
    bad.write_text("name: x1x\ncapabilities:\n  runtime: dockr\ndeploy:\n  linode:\n    container:\n"
                   "      internal_port: eighty\n")
    code, out, err = run(capsys, "templates", "validate", str(tmp_path))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert f"error: {bad}:7: deploy.linode.container.internal_port: expected an integer, got string 'eighty'" in lines
    code, out, _ = run(capsys, "templates", "validate", str(bad), "--json")
    assert code == 2 and json.loads(out)["problems"][0]["line"] == 7


def test_bad_input_is_one_line_no_traceback_exit_2(tmp_path):
    (tmp_path / "deploy.yml").write_text("name: [unclosed\n")
    r = lcai("plan", "--directory", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0].startswith(f"error: {tmp_path}/deploy.yml:")
    r = lcai("--debug", "plan", "--directory", str(tmp_path))
    assert "Traceback" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    r = lcai("plan", "--nope")
    assert r.returncode == 2 and "No such option" in r.stderr and "--nope" in r.stderr
    r = lcai("deploy", "--yes", "--timeout", "-5")
    assert r.returncode == 2 and "--timeout" in r.stderr
    r = lcai("deploy", "--ssh-from", "10.0.0.0/33", "--yes")
    assert r.returncode == 2 and "--ssh-from '10.0.0.0/33': not an IP address or network" in r.stderr
    assert "Traceback" not in r.stderr
    r = lcai("init", "embeddings-python", "--directory", str(tmp_path / "svc"))
    assert r.returncode == 0, r.stderr
    (tmp_path / "svc" / ".env").write_text("EMBEDDINGS_API_KEY=x\n")
    r = lcai("deploy", "-d", str(tmp_path / "svc"), env={"LCAI_DISABLE_PLUGINS": "lcai-linode"})
    assert r.returncode == 2 and "no provider named 'linode' is installed" in r.stderr, r.stderr
    assert "pip install lcai-linode" in r.stderr


def test_init_then_plan_writes_exact_cloud_config(capsys, tmp_path):
    svc = tmp_path / "svc"
    code, out, err = run(capsys, "init", "embeddings-python", "--directory", str(svc))
    assert code == 0, err
    for f in ("deploy.yml", ".env.example", "README.md", ".gitignore"):
        assert (svc / f).is_file()
    assert "EMBEDDINGS_API_KEY=" in (svc / ".env.example").read_text()
    # missing .env with required variables: exit 2, says what to do
    code, _, err = run(capsys, "plan", "--directory", str(svc))
    assert code == 2 and ".env: missing" in err and "cp " in err
    (svc / ".env").write_text("EMBEDDINGS_API_KEY=sk-$(not-expanded)\n")
    ud = tmp_path / "user-data.yaml"
    code, out, err = run(capsys, "plan", "--directory", str(svc), "--cloud-config", str(ud))
    assert code == 0, err
    assert "sk-$(not-expanded)" not in out and "user data:" in out and "boot plan:" in out
    assert stat.S_IMODE(ud.stat().st_mode) == 0o600
    text = ud.read_text()
    assert text.startswith("#cloud-config\n") and "EMBEDDINGS_API_KEY=sk-$(not-expanded)" in text
    # the pending deployment (id + secret seed) makes plan repeatable, and it is private
    pending = svc / ".linode" / "pending.json"
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    ud2 = tmp_path / "again.yaml"
    assert run(capsys, "plan", "--directory", str(svc), "--cloud-config", str(ud2))[0] == 0
    assert ud2.read_text() == text
    code, out, _ = run(capsys, "plan", "--directory", str(svc), "--json")
    data = json.loads(out)
    assert data["sizes"]["gzip"] < 16384 and "EMBEDDINGS_API_KEY" in data["env_names"]
    assert "sk-" not in out


def test_init_refuses_to_overwrite(capsys, tmp_path):
    svc = tmp_path / "svc"
    assert run(capsys, "init", "chat-agent", "-d", str(svc))[0] == 0
    (svc / "deploy.yml").write_text("name: edited\n")
    code, _, err = run(capsys, "init", "chat-agent", "-d", str(svc))
    assert code == 2 and "already exists" in err
    assert (svc / "deploy.yml").read_text() == "name: edited\n"


def test_plugins_lists_distributions_and_versions(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    rows = json.loads(out)
    core = next(r for r in rows if r["distribution"] == "lcai-core")
    assert core["version"] == "0.1.0" and "register_capabilities" in core["hooks"] and core["status"] == "ok"
    code, out, _ = run(capsys, "plugins")
    assert out.splitlines()[0].startswith("DISTRIBUTION")


def test_schema_is_valid_and_accepts_bundled_templates(capsys):
    import jsonschema
    import yaml

    code, out, _ = run(capsys, "templates", "schema")
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    root = Path(__file__).parents[2] / "templates"
    for f in sorted(root.glob("*/template.yml")):
        assert not list(v.iter_errors(yaml.safe_load(f.read_text()))), f
    bad = {"name": "x", "deploy": {"linode": {"container": {"internal_port": "80"}}}, "extra": 1}
    assert len(list(v.iter_errors(bad))) == 3  # 'x' is too short a name for the schema as for validate
    opt = {"name": "x", "capabilities": {"features": [{"name": "docker-optimize", "config": {"bogus": 1}}]}}
    assert list(v.iter_errors(opt)), "capability configs are described too"


# ---------------------------------------------------------------- issue 13: filesystem mistakes, .gitignore


def test_filesystem_mistakes_name_the_path_exit_2(capsys, tmp_path):
    e4 = tmp_path / "e4"
    assert run(capsys, "init", "chat-agent", "-d", str(e4))[0] == 0
    f = e4 / "deploy.yml"
    code, out, err = run(capsys, "init", "chat-agent", "--directory", str(f / "sub"))
    assert code == 2 and err.splitlines()[0] == f"error: {f}/sub: {f} is a file, not a directory", err
    code, _, err = run(capsys, "plan", "--directory", str(e4), "--cloud-config", str(f / "x.yaml"))
    assert code == 2 and err.splitlines()[0] == f"error: {f}/x.yaml: {f} is a file, not a directory", err
    if os.path.isdir("/proc/self"):
        code, _, err = run(capsys, "init", "chat-agent", "--directory", "/proc/nope")
        assert code == 2 and err.splitlines()[0] == (
            "error: cannot create /proc/nope: no such file or directory (/proc does not accept new files or folders)")
        code, _, err = run(capsys, "plan", "-d", str(e4), "--cloud-config", "/proc/user-data.yaml")
        assert code == 2 and err.startswith("error: cannot write /proc/user-data.yaml: no such file or directory")
    for e in (code, err):
        assert "internal error" not in str(e) and "Traceback" not in str(e)


def test_permission_denied_names_the_path(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        target = ro / "svc"
        if os.geteuid() == 0:  # root writes anywhere: /sys refuses even root
            if not os.path.isdir("/sys/kernel"):
                pytest.skip("needs /sys (Linux) when run as root")
            target = Path("/sys/lcai-nope")
        code, _, err = run(capsys, "init", "chat-agent", "--directory", str(target))
        assert code == 2 and err.splitlines() == [
            f"error: cannot create {target}: permission denied",
            "hint: choose a location you can write to, or fix its permissions"]
    finally:
        ro.chmod(0o755)


def test_gitignore_from_init_covers_every_secret_file(capsys, tmp_path):
    from lcai_testing import tools

    (git,) = tools.need("git", ci_fails=False)
    svc = tmp_path / "svc"
    assert run(capsys, "init", "embeddings-python", "-d", str(svc))[0] == 0
    (svc / ".env").write_text("EMBEDDINGS_API_KEY=sk-1\n")
    code, out, err = run(capsys, "plan", "-d", str(svc), "--cloud-config", str(svc / "user-data.yaml"))
    assert code == 0, err
    assert f"wrote {svc / 'user-data.yaml'} (0600; contains the app's environment)" in out
    assert run(capsys, "plan", "-d", str(svc), "--cloud-config", str(svc / "user-data-staging.yaml"))[0] == 0
    # what deploy writes next to them (lcai_core.lifecycle: state, root password, connect.sh)
    (svc / ".linode" / "root-password").write_text("pw\n")
    (svc / "connect.sh").write_text("#!/bin/sh\n")
    (svc / ".env.local").write_text("X=1\n")
    subprocess.run([git, "init", "-q", str(svc)], check=True)
    r = subprocess.run([git, "-C", str(svc), "status", "--porcelain", "--untracked-files=all"],
                       capture_output=True, text=True, check=True)
    assert sorted(line[3:] for line in r.stdout.splitlines()) == [".env.example", ".gitignore", "README.md",
                                                                  "deploy.yml"]
    # outside the directory plan says so
    code, out, _ = run(capsys, "plan", "-d", str(svc), "--cloud-config", str(tmp_path / "ud.yaml"))
    assert code == 0 and "keep it out of version control" in out


def test_init_says_where_the_template_came_from_without_double_parentheses(capsys, tmp_path):
    code, out, _ = run(capsys, "init", "chat-agent", "-d", str(tmp_path / "svc"))
    assert code == 0 and out.splitlines()[0] == f"created {tmp_path / 'svc'}/ from template chat-agent 0.1.0, " \
        "bundled (lcai-core)"


def test_init_adds_missing_lines_to_an_existing_gitignore(capsys, tmp_path):
    svc = tmp_path / "svc"
    svc.mkdir()
    (svc / ".gitignore").write_text("node_modules/\n.env\n")
    assert run(capsys, "init", "chat-agent", "-d", str(svc))[0] == 0
    lines = (svc / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["node_modules/", ".env"] and lines.count(".env") == 1
    assert {".linode/", "user-data*.yaml", "connect.sh"} <= set(lines)


def test_templates_validate_lists_problems_in_file_order(capsys, tmp_path):
    bad = tmp_path / "t.yml"
    bad.write_text("name: x1x\nversionn: 1\ncapabilities:\n  runtime: docker\ndeploy:\n  linode:\n    container:\n"
                   "      internal_port: eighty\n      external_port: \"80\"\n")
    code, out, err = run(capsys, "templates", "validate", str(bad))
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert code == 2 and len(lines) == 3
    assert [int(x.split(":")[2]) for x in lines] == [2, 8, 9], err
    code, out, _ = run(capsys, "templates", "validate", str(bad), "--json")
    assert [p["line"] for p in json.loads(out)["problems"]] == [2, 8, 9]


def test_templates_list_long_has_a_header_and_aligned_columns(capsys, tmp_path, config_dir):
    src = tmp_path / "chat-agent"
    src.mkdir()
    (src / "template.yml").write_text(Path(__file__).parents[2].joinpath("templates/chat-agent/template.yml")
                                      .read_text().replace("version: 0.1.0", "version: 10.0.0-rc1"))
    assert run(capsys, "templates", "install", str(src))[0] == 0
    code, out, _ = run(capsys, "templates", "list", "--long")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "VERSION", "SOURCE", "DESCRIPTION"]
    for col in ("VERSION", "SOURCE", "DESCRIPTION"):  # every row's cell starts under its header
        at = lines[0].index(col)
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in lines[1:]), (col, lines)
    row = next(x for x in lines if x.startswith("chat-agent"))
    assert "10.0.0-rc1" in row and "user, overrides bundled" in row


def test_templates_show_has_no_double_parentheses(capsys):
    for name in ("chat-agent", "llm-api", "embeddings-python", "ml-pipeline"):
        code, out, _ = run(capsys, "templates", "show", name)
        assert code == 0 and ") (" not in out and "))" not in out, out
    assert out.splitlines()[0].startswith("ml-pipeline 0.1.0")


def test_uninstall_a_bundled_template_says_so(capsys):
    code, _, err = run(capsys, "templates", "uninstall", "llm-api")
    assert code == 2 and err.splitlines() == [
        "error: llm-api is bundled with lcai-core and cannot be uninstalled",
        "hint: to change it, install your own copy (a user template overrides a bundled one): "
        "lcai templates scaffold llm-api --from llm-api -d my-llm-api, edit it, then lcai templates install my-llm-api"]
    code, _, err = run(capsys, "templates", "uninstall", "no-such")
    assert code == 2 and "no user-installed template named 'no-such'" in err


def test_under_linode_cli_build_suggestions_say_linode_cli_build(capsys, tmp_path):
    from lcai_core import ui

    linode_cli = pytest.importorskip("lcai_linode.linode_cli")

    class Ctx:
        token = None
        client = None

    with pytest.raises(SystemExit) as exc:
        linode_cli.call(["templates", "uninstall", "llm-api"], Ctx())
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and "linode-cli build templates scaffold llm-api --from llm-api" in err
    linode_cli.call(["init", "chat-agent", "-d", str(tmp_path / "svc")], Ctx())
    out, _ = capsys.readouterr()
    assert f"  linode-cli build plan --directory {tmp_path / 'svc'}" in out and "lcai plan" not in out
    linode_cli.call(["init", "--help"], Ctx())
    out, _ = capsys.readouterr()
    assert out.startswith("Usage: linode-cli build init")
    with pytest.raises(SystemExit):
        linode_cli.call(["templates", "show", "nope"], Ctx())
    _, err = capsys.readouterr()
    assert "linode-cli build templates list" in err and "lcai templates" not in err
    assert ui.prog() == "lcai"  # restored for anything that runs next in this process


def test_init_takes_a_template_folder_or_file_by_path(capsys, tmp_path, monkeypatch):
    """Trying a template before installing it: `lcai init ./folder` or `lcai init path/template.yml`."""
    import shutil

    src = tmp_path / "my-template"
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates" / "chat-agent", src)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "init", "./my-template")
    assert code == 0, err
    assert (tmp_path / "my-template-deploy" / "deploy.yml").read_text() == (src / "template.yml").read_text()
    assert "path ./my-template" in out
    code, out, err = run(capsys, "init", str(src / "template.yml"), "--directory", "svc2")
    assert code == 0, err
    assert (tmp_path / "svc2" / "deploy.yml").is_file()
    code, out, err = run(capsys, "init", "./nowhere")
    assert code == 2 and "no template named './nowhere'" in err and "by path" in err
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "init", "./empty")
    assert code == 2 and "holds no template.yml" in err


def test_skips_for_missing_system_tools_are_summarised_in_one_line(tmp_path):
    """lcai_testing's pytest plugin (opt-in, -p): after the run, one line names the tests skipped because a system
    tool is missing and the packages that provide them."""
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_redis():\n    pytest.skip('redis-server not installed (apt-get install redis-server)')\n"
        "def test_pg():\n    pytest.skip('needs root and PostgreSQL server binaries')\n"
        "def test_units():\n    pytest.skip('validators missing: systemd-analyze (apt-get install systemd)')\n"
        "@pytest.mark.skip(reason='not about tools')\ndef test_other():\n    pass\n"
        "def test_ok():\n    pass\n")

    def summary(*opt_in):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *opt_in,
                            str(tmp_path / "test_x.py")], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "CI"})
        return r, [x for x in r.stdout.splitlines() if x.startswith("skipped for missing system tools")]

    r, lines = summary()
    assert r.returncode == 0 and lines == [], r.stdout  # opt-in: installing lcai-testing loads nothing
    r, lines = summary("-p", "lcai_testing.pytest_plugin")
    assert r.returncode == 0 and lines == [
        "skipped for missing system tools: test_x.py::test_pg (postgresql); test_x.py::test_redis (redis-server); "
        "test_x.py::test_units (systemd) — get them with: sudo apt-get install postgresql redis-server systemd"
    ], r.stdout


def test_scaffold_and_install_filesystem_mistakes_are_one_line(capsys, tmp_path, monkeypatch):
    f = tmp_path / "a-file"
    f.write_text("")
    code, _, err = run(capsys, "templates", "scaffold", "abc-d", "-d", str(f / "x"))
    assert code == 2 and err.splitlines()[0] == f"error: {f}/x: {f} is a file, not a directory"
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(f))
    root = Path(__file__).parents[2]
    code, _, err = run(capsys, "templates", "install", str(root / "templates" / "chat-agent"))
    assert code == 2 and err.splitlines()[0] == f"error: {f}/templates: {f} is a file, not a directory", err


def test_init_never_suggests_copying_over_an_existing_env(capsys, tmp_path):
    svc = tmp_path / "svc"
    code, out, _ = run(capsys, "init", "embeddings-python", "-d", str(svc))
    assert code == 0 and f"  cp {svc}/.env.example {svc}/.env   # then set EMBEDDINGS_API_KEY" in out
    (svc / ".env").write_text("EMBEDDINGS_API_KEY=mine\n")
    code, out, _ = run(capsys, "init", "embeddings-python", "-d", str(svc), "--force")
    assert code == 0 and "cp " not in out and f"$EDITOR {svc}/.env   # make sure it sets EMBEDDINGS_API_KEY" in out
    assert (svc / ".env").read_text() == "EMBEDDINGS_API_KEY=mine\n"


def test_env_hints_name_the_file_line_and_a_likely_typo(capsys, tmp_path):
    svc = tmp_path / "svc"
    assert run(capsys, "init", "embeddings-python", "--directory", str(svc))[0] == 0
    (svc / ".env").write_text("# mine\nEMBEDINGS_API_KEY=secret-1\n")  # a typo of EMBEDDINGS_API_KEY
    code, out, err = run(capsys, "plan", "--directory", str(svc))
    assert code == 2 and "EMBEDDINGS_API_KEY: required variable is not set" in err
    # the typo is the name in .env: that line is named, with the template's name to rename it to
    assert (f"{svc / '.env'}:2: EMBEDINGS_API_KEY: is not a variable of the template; "
            "did you mean 'EMBEDDINGS_API_KEY'?") in err
    assert "did you mean 'EMBEDINGS_API_KEY'?" not in err
    assert f"hint: set them in {svc / '.env'}" in err and "copy .env.example" not in err
    assert "secret-1" not in out + err
    (svc / ".env").write_text("# mine\n\nEMBEDDINGS_API_KEY=\n")
    code, out, err = run(capsys, "plan", "--directory", str(svc))
    assert code == 2 and f"{svc / '.env'}:3: EMBEDDINGS_API_KEY: required variable is empty" in err
    (svc / ".env").write_text("EMBEDDINGS_API_KEY=k\nEMBEDDINGS_API_KEYS=x\n")
    code, out, err = run(capsys, "plan", "--directory", str(svc))
    assert code == 0 and f"{svc / '.env'}:2: EMBEDDINGS_API_KEYS is not a variable of the template" in err
