import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List installed plugins: distribution, version, hooks implemented, status (broken ones flagged)."""
    from ..plugins import get_host

    host = get_host()
    # building the catalog and the provider list registers every plugin: one that fails at registration shows up
    _ = host.catalog, host.providers
    host.self_check()  # a capability whose fragments() raises is listed as broken
    rows = host.plugins
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in rows], indent=2))
        return
    caps: dict[str, list[str]] = {}
    for name, reg in host.catalog.by_name.items():
        caps.setdefault(reg.plugin, []).append(name)
    w = max([len(p.dist) for p in rows] + [12])
    click.echo(f"{'DISTRIBUTION':<{w}}  {'VERSION':<9} {'STATUS':<9} {'ENTRY POINT':<20} HOOKS / CAPABILITIES")
    for p in rows:
        hooks = ", ".join(h.replace("register_", "") for h in p.hooks)
        extra = f"  [{', '.join(sorted(caps.get(p.dist, [])))}]" if caps.get(p.dist) and p.dist != "lcai-core" else ""
        if p.dist == "lcai-core" and p.module == "lcai_core.builtin":
            extra = f"  [{', '.join(sorted(caps.get('lcai-core', [])))}]"
        click.echo(f"{p.dist:<{w}}  {p.version:<9} {p.status:<9} {p.name:<20} {hooks}{extra}")
        if p.error:
            click.echo(f"{'':<{w}}  └─ {p.error}")
