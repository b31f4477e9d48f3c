"""The unit graph on a real machine (issue 12, items 1, 2, 5, 7): nothing of the app holds up multi-user.target
or cloud-init's final stage, there is no ordering cycle once every unit is enabled, setup and post-start are
bounded, the health wait does not require the app, the image pull comes before what needs the image, and the
app's stop command tolerates a container that is already gone.

Two checks of the boot order: ``systemd-analyze verify multi-user.target`` in a fake root where the units are
enabled as ``systemctl enable`` would (it reports ordering cycles, as systemd at boot would break them by
deleting jobs), and a model of the one rule that decides whether the target waits for a unit: a target orders
itself after every unit it wants, unless that unit is itself ordered after the target (systemd's
``unit_add_default_target_dependency``)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path


from lcai_testing import tools
from lcai_testing import (fake_systemd_root, package_units, render_text, require_plugins, systemd_analyze_bin, units_in,
                          written)

ROOT = Path(__file__).parents[2]
ENV = {"VLLM_API_KEY": "sk-test", "EMBEDDINGS_API_KEY": "key-test"}
APP_CHAIN = ("lcai-image-pull.service", "lcai-setup.service", "lcai-app.service", "lcai-health.service",
             "lcai-post-start.service")

FULL = """\
name: graph
capabilities:
  runtime: {runtime}
  features: [{features}]
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
{container}      health: {{type: tcp, initial_delay_seconds: 10}}
      post_start_script: |
        echo started
setup:
  script: |
    mkdir -p /srv/data
"""
DOCKER = "      image: nginx:1.27\n      internal_port: 80\n      external_port: 8080\n"
NATIVE = "      command: /usr/bin/python3 -m http.server 8000\n      internal_port: 8000\n"


def full(runtime="docker", features=()):
    return render_text(FULL.format(runtime=runtime, features=", ".join(features),
                                   container=DOCKER if runtime == "docker" else NATIVE))


def renderings():
    out = {"docker": full(), "native": full("native")}
    for name in sorted(p.parent.name for p in (ROOT / "templates").glob("*/template.yml")):
        out[name] = render_unchecked((ROOT / "templates" / name / "template.yml").read_text())
    return out


def render_unchecked(text: str):
    """As plan renders, without the user-data size check (the size has its own tests): the unit graph of every
    bundled template is checked even while one is over Linode's limit."""
    from lcai_core.cloudinit import build
    from lcai_core.plugins import get_host
    from lcai_core.project import context_for
    from lcai_core.template import load_template_text

    host = get_host()
    tpl = load_template_text(text, "template.yml", host.catalog)
    resolved = host.catalog.resolve(tpl)
    ctx = context_for(tpl, resolved, "t3stdepl", b"lcai-test-seed")
    return build(tpl, resolved, ctx, ENV)  # ENV: the .env values (build resolves the app's environment)


def directives(content: str, key: str) -> list[str]:
    return [u for m in re.finditer(rf"^{key}=(.*)$", content, re.M) for u in m.group(1).split()]


def waits_for(units: dict[str, str], enabled: list[str], target="multi-user.target") -> set[str]:
    """Every unit ``target`` is ordered after, transitively (the units it waits for before it is reached)."""
    units = {n: c for n, c in units.items() if "/" not in n}  # drop-ins (x.service.d/…) add no units
    after: dict[str, set[str]] = {n: set(directives(c, "After")) for n, c in units.items()}
    for n, c in units.items():
        for b in directives(c, "Before"):
            after.setdefault(b, set()).add(n)
    for n in enabled:  # WantedBy=target, enabled: the target adds After=n unless n is After=target
        if target in directives(units[n], "WantedBy") and target not in directives(units[n], "After"):
            after.setdefault(target, set()).add(n)
    seen, todo = set(), [target]
    while todo:
        for dep in after.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def enabled_units(r) -> list[str]:
    """The units runcmd enables: lcai's `systemctl enable` of every unit it writes (the last one)."""
    enable = [c for c in r.doc["runcmd"] if isinstance(c, list) and c[1:3] == ["systemctl", "enable"]
              and "--now" not in c]
    return [u for u in enable[-1][3:] if u in r.units]


def test_multi_user_target_never_waits_for_the_app_chain():
    for name, r in renderings().items():
        units = units_in(r.doc)
        waited = waits_for(units, enabled_units(r))
        assert not waited & set(APP_CHAIN), (name, sorted(waited & set(APP_CHAIN)))
        # the app's dependencies (docker, redis, postgres, the metadata guard) still come up before the target
        assert "lcai-metadata-guard.service" in waited, name


def test_the_model_sees_the_old_defect():
    """A oneshot that is WantedBy the target without After=multi-user.target (the old health unit) holds the
    target until it finishes: the rule above catches it."""
    old = "[Unit]\nAfter=lcai-app.service\n[Service]\nType=oneshot\n[Install]\nWantedBy=multi-user.target\n"
    app = "[Unit]\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    assert "lcai-health.service" in waits_for({"lcai-health.service": old, "lcai-app.service": app},
                                              ["lcai-health.service", "lcai-app.service"])


def fake_root(units: dict[str, str], enabled: list[str]) -> tempfile.TemporaryDirectory:
    """A root with the units enabled (multi-user.target.wants symlinks), package units stubbed."""
    d = tempfile.TemporaryDirectory()
    referenced = package_units(units)
    for c in units.values():
        for key in ("After", "Before", "Requires", "Wants"):
            referenced.update(u for u in directives(c, key) if u.endswith(".service"))
    etc, lib = fake_systemd_root(Path(d.name), units, referenced - set(units))
    (lib / "cloud-final.service").write_text(  # cloud-init's final stage on Debian/Ubuntu
        "[Unit]\nAfter=network-online.target multi-user.target\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
    wants = etc / "multi-user.target.wants"
    wants.mkdir()
    for n in enabled + ["cloud-final.service"]:
        (wants / n).symlink_to(etc / n if n in units else lib / n)
    return d


def test_no_ordering_cycle_with_every_unit_enabled():
    tools.need("systemd-analyze", ci_fails=False)
    require_plugins("gpu-nvidia")
    cases = renderings()
    cases["gpu"] = full(features=("gpu-nvidia",))
    for name, r in cases.items():
        units = units_in(r.doc)
        with fake_root(units, enabled_units(r)) as root:
            p = subprocess.run([systemd_analyze_bin(), "verify", f"--root={root}", "--man=no", "multi-user.target",
                                "cloud-final.service"], capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        assert "ordering cycle" not in out and "deleted to break" not in out, (name, out)


def test_a_cycle_is_reported_by_the_check():
    """The check is real: the gpu check ordered after the pull but before the target makes a cycle."""
    tools.need("systemd-analyze", ci_fails=False)
    require_plugins("gpu-nvidia")
    r = full(features=("gpu-nvidia",))
    units = units_in(r.doc)
    units["lcai-gpu-verify.service"] = units["lcai-gpu-verify.service"].replace(" multi-user.target", "", 1)
    with fake_root(units, enabled_units(r)) as root:
        p = subprocess.run([systemd_analyze_bin(), "verify", f"--root={root}", "--man=no", "multi-user.target"],
                           capture_output=True, text=True, timeout=120)
    assert "ordering cycle" in p.stdout + p.stderr


def test_setup_and_post_start_are_bounded_and_after_the_target():
    for runtime in ("docker", "native"):
        units = units_in(full(runtime).doc)
        for name in ("lcai-setup.service", "lcai-post-start.service"):
            u = units[name]
            assert "After=" in u and "multi-user.target" in directives(u, "After"), name
            assert re.search(r"^TimeoutStartSec=\d+$", u, re.M), name
        assert "TimeoutStartSec=infinity" not in "".join(units.values())
    custom = render_text(FULL.format(runtime="docker", features="", container=DOCKER).replace(
        "      post_start_script:", "      post_start_timeout_seconds: 90\n      post_start_script:").replace(
        "setup:\n", "setup:\n  timeout_seconds: 120\n"))
    units = units_in(custom.doc)
    assert "TimeoutStartSec=120" in units["lcai-setup.service"]
    assert "TimeoutStartSec=90" in units["lcai-post-start.service"]


def test_health_wants_the_app_and_post_start_requires_health():
    units = units_in(full().doc)
    health = units["lcai-health.service"]
    assert directives(health, "Wants") == ["lcai-app.service"] and not directives(health, "Requires")
    assert directives(health, "After") == ["multi-user.target", "lcai-app.service"]
    post = units["lcai-post-start.service"]
    assert directives(post, "Requires") == ["lcai-health.service"]


def test_image_pull_before_the_app_and_not_enabled_on_its_own():
    r = full()
    units = units_in(r.doc)
    app = units["lcai-app.service"]
    assert "lcai-image-pull.service" in directives(app, "After") and "lcai-image-pull.service" in directives(
        app, "Requires")
    pull = units["lcai-image-pull.service"]
    assert "[Install]" not in pull and "lcai-image-pull.service" not in enabled_units(r)
    assert re.search(r"^TimeoutStartSec=\d+$", pull, re.M) and "ExecStart=/usr/local/lib/lcai/image-pull" in pull
    assert "multi-user.target" in directives(pull, "After")
    assert "lcai-image-pull.service" not in units_in(full("native").doc)


def test_image_pull_orders_after_a_dependency_that_serves_the_image():
    """A unit the app requires (a local registry forwarder, say) comes before the pull, unless it orders
    itself after the pull (a GPU check that runs the image): no cycle either way."""
    require_plugins("gpu-nvidia")
    units = units_in(full(features=("gpu-nvidia",)).doc)
    pull = units["lcai-image-pull.service"]
    assert "lcai-gpu-verify.service" not in directives(pull, "After")
    assert "lcai-image-pull.service" in directives(units["lcai-gpu-verify.service"], "After")
    assert "lcai-metadata-guard.service" in directives(pull, "After")


def test_stop_tolerates_a_container_already_gone():
    unit = written(full())["/etc/systemd/system/lcai-app.service"]["content"]
    assert "ExecStop=-/usr/bin/docker stop -t 30 app" in unit
    assert "ExecStartPre=-/usr/bin/docker rm -f app" in unit
