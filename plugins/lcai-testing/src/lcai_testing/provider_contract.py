"""The provider conformance kit: the promises of ``lcai_core.providers`` (docs/providers.md) as pytest tests a
provider author runs against their provider.

    from lcai_testing.provider_contract import ProviderContract

    class TestMyCloud(ProviderContract):
        @pytest.fixture
        def provider(self):
            return MyCloud()

pytest then runs one test per rule (``test_c05_…``). Every rule has an id and a one-line statement
(:data:`RULES`, listed in docs/providers.md, "Conformance"); a failure's message starts with both, then says
what was seen (``C9 undo is idempotent: …: undo() of step 'machine' the second time raised KeyError: 'ip'``).

Fixtures a test class may override (all but ``provider`` have defaults):

- ``provider``: the provider instance under test (required);
- ``spec_overrides``: a dict of ``Spec`` fields for the kit's specs (region, type, image the provider offers);
  ``make_spec(**fields)`` builds a ``Spec`` with a fresh deployment id from them;
- ``can_create``: requested by every rule that creates something; skip there (with an install hint) when this
  machine cannot create (a missing tool), so the rules that need no resource still run;
- ``resources``: ``resources(deployment_id) -> list[str]``, everything that exists for a deployment (``firewall
  123``, ``instance 456``); default: the deployments ``discover()`` sees. Give it when discover cannot see
  every kind of resource (a leftover firewall), so "leaves nothing" means nothing;
- ``lose_reply``: ``lose_reply(step_name) -> bool``: arrange that the next create request of that step takes
  effect but its reply is lost (False: the step sends no such request); default None: the rule skips;
- ``unreachable``: ``unreachable()``: make the provider's cloud unreachable for the rest of the test;
  default None: the rules needing it skip (a provider with no remote cannot lose it);
- ``request_count``: ``request_count() -> int``, the requests made to the cloud so far; default None: the
  rule on ``list_requests`` skips;
- ``wait_seconds``: how long ``wait`` may take (default 60).

Creates go through core's own ``StepRunner`` and a registry in a temporary directory, as ``lcai deploy`` runs
them; every deployment a rule creates is destroyed when the test ends, whatever happened.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import time
from typing import Any, Callable, Iterator, Optional

import pytest
from attrs import define

from lcai_core.conventions import deployment_tags, instance_label, random_root_password
from lcai_core.errors import InterruptReported, LcaiError
from lcai_core.providers import Endpoint, Listing, Preflight, Price, Provider, Remains, Spec, SshEndpoint, Step

__all__ = ["RULES", "ProviderContract", "Rule", "RuleFailed", "rule"]

SECRET_KEYS = ("password", "root_pass", "token", "secret", "user_data")  # what the registry refuses (registry.py)


@define(frozen=True)
class Rule:
    """One promise of the contract: ``id`` (``C5``) and a one-line ``statement``."""

    id: str
    statement: str

    def __str__(self) -> str:
        return f"{self.id} {self.statement}"


class RuleFailed(AssertionError):
    """A rule does not hold; the message starts with the rule's id and statement."""


#: every rule of the kit, in order (docs/providers.md lists each one)
RULES: list[Rule] = []


def rule(rule_id: str, statement: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make a test method a rule: any failure in it (an assertion, or a call that raised) becomes a
    ``RuleFailed`` whose message starts with the rule's id and statement."""
    r = Rule(rule_id, statement)
    RULES.append(r)

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def test(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except RuleFailed:
                raise
            except AssertionError as e:
                raise RuleFailed(f"{r}: {e}") from e
            except Exception as e:
                raise RuleFailed(f"{r}: {type(e).__name__}: {e}") from e

        test.__doc__ = str(r)
        test.rule = r  # type: ignore[attr-defined]
        return test

    return deco


def call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; an exception becomes an AssertionError naming the call (``rows() raised KeyError: 'ip'``).
    A KeyboardInterrupt from a provider is reported too, so it never stops the test run."""
    try:
        return fn(*args)
    except (Exception, KeyboardInterrupt) as e:
        raise AssertionError(f"{what} raised {type(e).__name__}: {e}") from e


def _quiet(message: str) -> None:
    """A ``say`` that prints nothing."""


def _b64(user_data: str) -> str:
    return base64.b64encode(gzip.compress(user_data.encode(), mtime=0)).decode()


def _new_id() -> str:
    from lcai_core.project import new_deployment_id

    return new_deployment_id()


def _agree(a: dict, b: dict) -> list[str]:
    """Keys both dicts have whose values differ, ``status`` aside (it changes as a machine boots)."""
    return sorted(k for k in set(a) & set(b) if k != "status" and a[k] != b[k])


def _secrets_in(fields: Any, spec: Spec) -> list[str]:
    """What in ``fields`` is secret: a secret-looking key, or the root password's value."""
    bad = []
    if isinstance(fields, dict):
        for k, v in fields.items():
            if any(s in str(k) for s in SECRET_KEYS):
                bad.append(f"key {k!r}")
            bad += _secrets_in(v, spec)
    elif isinstance(fields, (list, tuple)):
        for v in fields:
            bad += _secrets_in(v, spec)
    elif spec.root_password and isinstance(fields, str) and spec.root_password in fields:
        bad.append("the root password")
    return bad


class Interrupt(Step):
    """A provider's step with Ctrl-C (or an error) injected: ``before`` its run, or ``after`` it (the resource
    exists, its reply is lost)."""

    def __init__(self, step: Step, when: str, exc: type[BaseException] = KeyboardInterrupt):
        self.step, self.when, self.exc = step, when, exc
        self.name = step.name

    def run(self, state: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
        if self.when == "before":
            raise self.exc("injected by the conformance kit")
        self.step.run(state, say)
        raise self.exc("injected by the conformance kit")

    def find(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        return self.step.find(state)

    def undo(self, state: dict[str, Any], say: Callable[[str], None]) -> None:
        self.step.undo(state, say)


class ProviderContract:
    """Subclass it in a test module and give a ``provider`` fixture; pytest runs every rule against it."""

    # ------------------------------------------------------------ fixtures (override them)

    @pytest.fixture
    def provider(self) -> Provider:
        pytest.fail("the test class needs a `provider` fixture returning the provider under test")

    @pytest.fixture
    def spec_overrides(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def make_spec(self, spec_overrides: dict[str, Any]) -> Callable[..., Spec]:
        def make(**fields: Any) -> Spec:
            f: dict[str, Any] = {"app": "conform", "env": "test", "region": "us-ord", "type": "g6-standard-2",
                                 "image": "linode/ubuntu24.04", "app_ports": (8080,), "external_port": 8080,
                                 "root_password": random_root_password(),
                                 "user_data": "#cloud-config\n# lcai provider conformance kit\n"}
            f.update(spec_overrides)
            f.update(fields)
            dep = f.pop("deployment_id", None) or _new_id()
            f.setdefault("label", instance_label(f["app"], f["env"], dep))
            f.setdefault("tags", tuple(deployment_tags(dep, f["app"], f["env"])))
            f.setdefault("user_data_b64", _b64(f["user_data"]))
            return Spec(deployment_id=dep, **f)

        return make

    @pytest.fixture
    def can_create(self) -> None:
        """Requested by every rule that creates; override to skip where this machine cannot create."""

    @pytest.fixture
    def resources(self, provider: Provider) -> Callable[[str], list[str]]:
        def by_discover(dep: str) -> list[str]:
            return [f"deployment {r.get('deployment_id')} (discover)" for r in provider.discover()
                    if r.get("deployment_id") == dep]

        return by_discover

    @pytest.fixture
    def lose_reply(self) -> Optional[Callable[[str], bool]]:
        return None

    @pytest.fixture
    def unreachable(self) -> Optional[Callable[[], None]]:
        return None

    @pytest.fixture
    def request_count(self) -> Optional[Callable[[], int]]:
        return None

    @pytest.fixture
    def wait_seconds(self) -> float:
        return 60.0

    @pytest.fixture
    def kit(self, provider: Provider, make_spec: Callable[..., Spec], resources: Callable[[str], list[str]],
            wait_seconds: float, tmp_path: Any) -> Iterator["Kit"]:
        k = Kit(provider, make_spec, resources, wait_seconds, tmp_path / "conformance-registry.json")
        try:
            yield k
        finally:
            k.cleanup()

    # ------------------------------------------------------------ attributes, preflight, steps

    @rule("C1", "class attributes have the documented types: `name` a non-empty str, `summary` a str, "
                "`list_requests` an int >= 0, `images` None or a tuple of str, the flags bools")
    def test_c01_class_attributes(self, provider: Provider) -> None:
        p = type(provider)
        assert isinstance(p.name, str) and p.name, f"name is {p.name!r}"
        assert isinstance(p.summary, str), f"summary is {p.summary!r}"
        assert isinstance(p.list_requests, int) and not isinstance(p.list_requests, bool) \
            and p.list_requests >= 0, f"list_requests is {p.list_requests!r}"
        assert p.images is None or (isinstance(p.images, tuple) and all(isinstance(i, str) for i in p.images)), \
            f"images is {p.images!r}"
        for flag in ("phases_over_ssh", "public_network", "uses_root_password", "supports_replicas"):
            assert isinstance(getattr(p, flag), bool), f"{flag} is {getattr(p, flag)!r}"
        assert isinstance(call("configured()", provider.configured), bool), "configured() is not a bool"

    @rule("C2", "preflight(spec) returns a Preflight (a non-empty summary, a Price) and creates nothing")
    def test_c02_preflight(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        pre = call("preflight(spec)", kit.provider.preflight, spec)
        assert isinstance(pre, Preflight), f"preflight returned {pre!r}"
        assert isinstance(pre.summary, str) and pre.summary.strip(), f"summary is {pre.summary!r}"
        assert isinstance(pre.price, Price), f"price is {pre.price!r}"
        assert all(isinstance(n, str) for n in pre.notes), f"notes are {pre.notes!r}"
        kit.assert_nothing(spec, "after preflight")

    @rule("C3", "create_steps(spec) returns a non-empty list of Steps with distinct non-empty names, and "
                "creates nothing")
    def test_c03_create_steps(self, kit: "Kit") -> None:
        spec = kit.spec()
        steps = kit.steps(spec)
        assert steps, "create_steps returned no step"
        names = [s.name for s in steps]
        assert all(isinstance(n, str) and n for n in names), f"step names {names!r}"
        assert len(set(names)) == len(names), f"step names repeat: {names!r}"
        kit.assert_nothing(spec, "after create_steps")

    @rule("C4", "before its run(), every step's find() returns None (nothing of a new deployment exists)")
    def test_c04_find_before_run(self, kit: "Kit") -> None:
        spec = kit.spec()
        for s in kit.steps(spec):
            found = call(f"find() of step {s.name!r}", s.find, {})
            assert found is None, f"find() of step {s.name!r} before any run returned {found!r}"

    @rule("C5", "run() returns a dict of JSON-able fields; after it, find() returns fields that agree with "
                "them (`status` aside)")
    def test_c05_run_then_find(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        state: dict = {}
        for s in kit.steps(spec):
            fields = kit.run_step(s, state)
            found = call(f"find() of step {s.name!r} after its run()", s.find, dict(state))
            assert isinstance(found, dict), f"find() of step {s.name!r} after its run() returned {found!r}"
            diff = _agree(fields, found)
            assert not diff, (f"step {s.name!r}: find() disagrees with run() on {diff}: "
                              f"run {_pick(fields, diff)}, find {_pick(found, diff)}")

    @rule("C6", "run() again with the same state reconciles: the same fields (`status` aside), never a second "
                "resource")
    def test_c06_run_reconciles(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        state: dict = {}
        for s in kit.steps(spec):
            before = dict(state)
            first = kit.run_step(s, state)
            have = kit.resources(spec.deployment_id)
            again = call(f"run() of step {s.name!r} the second time", s.run, before, _quiet)
            assert isinstance(again, dict), f"the second run() of step {s.name!r} returned {again!r}"
            diff = _agree(first, again)
            assert not diff, f"step {s.name!r}: the second run() returned other {diff}: {_pick(again, diff)}"
            now = kit.resources(spec.deployment_id)
            assert sorted(now) == sorted(have), f"step {s.name!r} run twice: {have} became {now}"

    @rule("C7", "wait(record, say, deadline) returns record fields (a dict with `status`); with the steps' "
                "fields they include `address`")
    def test_c07_wait(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        fields = kit.wait(rec)
        assert "status" in fields, f"wait() returned no status: {fields!r}"
        assert rec.get("address") or fields.get("address"), \
            f"no address: the last step's fields {rec!r}, wait()'s {fields!r}"

    @rule("C8", "undo() of a created step deletes it: find() then returns None, and undoing every step in "
                "reverse leaves nothing")
    def test_c08_undo(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        state: dict = {}
        steps = kit.steps(spec)
        for s in steps:
            kit.run_step(s, state)
        for s in reversed(steps):
            call(f"undo() of step {s.name!r}", s.undo, dict(state), _quiet)
            found = call(f"find() of step {s.name!r} after its undo()", s.find, dict(state))
            assert found is None, f"find() of step {s.name!r} after its undo() returned {found!r}"
        kit.assert_nothing(spec, "after undoing every step")

    @rule("C9", "undo is idempotent: undoing a step twice, or a step never run, raises nothing and leaves "
                "nothing")
    def test_c09_undo_idempotent(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        steps = kit.steps(spec)
        state: dict = {}
        for s in steps:
            kit.run_step(s, state)
        for s in reversed(steps):
            call(f"undo() of step {s.name!r}", s.undo, dict(state), _quiet)
            call(f"undo() of step {s.name!r} the second time", s.undo, dict(state), _quiet)
        kit.assert_nothing(spec, "after undoing every step twice")
        for s in reversed(kit.steps(kit.spec())):
            call(f"undo() of step {s.name!r}, never run", s.undo, {}, _quiet)

    # ------------------------------------------------------------ read

    @rule("C10", "rows() of a live deployment: reached is True and its row is a copy of the record (the record "
                 "unchanged) with its `deployment_id` and a `live_status`")
    def test_c10_rows_live(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        original = json.dumps(rec, sort_keys=True, default=str)
        listing = kit.rows({rec["deployment_id"]: rec})
        assert listing.reached is True, f"reached is {listing.reached!r} ({listing.source})"
        mine = [r for r in listing.rows if r.get("deployment_id") == rec["deployment_id"]]
        assert len(mine) == 1, f"{len(mine)} rows for deployment {rec['deployment_id']}: {listing.rows!r}"
        assert mine[0].get("live_status"), f"no live_status in {mine[0]!r}"
        assert not mine[0].get("untracked"), f"a recorded deployment's row says untracked: {mine[0]!r}"
        assert mine[0] is not rec and json.dumps(rec, sort_keys=True, default=str) == original, \
            "rows() changed the record it was given"

    @rule("C11", "rows() of a deployment recorded `creating` with no provider_state (no step ran yet): reached is "
                 "True and its live_status is `creating?`, not `vanished` (`destroy --purge` would take it)")
    def test_c11_rows_never_created(self, kit: "Kit") -> None:
        spec = kit.spec()
        rec = kit.intent(spec)
        listing = kit.rows({spec.deployment_id: rec})
        assert listing.reached is True, f"reached is {listing.reached!r} ({listing.source})"
        mine = [r for r in listing.rows if r.get("deployment_id") == spec.deployment_id]
        assert len(mine) == 1, f"{len(mine)} rows for the recorded deployment: {listing.rows!r}"
        assert mine[0].get("live_status") == "creating?", f"live_status is {mine[0].get('live_status')!r}"

    @rule("C12", "rows() of a destroyed deployment: reached is True, its record's live_status is `vanished`, and "
                 "without the record it is not listed")
    def test_c12_rows_destroyed(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        call("destroy(record)", kit.provider.destroy, rec, _quiet)
        listing = kit.rows({rec["deployment_id"]: rec})
        assert listing.reached is True, f"reached is {listing.reached!r} ({listing.source})"
        mine = [r for r in listing.rows if r.get("deployment_id") == rec["deployment_id"]]
        assert [r.get("live_status") for r in mine] == ["vanished"], f"rows of the destroyed deployment: {mine!r}"
        ghost = [r for r in kit.rows({}).rows if r.get("deployment_id") == rec["deployment_id"]]
        assert not ghost, f"rows({{}}) still lists the destroyed deployment: {ghost!r}"

    @rule("C13", "rows() lists a live deployment the records lack, with its `deployment_id` and `untracked: True`")
    def test_c13_rows_untracked(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        listing = kit.rows({})
        mine = [r for r in listing.rows if r.get("deployment_id") == rec["deployment_id"]]
        assert len(mine) == 1 and mine[0].get("untracked") is True, \
            f"rows({{}}) of live deployment {rec['deployment_id']}: {mine!r}"
        assert mine[0].get("live_status"), f"no live_status in {mine[0]!r}"

    @rule("C14", "rows() never raises for an unreachable cloud: the records come back with reached False and a "
                 "`source` saying why")
    def test_c14_rows_unreachable(self, kit: "Kit", unreachable: Optional[Callable[[], None]]) -> None:
        if unreachable is None:
            pytest.skip("no `unreachable` fixture: the provider has no remote to lose")
        spec = kit.spec()
        rec = dict(kit.intent(spec), status="running", provider_state={"conformance": 1})
        unreachable()
        listing = kit.rows({spec.deployment_id: rec})
        assert listing.reached is False, f"reached is {listing.reached!r} with the cloud unreachable"
        assert isinstance(listing.source, str) and listing.source, f"source is {listing.source!r}"
        assert [r.get("deployment_id") for r in listing.rows] == [spec.deployment_id], \
            f"the records should come back as rows: {listing.rows!r}"

    @rule("C15", "detail(), ssh() and app_endpoint() of a live deployment return the documented types: "
                 "(str, value) pairs, an SshEndpoint or None, an Endpoint or None")
    def test_c15_detail_live(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        rec.update(kit.wait(rec))
        kit.assert_read_types(rec)

    @rule("C16", "detail(), ssh() and app_endpoint() of a deployment that does not exist raise nothing and "
                 "return the documented types")
    def test_c16_detail_missing(self, kit: "Kit") -> None:
        kit.assert_read_types(kit.intent(kit.spec()))

    @rule("C17", "discover() lists a live deployment as a record with its `deployment_id` and a `provider_state` "
                 "dict")
    def test_c17_discover(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        found = [r for r in call("discover()", kit.provider.discover) if r.get("deployment_id") == rec["deployment_id"]]
        assert len(found) == 1, f"discover() has {len(found)} records of live deployment {rec['deployment_id']}"
        assert isinstance(found[0].get("provider_state"), dict), f"provider_state is {found[0].get('provider_state')!r}"

    # ------------------------------------------------------------ change, remove

    @rule("C18", "rebuild(record, spec) keeps the deployment where it is: the same resources and address, "
                 "and it returns provider_state fields (a dict)")
    def test_c18_rebuild(self, kit: "Kit", can_create: None) -> None:
        if type(kit.provider).rebuild is Provider.rebuild:
            pytest.skip("the provider does not implement rebuild (redeploys need --new)")
        rec = kit.create()
        rec.update(kit.wait(rec))
        before, address = kit.resources(rec["deployment_id"]), rec.get("address")
        spec = kit.spec_of(rec, user_data="#cloud-config\n# lcai provider conformance kit: rebuilt\n")
        fields = call("rebuild(record, spec)", kit.provider.rebuild, rec, spec, _quiet)
        assert isinstance(fields, dict), f"rebuild returned {fields!r}"
        kit.take(rec, fields)
        assert sorted(kit.resources(rec["deployment_id"])) == sorted(before), \
            f"rebuild changed what exists: {before} became {kit.resources(rec['deployment_id'])}"
        now = kit.wait(rec).get("address") or rec.get("address")
        if address and now:
            assert now == address, f"address {address} became {now}"

    @rule("C19", "destroy(record) deletes everything the create made: every step's find() is then None, nothing "
                 "is left and discover() lists it no more")
    def test_c19_destroy(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        call("destroy(record)", kit.provider.destroy, rec, _quiet)
        kit.assert_nothing(kit.spec_of(rec), "after destroy")
        left = [r for r in call("discover()", kit.provider.discover) if r.get("deployment_id") == rec["deployment_id"]]
        assert not left, f"discover() after destroy still lists {left!r}"

    @rule("C20", "destroy is idempotent: destroying again, or a deployment never created, raises nothing")
    def test_c20_destroy_idempotent(self, kit: "Kit") -> None:
        call("destroy() of a deployment never created", kit.provider.destroy, kit.intent(kit.spec()), _quiet)

    @rule("C21", "destroy finds what an interrupted create left by the deployment id: a record without "
                 "provider_state is destroyed completely")
    def test_c21_destroy_without_state(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        state: dict = {}
        for s in kit.steps(spec):
            kit.run_step(s, state)
        call("destroy() of a record without provider_state", kit.provider.destroy, kit.intent(spec), _quiet)
        kit.assert_nothing(spec, "after destroying a record without provider_state")
        call("destroy() again", kit.provider.destroy, dict(kit.intent(spec), provider_state=state), _quiet)

    # ------------------------------------------------------------ interrupted creates (core's StepRunner)

    @rule("C22", "Ctrl-C between steps: StepRunner's find()/undo() leave nothing behind and the deployment is "
                 "forgotten")
    def test_c22_ctrl_c_between_steps(self, kit: "Kit", can_create: None) -> None:
        for k, s in enumerate(kit.steps(kit.spec())):
            spec = kit.spec()
            steps = kit.steps(spec)
            steps[k] = Interrupt(steps[k], "before")
            kit.run_interrupted(spec, steps, f"Ctrl-C before step {s.name!r}")
            kit.assert_nothing(spec, f"after Ctrl-C before step {s.name!r}")
            assert kit.registry.get(spec.deployment_id) is None, \
                f"Ctrl-C before step {s.name!r}: the deployment is still recorded"

    @rule("C23", "Ctrl-C after a step's create happened, its reply lost: find() recovers it, so it is undone "
                 "(steps remained) or tracked (it was the last)")
    def test_c23_ctrl_c_after_create(self, kit: "Kit", can_create: None) -> None:
        n = len(kit.steps(kit.spec()))
        for k in range(n):
            spec = kit.spec()
            steps = kit.steps(spec)
            name = steps[k].name
            steps[k] = Interrupt(steps[k], "after")
            kit.run_interrupted(spec, steps, f"Ctrl-C after step {name!r} ran")
            rec = kit.registry.get(spec.deployment_id)
            if k < n - 1:
                kit.assert_nothing(spec, f"after Ctrl-C once step {name!r} ran")
                assert rec is None, f"Ctrl-C after step {name!r}: the deployment is still recorded"
                continue
            assert rec is not None, (f"Ctrl-C after the last step {name!r} created it: the deployment was "
                                     f"forgotten though {kit.resources(spec.deployment_id)} exist")
            assert kit.resources(spec.deployment_id), "the tracked deployment has nothing"
            call("destroy() of the tracked deployment", kit.provider.destroy, rec, _quiet)
            kit.assert_nothing(spec, "after destroying the deployment tracked after Ctrl-C")

    @rule("C24", "a step failing (an exception) after earlier steps ran: StepRunner undoes them, nothing is "
                 "left and the deployment is forgotten")
    def test_c24_failure_undoes(self, kit: "Kit", can_create: None) -> None:
        for k, s in enumerate(kit.steps(kit.spec())):
            spec = kit.spec()
            steps = kit.steps(spec)
            steps[k] = Interrupt(steps[k], "before", RuntimeError)
            with pytest.raises(RuntimeError):
                kit.runner(spec).run(steps)
            kit.assert_nothing(spec, f"after step {s.name!r} failed")
            assert kit.registry.get(spec.deployment_id) is None, \
                f"step {s.name!r} failed: the deployment is still recorded"

    @rule("C25", "lost reply: a create whose reply was lost is looked up, not re-sent: run() still returns it "
                 "(the fields find() gives) and it exists once")
    def test_c25_lost_reply(self, kit: "Kit", can_create: None, lose_reply: Optional[Callable[[str], bool]]) -> None:
        if lose_reply is None:
            pytest.skip("no `lose_reply` fixture: the provider's requests cannot be faulted here")
        clean = kit.spec()
        kit.create(clean)
        expected = len(kit.resources(clean.deployment_id))
        lost = 0
        for k, s in enumerate(kit.steps(kit.spec())):
            spec = kit.spec()
            steps = kit.steps(spec)
            state: dict = {}
            for s2 in steps[:k]:
                kit.run_step(s2, state)
            if not lose_reply(steps[k].name):
                continue
            lost += 1
            fields = kit.run_step(steps[k], state)
            found = call(f"find() of step {s.name!r} after its reply was lost", steps[k].find, dict(state))
            assert found is not None, f"step {s.name!r}: created, its reply lost, and find() returned None"
            diff = _agree(fields, found)
            assert not diff, f"step {s.name!r} after a lost reply: run() and find() disagree on {diff}"
            for s2 in steps[k + 1:]:
                kit.run_step(s2, state)
            now = kit.resources(spec.deployment_id)
            assert len(now) == expected, (f"step {s.name!r} with a lost reply: {now} exist, a clean create makes "
                                          f"{expected}")
            call("destroy()", kit.provider.destroy, dict(kit.intent(spec), provider_state=state), _quiet)
        if not lost:
            pytest.skip("lose_reply found no create request to lose")

    @rule("C26", "no secret in what the provider returns: no secret-looking key and not the root password in "
                 "the fields of run(), find(), wait(), rebuild(), rows() or discover()")
    def test_c26_no_secrets(self, kit: "Kit", can_create: None) -> None:
        spec = kit.spec()
        state: dict = {}
        seen: list[tuple[str, Any]] = []
        for s in kit.steps(spec):
            seen.append((f"run() of step {s.name!r}", kit.run_step(s, state)))
            seen.append((f"find() of step {s.name!r}", call("find()", s.find, dict(state))))
        rec = kit.record(spec, state)
        seen.append(("wait()", kit.wait(rec)))
        if type(kit.provider).rebuild is not Provider.rebuild:
            seen.append(("rebuild()", call("rebuild()", kit.provider.rebuild, rec, kit.spec_of(rec), _quiet)))
        seen.append(("rows()", [r for r in kit.rows({}).rows if r.get("deployment_id") == spec.deployment_id]))
        seen.append(("discover()", [r for r in call("discover()", kit.provider.discover)
                                    if r.get("deployment_id") == spec.deployment_id]))
        for what, fields in seen:
            bad = _secrets_in(fields, spec)
            assert not bad, f"{what} returned {', '.join(bad)}"

    # ------------------------------------------------------------ failures the user can act on

    @rule("C27", "wait() with its deadline already past returns at once (the machine runs) or raises LcaiError, "
                 "never another exception")
    def test_c27_wait_deadline(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        t = time.monotonic()
        try:
            kit.provider.wait(rec, _quiet, t - 1)
        except LcaiError:
            pass
        except Exception as e:
            raise AssertionError(f"wait() past its deadline raised {type(e).__name__}: {e}") from e
        took = time.monotonic() - t
        assert took < kit.wait_seconds, f"wait() past its deadline took {took:.1f}s"

    @rule("C28", "wait() of a destroyed deployment raises LcaiError (its message is shown to the user), never "
                 "another exception")
    def test_c28_wait_destroyed(self, kit: "Kit", can_create: None) -> None:
        rec = kit.create()
        call("destroy(record)", kit.provider.destroy, rec, _quiet)
        kit.expect_lcai_error("wait() of a destroyed deployment", kit.provider.wait, rec, _quiet,
                              time.monotonic() + kit.wait_seconds)

    @rule("C29", "rebuild() of a destroyed deployment raises LcaiError (the user deploys anew), never another "
                 "exception")
    def test_c29_rebuild_destroyed(self, kit: "Kit", can_create: None) -> None:
        if type(kit.provider).rebuild is Provider.rebuild:
            pytest.skip("the provider does not implement rebuild (redeploys need --new)")
        rec = kit.create()
        call("destroy(record)", kit.provider.destroy, rec, _quiet)
        kit.expect_lcai_error("rebuild() of a destroyed deployment", kit.provider.rebuild, rec, kit.spec_of(rec),
                              _quiet)
        kit.assert_nothing(kit.spec_of(rec), "after rebuild() of a destroyed deployment")

    @rule("C30", "destroy() with the cloud unreachable raises LcaiError, so core keeps the record while the "
                 "resources may exist")
    def test_c30_destroy_unreachable(self, kit: "Kit", can_create: None,
                                     unreachable: Optional[Callable[[], None]]) -> None:
        if unreachable is None:
            pytest.skip("no `unreachable` fixture: the provider has no remote to lose")
        rec = kit.create()
        unreachable()
        kit.expect_lcai_error("destroy() with the cloud unreachable", kit.provider.destroy, rec, _quiet)

    @rule("C31", "rows() makes `list_requests` requests, for one deployment as for three")
    def test_c31_list_requests(self, kit: "Kit", can_create: None,
                               request_count: Optional[Callable[[], int]]) -> None:
        if request_count is None:
            pytest.skip("no `request_count` fixture: the kit cannot count the provider's requests")
        recs = {r["deployment_id"]: r for r in (kit.create() for _ in range(3))}
        for n in (1, 3):
            some = dict(list(recs.items())[:n])
            before = call("request_count()", request_count)
            kit.rows(some)
            made = call("request_count()", request_count) - before
            assert made == kit.provider.list_requests, \
                f"rows() of {n} deployment(s) made {made} requests; list_requests is {kit.provider.list_requests}"

    @rule("C32", "remains(record), when implemented: a live deployment's machine is in `machines` (a direct "
                 "lookup), and none is after destroy(), so `destroy --purge` never deletes a live machine")
    def test_c32_remains(self, kit: "Kit", can_create: None) -> None:
        if type(kit.provider).remains is Provider.remains:
            pytest.skip("remains() is not implemented: `lcai destroy --purge` keeps this provider's vanished "
                        "deployments (`lcai destroy ID` still deletes them)")
        rec = kit.create()
        rem = call("remains(record)", kit.provider.remains, rec)
        assert isinstance(rem, Remains), f"remains() returned {rem!r}, not a Remains"
        assert rem.machines, f"remains() of a live deployment lists no machine: {rem!r}"
        call("destroy(record)", kit.provider.destroy, rec, _quiet)
        rem = call("remains(record)", kit.provider.remains, rec)
        assert isinstance(rem, Remains) and not rem.machines, f"remains() after destroy() still lists {rem!r}"


def _pick(d: dict, keys: list[str]) -> dict:
    return {k: d.get(k) for k in keys}


class Kit:
    """What the rules share: specs, creates through core's StepRunner, a temporary registry, cleanup."""

    def __init__(self, provider: Provider, make_spec: Callable[..., Spec], resources: Callable[[str], list[str]],
                 wait_seconds: float, registry_path: Any):
        from lcai_core.registry import Registry

        self.provider, self.make_spec, self.wait_seconds = provider, make_spec, wait_seconds
        self._resources = resources
        self.registry = Registry(registry_path)
        self.specs: dict[str, Spec] = {}
        self.states: dict[str, dict] = {}

    def spec(self, **fields: Any) -> Spec:
        s = self.make_spec(**fields)
        self.specs[s.deployment_id] = s
        return s

    def spec_of(self, record: dict, **fields: Any) -> Spec:
        """The spec the deployment was made from (new user data with ``user_data=…``)."""
        from attrs import evolve

        s = self.specs[record["deployment_id"]]
        if "user_data" in fields and "user_data_b64" not in fields:
            fields["user_data_b64"] = _b64(fields["user_data"])
        return evolve(s, **fields)

    def resources(self, dep: str) -> list[str]:
        return list(call(f"resources({dep!r})", self._resources, dep))

    def steps(self, spec: Spec) -> list[Step]:
        steps = call("create_steps(spec)", self.provider.create_steps, spec)
        assert isinstance(steps, list) and all(isinstance(s, Step) for s in steps), \
            f"create_steps returned {steps!r}, not a list of Step"
        return steps

    def run_step(self, step: Step, state: dict) -> dict:
        fields = call(f"run() of step {step.name!r}", step.run, dict(state), _quiet)
        assert isinstance(fields, dict), f"run() of step {step.name!r} returned {fields!r}, not a dict"
        try:
            json.dumps(fields)
        except (TypeError, ValueError) as e:
            raise AssertionError(f"run() of step {step.name!r} returned fields that are not JSON: {e}") from None
        state.update(fields)
        return fields

    def intent(self, spec: Spec) -> dict:
        """The record core writes before the first step runs (``status: creating``, no provider_state)."""
        return {"deployment_id": spec.deployment_id, "app": spec.app, "env": spec.env, "provider": self.provider.name,
                "label": spec.label, "status": "creating", "region": spec.region, "type": spec.type,
                "image": spec.image, "external_port": spec.external_port, "address": None, "provider_state": {},
                "created_at": "2026-01-01T00:00:00Z", "source": "deploy"}

    def record(self, spec: Spec, state: dict) -> dict:
        from lcai_core.lifecycle import RECORD_FIELDS

        rec = self.intent(spec)
        rec["provider_state"] = {k: v for k, v in state.items() if k not in RECORD_FIELDS}
        rec.update({k: v for k, v in state.items() if k in RECORD_FIELDS})
        rec["status"] = state.get("status") or "created"
        self.states[spec.deployment_id] = rec
        return rec

    def take(self, rec: dict, fields: dict) -> None:
        from lcai_core.lifecycle import RECORD_FIELDS

        rec["provider_state"] = dict(rec.get("provider_state") or {}, **{
            k: v for k, v in fields.items() if k not in RECORD_FIELDS})
        rec.update({k: v for k, v in fields.items() if k in RECORD_FIELDS})

    def runner(self, spec: Spec) -> Any:
        from lcai_core.lifecycle import StepRunner

        self.registry.update(spec.deployment_id, create=True,
                             **{k: v for k, v in self.intent(spec).items() if k != "deployment_id"})
        return StepRunner(self.registry, spec.deployment_id, _quiet, self.provider.name)

    def create(self, spec: Optional[Spec] = None) -> dict:
        """A deployment created as ``lcai deploy`` does (core's StepRunner); returns its record."""
        spec = spec or self.spec()
        runner = self.runner(spec)
        call("creating through StepRunner", runner.run, self.steps(spec))
        rec = self.registry.update(spec.deployment_id, status=runner.record_fields.get("status") or "created")
        self.states[spec.deployment_id] = rec
        return dict(rec)

    def run_interrupted(self, spec: Spec, steps: list[Step], what: str) -> None:
        try:
            self.runner(spec).run(steps)
        except InterruptReported:
            return
        except (Exception, KeyboardInterrupt) as e:
            raise AssertionError(f"{what}: StepRunner raised {type(e).__name__}: {e}") from e
        raise AssertionError(f"{what}: StepRunner finished without reporting the interrupt")

    def wait(self, rec: dict) -> dict:
        fields = call("wait(record, say, deadline)", self.provider.wait, rec, _quiet,
                      time.monotonic() + self.wait_seconds)
        assert isinstance(fields, dict), f"wait() returned {fields!r}, not a dict"
        return fields

    def rows(self, records: dict) -> Listing:
        listing = call("rows(records)", self.provider.rows, records)
        assert isinstance(listing, Listing), f"rows() returned {listing!r}, not a Listing"
        assert isinstance(listing.rows, list) and all(isinstance(r, dict) for r in listing.rows), \
            f"Listing.rows is {listing.rows!r}"
        return listing

    def assert_nothing(self, spec: Spec, when: str) -> None:
        left = self.resources(spec.deployment_id)
        assert not left, f"{when}: {left} still exist"
        for s in self.steps(spec):
            found = call(f"find() of step {s.name!r} {when}", s.find, {})
            assert found is None, f"{when}: find() of step {s.name!r} returned {found!r}"

    def expect_lcai_error(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except LcaiError as e:
            assert e.message.strip(), f"{what} raised LcaiError with no message"
            return
        except (Exception, KeyboardInterrupt) as e:
            raise AssertionError(f"{what} raised {type(e).__name__}: {e}, not LcaiError (a plugin bug to core)") \
                from e
        raise AssertionError(f"{what} raised nothing")

    def assert_read_types(self, rec: dict) -> None:
        lines = call("detail(record)", self.provider.detail, rec)
        assert isinstance(lines, list) and all(
            isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in lines), \
            f"detail() returned {lines!r}, not [(label, value)]"
        ep = call("ssh(record)", self.provider.ssh, rec)
        assert ep is None or isinstance(ep, SshEndpoint), f"ssh() returned {ep!r}"
        app = call("app_endpoint(record)", self.provider.app_endpoint, rec)
        assert app is None or isinstance(app, Endpoint), f"app_endpoint() returned {app!r}"

    def cleanup(self) -> None:
        """Destroy every deployment a rule made (known state, else by id); failures are not the rule's result."""
        for dep, spec in self.specs.items():
            rec = self.states.get(dep) or self.registry.get(dep) or self.intent(spec)
            for r in (rec, self.intent(spec)):
                try:
                    self.provider.destroy(r, _quiet)
                except Exception:  # noqa: S110  (teardown: the rule already reported what it saw)
                    pass
