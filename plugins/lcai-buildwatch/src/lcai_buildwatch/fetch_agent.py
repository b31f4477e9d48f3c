#!/usr/bin/env python3
"""BuildWatch's front on the instance when the agent comes from a package index (``agent_from: package-index``).

  buildwatch-fetch --config /etc/build-watcher/config.json run     # what build-watcher.service runs

Reads ``agent_index``, ``agent_version`` and ``agent_sha256`` from the config, and unless the installed agent
already has that sha256: downloads ``lcai_buildwatch-VERSION-py3-none-any.whl`` from the index's simple API
(PEP 503: ``INDEX/lcai-buildwatch/``), checks the wheel against the index's ``#sha256=`` fragment, takes
``lcai_buildwatch/agent.py`` out of it and installs it only if its sha256 is the one lcai pinned when it rendered
the user data (the agent.py of the lcai-buildwatch the user has installed). Then it execs the agent with its own
arguments. An index that does not answer is retried with backoff; a version that is not there or a file whose
hash differs is permanent: exit 78 (the unit does not restart on it). Runs as a shipped file of the user data,
with docstrings and comments stripped; Python's standard library only.
"""

import hashlib
import html
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

AGENT = os.environ.get("BUILDWATCH_AGENT", "/var/lib/build-watcher/agent.py")


class Permanent(Exception):
    pass


def sha(data):
    return hashlib.sha256(data).hexdigest()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise Permanent(f"{url}: HTTP {e.code}") from None
        raise


def fetch(index, version, want):
    name = f"lcai_buildwatch-{version}-py3-none-any.whl"
    page = index.rstrip("/") + "/lcai-buildwatch/"
    for href in re.findall(r'href="([^"]+)"', get(page).decode()):
        url, _, frag = urllib.parse.urljoin(page, html.unescape(href)).partition("#")
        if url.rsplit("/", 1)[-1] == name:
            break
    else:
        raise Permanent(f"{name} is not on {page}")
    whl = get(url)
    m = re.fullmatch(r"sha256=([0-9a-f]{64})", frag)
    if m and sha(whl) != m.group(1):
        raise Permanent(f"{name}: its sha256 is not the one {page} lists")
    try:
        src = zipfile.ZipFile(io.BytesIO(whl)).read("lcai_buildwatch/agent.py")
    except (zipfile.BadZipFile, KeyError) as e:
        raise Permanent(f"{name}: no agent in it ({e})") from None
    if sha(src) != want:
        raise Permanent(f"agent.py in {name} has sha256 {sha(src)}, lcai pinned {want}: not installed")
    os.makedirs(os.path.dirname(AGENT), exist_ok=True)
    with open(AGENT + ".tmp", "wb") as f:
        f.write(src)
    os.chmod(AGENT + ".tmp", 0o755)
    os.replace(AGENT + ".tmp", AGENT)


def installed(want):
    try:
        with open(AGENT, "rb") as f:
            return sha(f.read()) == want
    except OSError:
        return False


def main(argv):
    path = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else "/etc/build-watcher/config.json"
    with open(path) as f:
        cfg = json.load(f)
    index, version, want = cfg["agent_index"], cfg["agent_version"], cfg["agent_sha256"]
    delay = float(os.environ.get("BUILDWATCH_FETCH_DELAY", "2"))
    top = float(os.environ.get("BUILDWATCH_FETCH_MAX_DELAY", "60"))
    while not installed(want):
        try:
            fetch(index, version, want)
            print(f"buildwatch: agent {version} installed from {index} (sha256 {want[:12]}…)", file=sys.stderr)
        except Permanent as e:
            print(f"buildwatch: {e}", file=sys.stderr)
            return 78
        except (OSError, ValueError) as e:
            print(f"buildwatch: {index} did not answer ({e}); retrying in {delay:.0f}s", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, top)
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, AGENT, *argv])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
