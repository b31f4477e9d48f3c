"""MemCloud: a small provider whose "cloud" is two dicts (disks, machines), correct unless told to break a rule.
The conformance kit's own tests run the kit on it with each defect (``MemCloud(defects={...})``) and check
the kit fails the rule the defect breaks, naming it; without defects it passes every rule.

Defects: ``undo-twice`` (undoing a deleted machine raises), ``rows-raises`` (rows() raises KeyError),
``find-none`` (the machine step's find() never finds it), ``destroy-leaves`` (destroy forgets the disk),
``duplicate`` (the machine step creates a new machine on every run), ``secret`` (the machine step returns the
root password under an innocent key, which the registry cannot refuse), ``untracked-hidden`` (rows() lists
only the records), ``resend`` (a machine create whose reply was lost is sent again, not looked up),
``remains-blind`` (remains() never sees a machine, as a lookup in a filtered list would not).

``MemCloudContract`` is the kit with MemCloud's own fixtures: ``resources`` lists every disk and machine of a
deployment (so a duplicate counts), ``lose_reply("machine")`` makes the next machine create happen and its
reply be lost (a ``ConnectionError``, as a dropped connection reads)."""

from __future__ import annotations

import itertools

import pytest

from lcai_core.api import LcaiError, Listing, Preflight, Price, Provider, Remains, Step
from lcai_testing.provider_contract import ProviderContract

_ids = itertools.count(1000)


class MemCloud(Provider):
    name = "memcloud"
    summary = "machines in a dict"
    list_requests = 0
    public_network = False
    uses_root_password = False

    def __init__(self, defects=()):
        self.defects = set(defects)
        self.disks: dict = {}
        self.machines: dict = {}  # machine id -> {"dep", "ip", "user_data"}
        self.lose_next: set = set()  # step names whose next create loses its reply

    def _of(self, dep):
        return [(mid, m) for mid, m in self.machines.items() if m["dep"] == dep]

    def preflight(self, spec):
        return Preflight(f"a machine for {spec.image}", Price(0.0, 0.0, "free"))

    def create_steps(self, spec):
        dep = spec.deployment_id

        def disk_run(state, say):
            self.disks.setdefault(dep, {"size_gb": 10})
            return {"disk": dep}

        def disk_find(state):
            return {"disk": dep} if dep in self.disks else None

        def disk_undo(state, say):
            self.disks.pop(dep, None)

        def fields(mid):
            out = {"machine": mid, "address": self.machines[mid]["ip"], "status": "booting"}
            if "secret" in self.defects:
                out["login"] = f"root:{spec.root_password}"  # an innocent key: the registry cannot tell
            return out

        def post():
            mid = next(_ids)
            self.machines[mid] = {"dep": dep, "ip": f"192.0.2.{mid % 250 + 1}", "user_data": spec.user_data}
            if "machine" in self.lose_next:
                self.lose_next.discard("machine")
                raise ConnectionError("the reply was lost")
            return mid

        def machine_run(state, say):
            mine = self._of(dep)
            if mine and "duplicate" not in self.defects:
                return fields(mine[0][0])
            try:
                return fields(post())
            except ConnectionError:
                if "resend" in self.defects:
                    return fields(post())
                return fields(self._of(dep)[0][0])  # it happened: look it up

        def machine_find(state):
            mine = self._of(dep)
            return fields(mine[0][0]) if mine and "find-none" not in self.defects else None

        def machine_undo(state, say):
            if "undo-twice" in self.defects:
                del self.machines[state["machine"]]
                return
            for mid, _ in self._of(dep):
                del self.machines[mid]

        return [Step.of("disk", disk_run, disk_find, disk_undo), Step.of("machine", machine_run, machine_find,
                                                                           machine_undo)]

    def wait(self, record, say, deadline):
        mine = self._of(record["deployment_id"])
        if not mine:
            raise LcaiError(f"deployment {record['deployment_id']}: its machine is gone")
        return {"status": "running", "address": mine[0][1]["ip"]}

    def rebuild(self, record, spec, say):
        if not self._of(record["deployment_id"]):
            raise LcaiError(f"deployment {record['deployment_id']}: its machine is gone, nothing to rebuild")
        for _, m in self._of(record["deployment_id"]):
            m["user_data"] = spec.user_data
        return {"status": "booting"}

    def rows(self, records):
        if "rows-raises" in self.defects:
            raise KeyError("ip")
        rows = []
        for dep, rec in records.items():
            mine = self._of(dep)
            never_made = rec.get("status") == "creating" and not rec.get("provider_state")
            rows.append(dict(rec, live_status="running" if mine else "creating?" if never_made else "vanished"))
        if "untracked-hidden" not in self.defects:
            for dep in sorted({m["dep"] for m in self.machines.values()} - set(records)):
                rows.append({"deployment_id": dep, "provider": self.name, "live_status": "running", "untracked": True})
        return Listing(rows, "memory")

    def detail(self, record):
        return [("machines", ", ".join(str(mid) for mid, _ in self._of(record["deployment_id"])) or "none")]

    def destroy(self, record, say):
        dep = record["deployment_id"]
        for mid, _ in self._of(dep):
            del self.machines[mid]
        if "destroy-leaves" not in self.defects:
            self.disks.pop(dep, None)

    def remains(self, record):
        dep = record["deployment_id"]
        if "remains-blind" in self.defects:
            return Remains()
        found = [f"machine {mid}" for mid, _ in self._of(dep)] + ([f"disk {dep}"] if dep in self.disks else [])
        return Remains(tuple(found))

    def discover(self):
        deps = sorted(set(self.disks) | {m["dep"] for m in self.machines.values()})
        return [{"deployment_id": dep, "provider": self.name, "provider_state": {"disk": dep}} for dep in deps]


class MemCloudContract(ProviderContract):
    """The conformance kit with MemCloud's resources and fault injector; subclasses give ``provider``."""

    @pytest.fixture
    def resources(self, provider):
        def live(dep):
            return ([f"disk {dep}"] if dep in provider.disks else []) + [
                f"machine {mid}" for mid, _ in provider._of(dep)]
        return live

    @pytest.fixture
    def lose_reply(self, provider):
        def lose(step):
            if step != "machine":
                return False
            provider.lose_next.add(step)
            return True
        return lose
