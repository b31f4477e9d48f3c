"""write_private's temporary file is a new file of its own: a link or a file someone placed at a name it would
pick (in a shared directory, `--cloud-config /tmp/ud.yaml`) never receives the secrets nor gives the result its
mode (issue 21 item 8, follow-up)."""

import os
import stat

from lcai_core.files import write_private


def test_a_planted_link_or_file_at_the_temporary_name_is_not_used(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    target = tmp_path / "ud.yaml"
    planted_link = tmp_path / f".ud.yaml.{os.getpid()}.tmp"  # the name write_private used to pick
    planted_link.symlink_to(victim)
    write_private(target, "secret: 1\n")
    assert victim.read_text() == "keep me\n"
    assert target.read_text() == "secret: 1\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not target.is_symlink()
    planted_link.unlink()
    planted = tmp_path / f".ud.yaml.{os.getpid()}.tmp"
    planted.write_text("")
    planted.chmod(0o644)
    write_private(target, "secret: 2\n")
    assert target.read_text() == "secret: 2\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_no_temporary_file_is_left_behind(tmp_path):
    for i in range(3):
        write_private(tmp_path / "state.json", f"{i}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert (tmp_path / "state.json").read_text() == "2\n"
