#!/bin/sh
# Offline demo of the main job against the bundled Linode API simulator (no account, no credentials):
#   init → plan → deploy --wait → status → destroy
# LCAI_DEMO_REPLICAS=3 also deploys 3 replicas behind a NodeBalancer, scales to 4, rolls a new .env out one
# replica at a time, scales back to 3 and destroys it.
# Uses a throw-away config dir and HOME; the simulator listens on 127.0.0.1 only, on a free port it picks
# itself (LCAI_DEMO_PORT=N to choose one), and the demo checks that the simulator answering is the one it
# started (a per-run token) before it sends a single request: it never runs against another process.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/lcai-demo.XXXXXX")
lcai=$PWD/.venv/bin/lcai
py=$PWD/.venv/bin/python
run=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
log=$work/simulator.log
.venv/bin/lcai-linode-sim --port "${LCAI_DEMO_PORT:-0}" --token "demo-$run" --run-token "$run" \
  --provision-seconds 2 --boot-seconds 2 --app-ready-seconds 2 > "$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT INT TERM
url=
i=0
while [ -z "$url" ]; do
  if ! kill -0 "$sim" 2>/dev/null; then
    echo "demo: the simulator did not start: $(tail -n 1 "$log")" >&2
    exit 1
  fi
  i=$((i + 1))
  [ "$i" -le 100 ] || { echo "demo: the simulator printed no address within 10 s (see $log)" >&2; exit 1; }
  sleep 0.1
  url=$(sed -n 's/^Linode API simulator on \(http:[^ ]*\) .*/\1/p' "$log")
done
if ! "$py" - "$url" "$run" <<'EOF'
import json, sys, urllib.request
url, run = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(url[: -len("/v4")] + "/_sim/state", timeout=5) as r:
        got = json.load(r).get("run_token")
except (OSError, ValueError) as e:
    sys.exit(f"demo: {url} does not answer as a simulator: {e}")
if got != run:
    sys.exit(f"demo: {url} is answered by another process, not the simulator this demo started")
EOF
then
  exit 1
fi
export LCAI_CONFIG_DIR="$work/config" HOME="$work/home" LINODE_TOKEN="demo-$run" \
  LCAI_LINODE_API_URL="$url" LCAI_POLL_INTERVAL=0.5
mkdir -p "$HOME"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
printf 'simulator %s (run %s)\n' "$url" "$run"

step lcai templates list --long;   "$lcai" templates list --long
step lcai init embeddings-python --directory svc
"$lcai" init embeddings-python --directory "$work/svc"
printf 'EMBEDDINGS_API_KEY=demo-%s\n' "$(date +%s)" > "$work/svc/.env"
if [ "$(id -u)" != 0 ]; then   # the simulator answers health checks on 127.0.1.N:<port>; <1024 needs root
  sed -i 's/external_port: 80$/external_port: 8080/' "$work/svc/deploy.yml"
fi
step lcai plan --directory svc --cloud-config svc/user-data.yaml
"$lcai" plan --directory "$work/svc" --cloud-config "$work/svc/user-data.yaml"
step lcai deploy --directory svc --wait --yes
"$lcai" deploy --directory "$work/svc" --wait --yes
id=$(sed -n 's/.*"deployment_id": "\([a-z0-9]*\)".*/\1/p' "$work/svc/.linode/state.json")
step lcai status;                  "$lcai" status
step lcai status "$id";            "$lcai" status "$id"
step lcai destroy "$id" --yes;     "$lcai" destroy "$id" --yes
if [ "${LCAI_DEMO_REPLICAS:-1}" -gt 1 ]; then   # opt-in: replicas behind a NodeBalancer (docs/scaling.md)
  n=$LCAI_DEMO_REPLICAS
  export LCAI_DRAIN_SECONDS=2   # how long a drained replica keeps its open connections (default 10)
  step lcai deploy --directory svc --replicas "$n" --wait --yes
  "$lcai" deploy --directory "$work/svc" --replicas "$n" --wait --yes
  rid=$(sed -n 's/.*"deployment_id": "\([a-z0-9]*\)".*/\1/p' "$work/svc/.linode/state.json")
  step lcai status;                "$lcai" status
  step lcai status "$rid";         "$lcai" status "$rid"
  step lcai scale "$rid" $((n + 1)) --directory svc --yes
  "$lcai" scale "$rid" $((n + 1)) --directory "$work/svc" --yes
  printf 'EMBEDDINGS_API_KEY=demo-rotated-%s\n' "$(date +%s)" > "$work/svc/.env"
  step "(a new API key in svc/.env) lcai deploy --directory svc --yes   # rolling, one replica at a time"
  "$lcai" deploy --directory "$work/svc" --yes
  step lcai scale "$rid" "$n" --yes; "$lcai" scale "$rid" "$n" --yes
  step lcai status "$rid";         "$lcai" status "$rid"
  step lcai destroy "$rid" --yes;  "$lcai" destroy "$rid" --yes
fi
step lcai status;                  "$lcai" status
printf '\ndemo files are in %s\n' "$work"
printf 'by hand: .venv/bin/lcai-linode-sim --port 8111 starts the simulator and prints the two lines that point lcai at it:\n'
printf '  export LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4\n  export LINODE_TOKEN=sim-token\n'

