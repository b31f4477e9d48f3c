attempt=0
restarts=0
record() {
  printf '{"state": "%s", "attempt": %d, "max_retries": %d, "restarts": %d, "detail": "%s", "time": %d}\n' \
    "$1" "$2" "$max_retries" "$restarts" "$(printf '%s' "$3" | tr -d '\042\134' | tr '\n\t' '  ' | cut -c1-300)" "$(date +%s)" > "$state.tmp" \
    && mv -f "$state.tmp" "$state"
}
unhealthy() {
  record unhealthy "$attempt" "$1"
  echo "lcai: app unhealthy: $1" >&2
  exit 1
}
show() {
  systemctl show -p "$1" --value "$app" 2>/dev/null
}
# @lcai: the renderer defines probe() and running() here
why_not_running() {
  for dep in $(show Requires); do
    if systemctl is-failed --quiet "$dep" 2>/dev/null; then
      echo "$dep failed (see journalctl -u $dep)"
      return
    fi
  done
  echo "see journalctl -u $app"
}
restarts0=$(show NRestarts)
waiting_since=$(date +%s)
start=""
failures=0
detail=""
last_status=""
while :; do
  n=$(show NRestarts)
  restarts=$(( ${n:-0} - ${restarts0:-0} ))
  st=$(show ExecMainStatus)
  [ "${st:-0}" = 0 ] || last_status=$st
  if [ "$restarts" -ge "$max_restarts" ]; then
    unhealthy "crash loop: the app restarted $restarts times (last exit status ${last_status:-$st}); see journalctl -u $app"
  fi
  active=$(show ActiveState)
  case "$active" in
    failed|inactive) unhealthy "the app is not running ($active): $(why_not_running)" ;;
  esac
  if [ -z "$start" ]; then
    if running; then
      start=$(date +%s)
    elif [ $(( $(date +%s) - waiting_since )) -ge "$start_grace" ]; then
      unhealthy "the app did not get running within ${start_grace}s ($active): $(why_not_running)"
    else
      record waiting "$attempt" "the app is starting ($active)"
      sleep "$interval"
      continue
    fi
  fi
  attempt=$((attempt + 1))
  if probe; then
    record healthy "$attempt" "ok"
    exit 0
  fi
  if [ $(( $(date +%s) - start )) -ge "$initial_delay" ]; then
    failures=$((failures + 1))
  fi
  if [ "$failures" -ge "$max_retries" ]; then
    unhealthy "$detail (after $attempt attempts)"
  fi
  record waiting "$attempt" "$detail"
  sleep "$interval"
done
