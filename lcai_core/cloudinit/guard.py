"""The metadata guard: only root on the instance may reach the metadata service (it serves the user data)."""

from __future__ import annotations

from ..capabilities import Fragments, Unit, WriteFile
from .layout import LIB, METADATA_GUARD_UNIT, METADATA_V4, METADATA_V6
from .units import INSTALL, unit_text

# raw PREROUTING (not lo): packets the host forwards (containers, other namespaces) are dropped before routing;
# OUTPUT: new connections of any user but root are refused (NEW only: kernel-sent packets of root's connections
# have no socket owner, and ICMP errors must pass)
_GUARD_FUNCTION = [  # plain shell: no values in it
    "guard() {  # $1: iptables or ip6tables, $2: the address",
    '  if ! "$1" -t raw -C PREROUTING ! -i lo -d "$2" -j DROP 2>/dev/null; then',
    '    "$1" -t raw -I PREROUTING ! -i lo -d "$2" -j DROP',
    "  fi",
    '  if ! "$1" -C OUTPUT -d "$2" -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT 2>/dev/null; then',
    '    "$1" -I OUTPUT -d "$2" -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT',
    "  fi",
    "}",
]
GUARD_SCRIPT = "".join(line + "\n" for line in [
    "#!/bin/sh",
    "# lcai: only root on this host may reach the metadata service (it serves the user data)",
    "set -eu",
    *_GUARD_FUNCTION,
    f"guard iptables {METADATA_V4}",
    "if ip6tables -t raw -S PREROUTING >/dev/null 2>&1; then",
    f"  guard ip6tables {METADATA_V6}",
    "else",
    f'  echo "lcai: ip6tables is not usable here (no IPv6): only {METADATA_V4} is guarded" >&2',
    "fi",
])


def guard_unit() -> str:
    return unit_text([
        ("Unit", [("Description", "lcai: only root on this host may reach the metadata service"),
                  ("Before", ["docker.service", "redis-server.service", "postgresql.service", "k3s.service"])]),
        ("Service", [("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStart", f"{LIB}/metadata-guard")]),
        INSTALL,
    ])


def guard_fragments() -> Fragments:
    return Fragments(
        packages=("iptables",),
        write_files=(WriteFile(f"{LIB}/metadata-guard", GUARD_SCRIPT, permissions="0755"),),
        units=(Unit(METADATA_GUARD_UNIT, guard_unit()),),
        app_requires=(METADATA_GUARD_UNIT,),
        boot_plan=(f"guard the metadata service ({METADATA_V4}, {METADATA_V6}): containers and non-root "
                   "processes cannot read the user data",),
    )
