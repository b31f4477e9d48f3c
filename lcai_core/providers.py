"""The provider interface (implemented by plugins such as lcai-linode; registered via ``register_providers``).

lcai-core never imports a cloud SDK: a provider turns a rendered plan into cloud resources.
"""

from __future__ import annotations

from typing import ClassVar


class Provider:
    """Base class for providers. ``name`` is the template's ``deploy.target`` it serves (e.g. ``linode``)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
