"""Where lcai-local keeps its files.

``LCAI_LOCAL_DIR`` (default ``<LCAI_CONFIG_DIR or ~/.config/linode-cli.d/build>/local``) holds the provider's SSH
key pair and one directory per VM (``vms/<deployment id>/``). Images live in ``LCAI_LOCAL_CACHE`` (default
``<LCAI_LOCAL_DIR>/images``), so CI can keep them in a fixed place (e.g. ``/var/cache/lcai``) between runs.
"""

from __future__ import annotations

import os
import shutil

from lcai_core.api import InputError, config_dir


def local_dir() -> str:
    env = os.environ.get("LCAI_LOCAL_DIR")
    return os.path.expanduser(env) if env else os.path.join(config_dir(), "local")


def cache_dir() -> str:
    env = os.environ.get("LCAI_LOCAL_CACHE")
    return os.path.expanduser(env) if env else os.path.join(local_dir(), "images")


def vms_dir() -> str:
    return os.path.join(local_dir(), "vms")


def vm_dir(deployment_id: str) -> str:
    return os.path.join(vms_dir(), deployment_id)


def key_path() -> str:
    return os.path.join(local_dir(), "id_ed25519")


#: tool -> the Debian package that provides it
TOOL_PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "xorriso": "xorriso",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "gpgv": "gpgv",
}


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin"):  # mkfs.ext4 is in sbin, often not on a user's PATH
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


def require_tools(*tools: str, purpose: str) -> dict[str, str]:
    """The full paths of ``tools``; one-line ``InputError`` (exit 2) with the apt-get hint when any is missing."""
    found = {t: which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        pkgs = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise InputError(f"{purpose} needs {', '.join(missing)}, not found on PATH",
                         hint=f"apt-get install --no-install-recommends {' '.join(pkgs)}")
    return found  # type: ignore[return-value]
