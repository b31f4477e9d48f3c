"""lcai-gpu-nvidia: packages, key, boot order, one reboot, and the verify script run with fake tools."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, require_plugins, tools
from lcai_testing import written as files

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
    from lcai_gpu_nvidia.capability import TOOLKIT_KEY_PATH, toolkit_key_b64

    r = render()
    assert {"docker.io", "nvidia-container-toolkit"} <= set(r.doc["packages"])
    assert "linux-headers-generic" not in r.doc["packages"]  # the script installs the exact kernels' headers
    src = r.doc["apt"]["sources"]["nvidia-container-toolkit"]
    # no key server at boot: the key is a file written before apt runs, read by apt through signed-by
    assert "keyid" not in src and "key" not in src
    assert src["source"] == (f"deb [signed-by={TOOLKIT_KEY_PATH}] "
                             "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")
    key = files(r)[TOOLKIT_KEY_PATH]
    assert key["content"] == toolkit_key_b64() and key["encoding"] == "b64" and not key.get("defer")
    assert TOOLKIT_KEY_PATH.endswith(".gpg")  # a binary keyring (apt wants .asc for armored ones)
    assert ["lcai_step", "/usr/local/lib/lcai/gpu-driver-install"] in r.doc["runcmd"]
    script = files(r)["/usr/local/lib/lcai/gpu-driver-install"]["content"]
    assert "nvidia-headless-580-server-open nvidia-utils-580-server" in script
    assert "DPkg::Lock::Timeout=600" in script
    closed = render("{name: gpu-nvidia, config: {driver_branch: 570-server, open_kernel_modules: false}}")
    script = files(closed)["/usr/local/lib/lcai/gpu-driver-install"]["content"]
    assert "$headers nvidia-headless-570-server nvidia-utils-570-server ||" in script


def key_info(path) -> list[list[str]]:
    """`gpg --show-keys --with-colons` records of an armored key file (a throwaway GNUPGHOME)."""
    (gpg,) = tools.need("gpg")
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([gpg, "--homedir", home, "--show-keys", "--with-colons", str(path)], capture_output=True,
                             text=True, check=True).stdout
    return [line.split(":") for line in out.splitlines()]


def test_written_keyring_is_the_shipped_key(tmp_path):
    """What write_files puts on the instance (base64-decoded) is the shipped key as a binary keyring: the same
    packets gpg dearmors from the .asc, and the same pinned fingerprint."""
    import base64

    import lcai_gpu_nvidia
    from lcai_gpu_nvidia.capability import TOOLKIT_KEY_FINGERPRINT, TOOLKIT_KEY_PATH

    written_key = tmp_path / "keyring.gpg"
    written_key.write_bytes(base64.b64decode(files(render())[TOOLKIT_KEY_PATH]["content"]))
    assert [r[9] for r in key_info(written_key) if r[0] == "fpr"] == [TOOLKIT_KEY_FINGERPRINT]
    with tempfile.TemporaryDirectory() as home:
        dearmored = subprocess.run([tools.which("gpg"), "--homedir", home, "--dearmor"], capture_output=True,
                                   check=True, input=(Path(lcai_gpu_nvidia.__file__).parent / "keys" /
                                          "nvidia-container-toolkit.asc").read_bytes()).stdout
    assert written_key.read_bytes() == dearmored


def test_shipped_toolkit_key_is_nvidias_pinned_key():
    """The shipped key is NVIDIA's (fingerprint pinned in the plugin), one primary key that can sign (the
    repository is signed by the primary key: NO_PUBKEY DDCAE044F796ECB0 in libnvidia-container#301), valid and
    without expiry, and nothing else (no expired subkey)."""
    import lcai_gpu_nvidia
    from lcai_gpu_nvidia.capability import TOOLKIT_KEY_FINGERPRINT

    recs = key_info(Path(lcai_gpu_nvidia.__file__).parent / "keys" / "nvidia-container-toolkit.asc")
    assert [r[9] for r in recs if r[0] == "fpr"] == [TOOLKIT_KEY_FINGERPRINT]
    pub = next(r for r in recs if r[0] == "pub")
    assert pub[1] not in ("e", "r", "i") and pub[6] == "" and "s" in pub[11], pub  # valid, no expiry, signs
    assert not [r for r in recs if r[0] == "sub"]
    assert [r[9] for r in recs if r[0] == "uid"] == ["NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>"]


def test_boot_order_pull_overlaps_driver_install_then_one_reboot():
    r = render()
    cmds = [" ".join(c) if isinstance(c, list) else c for c in r.doc["runcmd"]]
    idx = {k: next(i for i, c in enumerate(cmds) if k in c) for k in (
        "nvidia-ctk runtime configure", "restart docker.service", "start --no-block lcai-image-pull.service",
        "gpu-driver-install", "systemctl start lcai-image-pull.service")}
    assert (idx["nvidia-ctk runtime configure"] < idx["restart docker.service"]
            < idx["start --no-block lcai-image-pull.service"] < idx["gpu-driver-install"]
            < idx["systemctl start lcai-image-pull.service"])
    assert r.doc["power_state"]["mode"] == "reboot" and r.doc["power_state"]["condition"] is True
    assert not any("reboot" in c for c in cmds)
    # after the reboot systemd starts everything: units are enabled, not started in runcmd
    assert not any(c.startswith("systemctl start --no-block lcai-app") for c in cmds)
    pull = files(r)["/etc/systemd/system/lcai-image-pull.service"]["content"]
    assert "ExecStart=/usr/local/lib/lcai/image-pull" in pull and "[Install]" not in pull
    verify = files(r)["/etc/systemd/system/lcai-gpu-verify.service"]["content"]
    assert "After=docker.service lcai-image-pull.service multi-user.target" in verify
    assert "Requires=docker.service lcai-image-pull.service" in verify


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


def test_debian12_refused_with_the_reason():
    with pytest.raises(ValidationError) as e:
        render(image="linode/debian12")
    assert any("gpu-nvidia does not support Debian 12: its NVIDIA driver comes from non-free" in x
               for x in e.value.lines()), e.value.lines()


def test_bad_config():
    with pytest.raises(ValidationError, match="driver_branch must look like 580-server"):
        render("{name: gpu-nvidia, config: {driver_branch: latest}}")
    with pytest.raises(ValidationError, match="needs the toolkit"):
        render("{name: gpu-nvidia, config: {container_toolkit: false}}")


def _fake_bin(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + body)
    (bin_dir / name).chmod(0o755)


def _run_verify(tmp_path, smi_ok: bool, docker_ok: bool, links_ok: bool = True, before: dict | None = None):
    r = render()
    script = files(r)["/usr/local/lib/lcai/gpu-verify"]["content"].replace("/var/lib/lcai", str(tmp_path))
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls"
    _fake_bin(bin_dir, "nvidia-smi", f"echo nvidia-smi >> {calls}\n" + (
        'echo "NVIDIA RTX 4000 Ada, 580.95, 20475 MiB"\n' if smi_ok else
        'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver" ; exit 9\n'))
    _fake_bin(bin_dir, "nvidia-ctk", f'echo "nvidia-ctk $*" >> {calls}\n' + ("" if links_ok else
                                                                        "echo 'no NVIDIA devices' >&2; exit 1\n"))
    docker_fails = "echo 'could not select device driver \"\" with capabilities: [[gpu]]' >&2; exit 125\n"
    _fake_bin(bin_dir, "docker", f"echo docker >> {calls}\n"
              + ("echo 'GPU 0: NVIDIA RTX 4000 Ada'\n" if docker_ok else docker_fails))
    if before is not None:
        (tmp_path / "gpu.json").write_text(json.dumps(before))
    (tmp_path / "gpu-verify").write_text(script)
    (tmp_path / "gpu-verify").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run([str(tmp_path / "gpu-verify")], capture_output=True, text=True, env=env, timeout=30)
    proc.calls = calls.read_text().splitlines() if calls.exists() else []
    return proc, json.loads((tmp_path / "gpu.json").read_text())


def test_verify_records_success(tmp_path):
    proc, state = _run_verify(tmp_path, True, True)
    assert proc.returncode == 0 and state["ok"] is True and state["stage"] == "verified"
    assert state["detail"] == "NVIDIA RTX 4000 Ada, 580.95, 20475 MiB"
    # the /dev/char links exist before the container check (and so before the app): daemon-reload safe
    assert proc.calls == ["nvidia-smi", "nvidia-ctk system create-dev-char-symlinks --create-all", "docker"]


def test_verify_records_dev_char_failure(tmp_path):
    proc, state = _run_verify(tmp_path, True, True, links_ok=False)
    assert proc.returncode == 1 and state["ok"] is False and state["stage"] == "dev-char"
    assert "docker" not in proc.calls


def test_verify_keeps_a_failed_install_as_the_reason(tmp_path):
    failed = {"ok": False, "stage": "install", "time": 1, "detail": "DKMS did not build the NVIDIA module"}
    proc, state = _run_verify(tmp_path, True, True, before=failed)
    assert proc.returncode == 1 and state == failed and proc.calls == []
    assert "driver install failed on the first boot" in proc.stderr


INSTALLED = """nvidia-headless-580-server-open nvidia-graphics-drivers-580-server
libnvidia-compute-580-server nvidia-graphics-drivers-580-server
nvidia-dkms-580-server-open nvidia-graphics-drivers-580-server
nvidia-utils-580-server nvidia-graphics-drivers-580-server
nvidia-container-toolkit nvidia-container-toolkit
dkms dkms
"""


def _run_install(tmp_path, kernels=("6.8.0-45-generic",), running="6.8.0-45-generic", apt_ok=True, dkms=None):
    """gpu-driver-install with fake uname, apt-get, dkms, dpkg-query and apt-mark, and a fake /boot."""
    r = render()
    script = files(r)["/usr/local/lib/lcai/gpu-driver-install"]["content"]
    boot = tmp_path / "boot"
    boot.mkdir()
    for k in kernels:
        (boot / f"vmlinuz-{k}").write_text("")
    (boot / "vmlinuz").write_text("")  # the symlink Ubuntu keeps: not a version
    script = script.replace("/var/lib/lcai", str(tmp_path / "state")).replace("/boot/", f"{boot}/")
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls"
    _fake_bin(bin_dir, "uname", f"echo {running}\n")
    _fake_bin(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}\n' + ("" if apt_ok else "exit 100\n"))
    built = dkms if dkms is not None else "nvidia-srv/580.95.05, $2, x86_64: installed"
    _fake_bin(bin_dir, "dkms", f'echo "dkms $*" >> {calls}\necho "{built}"\n')
    _fake_bin(bin_dir, "dpkg-query", f"cat <<'EOF'\n{INSTALLED}EOF\n")
    _fake_bin(bin_dir, "apt-mark", f'echo "apt-mark $*" >> {calls}\n')
    (tmp_path / "install").write_text(script)
    (tmp_path / "install").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run([str(tmp_path / "install")], capture_output=True, text=True, env=env, timeout=30)
    proc.calls = calls.read_text().splitlines() if calls.exists() else []
    state = tmp_path / "state" / "gpu.json"
    return proc, (json.loads(state.read_text()) if state.exists() else None)


def test_install_builds_for_the_kernel_that_boots_next_and_holds_the_driver(tmp_path):
    proc, state = _run_install(tmp_path, kernels=("6.8.0-45-generic", "6.8.0-100-generic"))
    assert proc.returncode == 0, proc.stderr
    apt = next(c for c in proc.calls if c.startswith("apt-get "))
    assert "linux-headers-6.8.0-45-generic linux-headers-6.8.0-100-generic " in apt
    assert apt.endswith("nvidia-headless-580-server-open nvidia-utils-580-server")
    assert "dkms status -k 6.8.0-100-generic" in proc.calls  # sort -V: 100 is newer than 45
    hold = next(c for c in proc.calls if c.startswith("apt-mark "))
    assert hold.split() == ["apt-mark", "hold", "nvidia-headless-580-server-open", "libnvidia-compute-580-server",
                            "nvidia-dkms-580-server-open", "nvidia-utils-580-server"]
    assert state is None


def test_install_same_kernel_installs_its_headers_once(tmp_path):
    proc, _ = _run_install(tmp_path)
    apt = next(c for c in proc.calls if c.startswith("apt-get "))
    assert apt.count("linux-headers-") == 1 and "linux-headers-6.8.0-45-generic" in apt


@pytest.mark.parametrize("dkms", ["", "nvidia-srv/580.95.05: added",
                                  "nvidia-srv/580.95.05, 6.8.0-45-generic, x86_64: built"])
def test_install_fails_loudly_when_dkms_did_not_build_the_module(tmp_path, dkms):
    proc, state = _run_install(tmp_path, dkms=dkms)
    assert proc.returncode == 1 and state["ok"] is False and state["stage"] == "install"
    assert "DKMS did not build the NVIDIA module for 6.8.0-45-generic" in state["detail"]
    assert not any(c.startswith("apt-mark") for c in proc.calls)


def test_install_fails_loudly_when_apt_fails(tmp_path):
    proc, state = _run_install(tmp_path, apt_ok=False)
    assert proc.returncode == 1 and state["stage"] == "install" and "exited 100" in state["detail"]
    assert not any(c.startswith("dkms") for c in proc.calls)
