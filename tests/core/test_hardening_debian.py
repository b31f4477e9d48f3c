"""Debian 12 (``linode/debian12``, issue 11 item 1) in core and the core capabilities: docker runtime (Debian's
docker.io), native, docker-optimize, python-3.11 (Debian 12's own 3.11: no deadsnakes PPA, which builds for
Ubuntu only), packages. The validator matrices in test_validators.py and tests/integration run Debian 12 as
they run Ubuntu; here: what differs, and that every package a Debian 12 rendering installs exists in Debian 12's
archive (checked with apt-cache when this machine runs Debian 12)."""

import re
import subprocess
from pathlib import Path

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, tools

TPL = """\
name: deb
capabilities:
  runtime: {runtime}
  features: [{features}]
  packages: [jq]
deploy:
  linode:
    image: {image}
    container:
{container}      internal_port: 8000
      health: {{type: tcp}}
"""
DOCKER = "      image: nginx:1.27\n"
NATIVE = "      command: /usr/bin/python3.11 -m http.server 8000\n"


def render(runtime="docker", features="docker-optimize", image="linode/debian12"):
    return render_text(TPL.format(runtime=runtime, features=features, image=image,
                                  container=DOCKER if runtime == "docker" else NATIVE))


def test_python_on_debian12_uses_debians_own_packages():
    r = render("native", "python-3.11")
    assert "apt" not in r.doc  # no PPA
    assert {"python3.11", "python3.11-venv", "python3.11-dev"} <= set(r.doc["packages"])
    assert "install Python 3.11 (Debian's own packages)" in r.boot_plan


def test_python_on_ubuntu_still_uses_deadsnakes():
    for image in ("linode/ubuntu22.04", "linode/ubuntu24.04"):
        r = render("native", "python-3.11", image)
        assert r.doc["apt"]["sources"]["deadsnakes"] == {"source": "ppa:deadsnakes/ppa"}


def test_python_refuses_other_images_naming_debian12():
    with pytest.raises(ValidationError, match="supports only linode/ubuntu22.04, linode/ubuntu24.04, linode/debian12"):
        render("native", "python-3.11", "linode/ubuntu20.04")


def test_docker_runtime_and_optimize_on_debian12():
    r = render()
    # apparmor explicitly: docker.io only recommends it, and without apparmor_parser no container starts on a
    # kernel with AppArmor on (seen in a Debian 12 boot with Recommends off)
    assert {"docker.io", "apparmor"} <= set(r.doc["packages"])
    assert "docker.io" in r.doc["packages"] and "/etc/docker/daemon.json" in {w["path"] for w in r.doc["write_files"]}
    assert "install Docker Engine (docker.io)" in r.boot_plan


def on_debian12() -> bool:
    try:
        return "VERSION_CODENAME=bookworm" in Path("/etc/os-release").read_text()
    except OSError:
        return False


def test_every_package_exists_in_debian12():
    apt_cache = tools.which("apt-cache")
    if not (on_debian12() and apt_cache):
        pytest.skip("needs Debian 12's apt indexes (this machine is not Debian 12)")
    packages = set()
    for runtime, features in (("docker", "docker-optimize"), ("native", "python-3.11")):
        packages.update(render(runtime, features).doc["packages"])
    p = subprocess.run([apt_cache, "show", "--no-all-versions", *sorted(packages)], capture_output=True, text=True)
    found = set(re.findall(r"(?m)^Package: (\S+)$", p.stdout))
    assert packages <= found, sorted(packages - found)
