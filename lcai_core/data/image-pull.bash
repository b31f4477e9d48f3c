record() {
  printf '{"state": "%s", "image": "%s", "attempt": %d, "attempts": %d, "detail": "%s", "time": %d}\n' \
    "$1" "$image" "$2" "$attempts" "$(printf '%s' "$3" | tr -d '\042\134' | tr '\n\t' '  ' | cut -c1-300)" \
    "$(date +%s)" > "$state.tmp" && mv -f "$state.tmp" "$state"
}
if docker image inspect "$image" >/dev/null 2>&1; then
  record present 0 "already on this machine"
  exit 0
fi
out=""
for attempt in $(seq 1 "$attempts"); do
  record pulling "$attempt" "attempt $attempt of $attempts"
  if out=$(timeout "$per_attempt" docker pull --quiet "$image" 2>&1); then
    record pulled "$attempt" "$out"
    echo "lcai: pulled $image (attempt $attempt of $attempts)"
    exit 0
  fi
  rc=$?
  [ "$rc" -eq 124 ] && out="timed out after ${per_attempt}s"
  echo "lcai: pull of $image failed (attempt $attempt of $attempts): $out" >&2
  if [ "$attempt" -lt "$attempts" ]; then
    sleep "$delay"
    delay=$((delay * 3))
  fi
done
record failed "$attempts" "$out"
echo "lcai: step image-pull failed: could not pull $image after $attempts attempts: $out" >&2
exit 1
