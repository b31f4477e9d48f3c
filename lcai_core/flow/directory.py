"""What a deployment directory keeps of its deployment: the state (0600, with the secret seed), the link (no
secrets, safe to commit), connect.sh, the root password when no SSH key was sent; the pending plan is used up."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def write_directory(d: Path, prov: Any, rec: dict[str, Any], seed: str) -> None:
    from ..lifecycle import write_state
    from ..project import PENDING

    write_state(d, {"deployment_id": rec["deployment_id"], "provider": prov.name, "secret_seed": seed,
                    "label": rec.get("label"), "app": rec.get("app"), "env": rec.get("env"),
                    "region": rec.get("region"), "type": rec.get("type"), "address": rec.get("address"),
                    "external_port": rec.get("external_port"), "created_at": rec.get("created_at")})
    try:
        (d / PENDING).unlink()
    except FileNotFoundError:
        pass
    write_connect(d, prov, rec)


def write_connect(d: Path, prov: Any, rec: dict[str, Any]) -> None:
    """``connect.sh``: ssh to the deployment's machine (replica 1 of a replicated one)."""
    from ..lifecycle import ROOT_PASSWORD

    ssh = prov.ssh(rec)
    if ssh is None:
        return
    argv = ssh.argv("", connect_timeout=10)[:-1]
    note = ""
    if (d / ROOT_PASSWORD).is_file():  # no key was sent: let ssh ask for the password (BatchMode would refuse)
        i = argv.index("BatchMode=yes")
        del argv[i - 1:i + 1]
        note = f"# no SSH key was sent: ssh asks for root's password, which is in {ROOT_PASSWORD}\n"
    connect = d / "connect.sh"
    connect.write_text(f"#!/bin/sh\n# ssh to {rec.get('label')} (deployment {rec['deployment_id']})\n{note}"
                       f"exec {' '.join(shlex.quote(a) for a in argv)} \"$@\"\n")
    connect.chmod(0o755)


def save_root_password(d: Path, password: str) -> None:
    from ..files import write_private
    from ..lifecycle import ROOT_PASSWORD

    write_private(d / ROOT_PASSWORD, password + "\n")


def keep_previous(d: Path, new_id: str) -> str | None:
    """``deploy --new`` in a directory that tracks another deployment: that one's state (its secret seed) and
    root password move to ``.linode/previous/<id>/`` (0700) instead of being overwritten; returns its id."""
    import os

    from ..lifecycle import ROOT_PASSWORD, STATE, read_state

    try:
        st = read_state(d)
    except Exception:  # an unreadable state is left where it is (write_state then replaces it)
        return None
    if not st or st.get("deployment_id") in (None, new_id) or not (d / STATE).is_file():
        return None
    old = str(st["deployment_id"])
    keep = d / ".linode" / "previous" / old
    keep.mkdir(parents=True, exist_ok=True)
    os.chmod(keep.parent, 0o700)
    os.chmod(keep, 0o700)
    for rel in (STATE, ROOT_PASSWORD):
        src = d / rel
        if src.is_file():
            os.replace(src, keep / Path(rel).name)
    return old


def restore_previous(d: Path, old: str) -> None:
    """Undo ``keep_previous``: the create it made room for was undone, so the directory tracks ``old`` again."""
    import os

    from ..lifecycle import ROOT_PASSWORD, STATE

    keep = d / ".linode" / "previous" / old
    for rel in (STATE, ROOT_PASSWORD):
        src = keep / Path(rel).name
        if src.is_file():
            os.replace(src, d / rel)
    for p in (keep, keep.parent):
        try:
            p.rmdir()
        except OSError:
            pass

