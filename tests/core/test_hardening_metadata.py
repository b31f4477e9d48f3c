"""The metadata guard (issue 12, item 13): only root on the host may reach the metadata service, over IPv4
(169.254.169.254) and IPv6 (fd00:a9fe:a9fe::1) — not a container, not another network namespace, not a host
process of another user (the app's own user, redis, postgres). It is in every rendering, whatever the runtime.

The real test runs the rendered guard with the real iptables/ip6tables in a private network namespace that
stands for the instance: a server listens on both metadata addresses, a second namespace joined by a veth pair
stands for a container, and ``setpriv`` gives a client another uid. What the guard cannot be tested against
here is Linode's metadata service itself: cloud-init (root) is the only client it needs, and root keeps access.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lcai_testing import render_text, tools, units_in, written

NATIVE = """\
name: guard
capabilities:
  runtime: native
deploy:
  linode:
    image: linode/debian12
    container:
      command: /usr/bin/python3 -m http.server 8000
      internal_port: 8000
"""
DOCKER = NATIVE.replace("runtime: native", "runtime: docker").replace(
    "      command: /usr/bin/python3 -m http.server 8000\n", "      image: nginx:1.27\n")


def guard(r):
    return written(r)["/usr/local/lib/lcai/metadata-guard"]["content"]


@pytest.mark.parametrize("text", [NATIVE, DOCKER])
def test_guard_is_in_every_rendering_and_the_app_requires_it(text):
    r = render_text(text)
    units = units_in(r.doc)
    assert "iptables" in r.doc["packages"]
    app = units["lcai-app.service"]
    assert "lcai-metadata-guard.service" in app.split("Requires=")[1].splitlines()[0]
    assert "Before=docker.service redis-server.service postgresql.service" in units["lcai-metadata-guard.service"]
    assert "fd00:a9fe:a9fe::1" in guard(r) and "--uid-owner 0" in guard(r)


def test_guard_is_idempotent(tmp_path):
    """Re-running it (every boot) checks before inserting: one rule each, not two."""
    rules = tmp_path / "rules"
    rules.write_text("")
    for tool in ("iptables", "ip6tables"):
        fake = tmp_path / tool
        fake.write_text(f"""#!/bin/sh
rules={rules}
line="{tool} $(printf '%s ' "$@" | sed -e 's/ -[CI] / X /' -e 's/^-[CI] /X /')"
case " $* " in
  *" -S "*) exit 0 ;;
  *" -C "*) grep -qxF "$line" "$rules" ;;
  *" -I "*) echo "$line" >> "$rules" ;;
  *) exit 2 ;;
esac
""")
        fake.chmod(0o755)
    script = tmp_path / "guard"
    script.write_text(guard(render_text(NATIVE)))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for _ in range(3):
        assert subprocess.run([str(script)], env=env).returncode == 0
    assert sorted(rules.read_text().splitlines()) == sorted([
        "iptables -t raw X PREROUTING ! -i lo -d 169.254.169.254 -j DROP ",
        "iptables X OUTPUT -d 169.254.169.254 -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT ",
        "ip6tables -t raw X PREROUTING ! -i lo -d fd00:a9fe:a9fe::1 -j DROP ",
        "ip6tables X OUTPUT -d fd00:a9fe:a9fe::1 -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT ",
    ])


CLIENT = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(1.5)
try:
    s.connect((sys.argv[1], 8169))
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("dropped")
"""

SERVER = """
import socket, threading
def serve(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 8169)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
threading.Thread(target=serve, args=(socket.AF_INET6, "fd00:a9fe:a9fe::1"), daemon=True).start()
serve(socket.AF_INET, "169.254.169.254")
"""

DRIVER = """#!/bin/bash
# the "instance": this network namespace; the "container": a child namespace behind a veth pair
set -eu
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
ip -6 addr add fd00:a9fe:a9fe::1/128 dev lo nodad
"$PY" "$DIR/server.py" & server=$!
unshare -n sleep 60 & ctr=$!
sleep 0.3
ip link add veth0 type veth peer name veth1 netns "$ctr"
ip addr add 10.99.0.1/24 dev veth0
ip -6 addr add fd99::1/64 dev veth0 nodad
ip link set veth0 up
nsenter -t "$ctr" -n sh -c 'ip link set lo up; ip link set veth1 up; ip addr add 10.99.0.2/24 dev veth1;
  ip -6 addr add fd99::2/64 dev veth1 nodad; ip route add default via 10.99.0.1; ip -6 route add default via fd99::1'
probe() {  # label, then the command prefix
  for addr in 169.254.169.254 fd00:a9fe:a9fe::1; do
    echo "$1 $addr $("${@:2}" "$PY" "$DIR/client.py" "$addr")"
  done
}
phase() {
  probe "$1 root" env
  probe "$1 uid65534" setpriv --reuid 65534 --regid 65534 --clear-groups
  probe "$1 container" nsenter -t "$ctr" -n
}
phase before
"$DIR/guard" 2>/dev/null
phase after
kill "$server" "$ctr"
"""


def test_guard_for_real_in_a_network_namespace():
    _, _, _, unshare, _, _ = tools.need("iptables", "ip6tables", "ip", "unshare", "nsenter", "setpriv")
    if subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        tools.skip_or_fail("needs root and network namespaces (unshare -n)")
    tmp_path = Path(tempfile.mkdtemp(prefix="lcai-guard-"))  # readable by the uid-65534 client (not under
    tmp_path.chmod(0o755)                                      # pytest's 0700 directory)
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "guard").write_text(guard(render_text(NATIVE)))
    (tmp_path / "driver").write_text(DRIVER)
    for f in ("client.py", "server.py"):
        (tmp_path / f).chmod(0o644)
    for f in ("guard", "driver"):
        (tmp_path / f).chmod(0o755)
    env = {**os.environ, "PY": sys.executable, "DIR": str(tmp_path)}
    try:
        p = subprocess.run([unshare, "-n", str(tmp_path / "driver")], capture_output=True, text=True, env=env,
                           timeout=120)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    seen = dict(line.rsplit(" ", 1) for line in p.stdout.splitlines())
    for who in ("root", "uid65534", "container"):
        for addr in ("169.254.169.254", "fd00:a9fe:a9fe::1"):
            assert seen[f"before {who} {addr}"] == "open", (who, addr, seen)  # the setup itself is sound
    for addr in ("169.254.169.254", "fd00:a9fe:a9fe::1"):
        assert seen[f"after root {addr}"] == "open"  # cloud-init keeps its access
        assert seen[f"after uid65534 {addr}"] == "refused"
        assert seen[f"after container {addr}"] == "dropped"
