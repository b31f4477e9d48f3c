"""Where lcai keeps things. ``LCAI_CONFIG_DIR`` overrides the config dir (default: the seed's
``~/.config/linode-cli.d/build``)."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    env = os.environ.get("LCAI_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".config" / "linode-cli.d" / "build"


def user_templates_dir() -> Path:
    return config_dir() / "templates"


def bundled_templates_dir() -> Path:
    """The bundled pack: inside the wheel, or ``templates/`` of a source checkout (editable install)."""
    here = Path(__file__).resolve().parent
    inside = here / "_bundled_templates"
    if inside.is_dir():
        return inside
    return here.parent / "templates"
