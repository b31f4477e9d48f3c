"""deploy.linode.volumes on the instance: a boot step per volume that waits for its device and formats it only
when `blkid -p` finds nothing, a mount unit per volume, and the app unit requiring every mount."""

import os
import re
import subprocess

import pytest
import yaml

from lcai_core.cloudinit.volumes import PREPARE_SCRIPT, escape_path
from lcai_core.conventions import volume_label
from lcai_testing import render_text, require_validators, validate_user_data

TEMPLATE = """name: web
deploy:
  linode:
    volumes:
      - {name: data, mount: /var/lib/lcai-data, size_gb: 50}
      - {name: models, mount: /srv/models}
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
      volumes: ["/srv/models/hf:/root/.cache/huggingface"]
"""


def _files(doc):
    return {w["path"]: w for w in doc["write_files"]}


def test_units_steps_and_labels():
    r = render_text(TEMPLATE)
    doc = yaml.safe_load(r.text)
    files = _files(doc)
    data = files["/etc/systemd/system/var-lib-lcai\\x2ddata.mount"]["content"]
    label = volume_label("web", "default", "data")
    assert label.startswith("lcai-") and len(label) <= 32 and label.endswith("-data")
    assert f"What=/dev/disk/by-id/scsi-0Linode_Volume_{label}" in data and "Where=/var/lib/lcai-data" in data
    assert "/etc/systemd/system/srv-models.mount" in files
    app = files["/etc/systemd/system/lcai-app.service"]["content"]
    assert "RequiresMountsFor=/var/lib/lcai-data /srv/models" in app
    steps = [" ".join(map(str, s)) for s in doc["runcmd"][1:]]
    prep = [i for i, s in enumerate(steps) if "volume-prepare" in s]
    enable = next(i for i, s in enumerate(steps) if "systemctl enable" in s and "lcai-app.service" in s)
    assert len(prep) == 2 and max(prep) < enable, steps
    assert "var-lib-lcai\\x2ddata.mount" in steps[enable]
    assert files["/usr/local/lib/lcai/volume-prepare"]["permissions"] == "0755"


def test_without_volumes_nothing_changes():
    text = TEMPLATE.split("    volumes:\n")[0] + "    container:" + TEMPLATE.split("    container:")[1]
    r = render_text(text.replace('      volumes: ["/srv/models/hf:/root/.cache/huggingface"]\n', ""))
    assert "volume-prepare" not in r.text and "RequiresMountsFor" not in r.text and ".mount" not in r.text


def test_passes_cloud_init_schema_shellcheck_and_systemd_analyze():
    require_validators()
    assert validate_user_data(render_text(TEMPLATE).text) == []


@pytest.mark.parametrize("path,unit", [("/var/lib/lcai-data", "var-lib-lcai\\x2ddata"), ("/srv/models", "srv-models"),
                                       ("/data/.cache", "data-.cache"), ("/a_b/c:d", "a_b-c:d")])
def test_escape_path_is_systemd_escape(path, unit):
    assert escape_path(path) == unit


def _run_prepare(tmp_path, blkid_rc, fstype="", unit=""):
    """The script with stand-ins for blkid, mkfs.ext4, udevadm; a regular file stands in for the block device
    (`-b` becomes `-e`: creating a real block device needs root and a loop device)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    blkid = (f"echo blkid \"$@\" >> {log}; case \"$*\" in *TYPE*) echo {fstype};; esac; exit {blkid_rc}")
    for name, body in (("blkid", blkid), ("mkfs.ext4", f"echo mkfs.ext4 \"$@\" >> {log}"), ("udevadm", "exit 0"),
                       ("sleep", "exit 0"), ("systemctl", f"echo systemctl \"$@\" >> {log}"),
                       ("resize2fs", f"echo resize2fs \"$@\" >> {log}")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "prepare"
    script.write_text(PREPARE_SCRIPT.replace("[ ! -b ", "[ ! -e ").replace("[ -b ", "[ -e "))
    dev = tmp_path / "dev"
    dev.write_bytes(b"")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(["sh", str(script), "data", str(dev), "3", *([unit] if unit else [])], capture_output=True,
                       text=True, env=env)
    calls = log.read_text() if log.exists() else ""
    return r, calls, dev


def test_an_empty_volume_is_formatted(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 2)
    assert r.returncode == 0 and f"mkfs.ext4 -q -m 0 {dev}" in calls and "is empty" in r.stdout


def test_a_volume_with_a_filesystem_is_never_formatted(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 0)
    assert r.returncode == 0 and "mkfs" not in calls and "kept as it is" in r.stdout


def test_a_kept_ext4_filesystem_grows_online_to_the_volume(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 0, fstype="ext4", unit="srv-data.mount")
    assert r.returncode == 0 and "mkfs" not in calls
    assert calls.splitlines()[-2:] == ["systemctl start srv-data.mount", f"resize2fs {dev}"], calls


def test_another_filesystem_is_neither_formatted_nor_grown(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 0, fstype="xfs", unit="srv-data.mount")
    assert r.returncode == 0 and "mkfs" not in calls and "resize2fs" not in calls and "systemctl" not in calls


def test_an_unreadable_volume_fails_the_step_without_formatting(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 8)  # blkid: ambivalent result
    assert r.returncode == 1 and "mkfs" not in calls and "volume data" in r.stderr


def test_a_missing_device_fails_naming_the_volume(tmp_path):
    r, calls, dev = _run_prepare(tmp_path, 2)
    dev.unlink()
    env_dev = str(dev)
    script = tmp_path / "prepare"
    r = subprocess.run(["sh", str(script), "data", env_dev, "2"], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert r.returncode == 1 and re.search(r"volume data: .* did not appear in 2s", r.stderr), r.stderr
