"""Every bundled template and every combination of installed capabilities renders user data that passes
cloud-init's own schema (Debian's cloud-init + its JSON schema, unknown top-level keys refused), shellcheck
(runcmd/bootcmd as /bin/sh, every script) and systemd-analyze verify (every unit, any stderr fails)."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lcai_core.plugins import get_host
from lcai_testing import render_text, require_plugins, require_validators, validate_many, validate_user_data

ROOT = Path(__file__).parents[2]
BUNDLED = sorted(p.parent.name for p in (ROOT / "templates").glob("*/template.yml"))
ENV = {"VLLM_API_KEY": "sk-test", "EMBEDDINGS_API_KEY": "key-test"}
IMAGES = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")


@pytest.fixture(scope="module", autouse=True)
def validators():
    require_validators()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_template_through_the_cli(name, tmp_path, lcai_config_dir):
    """The full user path: lcai init, .env, lcai plan --cloud-config, then every validator."""
    require_plugins(*[f for f in ("gpu-nvidia", "redis", "postgresql", "buildwatch") if f in (
        ROOT / "templates" / name / "template.yml").read_text()])
    svc = tmp_path / "svc"
    lcai = [sys.executable, "-m", "lcai_core"]
    env = {**os.environ, "LCAI_CONFIG_DIR": str(lcai_config_dir)}
    assert subprocess.run([*lcai, "init", name, "-d", str(svc)], env=env, capture_output=True).returncode == 0
    (svc / ".env").write_text("".join(f"{k}={v}\n" for k, v in ENV.items()))
    ud = tmp_path / "ud.yaml"
    r = subprocess.run([*lcai, "plan", "-d", str(svc), "--cloud-config", str(ud)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert validate_user_data(ud.read_text()) == []


@pytest.mark.parametrize("name", [n for n in BUNDLED if "gpu-nvidia" not in (
    ROOT / "templates" / n / "template.yml").read_text().split("guidance:")[0].replace("# - gpu-nvidia", "")])
def test_bundled_template_on_debian12(name):
    """The same checks for every bundled template that can run on Debian 12, with its image swapped."""
    text = (ROOT / "templates" / name / "template.yml").read_text()
    require_plugins(*[f for f in ("redis", "postgresql", "buildwatch") if f in text])
    assert "image: linode/ubuntu24.04" in text
    r = render_text(text.replace("image: linode/ubuntu24.04", "image: linode/debian12"), dotenv=ENV)
    assert validate_user_data(r.text) == []


def _tpl(runtime: str, image: str, features: tuple[str, ...]) -> str:
    feats = "".join(f"    - {f}\n" for f in features)
    container = ("      image: nginx:1.27\n      internal_port: 80\n      external_port: 8080\n"
                 if runtime in ("docker", "k3s")
                 else "      command: /usr/bin/python3 -m http.server 8000\n      internal_port: 8000\n")
    return (f"name: combo\ncapabilities:\n  runtime: {runtime}\n  features:\n{feats or '    []'}\n"
            f"  packages: [jq]\ndeploy:\n  linode:\n    image: {image}\n    container:\n{container}"
            "      health: {type: tcp, initial_delay_seconds: 10}\n"
            "      post_start_script: |\n        echo started\n"
            "setup:\n  script: |\n    #!/bin/sh\n    mkdir -p /srv/data\n"
            "  files:\n    - {path: /srv/app.conf, content: 'a = 1', permissions: '0640'}\n")


def _usable(runtime: str, image: str, feature: str) -> bool:
    """Whether a capability accepts this runtime and image (asked, not hard-coded)."""
    from lcai_core.errors import ValidationError

    try:
        render_text(_tpl(runtime, image, (feature,)))
        return True
    except ValidationError:
        return False


def combinations():
    cat = get_host().catalog
    features = [n for n in cat.names("feature") if n != "apt-packages"]
    for runtime in cat.names("runtime"):
        for image in IMAGES:
            usable = [f for f in features if _usable(runtime, image, f)]
            for k in range(len(usable) + 1):
                for combo in itertools.combinations(usable, k):
                    yield runtime, image, combo


def test_every_combination_of_installed_capabilities(monkeypatch):
    """The validators on every combination. Sizes are not this test's concern (the size check has its own
    tests, and the bundled templates are rendered with it above): a combination of every capability at once may
    exceed Linode's limit and is still checked here."""
    from lcai_core.cloudinit import Rendered

    monkeypatch.setattr(Rendered, "check_size", lambda self: None)
    cases = list(combinations())
    texts = [render_text(_tpl(*case)).text for case in cases]
    findings = validate_many(texts)
    bad = {f"{rt} {img} {'+'.join(c) or '-'}": f for (rt, img, c), f in zip(cases, findings) if f}
    assert not bad, bad
    assert len(cases) >= 24 and {img for _, img, _ in cases} == set(IMAGES)


def test_validators_catch_what_they_should():
    """The validators are real: each one fails on a known-bad input."""
    good = render_text(_tpl("docker", "linode/ubuntu24.04", ())).text
    bad_schema = good.replace("package_update: true", "package_update: 'yes'")
    bad_shell = good.replace("runcmd:\n", "runcmd:\n- if [[ -e /x ]]; then echo $UNQUOTED; fi\n")
    bad_unit = good.replace("Restart=always", "Restart=allways")
    f = validate_many([good, bad_schema, bad_shell, bad_unit])
    assert f[0] == []
    assert any(x.startswith("cloud-init schema") for x in f[1])
    assert any(x.startswith("shellcheck runcmd") for x in f[2])
    assert any(x.startswith("systemd-analyze") for x in f[3])
