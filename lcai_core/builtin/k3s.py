"""Runtime ``k3s``: the app as Kubernetes objects on a single-node k3s (a pinned release, checksum-checked).

Boot 1: runcmd runs ``k3s-install``, which downloads the pinned k3s binary and the release's
``sha256sum-amd64.txt`` from GitHub, and installs the binary only when its sha256 equals both the hash lcai pins
(``K3S_SHA256_AMD64``) and the one the release lists (no installer script is run). systemd then starts
``k3s.service`` (a k3s server with Traefik, ServiceLB and local-storage left out, see ``K3S_CONFIG``),
``lcai-image-pull.service`` pulls the app image through k3s's containerd (``k3s crictl pull``: bounded, retried),
and ``lcai-app.service`` copies the app's manifest (0600: it holds the Secret) into
``/var/lib/rancher/k3s/server/manifests/``, where k3s applies it, then follows the app's pod: its log goes to
the unit's journal, and once the container stopped and the kubelet started it again the unit ends (and systemd
starts it again), so the health wait counts the container's restarts as it does for Docker.

The objects (``objects``): a Namespace ``lcai``; a Secret ``app-env`` holding the app's environment (the only
object with a value of it); a Deployment ``app`` (the image, ``container.command`` as the container's args
like ``docker run IMAGE CMD``, the environment from the Secret, the health check as startup, readiness and
liveness probes, ``container.volumes`` as hostPath volumes, the GPU as ``nvidia.com/gpu`` with the ``nvidia``
RuntimeClass); a Service ``app`` (ClusterIP, in-cluster name) for the template's port.

Ports: the container's port is published on the host with a ``hostPort``, exactly where ``docker run -p``
publishes it: ``external_port`` on every address of the machine, or, without one, ``internal_port`` on
127.0.0.1 only (what the health wait and the firewall expect). A hostPort is held by one pod per node, so the
Deployment replaces its pod (``Recreate``) rather than running two side by side during an update.

Redis and PostgreSQL (their capabilities) run on the host; the pod reaches them at the node's address on the
pod network, cni0's ``POD_GATEWAY`` (10.42.0.1: k3s's cluster CIDR is pinned in ``K3S_CONFIG``, and the
single node gets its first /24). That address exists only once k3s has started a pod, so the machine may bind
addresses it does not have yet (``net.ipv4.ip_nonlocal_bind = 1``); Redis and PostgreSQL then start at boot
as they do with the other runtimes.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
from typing import Any, ClassVar

import yaml

from ..capabilities import AppSpec, DeployContext, Fragments, Runtime, Unit, WriteFile
from ..cloudinit.layout import IMAGE_PULL_UNIT, LIB, STATE
from ..cloudinit.scripts import data_file, script_header
from ..cloudinit.units import INSTALL, unit_text
from ..envfile import docker_env_file

# The pinned release. The sha256 is that of the release's amd64 binary (asset ``k3s``), as its
# sha256sum-amd64.txt lists it; lcai could not download the release here: the value is the one found identically
# in several independent public repositories that pin this release (README: "k3s runtime").
K3S_VERSION = "v1.36.5+k3s1"
K3S_SHA256_AMD64 = "d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313"
KUBERNETES_VERSION = K3S_VERSION[1:].split("+", 1)[0]  # the Kubernetes release k3s embeds: "1.36.5"
RELEASES = "https://github.com/k3s-io/k3s/releases/download"

K3S = "/usr/local/bin/k3s"
K3S_UNIT = "k3s.service"
NAMESPACE = "lcai"
APP = "app"  # the Deployment, its container, the Service; the Secret is "app-env"
SECRET = "app-env"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
APP_MANIFEST = "lcai-app.yaml"
STAGED = f"/etc/lcai/k3s/{APP_MANIFEST}"  # written at boot; lcai-app.service hands it to k3s
INSTALL_SCRIPT = f"{LIB}/k3s-install"
APP_SCRIPT = f"{LIB}/k3s-app"
PULL_SCRIPT = f"{LIB}/image-pull"
CLUSTER_CIDR = "10.42.0.0/16"
POD_GATEWAY = "10.42.0.1"  # cni0 on the single node: the node's address as the pod sees it
CONFIG = "/etc/rancher/k3s/config.yaml"
CONFIG_DIR = "/etc/rancher/k3s/config.yaml.d"
SYSCTL = "/etc/sysctl.d/60-lcai-k3s.conf"
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/managed-by": "lcai"}
HOST_SERVICES = ("redis", "postgresql")  # capabilities on the host that the pod reaches at POD_GATEWAY
PULL_ATTEMPTS = 4
PULL_ATTEMPT_TIMEOUT = 1800
PULL_FIRST_RETRY_DELAY = 15

K3S_CONFIG = f"""# lcai: k3s {K3S_VERSION}, one server node. Traefik, ServiceLB and local-storage are left out:
# the app's port is a hostPort (like docker run -p), its volumes are hostPath.
write-kubeconfig-mode: "0600"
secrets-encryption: true
cluster-cidr: {CLUSTER_CIDR}
disable:
  - traefik
  - servicelb
  - local-storage
"""

# The unit k3s's own installer writes for a server (k3s-io/k3s install.sh), with the binary lcai installed.
K3S_SERVICE = unit_text([
    ("Unit", [("Description", f"Lightweight Kubernetes (k3s {K3S_VERSION}, installed by lcai)"),
              ("Documentation", "https://k3s.io"), ("Wants", "network-online.target"),
              ("After", "network-online.target"), ("ConditionPathExists", K3S)]),
    ("Service", [("Type", "notify"), ("EnvironmentFile", "-/etc/default/%N"), ("KillMode", "process"),
                 ("Delegate", "yes"), ("LimitNOFILE", "1048576"), ("LimitNPROC", "infinity"),
                 ("LimitCORE", "infinity"), ("TasksMax", "infinity"), ("TimeoutStartSec", "0"),
                 ("Restart", "always"), ("RestartSec", "5s"),
                 ("ExecStartPre", "-/sbin/modprobe br_netfilter"), ("ExecStartPre", "-/sbin/modprobe overlay"),
                 ("ExecStart", f"{K3S} server")]),
    INSTALL,
])

INSTALL_BODY = r"""fail() {
  echo "lcai: step k3s-install failed: $1" >&2
  exit 1
}
if [ -x "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$sha256" ]; then
  echo "lcai: k3s $version is already installed ($dest, sha256 $sha256)"
  exit 0
fi
arch=$(uname -m)
[ "$arch" = x86_64 ] || fail "lcai pins the amd64 build of k3s $version; this machine is $arch"
tag=$(printf '%s' "$version" | sed 's/+/%2B/g')
tmp=$(mktemp -d) || fail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
get() {
  curl -fsSL --retry 5 --retry-delay 5 --retry-all-errors --connect-timeout 20 --max-time 900 -o "$1" "$2" \
    || fail "could not download $2"
}
get "$tmp/k3s" "$base/$tag/k3s"
get "$tmp/sha256sum-amd64.txt" "$base/$tag/sha256sum-amd64.txt"
got=$(sha256sum "$tmp/k3s" | cut -d' ' -f1)
listed=$(awk '$2 == "k3s" || $2 == "*k3s" {print $1}' "$tmp/sha256sum-amd64.txt")
[ "$listed" = "$sha256" ] \
  || fail "the release's sha256sum-amd64.txt lists ${listed:-no hash} for k3s; lcai pins $sha256"
[ "$got" = "$sha256" ] || fail "the downloaded k3s binary has sha256 $got; lcai pins $sha256 (not installed)"
install -D -m 0755 "$tmp/k3s" "$dest" || fail "could not install $dest"
bindir=$(dirname "$dest")
[ -e "$bindir/kubectl" ] || ln -s k3s "$bindir/kubectl"
echo "lcai: installed k3s $version to $dest (sha256 $sha256, as pinned and as the release lists it)"
"""

APP_BODY = r"""kubectl() {
  "$k3s" kubectl -n "$ns" "$@"
}
restarted() {  # reads restart counts, one a line: true at the first one above $1
  while read -r n; do
    [ "${n:-0}" -gt "$1" ] && return 0
  done
  return 1
}
# k3s applies what is in its manifests folder (and again whenever the file changes)
install -D -m 0600 "$staged" "$manifests/$name" || exit 1
kubectl wait --for=create "deployment/$app" --timeout="${wait}s" >/dev/null || {
  echo "lcai: k3s has not created deployment/$app in namespace $ns within ${wait}s" >&2
  exit 1
}
before=$(kubectl get pods -l "app.kubernetes.io/name=$app" \
  -o jsonpath='{.items[0].status.containerStatuses[0].restartCount}' 2>/dev/null)
# the container's log in this unit's journal, until the container stops
kubectl logs --follow --pod-running-timeout="${wait}s" -c "$app" "deployment/$app"
# end once the kubelet has started the container again: each restart of this unit is one of the container's
timeout "$wait" "$k3s" kubectl -n "$ns" get pods -l "app.kubernetes.io/name=$app" --watch \
  -o jsonpath='{.status.containerStatuses[0].restartCount}{"\n"}' 2>/dev/null | restarted "${before:-0}"
"""


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _label_value(v: str) -> bool:
    return len(v) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", v) is not None


def probe(h: Any, port: int | None) -> dict[str, Any]:
    """The health check as a Kubernetes probe handler (http → httpGet, tcp → tcpSocket, exec → exec)."""
    if h.type == "http":
        return {"httpGet": {"path": h.path, "port": port}}
    if h.type == "tcp":
        return {"tcpSocket": {"port": port}}
    return {"exec": {"command": ["sh", "-c", h.command]}}


def probes(h: Any, port: int | None) -> dict[str, Any]:
    """startup (lcai's budget: the initial delay, then max_retries failures), then readiness and liveness."""
    handler = probe(h, port)
    timing = {"periodSeconds": h.interval_seconds, "timeoutSeconds": h.timeout_seconds}
    budget = math.ceil(h.initial_delay_seconds / h.interval_seconds) + h.max_retries
    return {"startupProbe": {**handler, **timing, "failureThreshold": max(1, budget)},
            "readinessProbe": {**handler, **timing, "failureThreshold": 3},
            "livenessProbe": {**handler, **timing, "failureThreshold": 3}}


def objects(app: AppSpec, ctx: DeployContext) -> list[dict[str, Any]]:
    """The app's Kubernetes objects, in the order k3s applies them."""
    labels = dict(LABELS)
    if _label_value(ctx.deployment_id):
        labels["lcai.deployment"] = ctx.deployment_id
    meta = {"namespace": NAMESPACE, "labels": labels}
    container: dict[str, Any] = {"name": APP, "image": app.image, "imagePullPolicy": "IfNotPresent"}
    if app.command:  # like `docker run IMAGE CMD...`: replaces the image's CMD, keeps its ENTRYPOINT
        container["args"] = list(app.command)
    container["envFrom"] = [{"secretRef": {"name": SECRET}}]
    ports = []
    for host, port in app.ports:
        ip, _, host_port = host.rpartition(":")
        entry: dict[str, Any] = {"name": "app", "containerPort": port, "hostPort": int(host_port), "protocol": "TCP"}
        if ip:
            entry["hostIP"] = ip
        ports.append(entry)
    if ports:
        container["ports"] = ports
    if app.gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    h = app.health
    if h is not None:  # the pod's probes reach the container's port (health.port may name the published one)
        published = {int(host.rpartition(":")[2]): inside for host, inside in app.ports}
        target = app.internal_port if h.port is None else published.get(h.port, h.port)
        container.update(probes(h, target))
    mounts, volumes = [], []
    for i, v in enumerate(app.volumes):
        parts = v.split(":")
        name = f"vol-{i}"
        mounts.append({"name": name, "mountPath": parts[1], **({"readOnly": True} if parts[2:] == ["ro"] else {})})
        volumes.append({"name": name, "hostPath": {"path": parts[0], "type": "DirectoryOrCreate"}})
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {"enableServiceLinks": False, "automountServiceAccountToken": False,
                           "terminationGracePeriodSeconds": 30, "containers": [container]}
    if app.gpu:
        pod["runtimeClassName"] = "nvidia"
    if volumes:
        pod["volumes"] = volumes
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, **meta}, "type": "Opaque",
         "data": {k: _b64(v) for k, v in app.env.items()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, **meta},
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                  "template": {"metadata": {"labels": labels}, "spec": pod}}},
    ]
    if app.internal_port is not None:
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, **meta},
                    "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": APP},
                             "ports": [{"name": "app", "port": app.internal_port, "targetPort": app.internal_port,
                                        "protocol": "TCP"}]}})
    return out


class _Dumper(yaml.SafeDumper):
    """Plain YAML: a mapping used twice (the labels, a probe's handler) is written out twice, not aliased."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifest(objs: list[dict[str, Any]]) -> str:
    head = (f"# lcai: the app's objects for k3s {K3S_VERSION} (Kubernetes {KUBERNETES_VERSION}); "
            "0600: holds the Secret\n")
    return head + yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)


def describe(objs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objs)


def install_script() -> str:
    header = script_header(
        "#!/bin/bash",
        [f"lcai: install k3s {K3S_VERSION} (amd64) from its GitHub release, only if the binary's sha256 is the one",
         "lcai pins and the one the release's sha256sum-amd64.txt lists (no installer script runs)"],
        {"version": shlex.quote(K3S_VERSION), "sha256": K3S_SHA256_AMD64,
         "base": "${LCAI_K3S_RELEASES:-" + RELEASES + "}", "dest": "${LCAI_K3S_BIN:-" + K3S + "}"})
    return header + INSTALL_BODY


def app_script() -> str:
    header = script_header(
        "#!/bin/bash",
        ["lcai: hand the app's objects to k3s, then follow the app's pod (its log in this unit's journal)"],
        {"k3s": K3S, "ns": NAMESPACE, "app": APP, "staged": STAGED, "manifests": MANIFESTS, "name": APP_MANIFEST,
         "wait": "${LCAI_K3S_WAIT:-600}"})
    return header + APP_BODY


def pull_script(image: str) -> str:
    """docker's pull script (``lcai_core/data/image-pull.bash``), pulling through k3s's containerd instead."""
    body = data_file("image-pull.bash")
    for old, new in (('docker image inspect "$image"', f'{K3S} crictl inspecti "$image"'),
                     ('docker pull --quiet "$image"', f'{K3S} crictl pull "$image"')):
        if body.count(old) != 1:
            raise RuntimeError(f"lcai_core/data/image-pull.bash must hold {old!r} exactly once")
        body = body.replace(old, new)
    header = script_header(
        "#!/bin/bash",
        ["lcai: pull the app image into k3s's containerd (bounded attempts, retried); "
         f"result: {STATE}/image-pull.json"],
        {"image": shlex.quote(image), "attempts": str(PULL_ATTEMPTS), "per_attempt": str(PULL_ATTEMPT_TIMEOUT),
         "delay": "${LCAI_PULL_RETRY_DELAY:-" + str(PULL_FIRST_RETRY_DELAY) + "}",
         "state": f"{STATE}/image-pull.json"},
        f"mkdir -p {STATE}")
    return header + body


def pull_unit(app: AppSpec, deps: tuple[str, ...]) -> str:
    backoff = sum(PULL_FIRST_RETRY_DELAY * 3 ** i for i in range(PULL_ATTEMPTS - 1))
    return unit_text([
        ("Unit", [("Description", f"lcai: pull the app image {app.image} into k3s (bounded, retried)"),
                  ("After", ["network-online.target", K3S_UNIT, "multi-user.target", *deps]),
                  ("Wants", ["network-online.target", *(d for d in deps if d != K3S_UNIT)]),
                  ("Requires", K3S_UNIT)]),
        ("Service", [("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStart", PULL_SCRIPT),
                     ("TimeoutStartSec", str(PULL_ATTEMPTS * PULL_ATTEMPT_TIMEOUT + backoff + 60))]),
    ])


class K3s(Runtime):
    name = "k3s"
    summary = (f"single-node k3s {K3S_VERSION} (pinned, sha256-checked): the app as a Deployment, Secret and Service")
    publishes_ports: ClassVar[bool] = True
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")

    def check(self, config, template):
        c = template.container
        out: list = []
        if not c.image:
            out.append((("deploy", "linode", "container", "image"), "the k3s runtime needs a container image"))
        h = c.health
        if h is not None and h.type == "http" and any(not 200 <= code < 400 for code in h.success_codes):
            out.append((("deploy", "linode", "container", "health", "success_codes"),
                        "on k3s the health check is also the pod's probe, and Kubernetes counts only 200-399 "
                        "as healthy: keep success_codes within 200-399"))
        return out

    def fragments(self, config, ctx: DeployContext) -> Fragments:
        files = [WriteFile(CONFIG, K3S_CONFIG, permissions="0600"),
                 WriteFile(INSTALL_SCRIPT, install_script(), permissions="0755")]
        runcmd: list = []
        plan = [f"install k3s {K3S_VERSION} (Kubernetes {KUBERNETES_VERSION}): download the amd64 binary from its "
                f"GitHub release, install it only if its sha256 is {K3S_SHA256_AMD64[:12]}… as pinned and as the "
                "release's sha256sum-amd64.txt lists it; k3s.service runs a server without Traefik, ServiceLB "
                "and local-storage, Secrets encrypted at rest"]
        if any(f in HOST_SERVICES for f in ctx.features):
            files.append(WriteFile(SYSCTL, "# lcai: Redis/PostgreSQL bind cni0's address (the pod's way to the "
                                           "host) before k3s creates it\nnet.ipv4.ip_nonlocal_bind = 1\n"))
            runcmd.append(("sysctl", "-p", SYSCTL))
            plan.append(f"let services bind the node's pod-network address {POD_GATEWAY} before k3s creates it "
                        "(net.ipv4.ip_nonlocal_bind)")
        runcmd.append((INSTALL_SCRIPT,))
        # apparmor: with AppArmor on in the kernel (Ubuntu, Debian 12), containerd's CRI loads its profile with
        # apparmor_parser (as dockerd does for docker-default)
        return Fragments(packages=("curl", "apparmor"), write_files=tuple(files), runcmd=tuple(runcmd),
                         units=(Unit(K3S_UNIT, K3S_SERVICE),), app_requires=(K3S_UNIT,), boot_plan=tuple(plan))

    def app_fragments(self, app: AppSpec, ctx: DeployContext, deps: tuple[str, ...] = ()) -> Fragments:
        objs = objects(app, ctx)
        files = [WriteFile(STAGED, manifest(objs), permissions="0600"),
                 WriteFile(APP_SCRIPT, app_script(), permissions="0755")]
        units = []
        if app.image:
            files.append(WriteFile(PULL_SCRIPT, pull_script(app.image), permissions="0755"))
            units.append(Unit(IMAGE_PULL_UNIT, pull_unit(app, deps), enable=False))
        return Fragments(write_files=tuple(files), units=tuple(units), boot_plan=(
            f"write the app's Kubernetes objects to {STAGED} (0600): {describe(objs)}; {APP_SCRIPT} hands them "
            f"to k3s ({MANIFESTS}/{APP_MANIFEST}) once the app's dependencies are up",))

    def exec_start(self, app: AppSpec, ctx: DeployContext) -> list[str]:
        return [APP_SCRIPT]

    def env_file_text(self, env: dict[str, str]) -> str:
        """/etc/lcai/app.env (0600) in docker's literal format (what ``kubectl create secret --from-env-file``
        reads); the pod gets the values from the Secret."""
        return docker_env_file(env)

    def exec_probe(self, command: str) -> list[str]:
        return [K3S, "kubectl", "-n", NAMESPACE, "exec", f"deployment/{APP}", "-c", APP, "--", "sh", "-c", command]

    def running_check(self, app: AppSpec) -> str:
        path = '{.items[*].status.containerStatuses[?(@.name=="' + APP + '")].state.running.startedAt}'
        return (f'[ -n "$({K3S} kubectl -n {NAMESPACE} get pods -l app.kubernetes.io/name={APP} '
                f"-o jsonpath='{path}' 2>/dev/null)\" ]")


def pod_status_command(limit: int) -> str:
    """What `lcai logs` runs on a k3s machine: the pods, then the namespace's recent events."""
    return (f"{K3S} kubectl -n {NAMESPACE} get pods -o wide 2>&1; "
            f"{K3S} kubectl -n {NAMESPACE} get events --sort-by=.lastTimestamp 2>&1 | tail -n {int(limit)}")


def events_section(deployment: dict, run: Any, limit: int, since: Any) -> Any:
    """``deployment_events`` for k3s deployments: (title, lines, cursor); once per `lcai logs` (not followed)."""
    if deployment.get("runtime") != "k3s" or since is not None:
        return None
    r = run(pod_status_command(limit))
    lines = (r.out or "").rstrip().splitlines() if r.ok else [f"unavailable: {(r.out or '').strip()[:200]}"]
    return (f"k3s: pods and events in namespace {NAMESPACE}", lines or ["(none)"], json.dumps({"shown": True}))
