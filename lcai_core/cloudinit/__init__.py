"""Fragments → one cloud-config: deterministic assembly, conflict detection, the app's units, rendering,
encoding and size accounting.

Boot 1 (cloud-init): bootcmd → write_files → apt sources → packages (one index refresh) → deferred files →
runcmd (daemon-reload, capability steps, enable units, start them unless a reboot is due) → power_state.
Everything that must also happen after a reboot lives in systemd units, never in runcmd.

runcmd runs as one /bin/sh script: every step goes through ``lcai_step``, which logs it, and on a failure
names it on stderr (in /var/log/cloud-init-output.log, shown by ``lcai logs``), records it in
/var/lib/lcai/failed-step and exits non-zero, so that cloud-init's final stage fails and ``cloud-init status``
says ``error`` instead of ``done``.

The unit graph (the same on every boot; on boot 1 runcmd enables the units and, without a reboot, starts them
with ``--no-block``):

    sysinit → lcai-metadata-guard ─┐ (Before docker/redis/postgres: nothing starts unguarded)
    docker.service, redis, …  ─────┴─→ multi-user.target ─→ cloud-final.service (cloud-init's final stage)
                                             │ After=
              ┌──────────────────────────────┴───────────────┐
              ▼                                              ▼
    lcai-image-pull (docker; bounded, retried)     lcai-setup (once; TimeoutStartSec=setup.timeout_seconds)
              └──────────────┬───────────────────────────────┘
                             ▼ After= + Requires=
                         lcai-app (Restart=always)
                             ▼ After= + Wants= (not Requires=: a crash does not restart the wait)
                         lcai-health (counts the app's restarts; result in /var/lib/lcai/health.json)
                             ▼ After= + Requires= (runs only once the app is healthy)
                         lcai-post-start (once; TimeoutStartSec=container.post_start_timeout_seconds)

On boot 1 without a reboot, runcmd also starts lcai-setup and waits for it (a provisioning step: bounded by its
timeout, its failure fails runcmd and so cloud-init); everything else is started with ``--no-block``.

Every app unit is ``WantedBy=multi-user.target`` (started at boot) but ordered ``After=multi-user.target``:
systemd then does not make the target wait for it (it adds target→unit ordering only when that makes no
cycle), so multi-user.target, cloud-final.service, ``cloud-init status --wait`` and SSH logins never wait for
an image pull, a setup script or a slow health check. The units the app requires (docker, redis, postgres, a
GPU check) stay before the target, which is why the app's own units must all be after it: a unit before the
target cannot order after one behind it.

Rendering runs one way (``document.build``): the capabilities' fragments, then the app's environment with the
values they provide (``lcai_core.env``), then the app's units, then the document. One module per concern:
``layout`` (paths and unit names on the instance), ``stack`` (the runtime and the features), ``assembly``
(merging fragments), ``units`` (systemd units from directive lists), ``scripts`` (the template's scripts, and
lcai's own from ``lcai_core/data``), ``healthwait`` (the health wait), ``guard`` (the metadata guard), ``app``
(the app's units), ``document`` (the order and the cloud-config) and ``yamldump``; ``.importlinter`` keeps
those layers. This package re-exports the names the rest of lcai uses.
"""

from __future__ import annotations

from ..envfile import docker_env_file, interpolate, systemd_env_file
from .app import AppPieces, app_fragments, command_warnings
from .assembly import Assembled, ConflictError, assemble
from .document import SSHD_KEYS_ONLY, STEP_FUNCTION, Rendered, build, capability_fragments, document
from .guard import GUARD_SCRIPT, guard_fragments
from .healthwait import health_timeout
from .layout import (
    APP_UNIT,
    ENV_FILE,
    HEALTH_UNIT,
    IMAGE_PULL_UNIT,
    LIB,
    METADATA_GUARD_UNIT,
    METADATA_V4,
    METADATA_V6,
    POST_START_UNIT,
    SETUP_UNIT,
    SSHD_DROP_IN,
    START_GRACE,
    STATE,
    USER_DATA_B64_LIMIT,
    USER_DATA_LIMIT,
)
from .scripts import strict_script
from .stack import Stack
from .units import exec_line, systemd_quote, unit_text
from .yamldump import dump_yaml

__all__ = [
    "APP_UNIT", "ENV_FILE", "HEALTH_UNIT", "IMAGE_PULL_UNIT", "LIB", "METADATA_GUARD_UNIT", "METADATA_V4",
    "METADATA_V6", "POST_START_UNIT", "SETUP_UNIT", "SSHD_DROP_IN", "START_GRACE", "STATE", "USER_DATA_B64_LIMIT",
    "USER_DATA_LIMIT", "GUARD_SCRIPT", "SSHD_KEYS_ONLY", "STEP_FUNCTION",
    "AppPieces", "Assembled", "ConflictError", "Rendered", "Stack",
    "app_fragments", "assemble", "build", "capability_fragments", "command_warnings", "document", "docker_env_file",
    "dump_yaml", "exec_line", "guard_fragments", "health_timeout", "interpolate", "strict_script", "systemd_env_file",
    "systemd_quote", "unit_text",
]
