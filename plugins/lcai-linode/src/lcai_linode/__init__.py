"""lcai provider plugin for Linode: registers the provider (``deploy.target: linode``). The commands that
use it (deploy, status, destroy, logs, sync) are lcai-core's, through the provider contract.

Kept tiny: `lcai --help` imports neither linode_api4 nor requests.
"""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_providers(register):
    from .provider import LinodeProvider

    register(LinodeProvider())
