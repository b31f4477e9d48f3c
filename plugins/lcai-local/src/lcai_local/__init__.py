"""lcai provider plugin ``local``: boots lcai's exact user data in a local QEMU VM (NoCloud seed, real
cloud-init), and the ``lcai local image …`` commands that build or register the images it boots.

Kept tiny: the provider and the commands load only when used, so ``lcai --help`` imports nothing of them.
"""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_providers(register):
    from .provider import LocalProvider

    register(LocalProvider())


@hookimpl
def register_commands(cli):
    from lcai_core.api.frontend import LazyCommand

    # the real `local` click group (image build/add/list) is imported only when `lcai local …` runs
    cli.add_command(LazyCommand("local", ("lcai_local.commands", "local"),
                                "Local VMs: build or register the images the local provider boots."))
