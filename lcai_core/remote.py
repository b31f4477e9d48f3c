"""Commands on a deployment's machine over SSH, through the provider's ``SshEndpoint``.

Used by `lcai logs`, by on-machine health (``/var/lib/lcai/health.json``, written by the health unit) and by
the cloud-init phases of `deploy --wait`. ``LCAI_SSH`` replaces the ``ssh`` program (tests put a fake there).
"""

from __future__ import annotations

import json
import subprocess
from typing import Optional

from attrs import define

from .errors import LcaiError
from .providers import SshEndpoint

HEALTH_FILE = "/var/lib/lcai/health.json"
MARK = "@@lcai@@"


@define
class Result:
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def problem(self) -> str:
        """The last line ssh (or the command) printed on stderr, for one-line messages."""
        return (self.err.strip().splitlines() or [f"exit {self.rc}"])[-1]

    @property
    def kind(self) -> str:
        """``ok``, ``auth`` (the machine answered and refused us: retrying will not help), ``unreachable`` (no
        answer yet: booting, network) or ``failed`` (ssh worked, the command failed)."""
        if self.rc == 0:
            return "ok"
        e = self.err
        if self.rc == 255 or "ssh:" in e:
            if "Permission denied" in e or "Too many authentication failures" in e or "Host key verification" in e:
                return "auth"
            return "unreachable"
        if self.rc == 124:
            return "unreachable"
        return "failed"


def run(endpoint: SshEndpoint, command: str, timeout: float = 30.0, connect_timeout: int = 10) -> Result:
    argv = endpoint.argv(command, connect_timeout=connect_timeout)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LcaiError(f"{argv[0]} is not installed", hint="install an OpenSSH client, or set LCAI_SSH") from None
    except subprocess.TimeoutExpired:
        return Result(124, "", f"ssh: timed out after {timeout:.0f}s")
    return Result(r.returncode, r.stdout, r.stderr)


@define
class MachineState:
    """What the machine says about itself: cloud-init's status and the health unit's last result."""

    cloud_init: Optional[str]        # running, done, error, disabled, … (None: unknown)
    health: Optional[dict]           # {"state": healthy|unhealthy|waiting, "detail": …, "attempt": …} or None
    result: Result


STATE_COMMAND = (f"cloud-init status 2>/dev/null | sed -n 's/^status: *//p'; echo '{MARK}'; "
                 f"cat {HEALTH_FILE} 2>/dev/null; true")


def machine_state(endpoint: SshEndpoint, timeout: float = 30.0, connect_timeout: int = 10) -> MachineState:
    r = run(endpoint, STATE_COMMAND, timeout=timeout, connect_timeout=connect_timeout)
    if MARK not in r.out:
        return MachineState(None, None, r)
    ci, _, rest = r.out.partition(MARK)
    health = None
    rest = rest.strip()
    if rest:
        try:
            health = json.loads(rest.splitlines()[-1])
        except ValueError:
            health = {"state": "unreadable", "detail": rest[:200]}
    return MachineState(ci.strip() or None, health if isinstance(health, dict) else None, r)
