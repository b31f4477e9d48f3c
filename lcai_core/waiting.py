"""`deploy --wait` once the machine runs: until the app is healthy, the machine's own first failure, or the
deadline. In parts a reader can hold:

- :class:`SshAccess` decides whether SSH is "not up yet" or "never will be" (the rule below);
- :class:`InstanceRecord` reads the machine's own record over SSH (:class:`lcai_core.remote.MachineState`:
  cloud-init, the image pull, the GPU check, a failed boot step or lcai unit, the health unit's result — the
  files `lcai logs` shows);
- :class:`LocalProbe` checks the app's public port from this machine;
- :func:`verdict` makes one answer of the two, the instance's failure winning;
- :class:`Waiter` runs the loop: phase lines, the spinner, the registry, the errors.

No SSH access, the rule. SSH will never answer when (a) the machine refused our key or host key ("Permission
denied", "Host key verification failed"); (b) the provider says nothing serves SSH at that address
(``Provider.ssh_absent``: the simulator's loopback addresses) and an attempt got no answer; (c) every attempt
was refused ("Connection refused": the host is up, nothing listens on the port) for ``LCAI_SSH_REFUSED_GRACE``
seconds in a row (default 90); or (d) no attempt was answered for ``LCAI_SSH_GRACE`` seconds (default 600)
since the machine ran, or since SSH last answered (a reboot). Anything else is "not up yet": a booting machine
times out, resets, then refuses for the seconds until sshd starts. Then the wait says so in one line
(``health not checked: no SSH access to …``) and ends with health ``unknown`` (exit 0: the deployment runs, lcai
could not look) when the health can only be read there; with a public port it goes on checking from here alone.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from attrs import define, field

from .conventions import env_seconds
from .errors import LcaiError, TrackedError
from .providers import Endpoint, Provider, SshEndpoint
from .remote import HEALTH_FILE, Failure, MachineState, Result, machine_state

REFUSED_GRACE = 90.0   # seconds of refused connections in a row (sshd starts seconds after the network)
SILENT_GRACE = 600.0   # seconds without any answer (a first boot reaches sshd in about a minute)


# ---------------------------------------------------------------- SSH: not up yet, or never will be


@define
class SshAccess:
    """Judges each SSH attempt (see the module's rule); ``clock`` is replaceable for tests."""

    endpoint: SshEndpoint
    absent: Optional[str] = None
    refused_grace: float = field(factory=lambda: env_seconds("LCAI_SSH_REFUSED_GRACE", REFUSED_GRACE))
    silent_grace: float = field(factory=lambda: env_seconds("LCAI_SSH_GRACE", SILENT_GRACE))
    clock: Callable[[], float] = time.monotonic
    since: float = field(init=False, default=0.0)
    refused_since: Optional[float] = field(init=False, default=None)
    last_answer: Optional[float] = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.since = self.clock()

    def judge(self, result: Result) -> Optional[str]:
        """After one attempt: None while SSH may still answer, else why it never will (``no SSH access to …``)."""
        now = self.clock()
        if result.kind in ("ok", "failed"):  # ssh got in (a failed command is the machine's answer)
            self.last_answer, self.refused_since = now, None
            return None
        who, problem = f"no SSH access to {self.endpoint.describe()}", result.problem()
        if result.kind == "auth":
            return f"{who} ({problem})"
        if self.absent:
            return f"{who}: {self.absent} ({problem})"
        if result.refused:
            self.refused_since = now if self.refused_since is None else self.refused_since
            if now - self.refused_since >= self.refused_grace:
                return (f"{who}: every connection refused for {now - self.refused_since:.0f}s while the machine "
                        f"runs ({problem})")
        else:
            self.refused_since = None
        quiet = self.since if self.last_answer is None else self.last_answer
        if now - quiet >= self.silent_grace:
            since = "since the machine ran" if self.last_answer is None else "since SSH last answered"
            return f"{who}: no answer for {now - quiet:.0f}s {since} ({problem})"
        return None


# ---------------------------------------------------------------- the instance's own record, over SSH


class InstanceRecord:
    """Reads the machine's record while SSH may answer. ``state``: the last answer (None before the first);
    ``lost``: why it cannot be read (then no more attempts)."""

    def __init__(self, endpoint: Optional[SshEndpoint], absent: Optional[str] = None, connect_timeout: int = 10):
        self.access = SshAccess(endpoint, absent) if endpoint is not None else None
        self.lost: Optional[str] = None if endpoint is not None else \
            "the provider gives no SSH access to this deployment"
        self.state: Optional[MachineState] = None
        self.answered_now = False
        self.connect_timeout = connect_timeout

    def read(self) -> None:
        self.answered_now = False
        if self.lost is not None or self.access is None:
            return
        try:
            st = machine_state(self.access.endpoint, timeout=30, connect_timeout=self.connect_timeout)
        except LcaiError as e:  # no ssh program here: that never changes during this wait
            self.lost = f"no SSH access: {e.message}"
            return
        self.lost = self.access.judge(st.result)
        if st.answered:
            self.state, self.answered_now = st, True

    def failure(self) -> Optional[Failure]:
        return self.state.failure() if self.state is not None else None


def phase_of(st: Optional[MachineState]) -> Optional[str]:
    """The boot phase a line names (``cloud-init running``); None before SSH answered."""
    if st is None:
        return None
    return f"cloud-init {st.cloud_init}" if st.cloud_init else None


def pull_line(st: Optional[MachineState]) -> Optional[str]:
    """The image pull's progress (``image pull: pulling IMAGE (attempt 1 of 4)``), a failure aside."""
    pull = (st.image_pull if st is not None else None) or {}
    state = pull.get("state")
    if state == "pulling":
        return f"image pull: pulling {pull.get('image')} ({pull.get('detail')})"
    if state in ("pulled", "present"):
        return f"image pull: {pull.get('image')} {'pulled' if state == 'pulled' else 'already present'}"
    return None


# ---------------------------------------------------------------- this machine's probe


@define
class LocalProbe:
    """The template's http/tcp check against the app's public port, from here."""

    endpoint: Endpoint
    health: dict

    def where(self) -> str:
        h = self.health
        return f"{h['type']} {self.endpoint.host}:{self.endpoint.port}" + (
            (h.get("path") or "") if h["type"] == "http" else "")

    def check(self) -> tuple[bool, str]:
        from .health import probe_endpoint

        return probe_endpoint(self.endpoint, self.health)


# ---------------------------------------------------------------- one verdict


@define(frozen=True)
class Verdict:
    state: str                       # healthy | unhealthy | running (no check) | waiting
    detail: str
    source: str                      # instance | this machine
    failure: Optional[Failure] = None


def verdict(st: Optional[MachineState], local: Optional[tuple[bool, str]], has_check: bool) -> Verdict:
    """One answer from the instance's record (``st``: its last answer, None when never read) and this machine's
    probe (``local``: None when not checked from here). The instance's failure wins over a healthy answer from
    here; healthy from here counts once cloud-init no longer runs there (when it was read); without a probe
    from here, the instance's own health check decides."""
    fail = st.failure() if st is not None else None
    if fail is not None:
        return Verdict("unhealthy", fail.text, "instance", fail)
    booting = st is not None and st.cloud_init == "running"
    if not has_check:
        done = st is not None and st.cloud_init in ("done", "disabled")
        return Verdict("running" if done else "waiting", phase_of(st) or "waiting for SSH", "instance")
    if local is not None:
        ok, detail = local
        if ok and not booting:
            return Verdict("healthy", detail, "this machine")
        if ok:
            detail += "; cloud-init still running on the instance"
        elif st is not None and (st.health or {}).get("state") == "healthy":
            detail = f"healthy on the instance, but from this machine: {detail}"
        return Verdict("waiting", detail, "this machine")
    h = (st.health if st is not None else None) or {}
    if h.get("state") == "healthy":
        return Verdict("healthy", "healthy on the instance", "instance")
    return Verdict("waiting", str(h.get("detail") or ""), "instance")


# ---------------------------------------------------------------- the loop


class Waiter:
    """``deploy --wait`` after ``Provider.wait``: see the module docstring. ``run`` returns the health word
    ("healthy", or "unknown" when it could not be checked) or raises ``LcaiError`` (failed, timed out)."""

    def __init__(self, prov: Provider, registry, record: dict, prog, deadline: float):
        from .health import local_endpoint

        self.prov, self.reg, self.record, self.prog, self.deadline = prov, registry, record, prog, deadline
        self.dep = record["deployment_id"]
        self.h: Optional[dict] = record.get("health")
        self.poll = env_seconds("LCAI_POLL_INTERVAL", 5.0)
        ep = local_endpoint(prov, record) if self.h else None
        self.local = LocalProbe(ep, self.h) if ep is not None and self.h else None
        ssh = prov.ssh(record)
        absent_fn = getattr(prov, "ssh_absent", None)
        absent = absent_fn(record) if ssh is not None and callable(absent_fn) else None
        self.instance = InstanceRecord(ssh, absent, connect_timeout=5 if self.local else 10)
        self.said: set[str] = set()
        self.last_phase: Optional[str] = None
        self.last_detail: Optional[str] = None

    # ---- output

    def say_once(self, line: Optional[str]) -> None:
        if line and line not in self.said:
            self.said.add(line)
            self.prog.say(line)

    def spinner(self, text: str) -> None:
        fn = getattr(self.prog, "status", None)
        if fn is not None and getattr(self.prog, "fancy", False):
            fn(text)

    def unknown(self, why: str) -> str:
        self.prog.say(f"health not checked: {why}; `lcai status {self.dep}` checks again")
        self.reg.update(self.dep, health_status="unknown", health_detail=why)
        return "unknown"

    # ---- the flow

    def run(self) -> str:
        if not self.h and not self.prov.phases_over_ssh:
            self.prog.say("running (the template has no health check)")
            return "unknown"
        needs_ssh = self.local is None  # the health (or, without a check, cloud-init) is only known there
        if needs_ssh and self.instance.lost:
            return self.unknown(self.instance.lost)
        self._announce()
        while True:
            self.instance.read()
            if self.instance.lost and needs_ssh and self.instance.state is None:
                return self.unknown(self.instance.lost)
            if self.instance.lost and not needs_ssh:
                self.say_once(f"instance record not read: {self.instance.lost}; health from this machine only")
            local = self.local.check() if self.local else None
            v = verdict(self.instance.state, local, bool(self.h))
            self._phases(v)
            if v.state in ("healthy", "running"):
                return self._done(v)
            if v.state == "unhealthy":
                raise self._failed(v)
            if self.instance.lost and needs_ssh:  # SSH answered before, and no longer will
                return self.unknown(self.instance.lost)
            self.spinner(self._waiting_text(v))
            if time.monotonic() > self.deadline:
                raise self._timed_out(v)
            time.sleep(min(self.poll, self.h["interval_seconds"]) if self.local and self.h else self.poll)

    def _announce(self) -> None:
        h, rec = self.h, self.record
        if h and self.local is None:
            why = ("exec check" if h.get("type") == "exec" else
                   "no public port" if not rec.get("external_port") else
                   "the app port is open only to --app-from sources")
            self.prog.say(f"health: read on the instance over SSH ({why}): {HEALTH_FILE}")
        elif self.local is not None:
            self.prog.say(f"health: checked from this machine ({self.local.where()}) while cloud-init sets up "
                          "the app")

    def _phases(self, v: Verdict) -> None:
        """Phase lines (each change once): SSH, cloud-init, the image pull, the instance's health attempts."""
        inst = self.instance
        st = inst.state
        phase = phase_of(st) if inst.answered_now else ("waiting for SSH" if not inst.lost else None)
        if phase and phase != self.last_phase:
            self.prog.say(phase)
            self.last_phase = phase
        if inst.answered_now:
            self.say_once(pull_line(st))
        if self.local is None and self.h and st is not None and st.health and v.state == "waiting":
            line = f"health: waiting (attempt {st.health.get('attempt')}/{st.health.get('max_retries')}" + (
                f": {v.detail})" if v.detail else ")")
            if line != self.last_detail:
                self.prog.say(line)
                self.last_detail = line

    def _waiting_text(self, v: Verdict) -> str:
        """The spinner: what is awaited now, never an earlier phase (``cloud-init done`` is not awaited)."""
        st = self.instance.state
        awaited = self.last_phase if self.last_phase in ("waiting for SSH", "cloud-init running") else None
        now = (pull_line(st) if st is not None and (st.image_pull or {}).get("state") == "pulling" else None) or awaited
        if self.local is not None:
            return f"waiting for {self.local.where()}" + (f" · {now}" if now else "")
        if self.h and st is not None and st.health:
            return f"waiting: health attempt {st.health.get('attempt')}/{st.health.get('max_retries')}" + (
                f" · {now}" if now else "")
        if self.h and st is not None and now is None:
            return "waiting: the health check to start"
        return f"waiting: {now or 'the machine'}"

    def _done(self, v: Verdict) -> str:
        if v.state == "running":
            self.prog.say("running (the template has no health check)")
            return "unknown"
        if v.source == "instance":
            self.prog.say("healthy (the instance's own check)")
            self.reg.update(self.dep, health_status="healthy", health_detail="healthy on the instance",
                            health_source="instance")
        else:
            self.prog.say(f"healthy: {v.detail}")
            self.reg.update(self.dep, health_status="healthy", health_detail=v.detail, health_source="this machine")
        return "healthy"

    def _failed(self, v: Verdict) -> LcaiError:
        dep, fail = self.dep, v.failure
        assert fail is not None
        st = self.instance.state
        detail = str(((st.health if st is not None else None) or {}).get("detail") or "")
        self.reg.update(dep, health_status="unhealthy", health_detail=fail.text, health_source="instance")
        if fail.kind == "health":
            return TrackedError(f"deployment {dep} is unhealthy: {detail or 'the health check gave up'}",
                                   hint=f"it is tracked and running: `lcai logs {dep}`; fix deploy.yml and run "
                                     "`lcai deploy` again")
        if fail.kind == "cloud-init":
            return LcaiError(f"cloud-init reported an error on deployment {dep}",
                             hint=f"`lcai logs {dep}` shows which step failed; fix deploy.yml and run "
                                  "`lcai deploy` again (it rebuilds the same machine)")
        return TrackedError(f"deployment {dep} failed on the instance: {fail.text}",
                            hint=f"it is tracked and running: `lcai logs {dep}` shows the step's output; fix "
                                 "deploy.yml (or what it names) and run `lcai deploy` again (it rebuilds the same "
                                 "machine)")

    def _timed_out(self, v: Verdict) -> LcaiError:
        dep = self.dep
        if self.local is not None:
            self.reg.update(dep, health_status="unhealthy", health_detail=v.detail, health_source="this machine")
            return TrackedError(f"deployment {dep} did not become healthy in time: {v.detail}",
                                hint=f"it is tracked and running: `lcai status {dep}`, `lcai logs {dep}`, "
                                     f"or `lcai destroy {dep}`")
        self.reg.update(dep, health_status="unknown" if not self.h else "unhealthy",
                        health_detail=f"timed out ({self.last_phase})")
        return TrackedError(f"timed out waiting for deployment {dep} ({self.last_phase or 'no answer'})",
                            hint=f"it is tracked: `lcai status {dep}`, `lcai logs {dep}`")
