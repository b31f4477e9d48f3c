#!/bin/sh
# Offline demo of the main job against the bundled Linode API simulator (no account, no credentials):
#   init → plan → deploy --wait → status → destroy
# Uses a throw-away config dir and HOME; the simulator listens on 127.0.0.1 only.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/lcai-demo.XXXXXX")
port=${LCAI_DEMO_PORT:-8111}
lcai=$PWD/.venv/bin/lcai
.venv/bin/lcai-linode-sim --port "$port" --provision-seconds 2 --boot-seconds 2 --app-ready-seconds 2 \
  > "$work/simulator.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT INT TERM
export LCAI_CONFIG_DIR="$work/config" HOME="$work/home" LINODE_TOKEN=sim-token \
  LCAI_LINODE_API_URL="http://127.0.0.1:$port/v4" LCAI_POLL_INTERVAL=0.5
mkdir -p "$HOME"
i=0
until "$lcai" status >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 50 ] || { echo "simulator did not start: $work/simulator.log" >&2; exit 1; }
  sleep 0.1
done
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

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
step lcai status;                  "$lcai" status
printf '\ndemo files are in %s\n' "$work"
