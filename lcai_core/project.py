"""A deployment directory (deploy.yml + .env + .linode/): everything plan and deploy read, read the same way.

``lcai plan`` stores a pending deployment id and secret seed in ``.linode/pending.json`` (0600), and deploy
reuses them, so the cloud-config that plan writes is exactly what deploy sends.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from pathlib import Path
from typing import Any, Literal, Optional, overload

from attrs import define

from .capabilities import DeployContext
from .cloudinit import Rendered, Stack, build
from .env import load_env_file
from .errors import InputError
from .files import write_private
from .template import Template, load_template

PENDING = ".linode/pending.json"


def new_deployment_id() -> str:
    """8 characters, a letter first (usable in labels), lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(alphabet) for _ in range(7))


@overload
def pending(directory: Path, create: Literal[True] = True, deployment_id: Optional[str] = None) -> dict[str, Any]: ...
@overload
def pending(directory: Path, create: bool, deployment_id: Optional[str] = None) -> Optional[dict[str, Any]]: ...
def pending(directory: Path, create: bool = True, deployment_id: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The pending plan (id + secret seed), created on first use; ``deployment_id`` pins the id (a directory
    linked to a live deployment whose seed stayed on another machine)."""
    p = directory / PENDING
    try:
        data = json.loads(p.read_text())
        if isinstance(data, dict) and isinstance(data.get("deployment_id"), str) and data.get("secret_seed") and (
                deployment_id is None or data["deployment_id"] == deployment_id):
            return data
    except FileNotFoundError:
        pass
    except (ValueError, OSError):
        raise InputError(f"{p}: unreadable; delete it to start a fresh plan") from None
    if not create:
        return None
    data = {"deployment_id": deployment_id or new_deployment_id(), "secret_seed": secrets.token_hex(32)}
    write_private(p, json.dumps(data) + "\n")
    return data


@define
class Prepared:
    directory: Path
    template: Template
    ctx: DeployContext
    env: dict
    rendered: Rendered
    resolved: list = []  # the template's capabilities, resolved once (``Catalog.resolve``)

    @property
    def seed(self) -> str:
        """The secret seed the user data was rendered with, as the state file keeps it (hex)."""
        return self.ctx.secret_seed.hex()


_UNREAD: Any = object()


GPU_HINT = ("use a GPU machine type (deploy.linode.type_default or --type) of a provider that has them "
            "(deploy.target or --target), or remove the GPU capability")


def gpu_refusal(host, tpl: Template, resolved: list, target: Optional[str], type_: str) -> Optional[str]:
    """Why ``tpl`` cannot run on a ``type_`` machine of provider ``target`` (default: ``deploy.target``): a
    capability of it ``requires_gpu`` and the provider says that machine has none (``Provider.gpu_refusal``);
    None when it can, or when the provider is not installed or cannot tell offline."""
    needs = [r.name for r in resolved if getattr(r.capability, "requires_gpu", False)]
    prov = host.providers.get(target or tpl.deploy.target) if needs else None
    why = prov.gpu_refusal(type_) if prov is not None else None
    return f"capability '{needs[0]}' needs a GPU, and {why}" if why else None


def find_deploy_file(directory: Path) -> Path:
    for name in ("deploy.yml", "deploy.yaml"):
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    raise InputError(f"{directory}: no deploy.yml here", hint="create one with: lcai init TEMPLATE --directory DIR")


LINODE_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,63}\Z")  # the template's region_default/type_default rule


def prepare(directory: str | os.PathLike, host, app: Optional[str] = None, env_name: Optional[str] = None,
            region: Optional[str] = None, type_: Optional[str] = None, deployment_id: Optional[str] = None,
            secret_seed: Optional[bytes] = None, new: bool = False, image: Optional[str] = None,
            target: Optional[str] = None, state: Any = _UNREAD) -> Prepared:
    """Load, resolve and render a deployment directory. The deployment id and secret seed come from, in order:
    the arguments; the directory's live deployment (``.linode/state.json``: plan then previews a redeploy),
    unless ``new``; the pending plan (``.linode/pending.json``, created on first use). ``image`` (``--image``)
    replaces ``deploy.linode.image``, checked like it (the capabilities' images). A template that needs a GPU on
    a machine type of provider ``target`` (default: the template's) without one is refused. ``state`` is the
    directory's ``lcai_core.lifecycle.read_state`` when the caller read it already (it is then not read again)."""
    for flag, value in (("--region", region), ("--type", type_)):
        if value is not None and not LINODE_ID.match(value):  # they go into API paths: no `../`, `?`, `#`
            raise InputError(f"{flag} {value!r}: not a Linode id (lowercase letters, digits and dashes, "
                             "e.g. us-ord or g6-standard-2)")
    d = Path(directory)
    f = find_deploy_file(d)
    tpl = load_template(f, host.catalog)
    image = image if image and image != tpl.deploy.linode.image else None
    if image:
        tpl = with_image(tpl, image)
    try:
        resolved = host.catalog.resolve(tpl)
    except InputError as e:
        if not image:
            raise
        raise InputError(f"--image {image}: " + "; ".join(
            getattr(p, "message", str(p)) for p in getattr(e, "problems", ()) or [e.message])) from None
    why = gpu_refusal(host, tpl, resolved, target, type_ or tpl.deploy.linode.type_default)
    if why is not None:
        from .errors import ValidationError
        from .yamlfile import load_file

        if type_:
            raise InputError(f"--type {type_}: {why}", hint=GPU_HINT)
        raise ValidationError([load_file(str(f)).problem(("deploy", "linode", "type_default"), why)], hint=GPU_HINT)
    env_path = d / ".env"
    needs = bool(tpl.env.required)
    if env_path.exists():
        dotenv = load_env_file(env_path)
    elif needs:
        raise InputError(f"{env_path}: missing; the template requires "
                         + ", ".join(v.name for v in tpl.env.required),
                         hint=f"cp {d / '.env.example'} {env_path} and fill it in")
    else:
        dotenv = {}
    pinned = None
    if (deployment_id is None or secret_seed is None) and not new:
        if state is _UNREAD:
            from .lifecycle import read_state

            state = read_state(d)
        if state is not None and isinstance(state.get("secret_seed"), str):  # this machine deployed it
            deployment_id, secret_seed = state["deployment_id"], bytes.fromhex(state["secret_seed"])
        else:  # linked (e.g. cloned from git) without this machine's seed: same id, new seed
            pinned = state["deployment_id"] if state else None
    if deployment_id is None or secret_seed is None:
        p = pending(d, deployment_id=pinned)
        deployment_id, secret_seed = p["deployment_id"], bytes.fromhex(p["secret_seed"])
    from .lifecycle import ssh_public_keys

    # deploy sends these keys; with keys the user data turns password logins off (plan renders the same)
    ctx = context_for(tpl, resolved, deployment_id, secret_seed, app=app, env_name=env_name, region=region,
                      type_=type_, ssh_keys=bool(ssh_public_keys()))
    env, rendered = render(tpl, resolved, ctx, dotenv, env_path, f)
    return Prepared(d, tpl, ctx, env, rendered, resolved)


def with_image(tpl: Template, image: str) -> Template:
    """``tpl`` with ``deploy.linode.image`` replaced by ``image`` (``--image``), the id checked like the file's."""
    import re

    import attrs

    from .constraints import IMAGE

    if not re.fullmatch(IMAGE, image):
        raise InputError(f"--image {image!r}: expected a Linode image id like linode/debian12")
    lin = attrs.evolve(tpl.deploy.linode, image=image)
    return attrs.evolve(tpl, deploy=attrs.evolve(tpl.deploy, linode=lin))


def context_for(tpl: Template, resolved: list, deployment_id: str, secret_seed: bytes, app: Optional[str] = None,
                env_name: Optional[str] = None, region: Optional[str] = None,
                type_: Optional[str] = None, ssh_keys: bool = False) -> DeployContext:
    import re

    lin = tpl.deploy.linode
    ctx = DeployContext(
        deployment_id=deployment_id, app_name=app or tpl.name, env=env_name or "default", image=lin.image,
        region=region or lin.region_default, type=type_ or lin.type_default, template=tpl.name,
        runtime=tpl.capabilities.runtime, container_image=tpl.container.image,
        features=tuple(r.capability.name for r in Stack.of(resolved).features), secret_seed=secret_seed,
        ssh_keys=ssh_keys)
    if lin.volumes:
        import attrs

        from .capabilities import MountedVolume
        from .conventions import volume_label

        ctx = attrs.evolve(ctx, volumes=tuple(MountedVolume(v.name, v.mount, volume_label(ctx.app_name, ctx.env,
                                                                                         v.name), v.size_gb)
                                              for v in lin.volumes))
    for label, value in (("--app", ctx.app_name), ("--env", ctx.env)):
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,38}$", value):
            raise InputError(f"{label} {value!r}: use 1-39 lowercase letters, digits and dashes")
    return ctx


def render(tpl: Template, resolved: list, ctx: DeployContext, dotenv: dict, env_path: Path = Path(".env"),
           template_file: Optional[Path] = None):
    """(app environment, rendered user data) — the one rendering path of plan, deploy and tests: the
    capabilities' fragments, then the app's environment (with the values they provide), then the app's units
    (``lcai_core.cloudinit.document``). ``template_file`` locates errors in the template (file:line)."""
    rendered = build(tpl, resolved, ctx, dotenv, env_path, template_file)
    rendered.check_size()
    return rendered.env, rendered
