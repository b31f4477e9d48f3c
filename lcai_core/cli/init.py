import shutil
from pathlib import Path

import click

from ..errors import InputError


@click.command("init")
@click.argument("template")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the deployment (default: ./TEMPLATE).")
@click.option("--force", is_flag=True, help="Overwrite an existing deploy.yml.")
def init(template: str, directory: Path | None, force: bool) -> None:
    """Create a deployment directory from TEMPLATE: deploy.yml (your editable copy), .env.example, README.md."""
    from ..env import example_text
    from ..plugins import get_host
    from ..sources import find
    from ..template import parse_template
    from ..yamlfile import load_file

    host = get_host()
    entry = find(host.template_sources, template)
    doc = load_file(entry.path)
    tpl = parse_template(doc)  # structure only: a missing plugin should not block init
    d = directory or Path(template)
    target = d / "deploy.yml"
    if target.exists() and not force:
        raise InputError(f"{target} already exists", hint="use --force to overwrite it, or pick another --directory")
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry.path, target)
    (d / ".env.example").write_text(example_text(tpl))
    readme = Path(entry.folder) / "README.md"
    if readme.is_file():
        shutil.copyfile(readme, d / "README.md")
    else:
        (d / "README.md").write_text(f"# {tpl.display_name or tpl.name}\n\n{tpl.description}\n")
    gi = d / ".gitignore"
    if not gi.exists():
        gi.write_text(".env\n.linode/\nuser-data.yaml\n")
    missing = host.catalog.check_template(tpl, doc)
    click.echo(f"created {d}/ from template {tpl.name} {tpl.version} ({entry.source})")
    click.echo("next:")
    if tpl.env.required:
        click.echo(f"  cp {d}/.env.example {d}/.env   # then set {', '.join(v.name for v in tpl.env.required)}")
    click.echo(f"  lcai plan --directory {d}")
    for p in missing:
        click.echo(f"warning: {p.message}", err=True)
