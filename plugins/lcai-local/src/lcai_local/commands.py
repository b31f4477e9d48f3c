"""``lcai local image build|pull|add|list``: the images the local provider boots, cached under LCAI_LOCAL_CACHE."""

from __future__ import annotations

import json
import os
import sys

import click

from . import images
from .paths import cache_dir


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group("local")
def local() -> None:
    """Local VMs: the images the local provider (`lcai deploy --target local`) boots in place of Linode's."""


@local.group("image")
def image() -> None:
    """Build, download, register and list local images (cached in LCAI_LOCAL_CACHE)."""


@image.command("build")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even when the image is cached.")
@click.option("--mirror", default=images.MIRROR, show_default=True, help="Debian archive to bootstrap from.")
@click.option("--size", default="", help="Root file system size (default: LCAI_LOCAL_DISK_SIZE or 8G; sparse).")
def build(name: str, force: bool, mirror: str, size: str) -> None:
    """Build NAME (debian12) from the distribution's archive with mmdebstrap, and cache it."""
    meta = images.build(name, _say, force=force, mirror=mirror, size=size)
    click.echo(meta["disk"])


@image.command("pull")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even when the image is cached.")
def pull(name: str, force: bool) -> None:
    """Download NAME (ubuntu22.04 or ubuntu24.04): Ubuntu's official cloud image, its SHA256SUMS verified
    against SHA256SUMS.gpg with Ubuntu's signing key (shipped in lcai-local) and the image against SHA256SUMS.
    An interrupted download resumes; LCAI_LOCAL_UBUNTU_URL sets the server (default
    https://cloud-images.ubuntu.com/releases)."""
    meta = images.pull(name, _say, force=force)
    click.echo(meta["disk"])


@image.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
def add(name: str, file: str) -> None:
    """Register FILE (a qcow2 or raw disk with its own boot loader, e.g. an Ubuntu cloud image) as the local
    stand-in for the Linode image NAME (e.g. ubuntu24.04 or linode/ubuntu24.04)."""
    meta = images.add(name, file)
    click.echo(f"{meta['linode_image']} -> {meta['disk']} ({meta['format']})")


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List cached images and the Linode image each stands for."""
    imgs = images.all_images()
    if as_json:
        click.echo(json.dumps(imgs, indent=2, sort_keys=True))
        return
    if not imgs:
        click.echo(f"no local images in {cache_dir()}", err=True)
        from lcai_core.api.frontend import prog

        click.echo(f"hint: {prog()} local image build debian12", err=True)
        click.echo(f"hint: {prog()} local image pull ubuntu24.04   (Ubuntu's cloud image: the bundled templates' "
                   "image)", err=True)
        return
    click.echo(f"{'NAME':<16} {'STANDS FOR':<22} {'BOOT':<12} {'SIZE':>8}  FILE")
    for m in imgs:
        try:
            used = os.stat(m["disk"]).st_blocks * 512
        except OSError:
            used = 0
        boot = "kernel" if m.get("kind") == "kernel" else "boot loader"
        click.echo(f"{m['name']:<16} {m.get('linode_image', ''):<22} {boot:<12} {used / 2**20:>6.0f}Mi  {m['disk']}")
    sys.stdout.flush()
