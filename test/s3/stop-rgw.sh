#!/usr/bin/env bash
# Stops the cluster test/s3/start-rgw.sh started, by PID, and removes its state.
#   CKPTD_RGW_DIR  as for start-rgw.sh (default /tmp/ckptd-rgw); KEEP=1 keeps the directory.
#   stop-rgw.sh rgw  stops the gateway alone and keeps the cluster (start-rgw.sh restarts it).
set -uo pipefail
dir="${CKPTD_RGW_DIR:-/tmp/ckptd-rgw}"
names="${*:-rgw osd mon}"
[ $# -gt 0 ] && KEEP=1
for name in $names; do
  f="$dir/run/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
