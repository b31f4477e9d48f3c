"""lcai provider plugin for Linode: registers the provider and the deploy/status/destroy/sync commands.

Kept tiny: commands are stand-ins until they run, so `lcai --help` imports neither linode_api4 nor requests.
"""

from lcai_core.hookspecs import hookimpl

__version__ = "0.1.0"

COMMANDS = {
    "deploy": "Create the instance and firewall, track the deployment (--wait: until healthy).",
    "status": "List deployments live (one API call), or one in detail with a health check.",
    "destroy": "Delete a deployment's instance and firewall (--purge: forget vanished ones).",
    "sync": "Adopt lcai-tagged instances this machine does not know; mark vanished ones.",
}


@hookimpl
def register_providers(register):
    from .provider import LinodeProvider

    register(LinodeProvider())


@hookimpl
def register_commands(cli):
    from lcai_core.cli import LazyCommand

    for name, help_ in COMMANDS.items():
        cli.add_command(LazyCommand(name, ("lcai_linode.commands", name), help_))
