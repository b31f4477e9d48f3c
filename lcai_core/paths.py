"""Where lcai keeps things. ``LCAI_CONFIG_DIR`` overrides the config dir (default: the seed's
``~/.config/linode-cli.d/build``). Plain ``os.path`` strings: listing templates must not import pathlib."""

from __future__ import annotations

import os


def config_dir() -> str:
    env = os.environ.get("LCAI_CONFIG_DIR")
    if env:
        return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".config", "linode-cli.d", "build")


def user_templates_dir() -> str:
    return os.path.join(config_dir(), "templates")


def bundled_templates_dir() -> str:
    """The bundled pack: inside the wheel, or ``templates/`` of a source checkout (editable install)."""
    here = os.path.dirname(os.path.realpath(__file__))
    inside = os.path.join(here, "_bundled_templates")
    if os.path.isdir(inside):
        return inside
    return os.path.join(os.path.dirname(here), "templates")
