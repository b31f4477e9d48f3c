"""Commands on a deployment's machine over SSH, through the provider's ``SshEndpoint``.

Used by `lcai logs`, by on-machine health (``/var/lib/lcai/health.json``, written by the health unit) and by
the cloud-init phases of `deploy --wait`, which read the instance's own record of its boot (:class:`MachineState`:
cloud-init, the image pull, the GPU check, a failed boot step or lcai unit, health) and stop at its first
failure. ``LCAI_SSH`` replaces the ``ssh`` program (tests put a fake there).
"""

from __future__ import annotations

import json
import subprocess
from typing import Optional

from attrs import define

from .errors import LcaiError
from .providers import SshEndpoint

HEALTH_FILE = "/var/lib/lcai/health.json"
IMAGE_PULL_FILE = "/var/lib/lcai/image-pull.json"  # lcai_core/data/image-pull.bash
GPU_FILE = "/var/lib/lcai/gpu.json"                # lcai-gpu-nvidia's install and verify scripts
FAILED_STEP_FILE = "/var/lib/lcai/failed-step"     # the runcmd step that failed (cloudinit.document)
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

    @property
    def refused(self) -> bool:
        """The address answered and nothing listens on the SSH port (not a timeout: the host is up)."""
        return self.rc == 255 and "Connection refused" in self.err


def run(endpoint: SshEndpoint, command: str, timeout: float = 30.0, connect_timeout: int = 10) -> Result:
    argv = endpoint.argv(command, connect_timeout=connect_timeout)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LcaiError(f"{argv[0]} is not installed", hint="install an OpenSSH client, or set LCAI_SSH") from None
    except subprocess.TimeoutExpired:
        return Result(124, "", f"ssh: timed out after {timeout:.0f}s")
    return Result(r.returncode, r.stdout, r.stderr)


@define(frozen=True)
class Failure:
    """A terminal failure the machine recorded: ``kind`` (image-pull, gpu, boot-step, cloud-init, health, unit)
    and one line naming it."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


@define
class MachineState:
    """What the machine says about itself: cloud-init's status, the health unit's last result and the records
    of the steps before it (``None``: not written, or SSH did not answer)."""

    cloud_init: Optional[str]        # running, done, error, disabled, … (None: unknown)
    health: Optional[dict]           # {"state": healthy|unhealthy|waiting, "detail": …, "attempt": …} or None
    result: Result
    image_pull: Optional[dict] = None   # {"state": pulling|pulled|present|failed, "image", "attempts", "detail"}
    gpu: Optional[dict] = None          # {"ok": bool, "stage", "detail"}
    failed_step: Optional[str] = None   # "<command> (exit N)"
    failed_units: tuple[str, ...] = ()  # lcai-* units systemd lists as failed

    @property
    def answered(self) -> bool:
        """SSH worked and the command ran (the records below are the machine's, not guesses)."""
        return MARK in self.result.out

    def failure(self) -> Optional[Failure]:
        """The machine's first terminal failure, named (``image pull failed: IMAGE after 4 attempts: …``), or
        None while nothing has failed. The earliest cause wins: a failed pull also leaves the health unit
        unhealthy ("lcai-image-pull.service failed"), and the pull is what to fix."""
        pull = self.image_pull or {}
        if pull.get("state") == "failed":
            n = pull.get("attempts")
            return Failure("image-pull", f"image pull failed: {pull.get('image') or 'the app image'}"
                           + (f" after {n} attempt{'s' if n != 1 else ''}" if n else "")
                           + f": {pull.get('detail') or 'no detail'}")
        gpu = self.gpu or {}
        if gpu.get("ok") is False:
            return Failure("gpu", f"GPU check failed ({gpu.get('stage') or 'unknown stage'}): "
                                  f"{gpu.get('detail') or 'no detail'}")
        if self.failed_step:
            return Failure("boot-step", f"boot step failed: {self.failed_step}")
        if self.cloud_init == "error":
            return Failure("cloud-init", "cloud-init reported an error")
        h = self.health or {}
        if h.get("state") == "unhealthy":
            return Failure("health", f"unhealthy on the instance: {h.get('detail') or 'the health check gave up'}")
        units = [u for u in self.failed_units if u != "lcai-health.service"]
        if units:
            return Failure("unit", f"{units[0]} failed (journalctl -u {units[0]})")
        return None


#: one SSH call: cloud-init's status, then each record under a mark line naming it
RECORDS = (("health", HEALTH_FILE), ("image-pull", IMAGE_PULL_FILE), ("gpu", GPU_FILE),
           ("failed-step", FAILED_STEP_FILE))
STATE_COMMAND = ("cloud-init status 2>/dev/null | sed -n 's/^status: *//p'; "
                 + "".join(f"echo '{MARK} {name}'; head -c 2000 {path} 2>/dev/null; echo; " for name, path in RECORDS)
                 + f"echo '{MARK} failed-units'; "
                 "systemctl list-units --failed --plain --no-legend 'lcai-*' 2>/dev/null | awk '{print $1}'; true")


def _json_record(text: str) -> Optional[dict]:
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text.splitlines()[-1])
    except ValueError:
        return {"state": "unreadable", "detail": text[:200]}
    return data if isinstance(data, dict) else None


def parse_state(r: Result) -> MachineState:
    """The output of :data:`STATE_COMMAND` (or of the earlier one: cloud-init, mark, health.json)."""
    if MARK not in r.out:
        return MachineState(None, None, r)
    head, *sections = r.out.split(MARK)
    parts: dict[str, str] = {}
    for i, sec in enumerate(sections):
        name, _, body = sec.partition("\n")
        parts[name.strip() or ("health" if i == 0 else "")] = body
    gpu = _json_record(parts.get("gpu", ""))
    step = parts.get("failed-step", "").strip()
    return MachineState(head.strip() or None, _json_record(parts.get("health", "")), r,
                        image_pull=_json_record(parts.get("image-pull", "")),
                        gpu=gpu if gpu and "ok" in gpu else None,
                        failed_step=step.splitlines()[0][:300] if step else None,
                        failed_units=tuple(u for u in parts.get("failed-units", "").split() if u.startswith("lcai-")))


def machine_state(endpoint: SshEndpoint, timeout: float = 30.0, connect_timeout: int = 10) -> MachineState:
    return parse_state(run(endpoint, STATE_COMMAND, timeout=timeout, connect_timeout=connect_timeout))
