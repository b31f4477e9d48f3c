# shellcheck shell=sh
# Sourced by bootstrap.sh and lock.sh (POSIX sh): sets the positional parameters to `-e PATH[test]` for lcai-core
# and every plugin under plugins/ — the [test] extra only where its pyproject defines one (pip warns otherwise).
with_test() {
  if grep -q '^test *=' "$1/pyproject.toml"; then echo "$1[test]"; else echo "$1"; fi
}
set -- -e "$(with_test .)"
for p in plugins/*/; do
  [ -f "$p/pyproject.toml" ] && set -- "$@" -e "$(with_test "${p%/}")"
done
