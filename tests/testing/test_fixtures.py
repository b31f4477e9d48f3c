"""lcai-testing's opt-in pytest fixtures, as a plugin author's test uses them (tests/conftest.py opts in)."""

import http.client
import json
import os
import socket
import urllib.request


def test_linode_sim_is_running_and_lcai_points_at_it(linode_sim):
    assert os.environ["LCAI_LINODE_API_URL"] == linode_sim.url and linode_sim.url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(linode_sim.url + "/profile",
                                 headers={"Authorization": f"Bearer {os.environ['LINODE_TOKEN']}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and "username" in json.loads(r.read())


def test_fake_docker_answers_on_its_socket(fake_docker):
    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(fake_docker.socket_path)

    conn = UnixConnection("localhost", timeout=10)
    conn.request("GET", "/version")
    body = json.loads(conn.getresponse().read())
    assert body["ApiVersion"] == "1.43" and fake_docker.requested == ["/version"]


def test_lcai_config_dir_is_empty_and_used(lcai_config_dir):
    assert os.environ["LCAI_CONFIG_DIR"] == str(lcai_config_dir) and not lcai_config_dir.exists()


def test_every_public_name_resolves():
    import lcai_testing

    assert all(callable(getattr(lcai_testing, name)) for name in lcai_testing.__all__)
