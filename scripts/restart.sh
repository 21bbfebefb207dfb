#!/usr/bin/env bash
# Rolling restart without losing messages: one listener at a time (it drains: readiness 503, its
# clients are told to reconnect elsewhere and resume by mid), wait until the new one is ready,
# then the next; then the publishers the same way; then nginx re-reads its rendered config.
#   PUSH_RESTART_ONLY   listeners | publishers | all (all)
# Runs scripts/setup.sh first (build) unless PUSH_SKIP_SETUP=1, so this is also the upgrade step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ROOT"

load_state || die "not running (no $STATE_FILE); use npm start" 3
only="${PUSH_RESTART_ONLY:-all}"
case "$only" in listeners) kinds=(listener) ;; publishers) kinds=(publisher) ;; all) kinds=(listener publisher) ;; *) die "PUSH_RESTART_ONLY must be listeners, publishers or all" 2 ;; esac
TIMEOUT="${PUSH_START_TIMEOUT_S:-30}"
need_uint PUSH_START_TIMEOUT_S "$TIMEOUT" 1 3600
grace="$(app_setting PUSH_SHUTDOWN_GRACE_S 10)"
is_uint "$grace" || grace=10

if [ "${PUSH_SKIP_SETUP:-0}" != 1 ]; then
  bash "$ROOT/scripts/setup.sh" || die "setup failed (install/build); nothing was restarted"
fi
raise_nofile

for kind in "${kinds[@]}"; do
  for ((i = 1; i <= $(app_count "$kind"); i++)); do
    name="$kind-$i"
    port="$(app_port "$kind" "$i")"
    pid=""
    if pid="$(live_pid "$name")"; then
      say "$name (pid $pid): draining"
      # A process that had to be killed skipped its drain; its clients still resume by mid.
      stop_pid "$pid" $((grace + 5)) || warn "$name did not drain within $((grace + 5))s and was killed; continuing"
    else
      say "$name was not running"
    fi
    if live_supervisor "$name" >/dev/null; then
      # Its supervisor starts it again (at once after a clean exit); wait for the new process.
      for ((t = 0; t < TIMEOUT * 10; t++)); do
        new="$(live_pid "$name")" && [ "$new" != "$pid" ] && break
        sleep 0.1
      done
    else
      start_app "$kind" "$i"
    fi
    if ! wait_ready "$TIMEOUT" "http://127.0.0.1:$port/readyz"; then
      tail -n 5 "$LOG_DIR/$name.log" >&2 || true
      die "$name did not become ready within ${TIMEOUT}s; stopping the rolling restart here"
    fi
    say "$name ready again (pid $(live_pid "$name" || echo '?'))"
  done
done

if pid="$(live_pid nginx)"; then
  prefix="$(nginx_prefix)"
  render_nginx "$prefix/nginx.conf.new" || die "could not render the nginx config" 2
  "$NGINX_BIN" -t -q -p "$prefix" -c "$prefix/nginx.conf.new" -e "$LOG_DIR/nginx-error.log" || die "rendered nginx config fails nginx -t; nginx keeps the old one"
  if cmp -s "$prefix/nginx.conf.new" "$prefix/nginx.conf"; then
    # A reload closes idle keep-alive client connections; skip it when nothing changed.
    rm -f "$prefix/nginx.conf.new"
    say "nginx config unchanged"
  else
    mv "$prefix/nginx.conf.new" "$prefix/nginx.conf"
    kill -HUP "$pid"
    say "nginx reloaded"
  fi
else
  warn "nginx is not running; npm start brings it up"
fi
say "done"
