"""linode-cli plugin shim: `linode-cli register-plugin lcai_linode.linode_cli`, then `linode-cli build deploy`.

Runs the same lcai commands with linode-cli's token and API host; suggested commands and usage lines say
`linode-cli build …` (lcai_core.api.frontend.prog). linode-cli configures itself on its first run, register-plugin
included: set LINODE_CLI_TOKEN first (or run `linode-cli configure`).
"""

from __future__ import annotations

import os

PLUGIN_NAME = "build"


def call(args, context):
    """Entry point linode-cli calls with the argv after `build` and a PluginContext (token, client)."""
    token = getattr(context, "token", None)
    if token and not os.environ.get("LINODE_TOKEN"):
        os.environ["LINODE_TOKEN"] = token
    client = getattr(context, "client", None)
    config = getattr(client, "config", None)
    get = getattr(config, "get_value", None)
    if get is not None and not os.environ.get("LCAI_LINODE_API_URL"):
        try:
            host = get("api_host")
            if host:
                scheme = get("api_scheme") or "https"
                version = get("api_version") or "v4"
                os.environ["LCAI_LINODE_API_URL"] = f"{scheme}://{host}/{version}"
        except Exception:  # linode-cli's config may not know these keys: keep the default URL
            pass
    from lcai_core.api.frontend import main, prog, set_prog

    before = prog()
    set_prog(f"linode-cli {PLUGIN_NAME}")
    try:
        code = main(list(args) if args else ["--help"])
    finally:
        set_prog(before)
    if code:
        raise SystemExit(code)
