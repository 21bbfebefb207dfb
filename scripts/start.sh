#!/usr/bin/env bash
# `npm start`: brings up the whole stack on this machine and returns once everything answers.
#   private redis-server (AOF on; with PUSH_REDIS_SENTINEL=1 also a replica and three sentinels,
#   with PUSH_REDIS_CLUSTER=1 one node of a private six-node Redis Cluster)
#   unless REDIS_URL is set, PUSH_PUBLISHERS publishers,
#   PUSH_LISTENERS listeners and nginx in front on PUSH_FRONT_PORT.
# Idempotent: running it again starts only what is not running. Settings: scripts/lib/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ROOT"

running=0
if load_state; then
  for n in redis nginx $(for ((i = 1; i <= PUBLISHERS; i++)); do echo "publisher-$i"; done) $(for ((i = 1; i <= LISTENERS; i++)); do echo "listener-$i"; done); do
    live_pid "$n" >/dev/null && running=1
  done
fi
if [ "$running" = 1 ]; then
  say "already running from $RUN_DIR ($PUBLISHERS publishers, $LISTENERS listeners): starting only what is missing (npm stop first to change settings)"
else
  settings_from_env
  # The private Redis port must be ours alone: a second checkout with the same PUSH_REDIS_PORT
  # would otherwise silently share (and mix messages with) another stack's Redis.
  if [ "$PRIVATE_REDIS" = 1 ] && port_in_use "$REDIS_PORT"; then
    other="$(redis_answering_pid)"
    die "127.0.0.1:$REDIS_PORT (PUSH_REDIS_PORT) is already in use by another process${other:+ (a redis-server, pid $other)}, perhaps another stack; choose a free PUSH_REDIS_PORT or set REDIS_URL to use that Redis on purpose. Nothing was started."
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$PID_DIR"
  write_state
  # The apps' own settings as given now (PUSH_*, REDIS_URL), kept so restarts reproduce them.
  (
    umask 077
    : >"$APP_ENV_FILE"
    while IFS='=' read -r k _; do
      case "$k" in PUSH_RUN_DIR|PUSH_LOG_DIR|PUSH_LISTENERS|PUSH_PUBLISHERS|PUSH_FRONT_*|PUSH_PUBLISHER_PORT|PUSH_LISTENER_PORT|PUSH_REDIS_PORT|PUSH_PUB_ALLOW|PUSH_SUB_CONN_PER_IP|PUSH_NGINX_*|PUSH_NOFILE|PUSH_START_TIMEOUT_S|PUSH_SKIP_SETUP|PUSH_PORT|PUSH_CONFIG_FILE) continue ;; esac
      printf '%s=%q\n' "$k" "${!k}" >>"$APP_ENV_FILE"
    done < <(env | grep -E '^(PUSH_[A-Z0-9_]+|REDIS_URL)=.' || true)
  )
fi
TIMEOUT="${PUSH_START_TIMEOUT_S:-30}"
need_uint PUSH_START_TIMEOUT_S "$TIMEOUT" 1 3600

if [ "${PUSH_SKIP_SETUP:-0}" != 1 ]; then
  bash "$ROOT/scripts/setup.sh" || die "setup failed (install/build); see the messages above"
fi
raise_nofile

ensure_config_file

# 1. Redis.
# PUSH_REDIS_CLUSTER=1: every private node is a Cluster node (its nodes.conf in its data directory).
CLUSTER_ARGS=()
if [ "${REDIS_CLUSTER:-0}" = 1 ]; then CLUSTER_ARGS=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000); fi
if [ "$PRIVATE_REDIS" = 1 ]; then
  if ! live_pid redis >/dev/null; then
    command -v redis-server >/dev/null || die "redis-server is not installed (scripts/setup.sh installs it)"
    if port_in_use "$REDIS_PORT"; then
      die "127.0.0.1:$REDIS_PORT (PUSH_REDIS_PORT) is taken by another process, so the private redis-server cannot start; stop that process or npm stop and start on another PUSH_REDIS_PORT"
    fi
    mkdir -p "$RUN_DIR/redis"
    # AOF (fsync every second) so a restart of the stack keeps messages not yet delivered.
    setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN_DIR/redis" --appendonly yes \
      --appendfsync everysec --save "" --daemonize no --logfile "$LOG_DIR/redis.log" --maxclients 10000 "${CLUSTER_ARGS[@]}" </dev/null >/dev/null 2>&1 &
    echo $! >"$(pid_file redis)"
    say "redis-server starting on 127.0.0.1:$REDIS_PORT (data in $RUN_DIR/redis)"
    # Single-threaded, and every publish and delivery waits on it: ahead of the app processes it
    # is not preempted in the middle of a publish script (docs/operations.md). Only root may.
    if [ "$(id -u)" = 0 ] && renice -n -10 -p "$!" >/dev/null 2>&1; then say "redis-server runs at nice -10"; fi
  fi
  # Ready only when the redis-server answering on the port is the one we started (its INFO
  # process_id is our pid): any PONG would also accept someone else's Redis on that port.
  ours="$(tr -dc '0-9' <"$(pid_file redis)")"
  for ((i = 0; ; i++)); do
    answering="$(redis_answering_pid)"
    [ -n "$answering" ] && [ "$answering" = "$ours" ] && break
    if [ -n "$answering" ]; then
      stop_pid "$ours" 5 || true
      die "127.0.0.1:$REDIS_PORT is answered by another redis-server (pid $answering), not the one this stack started (pid $ours); choose a free PUSH_REDIS_PORT (npm stop first) or set REDIS_URL"
    fi
    kill -0 "$ours" 2>/dev/null || die "redis-server exited; see $LOG_DIR/redis.log (is 127.0.0.1:$REDIS_PORT taken?)"
    [ "$i" -lt $((TIMEOUT * 10)) ] || die "redis-server did not answer within ${TIMEOUT}s; see $LOG_DIR/redis.log"
    sleep 0.1
  done
  # PUSH_REDIS_SENTINEL=1: a replica and three sentinels beside it, to try failover on one machine.
  # The group is laid out anew on every start (the master on PUSH_REDIS_PORT), whatever a failover
  # changed while it ran.
  while read -r name port; do
    live_pid "$name" >/dev/null && continue
    port_in_use "$port" && die "127.0.0.1:$port (for $name, PUSH_REDIS_PORT+n) is taken by another process; choose another PUSH_REDIS_PORT"
    mkdir -p "$RUN_DIR/$name"
    if [[ "$name" == redis-cluster-* ]]; then
      setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN_DIR/$name" --appendonly yes --appendfsync everysec --save "" \
        --daemonize no --logfile "$LOG_DIR/$name.log" --maxclients 10000 "${CLUSTER_ARGS[@]}" </dev/null >/dev/null 2>&1 &
    elif [ "$name" = redis-replica ]; then
      setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN_DIR/$name" --appendonly yes --appendfsync everysec --save "" \
        --replicaof 127.0.0.1 "$REDIS_PORT" --daemonize no --logfile "$LOG_DIR/$name.log" --maxclients 10000 </dev/null >/dev/null 2>&1 &
    else
      # Sentinels rewrite their file with what they learn; a fresh one each start.
      printf '%s\n' "port $port" "bind 127.0.0.1" "dir $RUN_DIR/$name" \
        "sentinel monitor $SENTINEL_MASTER 127.0.0.1 $REDIS_PORT 2" "sentinel down-after-milliseconds $SENTINEL_MASTER 2000" \
        "sentinel failover-timeout $SENTINEL_MASTER 10000" >"$RUN_DIR/$name/sentinel.conf"
      setsid redis-server "$RUN_DIR/$name/sentinel.conf" --sentinel --logfile "$LOG_DIR/$name.log" </dev/null >/dev/null 2>&1 &
    fi
    echo $! >"$(pid_file "$name")"
    say "$name starting on 127.0.0.1:$port"
  done < <(redis_group_nodes)
  while read -r name port; do
    for ((i = 0; ; i++)); do
      # The replica counts once it is in sync: PUSH_PUBLISH_DURABILITY=replicated needs it at once.
      if [[ "$name" == redis-cluster-* ]]; then
        redis_pings "$port" && break
      elif [ "$name" = redis-replica ]; then
        { redis-cli -p "$port" info replication 2>/dev/null || true; } | grep -q '^master_link_status:up' && break
      else
        # A sentinel is ready once it knows the replica: before that a failover has nowhere to go.
        { redis-cli -p "$port" sentinel replicas "$SENTINEL_MASTER" 2>/dev/null || true; } | grep -qx "$((REDIS_PORT + 1))" && break
      fi
      live_pid "$name" >/dev/null || die "$name exited; see $LOG_DIR/$name.log"
      [ "$i" -lt $((TIMEOUT * 10)) ] || die "$name did not answer within ${TIMEOUT}s; see $LOG_DIR/$name.log"
      sleep 0.1
    done
  done < <(redis_group_nodes)
  # The Cluster is created once (three masters, a replica each); later starts find it in the
  # nodes' nodes.conf. Ready when every slot is served.
  if [ "${REDIS_CLUSTER:-0}" = 1 ]; then
    if ! { redis-cli -p "$REDIS_PORT" cluster info 2>/dev/null || true; } | grep -q '^cluster_slots_assigned:16384'; then
      say "creating the private Redis Cluster (3 masters, 3 replicas)"
      redis-cli --cluster create $(for ((k = 0; k < 6; k++)); do echo "127.0.0.1:$((REDIS_PORT + k))"; done) --cluster-replicas 1 --cluster-yes >"$LOG_DIR/redis-cluster-create.log" 2>&1 ||
        die "redis-cli --cluster create failed; see $LOG_DIR/redis-cluster-create.log"
    fi
    # And every master has its replica in sync: PUSH_PUBLISH_DURABILITY=replicated needs it at once.
    cluster_ready() {
      { redis-cli -p "$REDIS_PORT" cluster info 2>/dev/null || true; } | grep -q '^cluster_state:ok' || return 1
      local k info
      for ((k = 0; k < 6; k++)); do
        info="$({ redis-cli -p $((REDIS_PORT + k)) info replication 2>/dev/null || true; } | tr -d '\r')"
        if grep -q '^role:master' <<<"$info"; then grep -q '^slave0:.*state=online' <<<"$info" || return 1
        else grep -q '^master_link_status:up' <<<"$info" || return 1; fi
      done
    }
    for ((i = 0; ; i++)); do
      cluster_ready && break
      [ "$i" -lt $((TIMEOUT * 10)) ] || die "the private Redis Cluster did not reach cluster_state:ok with every replica in sync within ${TIMEOUT}s; see $LOG_DIR/redis*.log"
      sleep 0.1
    done
  fi
fi

# 2. Apps.
urls=()
for kind in publisher listener; do
  for ((i = 1; i <= $(app_count $kind); i++)); do
    port="$(app_port $kind "$i")"
    urls+=("http://127.0.0.1:$port/readyz")
    live_pid "$kind-$i" >/dev/null && continue
    # Down but supervised: its supervisor is bringing it back (or waiting out a back-off).
    if sup="$(live_supervisor "$kind-$i")"; then say "$kind-$i is being restarted by its supervisor (pid $sup)"; continue; fi
    start_app "$kind" "$i"
    say "$kind-$i starting on 127.0.0.1:$port (log $LOG_DIR/$kind-$i.log)"
  done
done

# 3. nginx (rendered for these counts; reloaded if it already runs).
prefix="$(nginx_prefix)"
nginx_log_start="$(log_mark "$LOG_DIR/nginx-error.log")"
render_nginx "$prefix/nginx.conf.new" || die "could not render the nginx config" 2
if ! "$NGINX_BIN" -t -q -p "$prefix" -c "$prefix/nginx.conf.new" -e "$LOG_DIR/nginx-error.log"; then
  die "the rendered nginx config $prefix/nginx.conf.new does not pass nginx -t"
fi
if pid="$(live_pid nginx)"; then
  if cmp -s "$prefix/nginx.conf.new" "$prefix/nginx.conf"; then
    # A reload restarts the workers and drops idle keep-alive client connections: only for a change.
    rm -f "$prefix/nginx.conf.new"
    say "nginx config unchanged (pid $pid)"
  else
    mv "$prefix/nginx.conf.new" "$prefix/nginx.conf"
    kill -HUP "$pid"
    say "nginx reloaded (pid $pid)"
  fi
else
  mv "$prefix/nginx.conf.new" "$prefix/nginx.conf"
  nginx_cmd || die "nginx did not start; see $LOG_DIR/nginx-error.log"
  say "nginx starting on $FRONT_BIND:$FRONT_PORT"
fi

front="http://$(front_host):$FRONT_PORT"
urls+=("$front/healthz" "$front/readyz")
if ! wait_ready "$TIMEOUT" "${urls[@]}"; then
  for kind in publisher listener; do
    for ((i = 1; i <= $(app_count $kind); i++)); do
      # Not running, or started again by its supervisor after it died: its log says why.
      if ! live_pid "$kind-$i" >/dev/null || grep -q '"supervisor"' "$LOG_DIR/$kind-$i.log" 2>/dev/null; then
        warn "$kind-$i is not running or was restarted; last lines of $LOG_DIR/$kind-$i.log:"
        tail -n 5 "$LOG_DIR/$kind-$i.log" >&2 || true
      fi
    done
  done
  die "the stack did not become ready (waited at most ${TIMEOUT}s; scripts/status.sh shows what is up; npm stop cleans up)"
fi

report_nginx_alerts "$nginx_log_start"
render_logrotate "$RUN_DIR/logrotate.conf"

ws="${front/http:/ws:}"
cat <<MSG
push start: ready ($PUBLISHERS publishers, $LISTENERS listeners, redis $EFFECTIVE_REDIS_URL)
  publish:      $front/bitrix/pub/?CHANNEL_ID=<channel id>
  long poll:    $front/bitrix/sub/?CHANNEL_ID=<signed channel id>
  WebSocket:    $ws/bitrix/subws/?CHANNEL_ID=<signed channel id>
  status page:  $front/status
  server stat:  $front/server-stat/
  metrics:      http://127.0.0.1:<process port>/metrics (publishers from $PUBLISHER_PORT, listeners from $LISTENER_PORT)
  unsigned publish: $(publish_policy_text)
  admin pages:  /status, /server-stat/, /metrics $(admin_policy_text)
  config/keys:  $CONFIG_FILE
  logs:         $LOG_DIR (rotate: logrotate -s $RUN_DIR/logrotate.state $RUN_DIR/logrotate.conf, e.g. hourly from cron)
  stop:         npm stop    status: bash scripts/status.sh    rolling restart: bash scripts/restart.sh
MSG
