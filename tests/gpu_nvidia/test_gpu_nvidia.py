"""lcai-gpu-nvidia: packages, key, boot order, one reboot, and the verify script run with fake tools."""

import json
import os
import subprocess

import pytest

from lcai_core.errors import ValidationError
from lcai_core.testing import render_text, require_plugins
from lcai_core.testing import written as files

TPL = """\
name: gpu-app
capabilities:
  runtime: docker
  features:
    - {feature}
deploy:
  linode:
    image: {image}
    type_default: g2-gpu-rtx4000a1-s
    container:
      image: vllm/vllm-openai:v0.8.5
      internal_port: 8000
      external_port: 80
"""


@pytest.fixture(autouse=True)
def installed():
    require_plugins("gpu-nvidia")


def render(feature="gpu-nvidia", image="linode/ubuntu24.04"):
    return render_text(TPL.format(feature=feature, image=image))



def test_packages_key_and_driver_branch():
    r = render()
    assert {"docker.io", "linux-headers-generic", "nvidia-container-toolkit"} <= set(r.doc["packages"])
    src = r.doc["apt"]["sources"]["nvidia-container-toolkit"]
    assert src["keyid"] == "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
    assert src["source"].startswith("deb [signed-by=$KEY_FILE] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")
    install = next(c for c in r.doc["runcmd"] if "apt-get" in c)
    assert install[-2:] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert "DPkg::Lock::Timeout=600" in install
    closed = render("{name: gpu-nvidia, config: {driver_branch: 570-server, open_kernel_modules: false}}")
    install = next(c for c in closed.doc["runcmd"] if "apt-get" in c)
    assert install[-2:] == ["nvidia-headless-570-server", "nvidia-utils-570-server"]


def test_boot_order_pull_overlaps_driver_install_then_one_reboot():
    r = render()
    cmds = [" ".join(c) if isinstance(c, list) else c for c in r.doc["runcmd"]]
    idx = {k: next(i for i, c in enumerate(cmds) if k in c) for k in (
        "nvidia-ctk runtime configure", "restart docker.service", "start --no-block lcai-image-pull.service",
        "apt-get install", "systemctl start lcai-image-pull.service")}
    assert (idx["nvidia-ctk runtime configure"] < idx["restart docker.service"]
            < idx["start --no-block lcai-image-pull.service"] < idx["apt-get install"]
            < idx["systemctl start lcai-image-pull.service"])
    assert r.doc["power_state"]["mode"] == "reboot" and r.doc["power_state"]["condition"] is True
    assert not any("reboot" in c for c in cmds)
    # after the reboot systemd starts everything: units are enabled, not started in runcmd
    assert not any(c.startswith("systemctl start --no-block lcai-app") for c in cmds)
    pull = files(r)["/etc/systemd/system/lcai-image-pull.service"]["content"]
    assert "ExecStart=/usr/bin/docker pull vllm/vllm-openai:v0.8.5" in pull and "[Install]" not in pull


def test_app_waits_for_gpu_verification_and_gets_the_gpu():
    r = render()
    app = files(r)["/etc/systemd/system/lcai-app.service"]["content"]
    requires = next(line for line in app.splitlines() if line.startswith("Requires="))
    assert "lcai-gpu-verify.service" in requires and "docker.service" in requires
    assert "--gpus all" in app
    verify = files(r)["/etc/systemd/system/lcai-gpu-verify.service"]["content"]
    assert "ExecStart=/usr/local/lib/lcai/gpu-verify" in verify and "Type=oneshot" in verify


@pytest.mark.parametrize("image", ["linode/debian12", "linode/ubuntu20.04"])
def test_unsupported_images_refused(image):
    with pytest.raises(ValidationError, match="'gpu-nvidia' supports only linode/ubuntu22.04, linode/ubuntu24.04"):
        render(image=image)


def test_bad_config():
    with pytest.raises(ValidationError, match="driver_branch must look like 580-server"):
        render("{name: gpu-nvidia, config: {driver_branch: latest}}")
    with pytest.raises(ValidationError, match="needs the toolkit"):
        render("{name: gpu-nvidia, config: {container_toolkit: false}}")


def _run_verify(tmp_path, smi_ok: bool, docker_ok: bool):
    r = render()
    script = files(r)["/usr/local/lib/lcai/gpu-verify"]["content"].replace("/var/lib/lcai", str(tmp_path))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + ('echo "NVIDIA RTX 4000 Ada, 580.95, 20475 MiB"\n'
                                                         if smi_ok else 'echo "NVIDIA-SMI has failed because it '
                                                         'couldn\'t communicate with the NVIDIA driver" ; exit 9\n'))
    (bin_dir / "docker").write_text("#!/bin/sh\n" + ("echo 'GPU 0: NVIDIA RTX 4000 Ada'\n" if docker_ok
                                                     else "echo 'could not select device driver \"\" with capabilities: [[gpu]]' >&2; exit 125\n"))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (tmp_path / "gpu-verify").write_text(script)
    (tmp_path / "gpu-verify").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run([str(tmp_path / "gpu-verify")], capture_output=True, text=True, env=env, timeout=30)
    return proc, json.loads((tmp_path / "gpu.json").read_text())


def test_verify_records_success(tmp_path):
    proc, state = _run_verify(tmp_path, True, True)
    assert proc.returncode == 0 and state["ok"] is True and state["stage"] == "verified"
    assert state["detail"] == "NVIDIA RTX 4000 Ada, 580.95, 20475 MiB"


def test_verify_records_host_failure(tmp_path):
    proc, state = _run_verify(tmp_path, False, True)
    assert proc.returncode == 1 and state["ok"] is False and state["stage"] == "host"
    assert "couldn't communicate with the NVIDIA driver" in state["detail"]


def test_verify_records_container_failure(tmp_path):
    proc, state = _run_verify(tmp_path, True, False)
    assert proc.returncode == 1 and state["ok"] is False and state["stage"] == "container"
    assert "could not select device driver" in state["detail"]
