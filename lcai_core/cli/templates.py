import sys
from typing import Any

import click

from ..errors import InputError


@click.group("templates")
def templates() -> None:
    """List, show, validate, install and describe templates (bundled, user-installed, template packs)."""


def _host():
    from ..plugins import get_host

    return get_host()


@templates.command("list")
@click.option("--long", "-l", "long_", is_flag=True,
              help="Show version, source and description (default on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, with each template's source.")
def list_(long_: bool, as_json: bool) -> None:
    """List templates, one name per row. User templates override packs, which override bundled ones."""
    from ..sources import discover

    entries = discover(_host().template_sources)
    if as_json or long_ or sys.stdout.isatty():
        from ..yamlfile import load_file

        rows: list[dict[str, Any]] = []
        for e in entries.values():
            meta: dict = {}
            try:
                data = load_file(e.path).data
                meta = data if isinstance(data, dict) else {}
            except InputError:
                meta = {"description": "(invalid template file)"}
            description = str(meta.get("description", "")).strip()
            rows.append({"name": e.name, "version": str(meta.get("version", "")),
                         "description": description.splitlines()[0] if description else "",
                         "source": e.source, "kind": e.kind, "path": str(e.path),
                         "overrides": [s.source for s in e.shadowed]})
        if as_json:
            import json

            click.echo(json.dumps(rows, indent=2))
            return
        from .. import ui

        table = [("NAME", "VERSION", "SOURCE", "DESCRIPTION")] + [
            (r["name"], r["version"] or "-",
             ("user" if r["kind"] == "user" else r["source"])  # the user dir's path is in --json and show
             + (f", overrides {', '.join(o.split(' (')[0] for o in r['overrides'])}" if r["overrides"] else ""),
             r["description"])
            for r in rows]
        widths = [max(len(t[i]) for t in table) for i in range(3)]
        for i, t in enumerate(table):
            line = "  ".join(f"{c:<{w}}" for c, w in zip(t[:3], widths)) + "  " + t[3]
            click.echo(ui.style(line.rstrip(), "bold") if i == 0 else line.rstrip())
        return
    for name in entries:
        click.echo(name)


@templates.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """Show a template: metadata, source, capabilities, container, env requirements, guidance."""
    import json

    from ..sources import find
    from ..template import parse_template
    from ..yamlfile import load_file

    host = _host()
    entry = find(host.template_sources, name)
    doc = load_file(entry.path)
    t = parse_template(doc)
    problems = host.catalog.check_template(t, doc)
    c = t.container
    if as_json:
        from ..convert import converter

        click.echo(json.dumps({"source": entry.source, "path": str(entry.path), "template": converter.unstructure(t),
                               "problems": [str(p) for p in problems]}, indent=2, default=list))
        return
    title = f"{t.name} {t.version}"
    if t.display_name and t.display_name != t.name:
        title += f" — {t.display_name}"
    click.echo(title)
    click.echo(f"source:       {entry.source} — {entry.path}")
    if t.description:
        click.echo(f"description:  {t.description.strip()}")
    click.echo(f"runtime:      {t.capabilities.runtime}")
    click.echo(f"capabilities: {', '.join(t.feature_names) or '(none)'}")
    if t.capabilities.packages:
        click.echo(f"packages:     {', '.join(t.capabilities.packages)}")
    lin = t.deploy.linode
    click.echo(f"linode:       {lin.type_default} in {lin.region_default}, image {lin.image}")
    if c.image:
        click.echo(f"container:    {c.image}"
                   + (f" ({c.external_port} -> {c.internal_port})" if c.external_port else ""))
    if c.health:
        h = c.health
        click.echo(f"health:       {h.type} {h.path if h.type == 'http' else (h.command or '')} "
                   f"(initial delay {h.initial_delay_seconds}s, every {h.interval_seconds}s, {h.max_retries} retries)")
    if t.env.required or t.env.optional:
        click.echo("environment:")
        for v in t.env.required:
            click.echo(f"  {v.name:<24} required  {v.description}")
        for v in t.env.optional:
            d = f"; default {v.default}" if v.default is not None else ""
            click.echo(f"  {v.name:<24} optional  {v.description}{d}")
    if t.guidance.summary or t.guidance.examples:
        click.echo("guidance:")
        if t.guidance.summary:
            click.echo(f"  {t.guidance.summary.strip()}")
        for ex in t.guidance.examples:
            click.echo(f"  # {ex.description}\n  {ex.command}")
    from .. import ui

    for p in problems:
        ui.warning(p.message)


@templates.command("validate")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
def validate(path: str, as_json: bool) -> None:
    """Validate a template file, or a folder holding template.yml/deploy.yml. Reports every problem in
    one pass (file:line: field: message); exit 2 if there are any."""
    import json

    from ..errors import ValidationError
    from ..project import GPU_HINT, gpu_refusal
    from ..template import _hint_for, template_file_in, undeclared_references, validate as validate_doc
    from ..yamlfile import load_file

    from .. import ui

    f = template_file_in(path)
    host = _host()
    try:
        doc = load_file(f)
        t, problems = validate_doc(doc, host.catalog)
        hint = None
        if t is not None:  # the template on its own: its references declared; the capabilities that resolved
            problems.extend(undeclared_references(t, doc, host.catalog))
            why = gpu_refusal(host, t, host.catalog._resolve(t, doc)[0], None, t.deploy.linode.type_default)
            if why is not None:
                problems.append(doc.problem(("deploy", "linode", "type_default"), why))
                hint = GPU_HINT if len(problems) == 1 else None
        if problems or t is None:
            raise ValidationError(problems, hint=hint or _hint_for(problems))
    except ValidationError as e:
        # in the order of the file (the loader finds them pass by pass, not top to bottom)
        e = ValidationError(sorted(e.problems, key=lambda p: (p.file or "", p.line or 0)), hint=e.hint)
        if as_json:
            click.echo(json.dumps({"file": str(f), "valid": False, "problems": [
                {"file": p.file, "line": p.line, "path": p.path, "message": p.message} for p in e.problems]}, indent=2))
            raise click.exceptions.Exit(2) from None
        raise e from None
    if as_json:
        click.echo(json.dumps({"file": str(f), "valid": True, "problems": []}))
    else:
        click.echo(f"{ui.style('ok:', 'green')} {f} (template {t.name} {t.version})")


@templates.command("schema")
def schema() -> None:
    """Print the JSON Schema of the template format (for editor autocomplete), with the installed
    capabilities' names and config fields."""
    import json

    from ..schema import template_schema

    click.echo(json.dumps(template_schema(_host().catalog), indent=2))


@templates.command("install")
@click.argument("path", type=click.Path(exists=True))
@click.option("--force", is_flag=True, help="Replace an installed user template of the same name.")
def install(path: str, force: bool) -> None:
    """Validate and copy a template folder into the user template dir (it then overrides a bundled one)."""
    import shutil

    from pathlib import Path

    from ..paths import user_templates_dir
    from ..template import load_template, template_file_in

    src = Path(path)
    f = Path(template_file_in(src))
    t = load_template(f, _host().catalog)
    dest = Path(user_templates_dir()) / t.name
    if dest.exists() and not force:
        raise InputError(f"a user template named {t.name} is already installed at {dest}",
                         hint="use --force to replace it")
    from ..files import TEMPLATE_IGNORED, refuse_outside_links

    if src.is_dir():
        refuse_outside_links(src)  # not what the copy leaves out (a linked .env is no matter)
    else:
        refuse_outside_links(f.parent, f)
    tmp = dest.with_name(f".{t.name}.installing")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(*TEMPLATE_IGNORED))
            if f.name != "template.yml":
                (tmp / f.name).rename(tmp / "template.yml")
        else:
            tmp.mkdir()
            shutil.copyfile(f, tmp / "template.yml")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except OSError as e:
        from .. import ui

        shutil.rmtree(tmp, ignore_errors=True)
        raise ui.fs_error(e, dest.parent if e.filename is None or not str(e.filename).startswith(str(dest.parent))
                          else e.filename, action="create") from None
    click.echo(f"installed {t.name} {t.version} to {dest}")


@templates.command("uninstall")
@click.argument("name")
def uninstall(name: str) -> None:
    """Remove a user-installed template (bundled and pack templates cannot be removed this way)."""
    import shutil

    from pathlib import Path

    from .. import ui
    from ..paths import user_templates_dir
    from ..sources import discover

    dest = Path(user_templates_dir()) / name
    if "/" in name or name.startswith(".") or not (dest / "template.yml").is_file():
        entry = None if "/" in name else discover(_host().template_sources).get(name)
        if entry is not None and entry.kind == "bundled":
            raise InputError(f"{name} is bundled with lcai-core and cannot be uninstalled",
                             hint=f"to change it, install your own copy (a user template overrides a bundled one): "
                                  f"{ui.cmd(f'templates scaffold {name} --from {name} -d my-{name}')}, edit it, then "
                                  f"{ui.cmd(f'templates install my-{name}')}")
        if entry is not None and entry.kind == "pack":
            pack = entry.source[len("pack "):] if entry.source.startswith("pack ") else entry.source
            raise InputError(f"{name} comes from the template pack {pack} and cannot be uninstalled on its own",
                             hint=f"pip uninstall {pack.split(' ')[0]} removes the whole pack; a user template named "
                                  f"{name} ({ui.cmd('templates install DIR')}) overrides it")
        raise InputError(f"no user-installed template named {name!r} in {user_templates_dir()}",
                         hint=f"{ui.cmd('templates list --long')} shows where each template comes from")
    shutil.rmtree(dest)
    click.echo(f"uninstalled {name}")


@templates.command("scaffold")
@click.argument("name")
@click.option("--directory", "-d", type=click.Path(file_okay=False), help="Where to create it (default: ./NAME).")
@click.option("--from", "from_", metavar="TEMPLATE",
              help="Start from an existing template (by name) instead of the skeleton.")
@click.option("--image", help="Container image (default: asked on a terminal, else nginx:1.27).")
@click.option("--port", type=int, help="Port the container listens on (default: 80 for nginx:1.27, else 8000).")
@click.option("--external-port", type=int, default=80, show_default=True, help="Public port.")
@click.option("--runtime", type=click.Choice(["docker", "native"]), default="docker", show_default=True)
@click.option("--feature", "features", multiple=True, help="A capability to add (repeatable).")
@click.option("--description", help="One line about the service.")
@click.option("--health-path", help="HTTP health check path (default: / for nginx:1.27 and native, else /health).")
@click.option("--llm-assist", is_flag=True, help="Also write LLM_INSTRUCTIONS.md for an assistant to complete it.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def scaffold_cmd(name, directory, from_, image, port, external_port, runtime, features, description, health_path,
                 llm_assist, force) -> None:
    """Create a template folder (commented template.yml that validates as-is, README.md, .env.example).
    Asks for missing values only on a terminal; every value has a flag for scripts."""
    from pathlib import Path

    from ..plugins import get_host
    from ..scaffold import DEFAULT_IMAGE, default_port, llm_instructions, scaffold
    from ..sources import find

    host = get_host()
    d = Path(directory or name)
    src = Path(find(host.template_sources, from_).path) if from_ else None
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and src is None
    if interactive:
        image = image or click.prompt("container image", default=DEFAULT_IMAGE)
        port = port or click.prompt("port the container listens on", default=default_port(image, runtime), type=int)
        description = description or click.prompt("one-line description", default=f"{name} on Linode")
    for f in features:
        if host.catalog.lookup(f) is None:
            raise InputError(host.catalog.unknown_message(f, "feature"))
    from .. import ui

    try:
        written = scaffold(name, d, image=image or DEFAULT_IMAGE, port=port, external_port=external_port,
                           runtime=runtime, features=tuple(features), description=description or "",
                           health_path=health_path, from_template=src, force=force)
    except OSError as e:
        raise ui.fs_error(e, d if e.filename is None or Path(e.filename) == d else e.filename,
                          action="create") from None
    from ..template import load_template

    load_template(d / "template.yml", host.catalog)  # it validates as written
    if llm_assist:
        out = d / "LLM_INSTRUCTIONS.md"
        out.write_text(llm_instructions(host, name, d), encoding="utf-8")
        written.append(out)
    click.echo(f"created {d}/: " + ", ".join(p.name for p in written))
    click.echo(f"next: edit {d}/template.yml, then {ui.cmd(f'templates validate {d}')}")
