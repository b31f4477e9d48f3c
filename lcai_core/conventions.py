"""Conventions core and providers share (part of the plugin API, ``lcai_core.api``): deployment tags, instance
labels, root passwords, timeouts read from the environment, content hashes. Stand-alone: it imports nothing
from lcai-core but its errors, so a provider that uses it loads none of core's flow."""

from __future__ import annotations

import hashlib
import os
import re

from .errors import InputError

TAG = "lcai"
#: the status of a destroyed deployment whose volumes were kept (its record stays, so they are never unknown)
VOLUMES_KEPT = "volumes kept"


def deployment_tags(deployment_id: str, app: str, env: str) -> list[str]:
    """Contract: exactly ``lcai``, ``lcai-id:<id>``, ``lcai-app:<app>``, ``lcai-env:<env>`` (each 3-50 chars)."""
    tags = [TAG, f"lcai-id:{deployment_id}", f"lcai-app:{app}", f"lcai-env:{env}"]
    for t in tags:
        if not 3 <= len(t) <= 50:
            raise InputError(f"tag {t!r} must be 3-50 characters (Linode's limit); use a shorter --app/--env")
    return tags


#: the shape of a deployment id a tag may carry (lcai makes 8 lowercase letters and digits; the tag's 50 characters
#: leave 42): anything else in an ``lcai-id:`` tag is not lcai's
DEPLOYMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,41}\Z")


def parse_tags(tags: list[str]) -> dict[str, str]:
    """``id``, ``app``, ``env`` from the ``lcai-…:`` tags. An ``lcai-id:`` tag whose id is not ``DEPLOYMENT_ID``
    (anyone who may edit the account's tags can write ``lcai-id:../../x`` or a terminal sequence) is left out: the
    instance is then not a deployment, and its id never becomes a registry key or a lock file's name."""
    out: dict[str, str] = {}
    for t in tags:
        for key in ("id", "app", "env"):
            if t.startswith(f"lcai-{key}:"):
                value = t.split(":", 1)[1]
                if key != "id" or DEPLOYMENT_ID.match(value):
                    out[key] = value
    return out


def instance_label(app: str, env: str, deployment_id: str) -> str:
    """3-64 chars, a letter first, letters/digits/-/_/. only, no '--', '__', '..', alphanumeric last."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", f"lcai-{app}-{env}")
    base = re.sub(r"-{2,}", "-", base).strip("-")
    label = f"{base[:64 - len(deployment_id) - 1]}-{deployment_id}"
    return re.sub(r"-{2,}", "-", label)


def volume_label(app: str, env: str, name: str) -> str:
    """A Block Storage volume's label (its device is ``/dev/disk/by-id/scsi-0Linode_Volume_<label>``): the same
    for every deployment of this app and env, so a new deployment of a directory finds the volumes an earlier one
    kept. ``lcai-`` + 8 hex digits of the app and env + the volume's name (at most 16): 30 characters at most, of
    the API's 32."""
    import hashlib

    return f"lcai-{hashlib.sha256(f'{app}/{env}'.encode()).hexdigest()[:8]}-{name}"


def random_root_password() -> str:
    """A strong random password (Linode needs one with an image); kept (0600) only if no SSH key is used."""
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits + "-_.,:+"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(40))
        if all(any(c in cls for c in pw) for cls in (string.ascii_lowercase, string.ascii_uppercase, string.digits)):
            return pw


def env_seconds(name: str, default: float) -> float:
    """``float(os.environ[name])``, ``default`` when unset; a non-number is an ``InputError`` naming the variable."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise InputError(f"{name}={os.environ[name]!r}: expected a number of seconds") from None


def sha256(text: str) -> str:
    """Hex SHA-256 of ``text`` (UTF-8): how core fingerprints user data in the registry."""
    return hashlib.sha256(text.encode()).hexdigest()
