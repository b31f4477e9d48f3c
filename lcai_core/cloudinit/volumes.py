"""The machine's Block Storage volumes: a boot step that waits for each device and creates a filesystem only on
an empty one (``blkid -p`` finds nothing: never ``mkfs`` over a filesystem or a partition table), a systemd mount
unit per volume (by its by-id path), and ``RequiresMountsFor=`` in the app's unit, so the app never starts on the
root disk when a volume is missing."""

from __future__ import annotations

from typing import Any

from ..capabilities import Fragments, Unit, WriteFile, escape_path
from ..conventions import volume_label
from .layout import VOLUME_DEVICE, VOLUME_PREPARE
from .units import unit_text

# $1 the volume's name, $2 its device, $3 seconds to wait for it, $4 its mount unit
PREPARE_SCRIPT = """#!/bin/sh
# lcai: make a Block Storage volume ready: wait for its device, create a filesystem only when it holds nothing,
# grow a kept ext4 filesystem to a grown volume
set -eu
name=$1 dev=$2 wait_s=${3:-300} unit=${4:-}
waited=0
while [ ! -b "$dev" ]; do
  if [ "$waited" -ge "$wait_s" ]; then
    echo "lcai: volume $name: $dev did not appear in ${wait_s}s: is the Block Storage volume attached?" >&2
    exit 1
  fi
  udevadm settle --timeout=1 >/dev/null 2>&1 || true
  [ -b "$dev" ] && break
  sleep 1
  waited=$((waited + 1))
done
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
case $rc in
  0) echo "lcai: volume $name: $dev holds a filesystem (or a partition table): kept as it is"
     case $(blkid -p -s TYPE -o value "$dev" 2>/dev/null || true) in
       ext2|ext3|ext4)
         if [ -n "$unit" ]; then  # online, mounted; nothing to do when it already fills the device
           systemctl start "$unit"
           resize2fs "$dev" || echo "lcai: volume $name: resize2fs failed: its filesystem keeps its size" >&2
         fi ;;
     esac ;;
  2) echo "lcai: volume $name: $dev is empty: creating an ext4 filesystem"
     mkfs.ext4 -q -m 0 "$dev" ;;
  *) echo "lcai: volume $name: blkid cannot read $dev (exit $rc): not formatting it" >&2
     exit 1 ;;
esac
"""


def mount_unit_name(mount: str) -> str:
    return escape_path(mount) + ".mount"


def volume_fragments(volumes: Any, app: str, env: str) -> Fragments:
    """The volumes' pieces for a deployment of ``app`` in ``env`` (``deploy.linode.volumes``)."""
    if not volumes:
        return Fragments()
    units, steps, plan = [], [], []
    for v in volumes:
        label = volume_label(app, env, v.name)
        dev = VOLUME_DEVICE.format(label=label)
        units.append(Unit(mount_unit_name(v.mount), unit_text([
            ("Unit", [("Description", f"lcai: volume {v.name} ({label}, {v.size_gb} GB) at {v.mount}")]),
            ("Mount", [("What", dev), ("Where", v.mount), ("Options", "defaults,noatime")]),
            ("Install", [("WantedBy", "multi-user.target")]),
        ])))
        steps.append((VOLUME_PREPARE, v.name, dev, "300", mount_unit_name(v.mount)))
        plan.append(f"volume {v.name} ({v.size_gb} GB): wait for {dev}, create a filesystem only if it holds "
                    f"none (a kept one grows with a grown volume), mount it at {v.mount} "
                    f"({mount_unit_name(v.mount)}); the app requires it")
    return Fragments(write_files=(WriteFile(VOLUME_PREPARE, PREPARE_SCRIPT, permissions="0755"),),
                     units=tuple(units), runcmd=tuple(steps), boot_plan=tuple(plan))
