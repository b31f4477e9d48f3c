"""The health wait: ``lcai-health.service`` runs ``health-wait`` once the app is started; the script's clock
starts once the app runs, and a crash loop, an app that does not run or too many failed probes end it as
unhealthy. Result and reason: ``/var/lib/lcai/health.json``.

The script is ``lcai_core/data/health-wait.bash`` (plain bash, no templating) behind a header that sets the
template's values as shell variables; the probe and the running check, which depend on the check type and the
runtime, are two functions written where the data file's marker line is."""

from __future__ import annotations

import shlex
from typing import Any, Optional

from .layout import APP_UNIT, LIB, START_GRACE, STATE
from .scripts import data_file, script_header
from .units import INSTALL, unit_text

SCRIPT = f"{LIB}/health-wait"
MARKER = "# @lcai: the renderer defines probe() and running() here\n"


def _body() -> tuple[str, str]:
    """The data file, split at its marker line: (before, after)."""
    before, sep, after = data_file("health-wait.bash").partition(MARKER)
    if not sep or MARKER in after:
        raise RuntimeError("lcai_core/data/health-wait.bash must hold its marker line exactly once")
    return before, after


def health_timeout(h: Any) -> int:
    """TimeoutStartSec of the health unit: a backstop above the script's own bound."""
    return START_GRACE + h.initial_delay_seconds + h.max_retries * (h.interval_seconds + h.timeout_seconds + 5) + 300


def _function(name: str, body: str) -> str:
    return name + "() {\n  " + body + "\n}\n"


def probe_body(h: Any, exec_argv: list[str], port: Optional[int]) -> str:
    """The probe function's body: return 0 when healthy, else set ``detail`` and return 1."""
    q = shlex.quote
    if h.type == "http":
        codes = "|".join(str(c) for c in h.success_codes)
        url = q(f"http://127.0.0.1:{port}{h.path}")
        return "\n  ".join([
            "code=$(curl -sS -o /dev/null -w '%{http_code}' "
            f"--max-time {h.timeout_seconds} {url} 2>/dev/null) || code=000",
            f'case "$code" in {codes}) return 0 ;; esac',
            f'detail="HTTP $code from "{q(h.path)}',
            "return 1"])
    if h.type == "tcp":
        return "\n  ".join([
            f"if timeout {h.timeout_seconds} bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; "
            "then return 0; fi",
            f'detail="no TCP connection on port {port}"',
            "return 1"])
    argv = " ".join(q(a) for a in exec_argv)
    return "\n  ".join([
        f"if timeout {h.timeout_seconds} {argv} >/dev/null 2>&1; then return 0; fi",
        'detail="exec check failed"',
        "return 1"])


def health_script(h: Any, probe: str, running: str) -> str:
    """The whole script: the settings header, the data file, ``probe()`` and ``running()`` (shell bodies)."""
    settings = {
        "initial_delay": str(h.initial_delay_seconds),
        "interval": str(h.interval_seconds),
        "max_retries": str(h.max_retries),
        "max_restarts": str(h.max_restarts),
        "start_grace": "${LCAI_START_GRACE:-" + str(START_GRACE) + "}",
        "app": APP_UNIT,
        "state": f"{STATE}/health.json",
    }
    header = script_header(
        "#!/bin/bash",
        ["lcai health wait (template settings): the clock starts once the app runs; a crash loop or an app that does",
         f"not run ends it as unhealthy. Result and reason: {STATE}/health.json"],
        settings, f"mkdir -p {STATE}")
    before, after = _body()
    return header + before + _function("probe", probe) + _function("running", running) + after


def health_unit(app_name: str, h: Any) -> str:
    return unit_text([
        ("Unit", [("Description", f"lcai: wait until {app_name} is healthy ({h.type} check)"),
                  ("After", ["multi-user.target", APP_UNIT]), ("Wants", APP_UNIT)]),
        ("Service", [("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStart", SCRIPT),
                     ("TimeoutStartSec", str(health_timeout(h)))]),
        INSTALL,
    ])

