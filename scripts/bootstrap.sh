#!/bin/sh
# Create .venv (once, or when a pyproject changes) with lcai-core, every plugin under plugins/ (editable),
# and the test tools. Needs only python3 (>= 3.10) and access to PyPI.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.lcai-installed
want=$(cat pyproject.toml plugins/*/pyproject.toml | cksum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/lcai ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
# a package's [test] extra only where its pyproject defines one (pip warns about a missing extra)
with_test() {
  if grep -q '^test *=' "$1/pyproject.toml"; then echo "$1[test]"; else echo "$1"; fi
}
set -- -e "$(with_test .)"
for p in plugins/*/; do
  [ -f "$p/pyproject.toml" ] && set -- "$@" -e "$(with_test "${p%/}")"
done
echo "bootstrap: installing lcai-core and $(($# / 2 - 1)) plugin(s) into .venv" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check "$@"
echo "$want" > "$stamp"
