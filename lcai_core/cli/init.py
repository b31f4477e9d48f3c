import shutil
from pathlib import Path

import click

from ..errors import InputError

# Everything lcai writes into a deployment directory that holds secrets or this machine's state: the .env
# values, plan's --cloud-config output (the app's environment), .linode/ (pending id + secret seed, state,
# root password) and deploy's connect.sh.
GITIGNORE = [".env", ".env.*", "!.env.example", ".linode/", "user-data*.yaml", "user-data*.yml", "connect.sh"]


def readme_text(tpl) -> str:
    """A deployment directory's README for a template without one: what it is, its guidance (summary and the
    examples, ``{host}`` as the user fills it in) and the commands that follow."""
    g = tpl.guidance
    out = [f"# {tpl.display_name or tpl.name}", ""]
    if tpl.description:
        out += [tpl.description, ""]
    if g.summary:
        out += [g.summary.strip(), ""]
    if g.examples:
        out += ["## Examples", ""]
        for ex in g.examples:
            out += [f"{ex.description}:", "", "```sh", ex.command, "```", ""]
        out += ["`{host}` is the deployment's address (`lcai status` shows it).", ""]
    return "\n".join(out)


def _gitignore(d: Path) -> None:
    """Write DIR/.gitignore, or add the missing lines to an existing one (never removes the user's lines)."""
    gi = d / ".gitignore"
    have = gi.read_text(encoding="utf-8").splitlines() if gi.exists() else []
    missing = [x for x in GITIGNORE if x not in have]
    if not missing:
        return
    head = ["# lcai: these hold secrets (.env values, generated passwords) or this machine's state"]
    text = "\n".join(have + ([""] if have and have[-1].strip() else []) + head + missing) + "\n" if have else \
        "\n".join(head + missing) + "\n"
    gi.write_text(text, encoding="utf-8")


@click.command("init")
@click.argument("template")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the deployment (default: ./TEMPLATE).")
@click.option("--force", is_flag=True, help="Overwrite an existing deploy.yml.")
def init(template: str, directory: Path | None, force: bool) -> None:
    """Create a deployment directory from TEMPLATE: deploy.yml (your editable copy), .env.example, README.md,
    and a .gitignore that keeps .env, .linode/ and generated user data out of git."""
    from .. import ui
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
    if entry.source.startswith("path "):  # a template folder or file given by path: deploy beside it
        d = directory or Path(entry.name)
        if d.resolve() == Path(entry.folder).resolve():
            if directory is not None:
                raise InputError(f"{d} is the template's own folder; give the deployment a folder of its own",
                                 hint=ui.cmd(f"init {template} --directory ./{entry.name}-deploy"))
            d = Path(f"{entry.name}-deploy")
    target = d / "deploy.yml"
    if target.exists() and not force:
        raise InputError(f"{target} already exists", hint="use --force to overwrite it, or pick another --directory")
    from ..files import refuse_outside_links

    refuse_outside_links(entry.folder, entry.path, Path(entry.folder) / "README.md")
    try:
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.path, target)
        (d / ".env.example").write_text(example_text(tpl))
        readme = Path(entry.folder) / "README.md"
        if readme.is_file():
            shutil.copyfile(readme, d / "README.md")
        else:
            (d / "README.md").write_text(readme_text(tpl))
        _gitignore(d)
    except OSError as e:
        raise ui.fs_error(e, d if e.filename is None or Path(e.filename) == d else e.filename,
                          action="create") from None
    missing = host.catalog.check_template(tpl, doc)
    click.echo(f"{ui.style('created', 'green')} {d}/ from template {tpl.name} {tpl.version}, {entry.source}")
    click.echo("next:")
    if tpl.env.required:
        names = ", ".join(v.name for v in tpl.env.required)
        if (d / ".env").exists():  # never suggest copying over the user's .env
            click.echo(f"  $EDITOR {d}/.env   # make sure it sets {names} (see {d}/.env.example)")
        else:
            click.echo(f"  cp {d}/.env.example {d}/.env   # then set {names}")
    click.echo(f"  {ui.cmd(f'plan --directory {d} --cloud-config {d}/user-data.yaml')}")
    for p in missing:
        ui.warning(p.message)
