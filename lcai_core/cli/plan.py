import json
from pathlib import Path

import click


@click.command("plan")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The deployment directory (deploy.yml, .env).")
@click.option("--cloud-config", "cloud_config", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the exact, uncompressed cloud-config deploy will send (mode 0600: it holds the .env values; "
                   "DIR/user-data.yaml is git-ignored by init).")
@click.option("--app", help="App name (default: the template name).")
@click.option("--env", "env_name", help="Environment name (default: default).")
@click.option("--region", help="Override deploy.linode.region_default.")
@click.option("--type", "type_", help="Override deploy.linode.type_default.")
@click.option("--image", help="Override deploy.linode.image, e.g. linode/debian12 (for every provider).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def plan(directory: Path, cloud_config: Path | None, app, env_name, region, type_, as_json: bool,
         image=None) -> None:
    """Render the cloud-init user data a deploy would send and print a summary: capabilities, boot plan,
    user-data sizes against Linode's limit. Reads deploy.yml and .env exactly as deploy does."""
    import functools

    from .. import ui
    from ..files import write_output
    from ..flow import DeployOptions, preview
    from ..plugins import get_host

    host = get_host()
    try:
        pv = preview(host, DeployOptions(directory=directory, app=app, env_name=env_name, region=region,
                                         type=type_, image=image))
    except OSError as e:  # e.g. .linode/pending.json in a directory we may not write
        raise ui.fs_error(e, action="access") from None
    p, target, replicas, price = pv.prepared, pv.target, pv.replicas, pv.price
    streamed = False
    if cloud_config is not None:
        try:
            streamed = write_output(cloud_config, p.rendered.text) == "stream"
        except OSError as e:
            raise ui.fs_error(e, cloud_config, action="write") from None
    # a cloud-config written into a terminal or pipe (/dev/stdout) is the output: the rest goes to stderr
    echo = functools.partial(click.echo, err=streamed)
    sizes = p.rendered.sizes()
    t, ctx = p.template, p.ctx
    if as_json:
        echo(json.dumps({
            "deployment_id": ctx.deployment_id, "template": t.name, "version": t.version, "app": ctx.app_name,
            "env": ctx.env, "region": ctx.region, "type": ctx.type, "image": ctx.image,
            "runtime": t.capabilities.runtime, "features": list(ctx.features), "sizes": sizes,
            "boot_plan": list(p.rendered.boot_plan), "env_names": list(p.rendered.env_names),
            "units": list(p.rendered.units), "cloud_config": str(cloud_config) if cloud_config else None,
            "target": target, "replicas": replicas, "notes": list(pv.notes),
            "volumes": [{"name": v.name, "size_gb": v.size_gb, "mount": v.mount} for v in t.deploy.linode.volumes],
            "price": {"hourly": price.hourly, "monthly": price.monthly, "note": price.note} if price else None,
        }, indent=2))
        return
    echo(f"plan for {ctx.app_name} ({ctx.env}) from template {t.name} {t.version}, "
               f"deployment {ctx.deployment_id}")
    echo(f"  {target + ':':<13} {ctx.type} in {ctx.region}, image {ctx.image}"
               + (f", {replicas} replicas behind a NodeBalancer" if replicas > 1 else ""))
    if price is not None:
        echo(f"  price:        {price.describe()}" + (" in all" if replicas > 1 else ""))
    c = t.container
    if c.image:
        if c.external_port:
            ports = f", port {c.external_port} -> {c.internal_port}"
        else:
            ports = f", port {c.internal_port} (instance only)" if c.internal_port else ""
        echo(f"  container:    {c.image}{ports}")
    for v in t.deploy.linode.volumes:
        echo(f"  volume:       {v.name}, {v.size_gb} GB at {v.mount} (kept by redeploys and destroy)")
    echo(f"  capabilities: {t.capabilities.runtime}" + "".join(f", {f}" for f in ctx.features))
    echo(f"  environment:  {', '.join(p.rendered.env_names) or '(none)'}  (values not shown)")
    pct = 100 * sizes["gzip"] / sizes["limit"]
    share = ui.style(f"{pct:.0f}% of {sizes['limit']}", "bold red" if pct >= 100 else ("yellow" if pct >= 80 else ""))
    echo(f"  user data:    {sizes['raw']} B raw, {sizes['gzip']} B gzip ({share}), "
               f"{sizes['base64']} B base64")
    for w in getattr(p.rendered, "warnings", ()):
        ui.warning(w)
    for note in pv.notes:
        echo(f"  note: {note}")
    echo("boot plan:")
    for i, line in enumerate(p.rendered.boot_plan, 1):
        echo(f"  {i:>2}. {line}")
    if cloud_config is not None and not streamed:
        echo(f"{ui.style('wrote', 'green')} {cloud_config} (0600; contains the app's environment"
                   + ("" if _ignored(directory, cloud_config) else "; keep it out of version control") + ")")


def _ignored(directory: Path, f: Path) -> bool:
    """Whether ``f`` sits in the deployment directory and a pattern of its .gitignore covers it."""
    import fnmatch

    try:
        if f.resolve().parent != directory.resolve():
            return False
        lines = (directory / ".gitignore").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(fnmatch.fnmatch(f.name, x.strip()) for x in lines if x.strip() and not x.startswith(("#", "!")))
