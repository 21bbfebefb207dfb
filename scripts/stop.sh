#!/usr/bin/env bash
# `npm stop`: stops what scripts/start.sh started (and nothing else), in an order that lets
# clients be told to reconnect: apps first (they drain), then nginx, then the private Redis
# (which writes its AOF on the way out). Redis data and logs stay in the run directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if ! load_state; then
  say "nothing to stop (no $STATE_FILE)"
  exit 0
fi
grace="$(app_setting PUSH_SHUTDOWN_GRACE_S 10)"
is_uint "$grace" || grace=10

pids=()
sups=()
for kind in listener publisher; do
  for ((i = 1; i <= $(app_count $kind); i++)); do
    pid="$(live_pid "$kind-$i")" || pid=""
    if sup="$(live_supervisor "$kind-$i")"; then
      # The supervisor passes SIGTERM on to the app and exits once it is gone, restarting nothing.
      kill -TERM "$sup" 2>/dev/null && sups+=("$sup")
    elif [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null
    fi
    [ -n "$pid" ] && pids+=("$pid") && say "stopping $kind-$i (pid $pid)"
    rm -f "$(pid_file "$kind-$i")" "$(supervisor_pid_file "$kind-$i")"
  done
done
# All apps drain in parallel; each exits within its grace period, a stuck one is killed after it.
# Whatever had to be killed makes the exit code 1 (the stack is stopped either way): its clients
# got no goodbye, or Redis may not have finished writing its AOF.
failed=0
for pid in "${pids[@]}"; do stop_pid "$pid" $((grace + 5)) 0 || failed=1; done
for pid in "${sups[@]}"; do stop_pid "$pid" 5 0 || failed=1; done

if pid="$(live_pid nginx)"; then
  say "stopping nginx (pid $pid)"
  stop_pid "$pid" 20 QUIT || failed=1
fi
# The private Sentinel group (PUSH_REDIS_SENTINEL=1): sentinels first, so none fails the master
# over while it stops; the private Cluster's other nodes (PUSH_REDIS_CLUSTER=1) likewise.
while read -r name _; do
  if pid="$(live_pid "$name")"; then
    say "stopping $name (pid $pid)"
    stop_pid "$pid" 30 || failed=1
  fi
  rm -f "$(pid_file "$name")"
done < <(redis_group_nodes | sort -r)
if [ "$PRIVATE_REDIS" = 1 ] && pid="$(live_pid redis)"; then
  say "stopping redis-server (pid $pid)"
  stop_pid "$pid" 30 || failed=1
  rm -f "$(pid_file redis)"
fi
rm -f "$STATE_FILE" "$APP_ENV_FILE"
if [ "$failed" = 1 ]; then
  warn "stopped, but not cleanly: a process had to be killed (see the messages above and $LOG_DIR)"
  exit 1
fi
say "stopped"
