#!/bin/sh
# Fetch Debian's cloud-init package and the Python modules it needs for `cloud-init schema`,
# and unpack them into a private root (nothing is installed system-wide): lcai-testing's fetch
# (lcai_testing.cloudinit), with the .venv that scripts/bootstrap.sh made.
# Usage: tests/tools/get-cloud-init.sh DEST   → DEST/root/usr/bin/cloud-init (exit 3 without apt-get)
set -eu
dest=${1:?usage: get-cloud-init.sh DEST}
exec "$(dirname "$0")/../../.venv/bin/python" -m lcai_testing.cloudinit "$dest" >/dev/null
