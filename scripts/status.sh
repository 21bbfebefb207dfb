#!/usr/bin/env bash
# Reports every process of the stack started by scripts/start.sh: pid, port, running, ready.
# Exit 0 = everything running and ready, 1 = something is down or not ready, 3 = not started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if ! load_state; then
  say "not running (no $STATE_FILE; start with npm start)"
  exit 3
fi

rows=()
urls=()
add() { rows+=("$1|$2|$3"); urls+=("$4"); } # name port kind url
front="http://$(front_host):$FRONT_PORT"
add nginx "$FRONT_PORT" nginx "$front/healthz"
for kind in publisher listener; do
  for ((i = 1; i <= $(app_count $kind); i++)); do
    p="$(app_port $kind "$i")"
    add "$kind-$i" "$p" app "http://127.0.0.1:$p/readyz"
  done
done
mapfile -t codes < <(node "$ROOT/scripts/lib/probe.mjs" status "${urls[@]}" | cut -f1)

bad=0
up=0
printf '%-14s %-8s %-6s %-8s %s\n' PROCESS PID PORT STATE READY
if [ "$PRIVATE_REDIS" = 1 ]; then
  if pid="$(live_pid redis)"; then
    up=1
    # Ready = our own redis-server answers on the port (not merely some Redis).
    r="$(redis_answering_pid)"
    if [ "$r" = "$pid" ]; then ready=yes; else ready="no (${r:+port answered by pid }${r:-no answer})"; bad=1; fi
    printf '%-14s %-8s %-6s %-8s %s\n' redis "$pid" "$REDIS_PORT" running "$ready"
  else
    printf '%-14s %-8s %-6s %-8s %s\n' redis - "$REDIS_PORT" stopped no
    bad=1
  fi
  while read -r name port; do
    if pid="$(live_pid "$name")"; then
      up=1
      if redis_pings "$port"; then ready=yes; else ready="no (no answer)"; bad=1; fi
      printf '%-14s %-8s %-6s %-8s %s\n' "$name" "$pid" "$port" running "$ready"
    else
      printf '%-14s %-8s %-6s %-8s %s\n' "$name" - "$port" stopped no
      bad=1
    fi
  done < <(redis_group_nodes)
else
  printf '%-14s %-8s %-6s %-8s %s\n' redis external - - "$EFFECTIVE_REDIS_URL"
fi
for idx in "${!rows[@]}"; do
  IFS='|' read -r name port _ <<<"${rows[$idx]}"
  code="${codes[$idx]:-000}"
  if pid="$(live_pid "$name")"; then
    up=1
    state=running
  else
    pid=-
    state=stopped
    # Its supervisor is starting it again (or waiting out a back-off after repeated crashes).
    [ "$name" != nginx ] && live_supervisor "$name" >/dev/null && state=restarting
    bad=1
  fi
  if [ "$code" = 200 ]; then ready=yes; else ready="no (HTTP $code)"; bad=1; fi
  printf '%-14s %-8s %-6s %-8s %s\n' "$name" "$pid" "$port" "$state" "$ready"
done
[ "$up" = 1 ] || exit 3
exit "$bad"
