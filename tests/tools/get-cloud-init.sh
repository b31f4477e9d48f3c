#!/bin/sh
# Fetch Debian's cloud-init package and the Python modules it needs for `cloud-init schema`,
# and unpack them into a private root (nothing is installed system-wide).
# Usage: tests/tools/get-cloud-init.sh DEST   → DEST/root/usr/bin/cloud-init
set -eu
dest=${1:?usage: get-cloud-init.sh DEST}
if [ -x "$dest/root/usr/bin/cloud-init" ]; then exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "get-cloud-init: apt-get not available" >&2; exit 3; }
mkdir -p "$dest/debs" "$dest/root"
cd "$dest/debs"
pkgs="cloud-init python3-jsonschema python3-jinja2 python3-configobj python3-netifaces python3-pyrsistent
python3-attr python3-markupsafe python3-requests python3-urllib3 python3-idna python3-certifi python3-chardet
python3-charset-normalizer python3-six python3-jsonpatch python3-json-pointer python3-oauthlib python3-serial python3-yaml"
# shellcheck disable=SC2086
if ! apt-get download $pkgs >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  apt-get download $pkgs >/dev/null
fi
for f in ./*.deb; do dpkg-deb -x "$f" "$dest/root"; done
test -x "$dest/root/usr/bin/cloud-init"
