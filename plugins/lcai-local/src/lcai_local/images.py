"""Local images: the stand-ins for Linode images (``linode/debian12`` → the cached ``debian12``).

An image is a directory ``<cache>/<name>/`` with ``image.json``:

- built (``lcai local image build debian12``): a raw ext4 root file system (``disk.img``) plus the kernel and
  initrd it contains, booted directly (``-kernel``/``-initrd``, no boot loader);
- added (``lcai local image add NAME FILE``): a user's disk image file (qcow2 or raw, e.g. an Ubuntu cloud
  image), booted by its own boot loader; the file stays where it is;
- pulled (``lcai local image pull ubuntu24.04``): Ubuntu's official cloud image (qcow2, its own boot loader),
  downloaded into the cache after its ``SHA256SUMS`` verified against ``SHA256SUMS.gpg`` with the key shipped in
  this package (``keys/ubuntu-cloudimage.asc``) and the image against that ``SHA256SUMS``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from typing import Callable, Optional

from lcai_core.api import InputError, LcaiError

from .paths import cache_dir, require_tools

Say = Callable[[str], None]

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"

#: what a Linode debian12 image with cloud-init has that lcai's user data relies on
DEBIAN12_PACKAGES = (
    "linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "kmod", "cloud-init", "ifupdown",
    "isc-dhcp-client", "openssh-server", "locales", "ca-certificates", "curl", "gnupg", "sudo", "iproute2",
    "netbase", "procps", "less", "e2fsprogs", "python3", "apt-utils", "lsb-release",
)

#: images ``image build`` knows how to make
BUILDABLE = ("debian12",)

#: images ``image pull`` downloads: name -> (Ubuntu series, file in ``<base>/<series>/release/``)
PULLABLE = {
    "ubuntu22.04": ("jammy", "ubuntu-22.04-server-cloudimg-amd64.img"),
    "ubuntu24.04": ("noble", "ubuntu-24.04-server-cloudimg-amd64.img"),
}
#: where Ubuntu publishes its cloud images (``LCAI_LOCAL_UBUNTU_URL`` overrides: a mirror, or a test server)
UBUNTU_URL = "https://cloud-images.ubuntu.com/releases"
#: "UEC Image Automatic Signing Key <cdimage@ubuntu.com>", the key that signs the cloud images' SHA256SUMS
UBUNTU_KEY_FINGERPRINT = "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81"

#: kernel command line for built images
APPEND = "root=/dev/vda rw console=ttyS0 quiet"

CLOUD_CFG = """\
# lcai-local: behave like a Linode image with cloud-init. The seed is a NoCloud ISO (no metadata service
# here); root logs in by key, as on Linode.
datasource_list: [NoCloud, None]
disable_root: false
"""

# apt in the VM uses a caching proxy on the host (10.0.2.2:3142, e.g. Debian's apt-cacher-ng) when one
# answers, and goes direct otherwise. Only http:// sources go through it.
APT_PROXY_CONF = 'Acquire::http::Proxy-Auto-Detect "/usr/local/lib/lcai-local/apt-proxy";\n'
APT_PROXY_SCRIPT = """\
#!/bin/bash
# lcai-local: use the host's apt cache (10.0.2.2:3142) when one answers, else go direct.
if timeout 1 bash -c 'exec 3<>/dev/tcp/10.0.2.2/3142' 2>/dev/null; then
  echo http://10.0.2.2:3142
else
  echo DIRECT
fi
"""


def normalize(name: str) -> str:
    """``linode/debian12`` or ``debian12`` → ``debian12``; InputError for anything else."""
    n = name.strip()
    if n.startswith("linode/"):
        n = n[len("linode/"):]
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", n):
        raise InputError(f"image name {name!r}: expected a Linode image id like linode/debian12 or debian12")
    return n


def image_dir(name: str) -> str:
    return os.path.join(cache_dir(), normalize(name))


def load(name: str) -> Optional[dict]:
    """The image's metadata (with absolute paths), or None when it is not in the cache."""
    d = image_dir(name)
    try:
        with open(os.path.join(d, "image.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    for key in ("disk", "kernel", "initrd"):
        if meta.get(key) and not os.path.isabs(meta[key]):
            meta[key] = os.path.join(d, meta[key])
    if not meta.get("disk") or not os.path.exists(meta["disk"]):
        return None
    return meta


def all_images() -> list[dict]:
    root = cache_dir()
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    for n in names:
        if n.startswith("."):
            continue
        meta = load(n) if re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", n) else None
        if meta:
            out.append(meta)
    return out


def make_command(image: str) -> Optional[str]:
    """The command that puts ``image`` in the cache (build or pull), or None when only ``image add`` can."""
    n = normalize(image)
    if n in BUILDABLE:
        return f"lcai local image build {n}"
    if n in PULLABLE:
        return f"lcai local image pull {n}"
    return None


def missing_hint(image: str) -> str:
    n = normalize(image)
    if n in BUILDABLE:
        return f"lcai local image build {n}"
    if n in PULLABLE:  # the message names the pull; this is the other way
        return f"lcai local image add {n} FILE   (a disk image of linode/{n} of your own, qcow2 or raw)"
    return f"lcai local image add {n} FILE   (a disk image of {image}, e.g. its cloud image in qcow2)"


def _write_meta(d: str, meta: dict) -> None:
    tmp = os.path.join(d, ".image.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(d, "image.json"))


# ---------------------------------------------------------------- add


def qemu_img_info(path: str) -> dict:
    tools = require_tools("qemu-img", purpose="inspecting a disk image")
    proc = subprocess.run([tools["qemu-img"], "info", "--output=json", path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"{path}: not a disk image qemu can read: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def add(name: str, file: str) -> dict:
    """Register ``file`` (qcow2 or raw, with its own boot loader) as the local stand-in for ``name``."""
    n = normalize(name)
    path = os.path.abspath(os.path.expanduser(file))
    if not os.path.isfile(path):
        raise InputError(f"{file}: no such file", hint="give the path of a disk image (qcow2 or raw)")
    info = qemu_img_info(path)
    fmt = info.get("format")
    if fmt not in ("qcow2", "raw"):
        raise InputError(f"{file}: disk format {fmt!r} is not supported",
                         hint="convert it: qemu-img convert -O qcow2 …")
    d = os.path.join(cache_dir(), n)
    os.makedirs(d, exist_ok=True)
    meta = {"name": n, "linode_image": f"linode/{n}", "kind": "disk", "disk": path, "format": fmt,
            "virtual_size": info.get("virtual-size"), "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_meta(d, meta)
    return load(n) or meta


# ---------------------------------------------------------------- pull


def ubuntu_key() -> str:
    """Ubuntu's cloud image signing key, armored, shipped in this package (see keys/README.md)."""
    from importlib import resources

    return resources.files("lcai_local").joinpath("keys/ubuntu-cloudimage.asc").read_text(encoding="ascii")


def dearmor(armored: str) -> bytes:
    """An armored public key block as the binary keyring gpgv reads (the base64 body, no headers, no CRC)."""
    import base64

    lines = armored.strip().splitlines()
    try:
        body = lines[lines.index("") + 1:-1]
    except ValueError:
        raise LcaiError("the shipped key is not an armored OpenPGP key block") from None
    return base64.b64decode("".join(x for x in body if not x.startswith("=")))


def verify_signature(data: bytes, signature: bytes, armored_key: str, fingerprint: str, what: str) -> None:
    """``signature`` is a good detached signature of ``data`` by the key ``fingerprint``, checked by gpgv
    against a keyring holding only ``armored_key``; LcaiError otherwise."""
    tools = require_tools("gpgv", purpose="verifying the image's checksum file")
    with tempfile.TemporaryDirectory(prefix="lcai-gpgv-") as tmp:
        paths = {}
        for name, content in (("keyring.gpg", dearmor(armored_key)), ("data", data), ("data.sig", signature)):
            paths[name] = os.path.join(tmp, name)
            with open(paths[name], "wb") as f:
                f.write(content)
        proc = subprocess.run([tools["gpgv"], "--status-fd", "1", "--homedir", tmp, "--keyring", paths["keyring.gpg"],
                               paths["data.sig"], paths["data"]], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
    status = [ln.split()[1:] for ln in proc.stdout.splitlines() if ln.startswith("[GNUPG:] ")]
    fpr = fingerprint.upper()
    good = any(f[0] == "VALIDSIG" and fpr in (f[1].upper(), f[-1].upper()) for f in status if len(f) > 1)
    if good and not any(f and f[0] == "BADSIG" for f in status):
        return
    if any(f and f[0] == "BADSIG" for f in status):
        why = "the signature does not match its contents (changed after signing?)"
    elif any(f and f[0] == "ERRSIG" for f in status):
        why = "it is signed by another key, not Ubuntu's (fingerprint " + fingerprint + ")"
    else:
        last = (proc.stderr.strip().splitlines() or [f"gpgv exit {proc.returncode}"])[-1]
        why = f"no valid signature in it ({last})"
    raise LcaiError(f"{what}: {why}; nothing was downloaded or kept")


def _http_get(url: str, timeout: float, headers: Optional[dict] = None):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": "lcai-local", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (https, or the configured base URL)
    except urllib.error.HTTPError as e:
        raise LcaiError(f"GET {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise LcaiError(f"GET {url}: {reason}") from None


def _fetch_small(url: str, timeout: float, limit: int = 1 << 20) -> bytes:
    with _http_get(url, timeout) as r:
        data = r.read(limit + 1)
    if len(data) > limit:
        raise LcaiError(f"GET {url}: larger than {limit} bytes; not a checksum file")
    return data


def parse_sums(text: str) -> dict[str, str]:
    """``SHA256SUMS`` (``<hex> *<file>`` or ``<hex>  <file>``) as {file: hex digest}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def qcow2_virtual_size(path: str) -> Optional[int]:
    """The virtual size in a qcow2 header (magic ``QFI\xfb``, big-endian size at offset 24); None if not qcow2."""
    import struct

    with open(path, "rb") as f:
        head = f.read(32)
    if len(head) < 32 or head[:4] != b"QFI\xfb":
        return None
    return int(struct.unpack(">Q", head[24:32])[0])


def _download(url: str, part: str, timeout: float, say: Say, start: float) -> None:
    """Download ``url`` into ``part``, resuming a partial file (HTTP Range) when the server allows it."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        r = _http_get(url, timeout, {"Range": f"bytes={have}-"} if have else None)
    except LcaiError as e:
        if not (have and "HTTP 416" in e.message):
            raise
        have = 0  # the partial file is not a prefix the server can continue: start over
        r = _http_get(url, timeout)
    with r:
        if have and r.status != 206:  # the server sent the whole file: start over
            have = 0
        total = r.headers.get("Content-Length")
        total_n = int(total) + have if total and total.isdigit() else None
        if have:
            _phase(say, start, f"resuming at {have / 2**20:.0f} MiB")
        step = 64 << 20
        next_report = have + step
        with open(part, "ab" if have else "wb") as f:
            done = have
            while True:
                try:
                    chunk = r.read(1 << 20)
                except OSError as e:
                    raise LcaiError(f"GET {url}: the transfer broke at {done / 2**20:.0f} MiB ({e})",
                                    hint="run the same command again: it resumes where it stopped") from None
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                if done >= next_report:
                    _phase(say, start, f"{done / 2**20:.0f} MiB" + (f" of {total_n / 2**20:.0f}" if total_n else ""))
                    next_report += step
    if total_n is not None and done != total_n:
        raise LcaiError(f"GET {url}: the transfer ended at {done} of {total_n} bytes",
                        hint="run the same command again: it resumes where it stopped")


def _sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pull(name: str, say: Say, force: bool = False, *, base_url: Optional[str] = None,
         key: Optional[str] = None, fingerprint: Optional[str] = None) -> dict:
    """Download Ubuntu's official cloud image for ``name`` (ubuntu22.04, ubuntu24.04) into the cache.

    ``SHA256SUMS`` and ``SHA256SUMS.gpg`` are fetched first and the signature checked with gpgv against the
    shipped key only (``key``/``fingerprint``: another armored key, for tests); then the image is downloaded
    to a partial file in the cache (resumed by HTTP Range after an interruption), its SHA-256 compared with the
    signed list, and only then renamed into ``<cache>/<name>/``.
    A bad signature, a bad checksum or a missing file leaves nothing in the cache.
    Reuses a cached image unless ``force``."""
    from filelock import FileLock

    n = normalize(name)
    if n not in PULLABLE:
        known = ", ".join(PULLABLE)
        hint = f"lcai local image build {n}" if n in BUILDABLE else f"lcai local image add {n} FILE"
        raise InputError(f"lcai local image pull knows {known}, not {n!r}", hint=hint)
    series, fname = PULLABLE[n]
    fingerprint = fingerprint or UBUNTU_KEY_FINGERPRINT
    base = (base_url or os.environ.get("LCAI_LOCAL_UBUNTU_URL") or UBUNTU_URL).rstrip("/")
    rel = f"{base}/{series}/release"
    timeout = float(os.environ.get("LCAI_LOCAL_PULL_TIMEOUT", "60"))
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    start = time.monotonic()
    with FileLock(os.path.join(root, f".{n}.lock")):
        meta = load(n)
        if meta and not force:
            _phase(say, start, f"image {n} is cached: {meta['disk']}")
            return meta
        _phase(say, start, f"fetching {rel}/SHA256SUMS and its signature")
        sums = _fetch_small(f"{rel}/SHA256SUMS", timeout)
        sig = _fetch_small(f"{rel}/SHA256SUMS.gpg", timeout)
        verify_signature(sums, sig, key if key is not None else ubuntu_key(), fingerprint, f"{rel}/SHA256SUMS")
        want = parse_sums(sums.decode("utf-8", "replace")).get(fname)
        if want is None:
            raise LcaiError(f"{rel}/SHA256SUMS (signed) does not list {fname}; nothing was downloaded")
        _phase(say, start, f"SHA256SUMS signed by Ubuntu's key {fingerprint}; downloading {fname}")
        stage = os.path.join(root, f".{n}.pull")
        os.makedirs(stage, exist_ok=True)
        part = os.path.join(stage, fname + ".part")
        wanted = os.path.join(stage, "sha256")  # what the partial file is a prefix of
        try:
            with open(wanted, encoding="ascii") as f:
                stale = f.read().strip() != want
        except OSError:
            stale = True
        if stale:  # Ubuntu published a new image since the partial download began: start over
            shutil.rmtree(stage, ignore_errors=True)
            os.makedirs(stage)
            with open(wanted, "w", encoding="ascii") as f:
                f.write(want + "\n")
        try:
            _download(f"{rel}/{fname}", part, timeout, say, start)
        except LcaiError as e:
            if "resumes" not in (e.hint or ""):  # a refusal (404, …): nothing stays; a broken transfer resumes
                shutil.rmtree(stage, ignore_errors=True)
            raise
        got = _sha256(part)
        if got != want:
            shutil.rmtree(stage, ignore_errors=True)
            raise LcaiError(f"{rel}/{fname}: SHA-256 {got} is not the signed {want}; the download was deleted")
        vsize = qcow2_virtual_size(part)
        if vsize is None:
            shutil.rmtree(stage, ignore_errors=True)
            raise LcaiError(f"{rel}/{fname}: not a qcow2 disk image; the download was deleted")
        final = os.path.join(root, n)
        tmp = tempfile.mkdtemp(prefix=f".{n}.new-", dir=root)
        os.replace(part, os.path.join(tmp, fname))
        shutil.rmtree(stage, ignore_errors=True)
        meta = {"name": n, "linode_image": f"linode/{n}", "kind": "disk", "disk": fname, "format": "qcow2",
                "virtual_size": vsize, "source": f"{rel}/{fname}", "sha256": got, "signed_by": fingerprint,
                "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _write_meta(tmp, meta)
        if os.path.exists(final):
            old = final + f".old-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
        meta = load(n)
        assert meta is not None
        _phase(say, start, f"image {n} ready: {meta['disk']} (SHA-256 {got[:16]}… verified)")
        return meta


# ---------------------------------------------------------------- build

HOOK = r"""
set -eu
R="$1"
echo "lcai: configuring the image like a Linode debian12 image" >&2
printf '/dev/vda / ext4 rw,discard,errors=remount-ro 0 1\n' > "$R/etc/fstab"
echo localhost > "$R/etc/hostname"
printf 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n' > "$R/etc/network/interfaces"
mkdir -p "$R/etc/cloud/cloud.cfg.d" "$R/usr/local/lib/lcai-local"
cp "$CONF/cloud.cfg" "$R/etc/cloud/cloud.cfg.d/90_lcai_local.cfg"
cp "$CONF/apt-proxy.conf" "$R/etc/apt/apt.conf.d/00lcai-local-proxy"
cp "$CONF/apt-proxy" "$R/usr/local/lib/lcai-local/apt-proxy"
chmod 0755 "$R/usr/local/lib/lcai-local/apt-proxy"
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
  "$MIRROR" "$MIRROR" "$SECURITY" > "$R/etc/apt/sources.list"
# en_US.UTF-8 generated and set, as on Linode's image (cloud-init's locale module then has nothing to do;
# Debian's locale-gen ignores the locale cloud-init passes it, and update-locale then fails)
sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' "$R/etc/locale.gen"
chroot "$R" locale-gen >/dev/null
printf 'LANG=en_US.UTF-8\n' > "$R/etc/default/locale"
rm -f "$R"/etc/ssh/ssh_host_*
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/log/*.log
cp -L "$R/vmlinuz" "$OUT/vmlinuz"
cp -L "$R/initrd.img" "$OUT/initrd.img"
echo "lcai: writing the ext4 image ($SIZE)" >&2
# a non-recursive bind mount shows the root file system without the /proc, /sys, /dev mmdebstrap mounted
mkdir -p "$OUT/root"
mount --bind "$R" "$OUT/root"
rc=0
mkfs.ext4 -q -F -L lcai-root -d "$OUT/root" "$OUT/disk.img" "$SIZE" || rc=$?
umount "$OUT/root"
rmdir "$OUT/root"
exit $rc
"""


def _phase(say: Say, start: float, text: str) -> None:
    say(f"[{time.monotonic() - start:6.1f}s] {text}")


def build(name: str, say: Say, force: bool = False, mirror: str = MIRROR, size: str = "") -> dict:
    """Build (or reuse) a cached image. Reuses the cached one unless ``force``; concurrent builds wait for
    each other (a file lock) instead of building twice."""
    from filelock import FileLock

    n = normalize(name)
    if n not in BUILDABLE:
        raise InputError(f"lcai local image build knows {', '.join(BUILDABLE)}, not {n!r}",
                         hint=f"for other images: lcai local image add {n} FILE")
    size = size or os.environ.get("LCAI_LOCAL_DISK_SIZE", "8G")
    if not re.fullmatch(r"[0-9]+[KMG]", size):
        raise InputError(f"disk size {size!r}: expected a size like 8G")
    tools = require_tools("mmdebstrap", "mkfs.ext4", "qemu-system-x86_64", "qemu-img", "xorriso",
                          purpose="building a local image")
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    start = time.monotonic()
    with FileLock(os.path.join(root, f".{n}.lock")):
        meta = load(n)
        if meta and not force:
            _phase(say, start, f"image {n} is cached: {meta['disk']}")
            return meta
        if os.geteuid() != 0:
            raise InputError("building the image needs root (mmdebstrap mounts /proc in the new system and "
                             "mkfs.ext4 must read files owned by root)",
                             hint=f"sudo env LCAI_LOCAL_CACHE={root} lcai local image build {n}")
        tmp = tempfile.mkdtemp(prefix=f".{n}.build-", dir=root)
        try:
            conf = os.path.join(tmp, "conf")
            os.makedirs(conf)
            for fname, text, mode in (("cloud.cfg", CLOUD_CFG, 0o644), ("apt-proxy.conf", APT_PROXY_CONF, 0o644),
                                      ("apt-proxy", APT_PROXY_SCRIPT, 0o755)):
                with open(os.path.join(conf, fname), "w", encoding="utf-8") as f:
                    f.write(text)
                os.chmod(os.path.join(conf, fname), mode)
            hook = os.path.join(conf, "customize.sh")
            env_lines = "".join(f"{k}={shlex.quote(v)}\n" for k, v in (
                ("CONF", conf), ("OUT", tmp), ("MIRROR", mirror), ("SECURITY", SECURITY), ("SIZE", size)))
            with open(hook, "w", encoding="utf-8") as f:
                f.write(env_lines + "PATH=/usr/sbin:/sbin:$PATH\n" + HOOK)
            argv = [tools["mmdebstrap"], "--variant=minbase", "--mode=root", "--format=null",
                    "--include=" + ",".join(DEBIAN12_PACKAGES),
                    "--customize-hook=sh " + shlex.quote(hook) + ' "$1"',
                    SUITE, "/dev/null",
                    f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main",
                    f"deb {SECURITY} {SUITE}-security main"]
            _phase(say, start, f"bootstrapping Debian 12 ({SUITE}) from {mirror} with mmdebstrap")
            log_path = os.path.join(tmp, "build.log")
            _run_logged(argv, log_path, say, start)
            meta = {"name": n, "linode_image": f"linode/{n}", "kind": "kernel", "disk": "disk.img",
                    "format": "raw", "kernel": "vmlinuz", "initrd": "initrd.img", "append": APPEND,
                    "suite": SUITE, "mirror": mirror, "packages": list(DEBIAN12_PACKAGES), "size": size,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(time.monotonic() - start, 1)}
            _write_meta(tmp, meta)
            shutil.rmtree(conf)
            final = os.path.join(root, n)
            if os.path.exists(final):
                old = final + f".old-{os.getpid()}"
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            try:  # keep the log of a failed build next to the images
                shutil.copy(os.path.join(tmp, "build.log"), os.path.join(root, f"{n}.build-failed.log"))
            except OSError:
                pass
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        meta = load(n)
        assert meta is not None
        _phase(say, start, f"image {n} ready: {meta['disk']} (built in {meta['build_seconds']} s)")
        return meta


def _run_logged(argv: list[str], log_path: str, say: Say, start: float) -> None:
    """Run a build command, its output in ``log_path``; its progress lines (mmdebstrap's ``I:``, our
    ``lcai:``) are shown as phases. On failure: LcaiError with the last lines."""
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env={**os.environ, "LC_ALL": "C.UTF-8"})
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            log.write(line)
            line = line.rstrip("\n")
            tail = (tail + [line])[-15:]
            if line.startswith("I: ") or line.startswith("lcai: "):
                _phase(say, start, line.split(": ", 1)[1])
        rc = proc.wait()
    if rc != 0:
        raise LcaiError(f"building the image failed (mmdebstrap exit {rc}): " + (tail[-1] if tail else ""),
                        hint="last lines:\n" + "\n".join(tail))
