"""NVIDIA GPU support on Ubuntu 22.04/24.04 (Debian 12 is refused: its driver comes from non-free with a
different package set, and Linode offers no Debian GPU path lcai could test).

Boot 1: the NVIDIA Container Toolkit comes from NVIDIA's apt source, whose armored key ships inside this plugin
(written by write_files, read by apt through ``signed-by``; no key server at boot), with Docker in cloud-init's
single package stage. runcmd then configures Docker's nvidia runtime, starts pulling the app image in the
background (``lcai-image-pull.service``) and, meanwhile, runs ``gpu-driver-install``: the headers of the
running kernel and of the kernel that boots next, the server driver through DKMS, a check that ``dkms status``
shows the module built for the next kernel, and ``apt-mark hold`` on the driver's packages (so unattended
upgrades never leave a new library beside the loaded old module). It then waits for the pull and cloud-init
reboots once (``power_state``).
Boot 2: ``lcai-gpu-verify.service`` runs ``nvidia-smi`` on the host, creates the ``/dev/char`` links for the
NVIDIA devices (``nvidia-ctk system create-dev-char-symlinks``, at every boot, as NVIDIA's workaround says) so
a ``systemctl daemon-reload`` does not cut running containers off the GPU, runs ``nvidia-smi`` in a
container, records the result in /var/lib/lcai/gpu.json, and the app unit starts only after it succeeded.
"""

from __future__ import annotations

import re
import shlex
from importlib import resources

from attrs import define

from lcai_core.api import AptSource, Capability, DeployContext, Fragments, Unit, WriteFile

TOOLKIT_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
TOOLKIT_KEY_PATH = "/etc/apt/keyrings/lcai-nvidia-container-toolkit.gpg"
INSTALL_SCRIPT = "/usr/local/lib/lcai/gpu-driver-install"
VERIFY_UNIT = "lcai-gpu-verify.service"
PULL_UNIT = "lcai-image-pull.service"


@define(frozen=True)
class GpuConfig:
    driver_branch: str = "580-server"  # 535-server is now transitional to 580-server on Ubuntu
    open_kernel_modules: bool = True  # NVIDIA's open modules: required on Blackwell, recommended from Turing on
    container_toolkit: bool = True


def driver_packages(config: GpuConfig) -> tuple[str, ...]:
    headless = f"nvidia-headless-{config.driver_branch}" + ("-open" if config.open_kernel_modules else "")
    return (headless, f"nvidia-utils-{config.driver_branch}")


def toolkit_key() -> str:
    """NVIDIA's armored repository key, shipped in this package (see keys/README.md for where it comes from)."""
    return resources.files("lcai_gpu_nvidia").joinpath("keys/nvidia-container-toolkit.asc").read_text(encoding="ascii")


def toolkit_key_b64() -> str:
    """The same key as a binary keyring, base64-encoded for write_files' ``encoding: b64``: the armor's body
    without line breaks, headers and checksum (smaller in the user data than the armored text)."""
    lines = toolkit_key().strip().splitlines()
    body = lines[lines.index("") + 1:-1]  # after the armor headers' blank line, before the END line
    return "".join(x for x in body if not x.startswith("="))


RECORD = """out=/var/lib/lcai/gpu.json
mkdir -p /var/lib/lcai
record() {
  printf '{"ok": %s, "stage": "%s", "time": %d, "detail": "%s"}\\n' "$1" "$2" "$(date +%s)" \\
    "$(printf '%s' "$3" | tr -d '\\042\\134' | tr '\\n' ' ' | cut -c1-400)" > "$out.tmp" && mv -f "$out.tmp" "$out"
}
fail() {
  record false "$1" "$2"
  echo "lcai: GPU $1 failed: $2" >&2
  exit 1
}
"""

INSTALL = """#!/bin/sh
# lcai: NVIDIA driver (DKMS) for the kernel that boots next; checked, held
set -u
""" + RECORD + """running=$(uname -r)
# the newest installed kernel boots next (GRUB's default)
next=$(for k in /boot/vmlinuz-*; do [ -e "$k" ] && echo "${k#/boot/vmlinuz-}"; done | sort -V | tail -n 1)
next=${next:-$running}
headers="linux-headers-$running"
[ "$next" = "$running" ] || headers="$headers linux-headers-$next"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 \\
  $headers @DRIVERS@ || fail install "apt-get install $headers @DRIVERS@ exited $?"
built=$(dkms status -k "$next" 2>&1)
printf '%s\\n' "$built" | grep -Eq '^nvidia[^:]*: installed' || fail install "DKMS did not build the NVIDIA module for $next: $built"
# no unattended upgrade beside the loaded module (NVML: version mismatch)
held=$(dpkg-query -W -f '${binary:Package} ${source:Package}\\n' | awk '$2 ~ /^nvidia-graphics-drivers/ {print $1}')
[ -n "$held" ] || fail install "no installed package comes from nvidia-graphics-drivers"
# shellcheck disable=SC2086
apt-mark hold $held || fail install "apt-mark hold $held failed"
"""  # noqa: E501 -- a shell script written verbatim into the user data: wrapping it would change the bytes shipped

VERIFY_SCRIPT = """#!/bin/sh
# lcai: verify the GPU (host, /dev/char links, container) before the app. Result: /var/lib/lcai/gpu.json
set -u
if grep -q '"stage": "install"' /var/lib/lcai/gpu.json 2>/dev/null; then
  echo "lcai: the NVIDIA driver install failed on the first boot: $(cat /var/lib/lcai/gpu.json)" >&2
  exit 1
fi
""" + RECORD + """smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) || fail host "$smi"
"""  # noqa: E501 -- a shell script written verbatim into the user data: wrapping it would change the bytes shipped

# keep containers on the GPU across `systemctl daemon-reload` (nvidia-container-toolkit issues 48 and 1227)
DEV_CHAR = """l=$(nvidia-ctk system create-dev-char-symlinks --create-all 2>&1) || fail dev-char "$l"
"""

# k3s (lcai-core's k3s runtime): k3s configures containerd's `nvidia` runtime itself when it finds the toolkit's
# nvidia-container-runtime at start; pods reach it through the `nvidia` RuntimeClass, and NVIDIA's device plugin
# (a DaemonSet) advertises the GPUs as `nvidia.com/gpu`. Both are manifests k3s applies from its folder.
K3S_MANIFEST = "/var/lib/rancher/k3s/server/manifests/lcai-nvidia-device-plugin.yaml"
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"
K3S_GPU_OBJECTS = f"""# lcai gpu-nvidia on k3s: the nvidia RuntimeClass and NVIDIA's device plugin (its static manifest)
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: nvidia
handler: nvidia
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nvidia-device-plugin-daemonset
  namespace: kube-system
spec:
  selector:
    matchLabels:
      name: nvidia-device-plugin-ds
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        name: nvidia-device-plugin-ds
    spec:
      runtimeClassName: nvidia
      priorityClassName: system-node-critical
      tolerations:
      - key: nvidia.com/gpu
        operator: Exists
        effect: NoSchedule
      containers:
      - name: nvidia-device-plugin-ctr
        image: {DEVICE_PLUGIN_IMAGE}
        env:
        - name: FAIL_ON_INIT_ERROR
          value: "false"
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop:
            - ALL
        volumeMounts:
        - name: device-plugin
          mountPath: /var/lib/kubelet/device-plugins
      volumes:
      - name: device-plugin
        hostPath:
          path: /var/lib/kubelet/device-plugins
"""

VERIFY_CONTAINER = """c=$(docker run --rm --gpus all --entrypoint nvidia-smi {image} -L 2>&1) || fail container "$c"
"""


class GpuNvidia(Capability):
    name = "gpu-nvidia"
    requires_gpu = True
    summary = "NVIDIA server driver (DKMS) + Container Toolkit; one reboot; verified with nvidia-smi before the app"
    # Debian 12 is refused (images): its driver is in non-free with other package names and no -server branch
    config_class = GpuConfig
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04")
    order = 30

    def check(self, config: GpuConfig, template) -> list:
        out = []
        if not re.match(r"^[0-9]{3}(-server)?$", config.driver_branch):
            out.append(f"config.driver_branch must look like 580-server or 580, got {config.driver_branch!r}")
        if template.deploy.linode.image == "linode/debian12":
            out.append("gpu-nvidia does not support Debian 12: its NVIDIA driver comes from non-free under other "
                       "package names with no -server branch; use linode/ubuntu24.04 or linode/ubuntu22.04")
        if template.capabilities.runtime in ("docker", "k3s") and not config.container_toolkit:
            out.append(f"config.container_toolkit: the {template.capabilities.runtime} runtime needs the toolkit "
                       "to give the app the GPU")
        return out

    def fragments(self, config: GpuConfig, ctx: DeployContext) -> Fragments:
        docker = ctx.runtime == "docker" and config.container_toolkit
        k3s = ctx.runtime == "k3s" and config.container_toolkit
        toolkit = docker or k3s
        drivers = driver_packages(config)
        verify = VERIFY_SCRIPT
        if toolkit:
            verify += DEV_CHAR
        if docker and ctx.container_image:
            verify += VERIFY_CONTAINER.format(image=shlex.quote(ctx.container_image))
        verify += "smi=$(printf '%s' \"$smi\" | head -n 1)\nrecord true verified \"$smi\"\n"
        files = [WriteFile("/usr/local/lib/lcai/gpu-verify", verify, permissions="0755"),
                 WriteFile(INSTALL_SCRIPT, INSTALL.replace("@DRIVERS@", " ".join(drivers)), permissions="0755")]
        # runs the app image: after lcai-core's image pull, and so (like every unit after it) after
        # multi-user.target, which must not wait for a pull
        pull = f" {PULL_UNIT} multi-user.target" if docker and ctx.container_image else ""
        units = [Unit(VERIFY_UNIT, f"""[Unit]
Description=lcai: verify the NVIDIA GPU (nvidia-smi) before the app starts
After={"docker.service" + pull if docker else "systemd-modules-load.service"}
{"Requires=docker.service" + pull.replace(" multi-user.target", "") if docker else ""}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/lcai/gpu-verify
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
""".replace("\n\n\n", "\n\n"))]
        runcmd: list = []
        sources: tuple = ()
        packages: list = []
        plan = []
        if k3s:
            files.append(WriteFile(K3S_MANIFEST, K3S_GPU_OBJECTS, permissions="0600"))
        if toolkit:
            # the key is a plain binary keyring file apt reads through signed-by: no key server at boot, and no gpg
            # needed on the image (cloud-init's `key:` runs `gpg --dearmor`)
            files.append(WriteFile(TOOLKIT_KEY_PATH, toolkit_key_b64(), encoding="b64"))
            sources = (AptSource("nvidia-container-toolkit",
                                 f"deb [signed-by={TOOLKIT_KEY_PATH}] "
                                 "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"),)
            packages.append("nvidia-container-toolkit")
            if docker:
                runcmd += [("nvidia-ctk", "runtime", "configure", "--runtime=docker"),
                           ("systemctl", "restart", "docker.service")]
                plan.append("add NVIDIA's Container Toolkit apt source (its key ships in lcai-gpu-nvidia, fingerprint "
                            f"{TOOLKIT_KEY_FINGERPRINT}) and configure Docker's nvidia runtime")
            else:
                plan.append("add NVIDIA's Container Toolkit apt source (its key ships in lcai-gpu-nvidia, fingerprint "
                            f"{TOOLKIT_KEY_FINGERPRINT}); k3s finds its runtime when it starts; k3s applies the "
                            f"nvidia RuntimeClass and NVIDIA's device plugin ({DEVICE_PLUGIN_IMAGE}) from "
                            f"{K3S_MANIFEST}; the pod asks for nvidia.com/gpu: 1")
            if ctx.container_image:  # lcai-image-pull.service comes from lcai-core's docker or k3s runtime
                runcmd.append(("systemctl", "start", "--no-block", PULL_UNIT))
                plan.append(f"start pulling {ctx.container_image} in the background")
        runcmd.append((INSTALL_SCRIPT,))
        plan.append(f"meanwhile install the NVIDIA {config.driver_branch} driver "
                    f"({'open' if config.open_kernel_modules else 'proprietary'} kernel modules, DKMS) with the "
                    "headers of the running and the next kernel: " + ", ".join(drivers)
                    + "; check `dkms status` built it for the kernel that boots next; hold the driver's packages")
        if toolkit and ctx.container_image:
            runcmd.append(("systemctl", "start", PULL_UNIT))
            plan.append("wait for the image pull to finish")
        checks = "host, /dev/char links and container" if docker else ("host, /dev/char links" if k3s else "host")
        plan.append(f"after the reboot, {VERIFY_UNIT} runs nvidia-smi ({checks}) "
                    "and records /var/lib/lcai/gpu.json; the app waits for it")
        return Fragments(apt_sources=sources, packages=tuple(packages), write_files=tuple(files), units=tuple(units),
                         runcmd=tuple(runcmd), app_requires=(VERIFY_UNIT,), gpu=toolkit, reboot=True,
                         boot_plan=tuple(plan))
