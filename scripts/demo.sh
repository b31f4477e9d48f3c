#!/bin/sh
# Offline demo of the main job: templates → init → plan, with a throw-away config dir and no credentials.
# (deploy → status → destroy against the bundled Linode API simulator arrive with the lcai-linode plugin.)
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/lcai-demo.XXXXXX")
export LCAI_CONFIG_DIR="$work/config"
lcai=.venv/bin/lcai
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step lcai plugins;                      $lcai plugins
step lcai templates list --long;        $lcai templates list --long
step lcai init llm-api --directory "$work/svc"
$lcai init llm-api --directory "$work/svc"
printf 'VLLM_API_KEY=demo-%s\n' "$(date +%s)" > "$work/svc/.env"
step lcai plan --directory "$work/svc" --cloud-config "$work/svc/user-data.yaml"
$lcai plan --directory "$work/svc" --cloud-config "$work/svc/user-data.yaml"
step head -n 12 "$work/svc/user-data.yaml"
head -n 12 "$work/svc/user-data.yaml"
printf '\ndemo files are in %s\n' "$work"
