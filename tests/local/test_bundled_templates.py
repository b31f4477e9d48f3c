"""Rehearsing the bundled templates with `--target local` (no QEMU needed: everything here happens before a VM):
the refusal names the exact command that makes the missing image (`lcai local image pull ubuntu24.04`) and, for a
template whose capabilities all run on Debian 12, `--image linode/debian12`; `--image` overrides
deploy.linode.image in plan and deploy, checked against the capabilities like the file's value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

PULL = "run `lcai local image pull ubuntu24.04` (Ubuntu's cloud image, verified against its signed SHA256SUMS)"


@pytest.fixture
def env(tmp_path, monkeypatch):
    from lcai_core.plugins import reset_host

    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("LCAI_LOCAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for k in ("LINODE_TOKEN", "LINODE_CLI_TOKEN", "LCAI_LINODE_API_URL"):
        monkeypatch.delenv(k, raising=False)
    reset_host()
    yield tmp_path
    reset_host()


def cli(capsys, *args) -> tuple[int, str, str]:
    from lcai_core.cli import main

    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def init(capsys, tmp_path: Path, template: str) -> Path:
    d = tmp_path / template
    rc, _, err = cli(capsys, "init", template, "--directory", d)
    assert rc == 0, err
    lines = [ln.split("=", 1)[0] + "=x" * 12 if "=" in ln and not ln.startswith("#") else ln
             for ln in (d / ".env.example").read_text().splitlines()]
    (d / ".env").write_text("\n".join(lines) + "\n")
    return d


def errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(("error:", "hint:"))]


@pytest.mark.parametrize("template", ["embeddings-python", "chat-agent", "ml-pipeline"])
def test_a_bundled_template_names_both_ways_to_rehearse_it(env, capsys, template):
    d = init(capsys, env, template)
    rc, out, err = cli(capsys, "deploy", "-d", d, "--target", "local", "--yes")
    assert rc == 2, err
    assert errors(err) == [
        "error: no local image for linode/ubuntu24.04 (the local provider boots a cached stand-in for it): "
        f"{PULL}, or deploy with `--image linode/debian12` (this template's capabilities support Debian 12; "
        "`lcai local image build debian12` first)",
        "hint: lcai local image add ubuntu24.04 FILE   (a disk image of linode/ubuntu24.04 of your own, qcow2 or raw)"]


def test_the_debian_alternative_says_when_its_image_is_cached(env, capsys):
    from lcai_core.providers import Spec
    from lcai_local.provider import LocalProvider

    cached = env / "cache" / "debian12"
    cached.mkdir(parents=True)
    (cached / "disk.img").write_bytes(b"")
    (cached / "image.json").write_text(json.dumps({"name": "debian12", "kind": "kernel", "disk": "disk.img"}))
    s = Spec(deployment_id="d0000001", app="a", env="default", label="l", tags=(), region="local",
             type="g6-standard-2", image="linode/ubuntu24.04", user_data="", user_data_b64="",
             supported_images=("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12"))
    from lcai_core.errors import InputError

    with pytest.raises(InputError) as e:
        LocalProvider().preflight(s)
    assert e.value.message.endswith(f"{PULL}, or deploy with `--image linode/debian12` (this template's "
                                    "capabilities support Debian 12; its image is cached)")
    # a capability without Debian 12: only the pull
    import attrs

    with pytest.raises(InputError) as e:
        LocalProvider().preflight(attrs.evolve(s, supported_images=("linode/ubuntu24.04",)))
    assert e.value.message.endswith(f"stand-in for it): {PULL}")
    # an image lcai cannot make: the message says why, the hint how to add one
    with pytest.raises(InputError) as e:
        LocalProvider().preflight(attrs.evolve(s, image="linode/fedora40", supported_images=()))
    assert e.value.message == "no local image for linode/fedora40 (the local provider boots a cached stand-in for it)"
    assert e.value.hint.startswith("lcai local image add fedora40 FILE")


def test_the_gpu_template_is_refused_for_its_gpu(env, capsys):
    d = init(capsys, env, "llm-api")
    rc, out, err = cli(capsys, "deploy", "-d", d, "--target", "local", "--yes")
    # refused before the provider is asked, located at the field that picks the machine (issue 25 item 9)
    first = errors(err)[0]
    assert rc == 2 and "deploy.yml:" in first and "deploy.linode.type_default" in first, err
    assert "needs a GPU, and a local VM has none" in first


def test_image_overrides_the_template_in_plan_and_deploy(env, capsys):
    d = init(capsys, env, "ml-pipeline")
    rc, out, err = cli(capsys, "plan", "-d", d, "--image", "linode/debian12")
    assert rc == 0, err
    assert "image linode/debian12" in out.splitlines()[1]
    assert "install PostgreSQL 15" in out  # Debian 12's PostgreSQL (Ubuntu 24.04's is 16)
    rc, out, err = cli(capsys, "plan", "-d", d)
    assert rc == 0 and "image linode/ubuntu24.04" in out and "install PostgreSQL 16" in out
    rc, out, err = cli(capsys, "plan", "-d", d, "--image", "linode/debian12", "--json")
    assert json.loads(out)["image"] == "linode/debian12"
    # deploy takes it too: the local provider now looks for the Debian 12 image
    rc, out, err = cli(capsys, "deploy", "-d", d, "--target", "local", "--image", "linode/debian12", "--yes")
    assert rc == 2 and errors(err) == [
        "error: no local image for linode/debian12 (the local provider boots a cached stand-in for it): "
        "run `lcai local image build debian12`", "hint: lcai local image build debian12"]


def test_image_is_checked_like_the_templates_value(env, capsys):
    d = init(capsys, env, "llm-api")
    rc, out, err = cli(capsys, "plan", "-d", d, "--image", "linode/debian12")
    assert rc == 2 and len(errors(err)) == 1, err
    assert errors(err)[0].startswith("error: --image linode/debian12: capability 'gpu-nvidia' supports only "
                                     "linode/ubuntu22.04, linode/ubuntu24.04")
    rc, out, err = cli(capsys, "plan", "-d", d, "--image", "debian12")
    assert rc == 2 and errors(err) == ["error: --image 'debian12': expected a Linode image id like linode/debian12"]
    rc, out, err = cli(capsys, "deploy", "-d", d, "--image", "ubuntu 24.04", "--yes")
    assert rc == 2 and errors(err) == ["error: --image 'ubuntu 24.04': expected a Linode image id like "
                                       "linode/debian12"]
    assert not (d / ".linode" / "state.json").exists() and os.environ.get("LINODE_TOKEN") is None


def test_spec_carries_the_images_every_capability_supports():
    from lcai_core.flow.plan import supported_images as _supported_images

    class Cap:
        def __init__(self, images):
            self.images = images

    class R:
        def __init__(self, images):
            self.capability = Cap(images)

    both = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    assert _supported_images([R(None), R(both), R(("linode/ubuntu24.04", "linode/ubuntu22.04"))]) == (
        "linode/ubuntu22.04", "linode/ubuntu24.04")
    assert _supported_images([R(None)]) is None
    assert _supported_images([R(both), R(("linode/fedora40",))]) == ()
