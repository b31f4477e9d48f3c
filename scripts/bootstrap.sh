#!/bin/sh
# Create .venv (once, or when a pyproject or the lock changes) with lcai-core, every plugin under plugins/
# (editable, lcai-testing among them), and the test tools. Needs only python3 (>= 3.10) and access to PyPI.
# Versions come from the lock, constraints.txt (pip constraints: build dependencies too, with a pip that knows
# --build-constraint); refresh it with scripts/lock.sh.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.lcai-installed
lock=constraints.txt
want=$(cat pyproject.toml plugins/*/pyproject.toml "$lock" | cksum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/lcai ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c "$lock" --upgrade pip >/dev/null 2>&1 || true
# shellcheck source=scripts/workspace-packages.sh
. scripts/workspace-packages.sh
echo "bootstrap: installing lcai-core and $(($# / 2 - 1)) plugin(s) into .venv (versions from $lock)" >&2
if .venv/bin/python -m pip install --help | grep -q -- --build-constraint; then
  set -- --build-constraint "$lock" "$@"
fi
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c "$lock" "$@"; then
  echo "bootstrap: pip could not install with $lock; if a pyproject.toml changed its dependencies, refresh the" \
    "lock with scripts/lock.sh --keep (or scripts/lock.sh for the newest versions)" >&2
  exit 1
fi
echo "$want" > "$stamp"
