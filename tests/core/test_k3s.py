"""Runtime k3s: every combination renders objects that validate against the Kubernetes schemas of the k3s release
it installs (kubernetes-validate, --strict), user data that passes every static check, the bundled templates by
changing only ``runtime:``, the Secret as the one object holding the environment, refusals in one line, and the
install script's checksum logic run against fake downloads."""

import base64
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lcai_core.builtin import k3s as K
from lcai_core.cli import main
from lcai_testing import app_env, render_text, require_plugins, require_validators, validate_many, written

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ["linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12"]
FEATURES = {"none": [], "redis": ["redis"], "postgresql": ["postgresql"], "docker-optimize": ["docker-optimize"],
            "gpu-nvidia": ["gpu-nvidia"], "all": ["gpu-nvidia", "redis", "postgresql", "docker-optimize"]}
CASES = [(k, img) for k in FEATURES for img in IMAGES if "gpu-nvidia" not in FEATURES[k] or img != IMAGES[2]]
SECRET = "Zq9-very-secret-value-7Hk"


@pytest.fixture(autouse=True)
def config_dir(lcai_config_dir):
    return lcai_config_dir


def kv():
    """kubernetes-validate (the Kubernetes JSON schemas); skip (locally) or fail (CI=true) without it."""
    try:
        import kubernetes_validate
    except ImportError:
        msg = "kubernetes-validate is not installed (pip install kubernetes-validate)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return kubernetes_validate


def tpl(features, image=IMAGES[1], health="{type: http, path: /health, initial_delay_seconds: 600}", extra=""):
    feats = "".join(f"    - {f}\n" for f in features) or "    []\n"
    return (f"name: matrix\ncapabilities:\n  runtime: k3s\n  features:\n{feats}deploy:\n  linode:\n"
            f"    image: {image}\n    container:\n      image: vllm/vllm-openai:v0.8.5\n      internal_port: 8000\n"
            "      external_port: 80\n      command: --model ${MODEL}\n      volumes:\n"
            "        - /var/lib/lcai-models:/root/.cache/huggingface\n        - /opt/conf:/conf:ro\n"
            f"      env:\n        TOKEN: ${{API_TOKEN}}\n      health: {health}\n{extra}"
            "env:\n  required:\n    - name: API_TOKEN\n      secret: true\n  optional:\n"
            "    - name: MODEL\n      default: facebook/opt-125m\n")


def manifests(r):
    """Every Kubernetes object the rendering hands to k3s, by file."""
    out = {}
    for w in r.doc["write_files"]:
        if w["path"] == K.STAGED or w["path"].startswith(K.MANIFESTS + "/"):
            out[w["path"]] = [o for o in yaml.safe_load_all(w["content"]) if o]
    return out


def kinds(r):
    return {o["kind"]: o for objs in manifests(r).values() for o in objs}


def plugins_for(features):
    require_plugins(*[f for f in features if f != "docker-optimize"])


def render(features=(), image=IMAGES[1], dotenv=None, **kw):
    plugins_for(features)
    return render_text(tpl(list(features), image, **kw), {"API_TOKEN": SECRET, **(dotenv or {})})


@pytest.mark.parametrize("key,image", CASES)
def test_every_object_validates_strictly_against_the_pinned_kubernetes(key, image):
    validate = kv().validate
    r = render(FEATURES[key], image)
    found = manifests(r)
    assert K.STAGED in found
    objs = [o for objs in found.values() for o in objs]
    for o in objs:
        assert validate(o, K.KUBERNETES_VERSION, strict=True) == "1.36", o["kind"]
    names = [o["kind"] for o in found[K.STAGED]]
    assert names == ["Namespace", "Secret", "Deployment", "Service"]
    if "gpu-nvidia" in FEATURES[key]:
        assert {o["kind"] for o in objs} >= {"RuntimeClass", "DaemonSet"}


def test_largest_k3s_combination_within_10_kib_gzipped():
    for img in IMAGES[:2]:
        assert render(FEATURES["all"], img).sizes()["gzip"] <= 10240, img


def test_strict_validation_can_fail():
    """The check above is not vacuous: a misspelt field or a wrong type is refused for this version."""
    kubernetes_validate = kv()
    dep = kinds(render())["Deployment"]
    bad = json.loads(json.dumps(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K.KUBERNETES_VERSION, strict=True)
    bad = json.loads(json.dumps(dep))
    bad["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K.KUBERNETES_VERSION, strict=True)


def test_every_combination_passes_cloud_init_shellcheck_and_systemd():
    require_validators()
    for f in FEATURES["all"]:
        if f != "docker-optimize":
            require_plugins(f)
    texts = [render(FEATURES[k], img).text for k, img in CASES]
    texts.append(render(health="{type: exec, command: 'curl -fs localhost:8000/health'}").text)
    texts.append(render(health="{type: tcp}").text)
    findings = validate_many(texts)
    assert not [f for f in findings if f]


@pytest.mark.parametrize("name", ["embeddings-python", "ml-pipeline"])
def test_bundled_templates_run_on_k3s_by_changing_only_the_runtime(name):
    text = (ROOT / "templates" / name / "template.yml").read_text()
    assert text.count("runtime: docker") == 1
    text = text.replace("runtime: docker", "runtime: k3s")
    if name == "ml-pipeline":
        require_plugins("redis", "postgresql")
    r = render_text(text, {"EMBEDDINGS_API_KEY": SECRET})
    validate = kv().validate
    for o in kinds(r).values():
        validate(o, K.KUBERNETES_VERSION, strict=True)
    dep = kinds(r)["Deployment"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    secret = kinds(r)["Secret"]
    env = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert env == app_env(r)
    if name == "embeddings-python":
        assert env["API_KEY"] == SECRET
        assert c["ports"] == [{"name": "app", "containerPort": 80, "hostPort": 80, "protocol": "TCP"}]
        assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": 80}
        assert dep["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] == "/var/lib/lcai-models"
    else:
        # Redis and PostgreSQL stay on the host; the pod reaches them at the node's pod-network address
        assert env["REDIS_URL"].endswith("@10.42.0.1:6379/0") and "@10.42.0.1:5432/" in env["DATABASE_URL"]
        files = written(r)
        assert "bind 127.0.0.1 10.42.0.1" in files["/etc/redis/redis.conf"]["content"]
        assert "host pipeline pipeline 10.42.0.0/16 scram-sha-256" in files[
            "/etc/postgresql/16/main/pg_hba.conf"]["content"]
        assert "listen_addresses = 'localhost,10.42.0.1'" in files["/etc/postgresql/16/main/conf.d/lcai.conf"][
            "content"]
        assert files[K.SYSCTL]["content"].splitlines()[-1] == "net.ipv4.ip_nonlocal_bind = 1"
        # not public: on the instance's loopback only, like docker's -p 127.0.0.1:8080:8080
        assert c["ports"][0]["hostIP"] == "127.0.0.1" and c["ports"][0]["hostPort"] == 8080
        assert c["volumeMounts"] == [{"name": "vol-0", "mountPath": "/app", "readOnly": True}]
        # container.command replaces the image's CMD, as `docker run IMAGE CMD` does
        assert c["args"][:2] == ["sh", "-c"] and "command" not in c
        app = files["/etc/systemd/system/lcai-app.service"]["content"]
        requires = next(x for x in app.splitlines() if x.startswith("Requires=")).split("=", 1)[1].split()
        assert {"k3s.service", "redis-server.service", "postgresql.service", "lcai-postgres-init.service",
                "lcai-image-pull.service"} <= set(requires)
    require_validators()
    assert validate_many([r.text]) == [[]]


def test_the_secret_is_the_only_object_with_an_env_value():
    r = render(["redis"], dotenv={"MODEL": "org/model-7"})
    env = app_env(r)
    assert env["TOKEN"] == SECRET and env["MODEL"] == "org/model-7" and "REDIS_URL" in env
    objs = kinds(r)
    assert {k: base64.b64decode(v).decode() for k, v in objs["Secret"]["data"].items()} == env
    for kind, o in objs.items():
        if kind != "Secret":
            dumped = json.dumps(o)
            for name, v in env.items():
                if name == "MODEL":  # a setting container.command uses: in the args, as the template asks
                    continue
                assert v not in dumped and base64.b64encode(v.encode()).decode() not in dumped, (kind, name)
    # ... and lcai says so, as for docker (a secret: true variable in the command is refused by the loader)
    assert any("uses ${MODEL} from .env" in w for w in r.warnings)
    assert objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["--model", "org/model-7"]
    assert objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "app-env"}}]
    files = written(r)
    assert files[K.STAGED]["permissions"] == "0600" and files["/etc/lcai/app.env"]["permissions"] == "0600"
    # no unit, script or runcmd step carries a value: only the env file and the manifest do
    holders = {p for p, w in files.items() if SECRET in w["content"]
               or base64.b64encode(SECRET.encode()).decode() in w["content"]}
    assert holders == {"/etc/lcai/app.env", K.STAGED}
    assert SECRET not in json.dumps(r.doc["runcmd"])


def test_probes_follow_the_health_check():
    cases = {"{type: http, path: /health, initial_delay_seconds: 600}": {"httpGet": {"path": "/health", "port": 8000}},
             "{type: tcp}": {"tcpSocket": {"port": 8000}},
             "{type: exec, command: 'test -e /ready'}": {"exec": {"command": ["sh", "-c", "test -e /ready"]}}}
    for health, handler in cases.items():
        c = kinds(render(health=health))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        for p in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert {k: v for k, v in c[p].items() if k in handler} == handler, (health, p)
    # health.port naming the published port (80): the probe reaches the container's port behind it
    c = kinds(render(health="{type: tcp, port: 80}"))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 8000}
    c = kinds(render())["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    # lcai's budget: 600 s of initial delay at a 10 s interval, then max_retries (60) failures
    assert c["startupProbe"]["failureThreshold"] == 60 + 60 and c["startupProbe"]["periodSeconds"] == 10
    assert c["livenessProbe"]["failureThreshold"] == 3


def test_health_record_probes_the_host_port_and_waits_for_the_pod():
    r = render(health="{type: exec, command: 'test -e /ready'}")
    files = written(r)
    wait = files["/usr/local/lib/lcai/health-wait"]["content"]
    assert "/usr/local/bin/k3s kubectl -n lcai exec deployment/app -c app -- sh -c 'test -e /ready'" in wait
    assert "state.running.startedAt" in wait and "state=/var/lib/lcai/health.json" in wait
    wait = written(render())["/usr/local/lib/lcai/health-wait"]["content"]
    assert "http://127.0.0.1:80/health" in wait  # the hostPort, as for docker's published port
    app = files["/etc/systemd/system/lcai-app.service"]["content"]
    assert "ExecStart=/usr/local/lib/lcai/k3s-app" in app and "Restart=always" in app
    script = files[K.APP_SCRIPT]["content"]
    assert "install -D -m 0600 \"$staged\" \"$manifests/$name\"" in script
    assert "logs --follow" in script


def test_gpu_pod_asks_for_the_gpu_through_the_nvidia_runtime_class():
    r = render(["gpu-nvidia"])
    pod = kinds(r)["Deployment"]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    objs = kinds(r)
    assert objs["RuntimeClass"]["handler"] == "nvidia"
    assert objs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "nvcr.io/nvidia/k8s-device-plugin:v")
    doc = r.doc
    assert "nvidia-container-toolkit" in doc["packages"] and "docker.io" not in doc["packages"]
    assert not any("docker" in " ".join(c) for c in doc["runcmd"][1:])
    assert doc["power_state"]["mode"] == "reboot"
    verify = written(r)["/usr/local/lib/lcai/gpu-verify"]["content"]
    assert "docker" not in verify and "nvidia-smi" in verify


def test_k3s_config_keeps_secrets_encrypted_and_the_kubeconfig_private():
    files = written(render())
    cfg = yaml.safe_load(files[K.CONFIG]["content"])
    assert cfg["secrets-encryption"] is True and cfg["write-kubeconfig-mode"] == "0600"
    assert set(cfg["disable"]) == {"traefik", "servicelb", "local-storage"} and cfg["cluster-cidr"] == "10.42.0.0/16"
    assert files[K.CONFIG]["permissions"] == "0600"
    unit = files["/etc/systemd/system/k3s.service"]["content"]
    assert "ExecStart=/usr/local/bin/k3s server" in unit and "Type=notify" in unit


def test_docker_optimize_rotates_logs_through_the_kubelet():
    r = render(["docker-optimize"])
    drop_in = written(r)[f"{K.CONFIG_DIR}/lcai-docker-optimize.yaml"]["content"]
    assert yaml.safe_load(drop_in) == {"kubelet-arg+": ["container-log-max-size=10Mi", "container-log-max-files=3"]}
    assert "/etc/docker/daemon.json" not in written(r)


def test_plan_names_the_k3s_version_and_the_objects(capsys, tmp_path):
    (tmp_path / "deploy.yml").write_text(tpl(["docker-optimize"]))
    (tmp_path / ".env").write_text(f"API_TOKEN={SECRET}\n")
    code = main(["plan", "--directory", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "capabilities: k3s, docker-optimize" in out
    assert f"install k3s {K.K3S_VERSION} (Kubernetes {K.KUBERNETES_VERSION})" in out
    assert "Namespace lcai, Secret app-env, Deployment app, Service app" in out
    assert "start the app (k3s) as lcai-app.service" in out
    assert SECRET not in out + err


@pytest.mark.parametrize("features,extra,field,message", [
    (["buildwatch"], "", "capabilities.features[0]", "k3s runs the app under containerd"),
    (["docker-optimize"], "", None, None),
    ([{"name": "docker-optimize", "config": {"log_max_files": 1}}], "", "capabilities.features[0]",
     "on k3s the kubelet rotates container logs and keeps at least 2 files"),
    ([], "success_codes", "deploy.linode.container.health.success_codes", "Kubernetes counts only 200-399"),
])
def test_refused_combinations_say_why_in_one_line(capsys, tmp_path, features, extra, field, message):
    feats = [f if isinstance(f, str) else json.dumps(f) for f in features]
    if "buildwatch" in features:
        require_plugins("buildwatch")
    health = "{type: http, path: /health, success_codes: [200, 401]}" if extra else "{type: http, path: /health}"
    f = tmp_path / "template.yml"
    f.write_text(tpl(feats, health=health))
    code = main(["templates", "validate", str(f)])
    out, err = capsys.readouterr()
    if field is None:
        assert code == 0, err
        return
    assert code == 2 and "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert re.match(rf"error: {re.escape(str(f))}:\d+: {re.escape(field)}: .*{re.escape(message)}", line), line


def test_image_is_required(capsys, tmp_path):
    f = tmp_path / "template.yml"
    f.write_text(tpl([]).replace("      image: vllm/vllm-openai:v0.8.5\n", ""))
    assert main(["templates", "validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert re.search(r":\d+: deploy\.linode\.container(\.image)?: the k3s runtime needs a container image", err), err


def test_logs_show_the_pods_and_events_of_a_k3s_deployment():
    """The hook `lcai logs` calls (through the plugin host, as the command does)."""
    from lcai_core.plugins import get_host

    class R:
        ok, out = True, "NAME READY STATUS\napp-5d 1/1 Running\nLAST SEEN TYPE REASON\n2m Normal Pulled\n"

    def each(rec, run):
        out = []
        for impl in get_host().each("deployment_events"):
            got = impl(deployment=rec, run=run, limit=20, since=None)
            if got is not None:
                out.append(got)
        return out

    ran = []
    (title, lines, _), = each({"runtime": "k3s", "features": []}, lambda cmd: ran.append(cmd) or R())
    assert "pods and events in namespace lcai" in title and "app-5d 1/1 Running" in lines
    assert "kubectl -n lcai get pods" in ran[0] and "get events --sort-by=.lastTimestamp" in ran[0]
    assert each({"runtime": "docker", "features": []}, lambda cmd: pytest.fail("ran a command")) == []


@pytest.mark.parametrize("key,image", CASES)
def test_static_boot_plan(key, image):
    """As for docker (tests/integration/test_boot_plan.py): one apt index refresh, no fixed sleeps, at most one
    reboot, the app after its dependencies, the metadata guard before k3s."""
    r = render(FEATURES[key], image)
    doc, files = r.doc, written(r)
    shell = [str(c) for c in doc["runcmd"]] + [w["content"] for w in doc["write_files"]]
    assert doc["package_update"] is True and not any(re.search(r"apt(-get)? (update|upgrade)", x) for x in shell)
    sleeps = {line.strip() for x in shell for line in x.splitlines() if re.search(r"\bsleep\b", line)}
    assert sleeps == {'sleep "$interval"', 'sleep "$delay"'}
    assert ("power_state" in doc) == ("gpu-nvidia" in FEATURES[key])
    steps = [c[1:] for c in doc["runcmd"][1:]]
    assert steps.index([K.INSTALL_SCRIPT]) < len(steps) - 1
    app = files["/etc/systemd/system/lcai-app.service"]["content"]
    requires = next(x for x in app.splitlines() if x.startswith("Requires=")).split("=", 1)[1].split()
    assert {"k3s.service", "lcai-metadata-guard.service", "lcai-image-pull.service"} <= set(requires)
    guard = files["/etc/systemd/system/lcai-metadata-guard.service"]["content"]
    assert "k3s.service" in next(x for x in guard.splitlines() if x.startswith("Before="))
    if "gpu-nvidia" in FEATURES[key]:  # the image pull (and so k3s) runs while the driver installs, on boot 1
        pull = steps.index(["systemctl", "start", "--no-block", "lcai-image-pull.service"])
        assert pull < steps.index(["/usr/local/lib/lcai/gpu-driver-install"]) < steps.index(
            ["systemctl", "start", "lcai-image-pull.service"])
        assert "lcai-gpu-verify.service" in requires
    assert f"install k3s {K.K3S_VERSION}" in "\n".join(r.boot_plan)


# ------------------------------------------------------------------ the install script, against fake downloads

FAKE_CURL = """#!/bin/sh
# fake curl: serves $RELEASE/<tag>/<asset> for https://github.com/k3s-io/k3s/releases/download/<tag>/<asset>
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    -*) shift ;;
    *) url=$1; shift ;;
  esac
done
echo "$url" >> "$CALLS"
path=${url#https://github.com/k3s-io/k3s/releases/download/}
[ -f "$RELEASE/$path" ] || exit 22
cp "$RELEASE/$path" "$out"
"""


@pytest.fixture
def installer(tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("the install script installs the amd64 build only")
    script = K.install_script()
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(FAKE_CURL)
    (bin_dir / "curl").chmod(0o755)
    tag = K.K3S_VERSION.replace("+", "%2B")
    release = tmp_path / "release" / tag
    release.mkdir(parents=True)

    def run(binary: bytes, listed: str | None = None, pin: str | None = None):
        (release / "k3s").write_bytes(binary)
        digest = hashlib.sha256(binary).hexdigest()
        (release / "sha256sum-amd64.txt").write_text(
            f"{'0' * 64}  k3s-airgap-images-amd64.tar\n{listed or digest}  k3s\n")
        text = script.replace(f"sha256={K.K3S_SHA256_AMD64}\n", f"sha256={pin or digest}\n")
        (tmp_path / "k3s-install").write_text(text)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RELEASE": str(tmp_path / "release"),
               "CALLS": str(tmp_path / "calls"), "LCAI_K3S_BIN": str(tmp_path / "usr/local/bin/k3s")}
        return subprocess.run(["bash", str(tmp_path / "k3s-install")], capture_output=True, text=True, env=env,
                              timeout=60)

    return run, tmp_path


def test_install_script_pins_the_release_and_its_checksum():
    s = K.install_script()
    assert f"version={K.K3S_VERSION}\n" in s and f"sha256={K.K3S_SHA256_AMD64}\n" in s
    assert re.fullmatch(r"[0-9a-f]{64}", K.K3S_SHA256_AMD64)
    assert "base=${LCAI_K3S_RELEASES:-https://github.com/k3s-io/k3s/releases/download}" in s
    assert "| sh" not in s and "get.k3s.io" not in s and "install.sh" not in s


def test_install_checks_both_hashes_then_installs(installer):
    run, d = installer
    r = run(b"fake k3s binary")
    assert r.returncode == 0, r.stderr
    assert (d / "usr/local/bin/k3s").read_bytes() == b"fake k3s binary"
    assert os.access(d / "usr/local/bin/k3s", os.X_OK) and os.readlink(d / "usr/local/bin/kubectl") == "k3s"
    tag = K.K3S_VERSION.replace("+", "%2B")
    assert (d / "calls").read_text().split() == [f"{K.RELEASES}/{tag}/k3s", f"{K.RELEASES}/{tag}/sha256sum-amd64.txt"]
    # installed with the pinned hash: a second run downloads nothing
    (d / "calls").unlink()
    r = run(b"fake k3s binary")
    assert r.returncode == 0 and not (d / "calls").exists() and "already installed" in r.stdout


def test_install_refuses_a_binary_that_is_not_the_pinned_one(installer):
    run, d = installer
    pin = hashlib.sha256(b"the real one").hexdigest()
    r = run(b"tampered", listed=pin, pin=pin)
    assert r.returncode == 1 and not (d / "usr/local/bin/k3s").exists()
    got = hashlib.sha256(b"tampered").hexdigest()
    assert f"the downloaded k3s binary has sha256 {got}; lcai pins {pin}" in r.stderr


def test_install_refuses_when_the_release_lists_another_hash(installer):
    run, d = installer
    r = run(b"fake k3s binary", listed="f" * 64)
    assert r.returncode == 1 and not (d / "usr/local/bin/k3s").exists()
    assert f"sha256sum-amd64.txt lists {'f' * 64} for k3s" in r.stderr


def test_install_fails_when_the_download_fails(installer):
    run, d = installer
    (d / "fakebin" / "curl").write_text("#!/bin/sh\nexit 22\n")
    r = run(b"x")
    assert r.returncode == 1 and "could not download https://github.com/k3s-io/k3s/releases/download/" in r.stderr
    assert not (d / "usr/local/bin/k3s").exists()


# ------------------------------------------------------------------ the app unit's script, against a fake k3s

FAKE_K3S = """#!/bin/sh
# fake k3s: `k3s kubectl -n lcai VERB ...`, answers from $FAKE (files), records the calls
echo "$*" >> "$FAKE/calls"
shift 3
case "$1" in
  wait) exit 0 ;;
  logs) cat "$FAKE/log"; exit 0 ;;
  get)
    case "$*" in
      *--watch*) cat "$FAKE/watch" ;;
      *) cat "$FAKE/count" ;;
    esac ;;
esac
"""


@pytest.fixture
def app_unit_script(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "k3s").write_text(FAKE_K3S)
    (fake / "k3s").chmod(0o755)
    (tmp_path / "staged.yaml").write_text("kind: Secret\n")
    script = K.app_script().replace(f"k3s={K.K3S}\n", f"k3s={fake / 'k3s'}\n").replace(
        f"staged={K.STAGED}\n", f"staged={tmp_path / 'staged.yaml'}\n").replace(
        f"manifests={K.MANIFESTS}\n", f"manifests={tmp_path / 'manifests'}\n")
    (tmp_path / "k3s-app").write_text(script)

    def run(count: str, watch: str):
        (fake / "log").write_text("app: serving on :8000\n")
        (fake / "count").write_text(count)
        (fake / "watch").write_text(watch)
        env = {**os.environ, "FAKE": str(fake), "LCAI_K3S_WAIT": "5"}
        return subprocess.run(["bash", str(tmp_path / "k3s-app")], capture_output=True, text=True, env=env,
                              timeout=60)

    return run, tmp_path


def test_app_unit_hands_the_manifest_to_k3s_and_follows_the_log(app_unit_script):
    run, d = app_unit_script
    r = run("2", "2\n2\n3\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app: serving on :8000\n"  # the container's log, in the unit's journal
    m = d / "manifests" / "lcai-app.yaml"
    assert m.read_text() == "kind: Secret\n" and oct(m.stat().st_mode & 0o777) == "0o600"
    calls = (d / "fake" / "calls").read_text().splitlines()
    assert calls[0] == "kubectl -n lcai wait --for=create deployment/app --timeout=5s"
    assert calls[2].startswith("kubectl -n lcai logs --follow --pod-running-timeout=5s -c app deployment/app")


def test_app_unit_ends_once_per_container_restart(app_unit_script):
    """It ends (and systemd counts a restart) only when the kubelet has started the container again; a watch
    that ends without a new restart count (the API went away) is a failure."""
    run, _ = app_unit_script
    assert run("0", "0\n1\n").returncode == 0
    assert run("", "0\n1\n").returncode == 0  # no pod yet: its first container counts 0
    assert run("3", "3\n3\n").returncode == 1
