"""The provider contract: what a provider plugin implements so that every core command (`deploy`, `status`,
`destroy`, `logs`, `sync`) and the TUI work with it, with no change to core.

Core owns the flow (validation, confirmation, the registry, local files, Ctrl-C, health, output); a provider
owns its resources. A provider registers an instance through the ``register_providers`` hook; its ``name`` is
the template's ``deploy.target`` it serves (``lcai deploy --target NAME`` overrides the template).

Registry records are plain JSON-able dicts, the same for every provider (see ``docs/providers.md``). Fields a
provider needs for its own resources (a Linode id, a firewall id, a VM's pid) live in the provider-owned
sub-record ``record["provider_state"]``; core never reads inside it.

Deploy runs the provider's ``create_steps`` one by one. Each step is undoable: when a deploy is interrupted
or fails before every step finished, core asks each step whether its resource exists (``find``) and undoes
the ones that do, in reverse order, so the account holds either a tracked deployment or nothing. A provider
gets that guarantee by implementing three small methods per step, not by writing its own state machine.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Callable, ClassVar, Optional

from attrs import define, field

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default ``say``: print nothing."""


#: every key core stores in a deployment's registry record (``registry.json``), with what it holds; a provider
#: reads them and returns its own fields in ``provider_state`` (docs/providers.md lists them; a test holds
#: both the table and what a deploy really stores to this set)
RECORD_KEYS: dict[str, str] = {
    "deployment_id": "the 8-character id (also in every resource's lcai-id: tag)",
    "provider": "the provider's name (deploy.target)",
    "app": "the app's name (--app, else the template's name)",
    "env": "the environment (--env, default `default`)",
    "label": "the machine's label (instance_label)",
    "status": "the deployment's state as core last recorded it (the status vocabulary below)",
    "address": "where the deployment answers (the instance's IPv4, a NodeBalancer's, 127.0.0.1)",
    "directory": "the deployment directory on this machine",
    "source": "how the record was made: deploy, or sync (adopted)",
    "created_at": "when it was recorded (UTC, ISO 8601)",
    "updated_at": "when the record last changed",
    "rebuilt_at": "the last redeploy's time",
    "stopped_at": "when `lcai stop` stopped it",
    "template": "the template's name", "template_version": "the template's version",
    "image": "the machine image (deploy.linode.image, --image)", "type": "the machine type", "region": "the region",
    "features": "the capabilities' names", "runtime": "the runtime capability",
    "container_image": "the app's container image", "external_port": "the public port",
    "internal_port": "the app's port on the machine",
    "health": "the template's health settings (type, path, codes, timings)",
    "health_status": "the last health answer: healthy, unhealthy, unknown (None: not checked since the change)",
    "health_detail": "what the last health check said", "health_source": "where it ran: here, instance, nodebalancer",
    "rendered_sha256": "the SHA-256 of the user data running (a redeploy compares it)",
    "rendered_gzip_bytes": "its gzip size",
    "rebuild_sha256": "while a rebuild is under way: the SHA-256 of the user data sent (None once recorded)",
    "ssh_sources": "who may reach SSH (--ssh-from, CIDRs), as applied to the firewall",
    "app_sources": "who may reach the public port (--app-from), as applied",
    "env_digest": "the app's environment as names and keyed hashes (never values): what a redeploy changes",
    "price_hourly": "the price per hour at creation (provider's preflight)", "price_monthly": "per month",
    "replicas": "replicated deployments: the number of replicas (absent for one machine)",
    "replicas_healthy": "replicated: replicas UP at the load balancer at the last check",
    "volumes": "the machine's volumes as deployed: name, label, size_gb, mount",
    "provider_state": "the provider's own fields (ids of its resources), stored and handed back, never read by core",
}

#: the statuses core writes into ``status`` (a provider's own live words, e.g. running or booting, are stored
#: as ``wait`` returns them and shown as they are)
CORE_STATUSES: dict[str, str] = {
    "creating": "recorded before the first create step; still so if it stopped mid-create",
    "created": "every create step ran; the machine may still be booting",
    "running": "the machine runs (every replica, after a rollout or scale; or as the provider's wait said)",
    "rebuilding": "a redeploy's rebuild was accepted",
    "rebuild failed": "the provider refused or failed the rebuild (the machine is as it was, or rebuilding)",
    "rebuild interrupted": "Ctrl-C during the rebuild request: it may or may not have started",
    "rolling out": "a rolling redeploy of replicas is under way",
    "rollout interrupted": "Ctrl-C during a rollout (replicas may differ; `lcai deploy` resumes)",
    "rollout stopped": "a replica failed to become healthy; the others serve the old version",
    "scaling": "`lcai scale` is adding or removing replicas",
    "vanished": "`sync` found no machine of it (`destroy --purge` looks it up by id before deleting anything)",
    "volumes kept": "destroyed; its volumes are kept (`destroy --volumes` deletes them)",
    "stopped": "`lcai stop`: its machines deleted, firewall and volumes kept; `lcai start` creates them again",
}


@define(frozen=True)
class Price:
    """What a deployment costs; ``None`` when unknown. ``note`` qualifies it (``region price``, ``local``)."""

    hourly: Optional[float] = None
    monthly: Optional[float] = None
    note: str = ""

    def describe(self) -> str:
        if self.hourly is None:
            return self.note or "price unknown"
        out = f"${self.hourly}/h"
        if self.monthly is not None:
            out += f", ${self.monthly}/mo"
        return out + (f" ({self.note})" if self.note else "")


@define(frozen=True)
class Preflight:
    """The result of checking a spec before anything is created: a one-line summary of what will run
    (shown before the confirmation), its price, and notes worth printing."""

    summary: str
    price: Price = Price()
    notes: tuple[str, ...] = ()


@define(frozen=True)
class VolumeSpec:
    """A Block Storage volume the deployment's machine has (``deploy.linode.volumes``): found again by
    ``label`` (the same for every deployment of the app and env), seen inside the machine as
    ``/dev/disk/by-id/scsi-0Linode_Volume_<label>``, mounted at ``mount`` by the user data."""

    name: str
    label: str
    size_gb: int
    mount: str


@define(frozen=True)
class Spec:
    """Everything a provider needs to create (or rebuild) one deployment. Built by core from the template,
    the deployment directory and the command line; ``user_data`` is byte for byte what ``lcai plan`` wrote.

    ``root_password`` is a secret: a provider may pass it to its API, never store or print it."""

    deployment_id: str
    app: str
    env: str
    label: str
    tags: tuple[str, ...]
    region: str
    type: str
    image: str
    user_data: str
    user_data_b64: str
    app_ports: tuple[int, ...] = ()
    ssh_sources: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    app_sources: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    ssh_keys: tuple[str, ...] = ()
    root_password: str = field(default="", repr=False)
    features: tuple[str, ...] = ()
    gpu: bool = False
    external_port: Optional[int] = None
    directory: str = ""
    #: instances behind one load balancer (providers with ``supports_replicas``); 1 = one machine, no balancer
    replicas: int = 1
    #: the template's health settings (type, path, success_codes, *_seconds, max_retries), or None
    health: Optional[dict[str, Any]] = None
    #: the Linode images every capability of the template supports (``--image`` may pick one), None: any
    supported_images: Optional[tuple[str, ...]] = None
    #: the machine's volumes: created (or found and attached) before it first boots, kept by rebuild and destroy
    volumes: tuple[VolumeSpec, ...] = ()


class Step:
    """One undoable step of a create. ``state`` is the deployment's ``provider_state`` so far (what earlier
    steps returned); each method may read it. Subclass it, or build one with ``Step.of(...)``."""

    name: str = "step"

    def run(self, state: dict[str, Any], say: Say) -> dict[str, Any]:
        """Create the resource (reconciling: never a duplicate) and return fields for ``provider_state``."""
        raise NotImplementedError

    def find(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        """After an interruption: the fields ``run`` would have returned if the resource exists, else None."""
        return None

    def undo(self, state: dict[str, Any], say: Say) -> None:
        """Delete the resource if it exists (already gone is fine)."""

    @staticmethod
    def of(name: str, run: Callable[[dict[str, Any], Say], dict[str, Any]],
           find: Callable[[dict[str, Any]], Optional[dict[str, Any]]] = lambda s: None,
           undo: Callable[[dict[str, Any], Say], None] = lambda s, say: None) -> "Step":
        return _FunctionStep(name, run, find, undo)


class _FunctionStep(Step):
    """A ``Step`` made of three functions (``Step.of``)."""

    def __init__(self, name: str, run: Callable[[dict[str, Any], Say], dict[str, Any]],
                 find: Callable[[dict[str, Any]], Optional[dict[str, Any]]],
                 undo: Callable[[dict[str, Any], Say], None]) -> None:
        self.name = name
        self._run, self._find, self._undo = run, find, undo

    def run(self, state: dict[str, Any], say: Say) -> dict[str, Any]:
        return self._run(state, say)

    def find(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        return self._find(state)

    def undo(self, state: dict[str, Any], say: Say) -> None:
        self._undo(state, say)


@define(frozen=True)
class SshEndpoint:
    """How to reach a deployment's machine over SSH. ``options`` are extra ``-o`` settings."""

    host: str
    port: int = 22
    user: str = "root"
    identity_file: Optional[str] = None
    options: tuple[str, ...] = ()

    def argv(self, remote_command: str, connect_timeout: int = 10) -> list[str]:
        """``ssh … user@host COMMAND``; ``LCAI_SSH`` replaces the ``ssh`` program (e.g. ``ssh -i KEY``)."""
        base = shlex.split(os.environ.get("LCAI_SSH", "ssh"))
        argv = [*base, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
                "-o", "StrictHostKeyChecking=accept-new"]
        for opt in self.options:
            argv += ["-o", opt]
        if self.port != 22:
            argv += ["-p", str(self.port)]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        return [*argv, f"{self.user}@{self.host}", remote_command]

    def describe(self) -> str:
        return "ssh " + (f"-p {self.port} " if self.port != 22 else "") + (
            f"-i {self.identity_file} " if self.identity_file else "") + f"{self.user}@{self.host}"


@define(frozen=True)
class Endpoint:
    """Where the app's public port answers from the user's machine."""

    host: str
    port: int

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}{'' if self.port == 80 else f':{self.port}'}{path}"


@define(frozen=True)
class Remains:
    """What direct lookups (by id, not a list) find of a deployment that a list calls gone (``vanished``), for
    ``lcai destroy --purge``. ``machines``: machines or disks that still exist, one line each ("instance 123
    (running)"): purge keeps such a deployment and deletes nothing of it. ``leftovers``: what purge would delete,
    resources that hold no data (a firewall, a load balancer), one line each."""

    machines: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()


@define
class Listing:
    """``rows``: the registry records merged with live state, plus ``untracked`` rows for live deployments the
    registry does not know. ``reached``: False when the provider could not be asked (the rows are then the
    registry's, and ``source`` says why). ``refused``: it answered, and refused the credentials (a rejected or
    under-scoped token): ``lcai status`` still lists the rows, then exits 2, so a script can tell."""

    rows: list[dict[str, Any]]
    source: str
    reached: bool = True
    refused: bool = False


class Provider:
    """Base class of providers. Subclasses set ``name`` and ``summary`` and implement the methods below;
    those with a default here are optional."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: requests ``rows`` makes for any number of deployments (documented, held by tests)
    list_requests: ClassVar[int] = 1
    #: the template image families this provider can boot (None: any)
    images: ClassVar[Optional[tuple[str, ...]]] = None
    #: report cloud-init phases over SSH while waiting (the provider knows SSH works early, e.g. a local VM)
    phases_over_ssh: ClassVar[bool] = False
    #: the machine's public ports face the internet (False: e.g. forwarded to 127.0.0.1 only)
    public_network: ClassVar[bool] = True
    #: the provider sets the root password from ``Spec.root_password`` (core saves it, 0600, when no key is sent)
    uses_root_password: ClassVar[bool] = True

    def configured(self) -> bool:
        """True when ``lcai status``/``sync`` should ask this provider even with no deployment recorded here
        (Linode: a token is set; local: VM directories exist). Default: only when it has records."""
        return False
    #: the provider can run ``Spec.replicas`` > 1 behind a load balancer, and implements ``scale`` and
    #: ``rollout`` (records of such deployments carry ``replicas``: N)
    supports_replicas: ClassVar[bool] = False

    def gpu_refusal(self, type_: str) -> Optional[str]:
        """Why a machine of ``type_`` from this provider has no GPU (the end of "capability 'gpu-nvidia' needs a
        GPU, and …"), or None when it has one or the provider cannot tell without its API (its ``preflight``
        decides then). Checked by ``lcai templates validate``, ``plan`` and ``deploy`` for a template with a
        capability that ``requires_gpu``."""
        return None

    # ------------------------------------------------------------ create

    def preflight(self, spec: Spec) -> Preflight:
        """Check the spec against what the provider offers (region, type, image, credentials) and price it.
        Raise ``InputError`` (exit 2) for what the user must change, ``LcaiError`` for runtime failures."""
        raise NotImplementedError(f"provider {self.name!r} does not create deployments")

    def create_steps(self, spec: Spec) -> list[Step]:
        """The undoable steps that create the deployment, in order (e.g. firewall, then instance). The last
        step's fields must include ``address`` once known (or ``wait`` returns it)."""
        raise NotImplementedError(f"provider {self.name!r} does not create deployments")

    def rebuild(self, record: dict[str, Any], spec: Spec, say: Say = _quiet) -> dict[str, Any]:
        """Replace the user data of a live deployment and boot it again on the same machine (same address).
        Returns updated ``provider_state`` fields."""
        raise NotImplementedError(f"provider {self.name!r} cannot rebuild; use `lcai deploy --new`")

    def update_firewall(self, record: dict[str, Any], spec: Spec, say: Say = _quiet) -> dict[str, Any]:
        """Optional: make the live deployment's firewall what ``spec`` asks (``ssh_sources``, ``app_sources``,
        ``app_ports``/``external_port``) in place, without touching the machine, and read the rules back (raise
        ``LcaiError`` when they differ). Returns updated ``provider_state`` fields. Not implemented: a redeploy
        that changes only who may connect is refused (``lcai deploy --new``) instead of being recorded unapplied."""
        raise NotImplementedError(f"provider {self.name!r} cannot change a firewall in place")

    def wait(self, record: dict[str, Any], say: Say, deadline: float) -> dict[str, Any]:
        """Block until the machine runs (``time.monotonic()`` past ``deadline``: raise ``LcaiError``), calling
        ``say(phase)`` on every change. Returns record fields to store (``status``, ``address``, …)."""
        raise NotImplementedError

    # ------------------------------------------------------------ read

    def rows(self, records: dict[str, dict[str, Any]]) -> Listing:
        """Every deployment's live state in ``list_requests`` requests (see ``Listing``). Each row is a copy of
        its record plus ``live_status`` (``vanished`` when gone, ``creating?`` when recorded but never
        created) and ``untracked: True`` for live deployments missing from ``records``. Never raises for an
        unreachable cloud: return the records with ``reached=False``."""
        raise NotImplementedError

    def detail(self, record: dict[str, Any]) -> list[tuple[str, Any]]:
        """Provider-specific lines for ``status ID`` and the TUI's detail screen (label, value)."""
        return []

    def ssh(self, record: dict[str, Any]) -> Optional[SshEndpoint]:
        """How to reach the machine over SSH (logs, on-machine health), or None when it has no address."""
        addr = record.get("address")
        return SshEndpoint(addr) if addr else None

    def ssh_absent(self, record: dict[str, Any]) -> Optional[str]:
        """Why SSH will never answer at ``ssh(record)`` although the machine runs (e.g. a simulator's instance,
        whose address has no SSH server behind it), or None (default: SSH may just not be up yet). Core still
        tries SSH first (``LCAI_SSH`` may stand in for the machine); when that attempt gets no answer, this
        reason ends the wait for SSH at once instead of after the grace (``LCAI_SSH_REFUSED_GRACE``)."""
        return None

    def app_endpoint(self, record: dict[str, Any]) -> Optional[Endpoint]:
        """Where the app's public port answers from this machine, or None (no public port, not reachable
        from here): core then reads the instance's own health result over SSH."""
        addr, port = record.get("address"), record.get("external_port")
        return Endpoint(addr, int(port)) if addr and port else None

    # ------------------------------------------------------------ replicas (optional)

    def health(self, record: dict[str, Any]) -> Optional[Any]:
        """The deployment's health as the provider sees it (``lcai_core.health.Health``), or None to let core
        check it (from here, else on the instance). A provider with a load balancer answers for replicated
        deployments from the balancer's view (``healthy k/N``) and may add ``replicas_healthy`` and
        ``replica_nodes`` to ``record`` for ``detail``."""
        return None

    def scale(self, record: dict[str, Any], replicas: int, spec: Optional[Spec], say: Say, deadline: float,
              save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Change a replicated deployment to ``replicas`` instances: new ones are created from ``spec`` (the
        deployment's current user data), waited healthy, then put in rotation; removed ones are drained first,
        never below the healthy capacity asked for. ``save(fields)`` stores ``provider_state`` fields as they
        change (so an interruption leaves nothing the registry does not know). Returns the final fields."""
        raise NotImplementedError(f"provider {self.name!r} cannot scale deployments")

    def rollout(self, record: dict[str, Any], spec: Spec, say: Say, deadline: float,
                save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Rolling redeploy of a replicated deployment: one replica at a time out of rotation, rebuilt with
        ``spec``'s user data, waited healthy, back in rotation. Raises ``TrackedError`` (its hint says how to
        roll back or resume) when a replica does not become healthy; the others keep serving; an ``LcaiError``
        gets core's hint on resuming and rolling back. Returns the final fields."""
        raise NotImplementedError(f"provider {self.name!r} cannot roll out to replicas")

    # ------------------------------------------------------------ remove, adopt

    def destroy(self, record: dict[str, Any], say: Say = _quiet) -> None:
        """Delete everything the deployment created, including resources an interrupted create may have left
        (find them by the deployment id). Idempotent: already-deleted resources are fine."""
        raise NotImplementedError(f"provider {self.name!r} does not destroy deployments")

    def stop(self, record: dict[str, Any], say: Say = _quiet) -> dict[str, Any]:
        """Optional (``lcai stop``): delete what bills by the hour and holds no data the user keeps (machines,
        load balancers), keep the firewall and the volumes; return the ``provider_state`` to keep (what ``start``,
        a create of the same deployment, finds again). Idempotent."""
        raise NotImplementedError(f"provider {self.name!r} cannot stop deployments")

    def delete_volumes(self, record: dict[str, Any], say: Say = _quiet) -> None:
        """Optional (providers that take ``Spec.volumes``): delete the deployment's volumes, which ``destroy``
        keeps; called by ``lcai destroy --volumes`` after ``destroy``. Idempotent: gone ones are fine."""
        raise NotImplementedError(f"provider {self.name!r} has no volumes")

    def remains(self, record: dict[str, Any]) -> Optional[Remains]:
        """For ``destroy --purge``: look the deployment's resources up one by one (a missing list entry is not
        proof: a removed tag or a short list reply looks the same). Return a ``Remains``; raise ``LcaiError``
        when a lookup fails (purge then keeps the deployment). None (this default): the provider cannot look
        them up, and purge keeps the deployment (``lcai destroy ID`` still deletes it)."""
        return None

    def discover(self) -> list[dict[str, Any]]:
        """For ``lcai sync``: a record (neutral fields + ``provider_state``) for every live deployment this
        provider can see, tracked here or not."""
        return []
