"""`lcai local image pull`: Ubuntu's cloud image, its SHA256SUMS verified with gpgv against the shipped key and
the image against SHA256SUMS, from a loopback server signing with a key made here (no internet, no QEMU).
A bad signature, a bad checksum and a missing file are one line each and leave nothing in the cache; an
interrupted download resumes (HTTP Range)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from lcai_testing import tools

FILE = "ubuntu-24.04-server-cloudimg-amd64.img"
PREFIX = "/noble/release/"


def need(tool: str) -> str:
    """The tool's path; skip with its install hint when missing (fail under CI=true): lcai_testing.tools."""
    return tools.need(tool)[0]


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    """A throw-away signing key: (sign(data) -> detached signature, armored public key, fingerprint)."""
    gpg = need("gpg")
    need("gpgv")
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    run = lambda *a, **kw: subprocess.run([gpg, "--homedir", str(home), "--batch", *a],  # noqa: E731
                                          capture_output=True, check=True, **kw)
    run("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "lcai test <test@example.invalid>",
        "ed25519", "sign", "never")
    fpr = [ln.split(":")[9] for ln in run("--with-colons", "--list-keys").stdout.decode().splitlines()
           if ln.startswith("fpr:")][0]
    armored = run("--armor", "--export", fpr).stdout.decode()

    def sign(data: bytes) -> bytes:
        return run("--detach-sign", "--local-user", fpr, "-o", "-", input=data).stdout

    return sign, armored, fpr


def fake_image(size: int = 3 * 2**20 + 12345) -> bytes:
    """A qcow2 header (magic, version 3, virtual size 2 GiB at offset 24) and filler: what pull checks."""
    head = b"QFI\xfb" + struct.pack(">I", 3) + b"\0" * 16 + struct.pack(">Q", 2 * 2**30)
    return head + os.urandom(size - len(head))


class Server:
    """A loopback HTTP server of ``files`` (path -> bytes) that honours ``Range: bytes=N-``, and records requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str]] = []
        self.cut_once: int | None = None  # the next image response stops after this many bytes (a broken transfer)
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                srv.requests.append((self.path, self.headers.get("Range", "")))
                body = srv.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                rng = self.headers.get("Range", "")
                start = int(rng[len("bytes="):-1]) if rng.startswith("bytes=") and rng.endswith("-") else 0
                if start:
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if srv.cut_once is not None and self.path.endswith(".img"):
                    cut, srv.cut_once = srv.cut_once, None
                    self.wfile.write(body[start:start + cut])
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def image_gets(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] == PREFIX + FILE]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def published(sign, image: bytes, listed_sum: str | None = None, listed: str = FILE) -> dict[str, bytes]:
    digest = listed_sum or hashlib.sha256(image).hexdigest()
    sums = (f"{'0' * 64} *ubuntu-24.04-server-cloudimg-amd64.tar.gz\n{digest} *{listed}\n").encode()
    return {PREFIX + "SHA256SUMS": sums, PREFIX + "SHA256SUMS.gpg": sign(sums), PREFIX + FILE: image}


@pytest.fixture
def pull_env(tmp_path, monkeypatch):
    from lcai_core.plugins import reset_host

    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("LCAI_LOCAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LCAI_LOCAL_PULL_TIMEOUT", "10")
    reset_host()
    servers: list[Server] = []

    def serve(files):
        s = Server(files)
        servers.append(s)
        monkeypatch.setenv("LCAI_LOCAL_UBUNTU_URL", s.url)
        return s

    yield serve
    for s in servers:
        s.close()
    reset_host()


@pytest.fixture
def test_key(signer, monkeypatch):
    """Make the test key the one pull trusts (in this process only): the shipped key stays the default."""
    from lcai_local import images

    _sign, armored, fpr = signer
    monkeypatch.setattr(images, "ubuntu_key", lambda: armored)
    monkeypatch.setattr(images, "UBUNTU_KEY_FINGERPRINT", fpr)
    return fpr


def cli(capsys, *args) -> tuple[int, str, str]:
    from lcai_core.cli import main

    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def problems(err: str) -> list[str]:
    """stderr without the progress lines (``[  0.1s] …``): what the user is told went wrong."""
    return [ln for ln in err.strip().splitlines() if not ln.startswith("[")]


def cache_entries() -> list[str]:
    """What the cache holds besides the lock files (a lock file stays where a pull or build ran)."""
    root = Path(os.environ["LCAI_LOCAL_CACHE"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".lock")) \
        if root.exists() else []


def test_shipped_key_is_ubuntus_pinned_key():
    """The shipped key is Ubuntu's cloud image key (fingerprint pinned in the plugin, as Canonical publishes it),
    one primary key that signs, without expiry, and nothing else."""
    gpg = need("gpg")
    import lcai_local
    from lcai_local.images import UBUNTU_KEY_FINGERPRINT

    assert UBUNTU_KEY_FINGERPRINT == "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81"
    key = Path(lcai_local.__file__).parent / "keys" / "ubuntu-cloudimage.asc"
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([gpg, "--homedir", home, "--with-colons", "--show-keys", str(key)],
                             capture_output=True, text=True, check=True).stdout
    recs = [ln.split(":") for ln in out.splitlines()]
    assert [r[9] for r in recs if r[0] == "fpr"] == [UBUNTU_KEY_FINGERPRINT]
    pub = next(r for r in recs if r[0] == "pub")
    assert pub[1] not in ("e", "r", "i") and pub[6] == "" and "s" in pub[11], pub
    assert [r[9] for r in recs if r[0] == "uid"] == ["UEC Image Automatic Signing Key <cdimage@ubuntu.com>"]
    assert not [r for r in recs if r[0] == "sub"]


def test_pull_verifies_and_caches_the_image(pull_env, signer, test_key, capsys):
    sign = signer[0]
    image = fake_image()
    srv = pull_env(published(sign, image))
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 0, err
    cached = Path(os.environ["LCAI_LOCAL_CACHE"]) / "ubuntu24.04" / FILE
    assert out.strip() == str(cached) and cached.read_bytes() == image
    assert f"signed by Ubuntu's key {test_key}" in err
    from lcai_local import images

    meta = images.load("linode/ubuntu24.04")
    assert meta is not None and meta["kind"] == "disk" and meta["format"] == "qcow2"
    assert meta["virtual_size"] == 2 * 2**30 and meta["sha256"] == hashlib.sha256(image).hexdigest()
    assert meta["source"] == f"{srv.url}{PREFIX}{FILE}"
    assert cache_entries() == ["ubuntu24.04", "ubuntu24.04/image.json", f"ubuntu24.04/{FILE}"]
    # cached: the next pull downloads nothing
    rc, out, err = cli(capsys, "local", "image", "pull", "linode/ubuntu24.04")
    assert rc == 0 and "is cached" in err and len(srv.image_gets()) == 1
    rc, out, _ = cli(capsys, "local", "image", "list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["ubuntu24.04"]


def test_a_signature_by_another_key_is_refused_by_the_shipped_key(pull_env, signer, capsys):
    """The server signs with the test key; pull trusts only the shipped Ubuntu key: one line, exit 1, the image
    never requested, nothing cached."""
    srv = pull_env(published(signer[0], fake_image()))
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 1 and out == ""
    assert problems(err) == [
        f"error: {srv.url}{PREFIX}SHA256SUMS: it is signed by another key, not Ubuntu's (fingerprint "
        "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81); nothing was downloaded or kept"]
    assert srv.image_gets() == [] and cache_entries() == []


def test_a_changed_checksum_file_is_refused(pull_env, signer, test_key, capsys):
    """SHA256SUMS altered after it was signed: BADSIG, one line, nothing cached."""
    files = published(signer[0], fake_image())
    files[PREFIX + "SHA256SUMS"] = files[PREFIX + "SHA256SUMS"].replace(b"0000", b"1111", 1)
    srv = pull_env(files)
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 1 and len(problems(err)) == 1, err
    assert "the signature does not match its contents" in err
    assert srv.image_gets() == [] and cache_entries() == []


def test_a_bad_checksum_deletes_the_download(pull_env, signer, test_key, capsys):
    image = fake_image()
    srv = pull_env(published(signer[0], image, listed_sum=hashlib.sha256(b"another image").hexdigest()))
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 1 and len(problems(err)) == 1, err
    got, signed = hashlib.sha256(image).hexdigest(), hashlib.sha256(b"another image").hexdigest()
    assert problems(err)[0] == (f"error: {srv.url}{PREFIX}{FILE}: SHA-256 {got} is not the signed {signed}; "
                                "the download was deleted")
    assert len(srv.image_gets()) == 1 and cache_entries() == []


@pytest.mark.parametrize("missing", ["image", "signature", "listing"])
def test_a_missing_file_is_one_line_and_leaves_nothing(pull_env, signer, test_key, capsys, missing):
    files = published(signer[0], fake_image(), listed="ubuntu-24.04-server-cloudimg-arm64.img"
                      if missing == "listing" else FILE)
    if missing == "image":
        del files[PREFIX + FILE]
    if missing == "signature":
        del files[PREFIX + "SHA256SUMS.gpg"]
    srv = pull_env(files)
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    lines = problems(err)
    assert rc == 1 and len(lines) == 1 and "Traceback" not in err, err
    expected = {"image": f"error: GET {srv.url}{PREFIX}{FILE}: HTTP 404 Not Found",
                "signature": f"error: GET {srv.url}{PREFIX}SHA256SUMS.gpg: HTTP 404 Not Found",
                "listing": f"error: {srv.url}{PREFIX}SHA256SUMS (signed) does not list {FILE}; nothing was downloaded"}
    assert lines == [expected[missing]]
    assert cache_entries() == []


def test_an_interrupted_download_resumes(pull_env, signer, test_key, capsys):
    """A partial file from a broken transfer is continued with a Range request, and the whole file verifies."""
    image = fake_image()
    srv = pull_env(published(signer[0], image))
    stage = Path(os.environ["LCAI_LOCAL_CACHE"]) / ".ubuntu24.04.pull"
    stage.mkdir(parents=True)
    (stage / (FILE + ".part")).write_bytes(image[: 2**20])
    (stage / "sha256").write_text(hashlib.sha256(image).hexdigest() + "\n")
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 0, err
    assert srv.image_gets() == [(PREFIX + FILE, f"bytes={2**20}-")] and "resuming at 1 MiB" in err
    assert (Path(os.environ["LCAI_LOCAL_CACHE"]) / "ubuntu24.04" / FILE).read_bytes() == image
    assert not stage.exists()


def test_a_partial_download_of_an_older_image_is_started_over(pull_env, signer, test_key, capsys):
    """Ubuntu published a new image since the partial download began (another signed digest): no Range request
    onto the old bytes, the whole new image is fetched."""
    old, new = fake_image(), fake_image()
    srv = pull_env(published(signer[0], new))
    stage = Path(os.environ["LCAI_LOCAL_CACHE"]) / ".ubuntu24.04.pull"
    stage.mkdir(parents=True)
    (stage / (FILE + ".part")).write_bytes(old[: 2**20])
    (stage / "sha256").write_text(hashlib.sha256(old).hexdigest() + "\n")
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 0, err
    assert srv.image_gets() == [(PREFIX + FILE, "")]
    assert (Path(os.environ["LCAI_LOCAL_CACHE"]) / "ubuntu24.04" / FILE).read_bytes() == new


def test_pull_knows_only_ubuntu(pull_env, capsys):
    rc, out, err = cli(capsys, "local", "image", "pull", "debian12")
    assert rc == 2 and err.splitlines() == ["error: lcai local image pull knows ubuntu22.04, ubuntu24.04, not "
                                            "'debian12'", "hint: lcai local image build debian12"]


def test_a_broken_transfer_keeps_its_part_and_the_next_pull_resumes(pull_env, signer, test_key, capsys):
    image = fake_image()
    srv = pull_env(published(signer[0], image))
    srv.cut_once = 2**20 + 7
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 1 and problems(err) == [
        f"error: GET {srv.url}{PREFIX}{FILE}: the transfer ended at {2**20 + 7} of {len(image)} bytes",
        "hint: run the same command again: it resumes where it stopped"]
    assert cache_entries() == [".ubuntu24.04.pull", ".ubuntu24.04.pull/sha256", f".ubuntu24.04.pull/{FILE}.part"]
    rc, out, err = cli(capsys, "local", "image", "pull", "ubuntu24.04")
    assert rc == 0, err
    assert srv.image_gets() == [(PREFIX + FILE, ""), (PREFIX + FILE, f"bytes={2**20 + 7}-")]
    assert (Path(os.environ["LCAI_LOCAL_CACHE"]) / "ubuntu24.04" / FILE).read_bytes() == image


def test_an_empty_cache_names_both_ways_to_fill_it(pull_env, capsys):
    rc, out, err = cli(capsys, "local", "image", "list")
    assert rc == 0 and err.splitlines()[1:] == [
        "hint: lcai local image build debian12",
        "hint: lcai local image pull ubuntu24.04   (Ubuntu's cloud image: the bundled templates' image)"]
