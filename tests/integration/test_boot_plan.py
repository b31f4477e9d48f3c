"""Across gpu-nvidia, redis and postgresql: the matrix passes every validator, and the boot plan is sound —
one apt index refresh, no fixed sleeps, at most one reboot, the app after its dependencies, small user data,
and units that are harmless to re-run."""

import re

import pytest

from lcai_testing import render_text, require_plugins, require_validators, validate_many

FEATURES = {"none": [], "gpu-nvidia": ["gpu-nvidia"], "redis": ["redis"], "postgresql": ["postgresql"]}
IMAGES = ["linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12"]
DEPS = {"gpu-nvidia": ["lcai-gpu-verify.service"], "redis": ["redis-server.service"],
        "postgresql": ["postgresql.service", "lcai-postgres-init.service"]}


def tpl(features, image):
    feats = "".join(f"    - {f}\n" for f in features) or "    []\n"
    return (f"name: matrix\ncapabilities:\n  runtime: docker\n  features:\n{feats}deploy:\n  linode:\n"
            f"    image: {image}\n    container:\n      image: vllm/vllm-openai:v0.8.5\n      internal_port: 8000\n"
            "      external_port: 80\n      health: {type: http, path: /health, initial_delay_seconds: 600}\n"
            "      post_start_script: |\n        docker exec app true\n")


@pytest.fixture(scope="module", autouse=True)
def plugins():
    require_plugins("gpu-nvidia", "redis", "postgresql")


GPU_IMAGES = IMAGES[:2]  # gpu-nvidia refuses Debian 12 (its own tests say why)
CASES = [(k, img) for k in FEATURES for img in IMAGES if k != "gpu-nvidia" or img in GPU_IMAGES] + [
    ("all", img) for img in IMAGES]


def features_of(key, image=IMAGES[0]):
    if key == "all":
        return ["gpu-nvidia", "redis", "postgresql", "docker-optimize"][0 if image in GPU_IMAGES else 1:]
    return FEATURES[key]


def test_matrix_passes_cloud_init_shellcheck_and_systemd():
    require_validators()
    texts = [render_text(tpl(features_of(k, img), img)).text for k, img in CASES]
    findings = validate_many(texts)
    assert not {f"{k} {img}": f for (k, img), f in zip(CASES, findings) if f}


def all_shell(doc):
    yield from (str(c) for c in doc.get("runcmd", []) + doc.get("bootcmd", []))
    for w in doc["write_files"]:
        yield w["content"]


@pytest.mark.parametrize("key,image", CASES)
def test_static_boot_plan(key, image):
    r = render_text(tpl(features_of(key, image), image))
    doc = r.doc
    # the apt index is refreshed exactly once: by cloud-init's package stage, never again by a command
    assert doc["package_update"] is True
    assert not any(re.search(r"apt(-get)? (update|upgrade)", s) for s in all_shell(doc))
    # no fixed sleeps: none in runcmd/bootcmd; the only sleeps anywhere are the health poller's interval and
    # the image pull's backoff after a failed attempt
    assert not any("sleep" in str(c) for c in doc["runcmd"] + doc.get("bootcmd", []))
    sleeps = [line.strip() for s in all_shell(doc) for line in s.splitlines() if re.search(r"\bsleep\b", line)]
    assert set(sleeps) == {'sleep "$interval"', 'sleep "$delay"'}
    pull = next(w["content"] for w in doc["write_files"] if w["path"] == "/usr/local/lib/lcai/image-pull")
    assert re.search(r'if out=\$\(timeout "\$per_attempt" docker pull[^\n]*\n(.*\n){5,9}\s+sleep "\$delay"', pull)
    # at most one reboot, and only through power_state at the very end
    assert not any(re.search(r"\b(reboot|shutdown)\b", str(c)) for c in doc["runcmd"])
    assert ("power_state" in doc) == ("gpu-nvidia" in features_of(key, image))
    # the app starts after (and requires) each of its dependencies
    app = next(w["content"] for w in doc["write_files"] if w["path"].endswith("/lcai-app.service"))
    after = next(line for line in app.splitlines() if line.startswith("After=")).split("=", 1)[1].split()
    requires = next(line for line in app.splitlines() if line.startswith("Requires=")).split("=", 1)[1].split()
    expected = ["docker.service", "lcai-metadata-guard.service", "lcai-image-pull.service"]
    for f in features_of(key, image):
        expected += DEPS.get(f, [])
    for dep in expected:
        assert dep in after and dep in requires, (dep, after, requires)
    # post-start waits for health; post-reboot work is in units, not runcmd
    post = next(w["content"] for w in doc["write_files"] if w["path"].endswith("/lcai-post-start.service"))
    assert "After=multi-user.target lcai-health.service" in post
    # the boot plan lcai plan prints says so
    text = "\n".join(r.boot_plan)
    if "gpu-nvidia" in features_of(key, image):
        assert "reboot once" in text and "in the background" in text
    assert "wait for health" in text


def test_largest_combination_within_8_kib_gzipped():
    sizes = {img: render_text(tpl(features_of("all", img), img)).sizes() for img in IMAGES}
    for img, s in sizes.items():
        assert s["gzip"] <= 8192, (img, s)


def test_one_shot_units_are_marker_guarded_or_idempotent():
    r = render_text(tpl(features_of("all"), IMAGES[1]) + "setup:\n  script: |\n    echo hi\n")
    idempotent_by_design = {"lcai-gpu-verify.service", "lcai-health.service", "lcai-metadata-guard.service",
                            "lcai-postgres-init.service", "lcai-image-pull.service"}
    for w in r.doc["write_files"]:
        if w["path"].startswith("/etc/systemd/system/") and "Type=oneshot" in w["content"]:
            name = w["path"].rsplit("/", 1)[1]
            assert name in idempotent_by_design or "ConditionPathExists=!/var/lib/lcai/" in w["content"], name
