"""Where the cloud-init validator lives, and how it gets there.

cloud-init is not on PyPI: the validator is Debian's ``cloud-init`` package and the Python modules its
``cloud-init schema`` needs, downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a private
root (nothing is installed system-wide). The root is ``$LCAI_CLOUD_INIT_ROOT`` when set, else
``$XDG_CACHE_HOME/lcai-testing/cloud-init`` (``~/.cache/…``), read when this module is first imported — never a
path relative to a source checkout, so it works the same from an installed wheel.

  python -m lcai_testing.cloudinit [DEST]    # fetch into DEST (default: the root above); exit 3 without apt-get
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .tools import which

# Debian's cloud-init and what `cloud-init schema` imports (bookworm: cloud-init 22.4.2)
PACKAGES = ("cloud-init python3-jsonschema python3-jinja2 python3-configobj python3-netifaces python3-pyrsistent "
            "python3-attr python3-markupsafe python3-requests python3-urllib3 python3-idna python3-certifi "
            "python3-chardet python3-charset-normalizer python3-six python3-jsonpatch python3-json-pointer "
            "python3-oauthlib python3-serial python3-yaml").split()


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lcai-testing" / "cloud-init"


# read once: tests that point HOME at a temporary directory still find the user's cache
DEFAULT_DIR = _user_cache_dir()


def cloud_init_dir() -> Path:
    """The directory holding the unpacked root (``DIR/root/usr/bin/cloud-init``)."""
    env = os.environ.get("LCAI_CLOUD_INIT_ROOT")
    return Path(env) if env else DEFAULT_DIR


def cloud_init_root() -> Path:
    return cloud_init_dir() / "root"


def cloud_init_pythonpath() -> Path:
    return cloud_init_root() / "usr" / "lib" / "python3" / "dist-packages"


def have_cloud_init() -> bool:
    return (cloud_init_root() / "usr" / "bin" / "cloud-init").is_file()


class FetchError(RuntimeError):
    pass


def fetch_cloud_init(dest: Path | None = None) -> Path:
    """Download Debian's cloud-init and its modules into ``dest`` (default: :func:`cloud_init_dir`) and unpack
    them into ``dest/root``; nothing to do when already there. Returns ``dest``. Needs ``apt-get`` and
    ``dpkg-deb`` (Debian/Ubuntu) and access to the Debian archive; raises :class:`FetchError` otherwise."""
    dest = Path(dest) if dest is not None else cloud_init_dir()
    root = dest / "root"
    if (root / "usr" / "bin" / "cloud-init").is_file():
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if which(tool) is None:
            raise FetchError(f"{tool} not available: cloud-init's validator is fetched from the Debian archive "
                             f"(or set LCAI_CLOUD_INIT_ROOT to a directory holding root/usr/bin/cloud-init)")
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, capture_output=True, text=True,
                              timeout=600)

    r = download()
    if r.returncode != 0:  # stale or missing package lists
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, timeout=600)
        r = download()
    if r.returncode != 0:
        raise FetchError(f"apt-get download failed: {r.stderr.strip()[-500:]}")
    # unpack into a sibling, then move into place: an interrupted fetch never looks complete
    tmp = Path(tempfile.mkdtemp(prefix="root.", dir=dest))
    try:
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True, timeout=300)
        if not (tmp / "usr" / "bin" / "cloud-init").is_file():
            raise FetchError(f"no usr/bin/cloud-init in the unpacked packages under {debs}")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m lcai_testing.cloudinit [DEST]", file=sys.stderr)
        return 2
    try:
        dest = fetch_cloud_init(Path(args[0]) if args else None)
    except FetchError as e:
        print(f"lcai-testing: {e}", file=sys.stderr)
        return 3
    print(dest / "root")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
