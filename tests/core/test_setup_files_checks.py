"""setup.files may not hand out root: no setuid/setgid/sticky or world-writable modes, no SSH keys or config,
sudoers or account files, no lcai unit (issue 21 #10); ordinary files validate as before."""

import pytest

from lcai_core.errors import ValidationError
from lcai_core.template import load_template_text

BASE = ("name: web\ndeploy:\n  linode:\n    container: {image: nginx:1.27, internal_port: 80, external_port: 8080}\n"
        "setup:\n  files:\n")


def problems(path, mode="0644"):
    try:
        load_template_text(BASE + f"    - {{path: {path}, permissions: \"{mode}\", content: x}}\n", "t.yml")
    except ValidationError as e:
        return [str(p) for p in e.problems]
    return []


@pytest.mark.parametrize("path,mode,words", [
    ("/usr/local/bin/x", "4777", "setuid"), ("/usr/local/bin/x", "2755", "setuid"), ("/srv/x", "1755", "sticky"),
    ("/etc/cron.d/job", "0666", "every user write"), ("/srv/x", "0777", "every user write"),
    ("/root/.ssh/authorized_keys", "0600", "who may log in"), ("/home/ubuntu/.ssh/authorized_keys2", "0600", "log in"),
    ("/etc/ssh/sshd_config", "0644", "log in"), ("/etc/sudoers.d/me", "0440", "log in"),
    ("/etc/shadow", "0640", "log in"), ("/etc/systemd/system/lcai-app.service", "0644", "lcai's units"),
])
def test_refused_naming_file_line_and_field(path, mode, words):
    got = problems(path, mode)
    assert len(got) == 1 and got[0].startswith("t.yml:7: setup.files[0].") and words in got[0], got


@pytest.mark.parametrize("path,mode", [("/etc/cron.d/job", "0644"), ("/usr/local/bin/tool", "0755"),
                                       ("/srv/app/config.yml", "0640"), ("/etc/systemd/system/my.service", "0644"),
                                       ("/opt/app/run.sh", "755")])
def test_ordinary_files_still_validate(path, mode):
    assert problems(path, mode) == []


@pytest.mark.parametrize("path", [
    "/etc/sudoers.bak", "/etc/sudoers.dist",  # every /etc/sudoers* name
    "/etc/systemd/system/multi-user.target.wants/lcai-app.service",  # the unit's enablement link
    "/run/systemd/system/lcai-app.service",  # /run outranks /etc
    "/usr/lib/systemd/system/lcai-health.service", "/etc/systemd/system/redis-server.service.d/lcai.conf",
    "/etc/cron.d/lcai-cleanup",
])
def test_lcai_units_wherever_systemd_reads_them_and_every_sudoers_name_are_refused(path):
    got = problems(path)
    assert len(got) == 1 and got[0].startswith("t.yml:7: setup.files[0].path:") and "lcai's units" in got[0] \
        and "setup.files does not write it" in got[0], got


@pytest.mark.parametrize("path", ["/etc/systemd/system/lcaidemo.service", "/etc/systemd/system/web.service.d/x.conf",
                                  "/etc/cron.daily/backup", "/srv/lcai-data/x"])
def test_names_that_only_look_alike_still_validate(path):
    assert problems(path) == []
