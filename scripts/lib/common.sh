# Shared by scripts/start.sh, stop.sh, status.sh and restart.sh (sourced, not run).
#
# Settings (environment; every one optional):
#   PUSH_RUN_DIR          run directory: pid files, rendered nginx config, private Redis data (./run)
#   PUSH_LOG_DIR          per-process logs ($PUSH_RUN_DIR/log)
#   PUSH_LISTENERS        listener processes (number of cores)
#   PUSH_PUBLISHERS       publisher processes (2)
#   PUSH_FRONT_BIND       address nginx listens on (127.0.0.1; 0.0.0.0 to serve other machines)
#   PUSH_FRONT_PORT       nginx port, the one URL clients and portals use (8080)
#   PUSH_PUBLISHER_PORT   first publisher port; publisher i listens on PORT+i-1 (9010)
#   PUSH_LISTENER_PORT    first listener port; listener i listens on PORT+i-1 (8010)
#   PUSH_REDIS_PORT       port of the private redis-server (6399); unused when REDIS_URL is set
#   PUSH_REDIS_SENTINEL   1 = the private Redis is a Sentinel group for trying failover: master on
#                         PUSH_REDIS_PORT, a replica on +1, three sentinels on +2..+4 (0)
#   PUSH_REDIS_CLUSTER    1 = the private Redis is a Redis Cluster for trying sharding and failover:
#                         six nodes on PUSH_REDIS_PORT..+5, three masters with a replica each (0)
#   REDIS_URL             use this Redis instead of starting a private one
#   PUSH_CONFIG_FILE      KEY=VALUE file the apps read (./.push/config.env, keys generated once)
#   PUSH_PUB_ALLOW        addresses/CIDRs allowed to publish through nginx (empty = everyone)
#   PUSH_PUBLISH_TRUSTED_NETWORKS  (an app setting the scripts give a default) sources allowed to
#                         publish unsigned: PUSH_PUB_ALLOW, or this host when that is empty;
#                         `none` = every publisher request must be signed
#   PUSH_SUB_CONN_PER_IP  concurrent subscriber connections per client address in nginx (200)
#   PUSH_NGINX_WORKERS    nginx worker processes (auto)
#   PUSH_NGINX_USER       user[ group] for nginx workers when started as root (root)
#   PUSH_NGINX_ACCESS_LOG on|off (off)
#   PUSH_NOFILE           open-file limit to raise to (65536)
#   PUSH_START_TIMEOUT_S  how long start/restart wait for readiness (30)
#   PUSH_SKIP_SETUP       1 = do not run scripts/setup.sh (install + build) first
# Every other PUSH_* variable (see README) is passed through to the apps unchanged.
#
# Exit codes used by the scripts: 0 done, 1 failed (message says what; logs in PUSH_LOG_DIR),
# 2 bad settings, 3 (status.sh) not running.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPT_NAME="$(basename "$0" .sh)"

say() { printf 'push %s: %s\n' "$SCRIPT_NAME" "$*"; }
warn() { printf 'push %s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { warn "$1"; exit "${2:-1}"; }

abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

RUN_DIR="$(abspath "${PUSH_RUN_DIR:-$ROOT/run}")"
STATE_FILE="$RUN_DIR/state.env"
APP_ENV_FILE="$RUN_DIR/app.env"
PID_DIR="$RUN_DIR/pids"

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
need_uint() { # name value min max
  is_uint "$2" && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || die "$1 must be a whole number from $3 to $4, got '$2'" 2
}

# Settings for a new start, from the environment and defaults.
settings_from_env() {
  LOG_DIR="$(abspath "${PUSH_LOG_DIR:-$RUN_DIR/log}")"
  LISTENERS="${PUSH_LISTENERS:-$(nproc 2>/dev/null || echo 2)}"
  PUBLISHERS="${PUSH_PUBLISHERS:-2}"
  FRONT_BIND="${PUSH_FRONT_BIND:-127.0.0.1}"
  FRONT_PORT="${PUSH_FRONT_PORT:-8080}"
  PUBLISHER_PORT="${PUSH_PUBLISHER_PORT:-9010}"
  LISTENER_PORT="${PUSH_LISTENER_PORT:-8010}"
  REDIS_PORT="${PUSH_REDIS_PORT:-6399}"
  CONFIG_FILE="$(abspath "${PUSH_CONFIG_FILE:-$ROOT/.push/config.env}")"
  PUB_ALLOW="${PUSH_PUB_ALLOW:-}"
  SUB_CONN_PER_IP="${PUSH_SUB_CONN_PER_IP:-200}"
  NGINX_WORKERS="${PUSH_NGINX_WORKERS:-auto}"
  NGINX_USER="${PUSH_NGINX_USER:-root}"
  NGINX_ACCESS_LOG="${PUSH_NGINX_ACCESS_LOG:-off}"
  NOFILE="${PUSH_NOFILE:-65536}"
  REDIS_SENTINEL="${PUSH_REDIS_SENTINEL:-0}"
  [[ "$REDIS_SENTINEL" =~ ^[01]$ ]] || die "PUSH_REDIS_SENTINEL must be 0 or 1, got '$REDIS_SENTINEL'" 2
  REDIS_CLUSTER="${PUSH_REDIS_CLUSTER:-0}"
  [[ "$REDIS_CLUSTER" =~ ^[01]$ ]] || die "PUSH_REDIS_CLUSTER must be 0 or 1, got '$REDIS_CLUSTER'" 2
  [ "$REDIS_SENTINEL$REDIS_CLUSTER" != 11 ] || die "PUSH_REDIS_SENTINEL=1 and PUSH_REDIS_CLUSTER=1 exclude each other; choose one" 2
  if [ -n "${REDIS_URL:-}" ]; then PRIVATE_REDIS=0; EFFECTIVE_REDIS_URL="$REDIS_URL"; REDIS_SENTINEL=0; REDIS_CLUSTER=0; else PRIVATE_REDIS=1; EFFECTIVE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"; fi
  need_uint PUSH_LISTENERS "$LISTENERS" 1 256
  need_uint PUSH_PUBLISHERS "$PUBLISHERS" 1 64
  need_uint PUSH_FRONT_PORT "$FRONT_PORT" 1 65535
  need_uint PUSH_PUBLISHER_PORT "$PUBLISHER_PORT" 1 $((65536 - PUBLISHERS))
  need_uint PUSH_LISTENER_PORT "$LISTENER_PORT" 1 $((65536 - LISTENERS))
  need_uint PUSH_REDIS_PORT "$REDIS_PORT" 1 65535
  if [ "$REDIS_SENTINEL" = 1 ]; then
    need_uint PUSH_REDIS_PORT "$REDIS_PORT" 1 65531
    EFFECTIVE_REDIS_URL="redis+sentinel://127.0.0.1:$((REDIS_PORT + 2)),127.0.0.1:$((REDIS_PORT + 3)),127.0.0.1:$((REDIS_PORT + 4))/$SENTINEL_MASTER"
  fi
  if [ "$REDIS_CLUSTER" = 1 ]; then
    # Cluster bus ports are the data ports + 10000.
    need_uint PUSH_REDIS_PORT "$REDIS_PORT" 1 55530
    EFFECTIVE_REDIS_URL="redis+cluster://$(for ((k = 0; k < 6; k++)); do printf '127.0.0.1:%s%s' $((REDIS_PORT + k)) "$([ $k -lt 5 ] && echo ,)"; done)"
  fi
  need_uint PUSH_SUB_CONN_PER_IP "$SUB_CONN_PER_IP" 1 1000000
  need_uint PUSH_NOFILE "$NOFILE" 1024 10000000
  [[ "$NGINX_WORKERS" =~ ^(auto|[0-9]{1,3})$ ]] || die "PUSH_NGINX_WORKERS must be auto or a number, got '$NGINX_WORKERS'" 2
  [[ "$NGINX_ACCESS_LOG" =~ ^(on|off)$ ]] || die "PUSH_NGINX_ACCESS_LOG must be on or off, got '$NGINX_ACCESS_LOG'" 2
  local a b
  a=$PUBLISHER_PORT; b=$((PUBLISHER_PORT + PUBLISHERS - 1))
  if [ "$LISTENER_PORT" -le "$b" ] && [ $((LISTENER_PORT + LISTENERS - 1)) -ge "$a" ]; then
    die "publisher ports $a-$b overlap listener ports $LISTENER_PORT-$((LISTENER_PORT + LISTENERS - 1))" 2
  fi
}

STATE_VARS=(LOG_DIR LISTENERS PUBLISHERS FRONT_BIND FRONT_PORT PUBLISHER_PORT LISTENER_PORT REDIS_PORT CONFIG_FILE PUB_ALLOW SUB_CONN_PER_IP NGINX_WORKERS NGINX_USER NGINX_ACCESS_LOG NOFILE PRIVATE_REDIS EFFECTIVE_REDIS_URL REDIS_SENTINEL REDIS_CLUSTER)
# The name the private Sentinel group monitors (PUSH_REDIS_SENTINEL=1).
SENTINEL_MASTER=push

# What a start decided is written down, so stop/status/restart act on exactly that whatever their
# own environment says.
write_state() {
  mkdir -p "$RUN_DIR"
  local tmp="$STATE_FILE.tmp" v
  : >"$tmp"
  for v in "${STATE_VARS[@]}"; do printf '%s=%q\n' "$v" "${!v}" >>"$tmp"; done
  mv "$tmp" "$STATE_FILE"
}
load_state() {
  [ -f "$STATE_FILE" ] || return 1
  # shellcheck disable=SC1090
  source "$STATE_FILE"
}

front_host() { case "$FRONT_BIND" in 0.0.0.0|'*') echo 127.0.0.1 ;; ::|'[::]') echo '[::1]' ;; *) echo "$FRONT_BIND" ;; esac; }
app_port() { # kind index(1-based)
  if [ "$1" = publisher ]; then echo $((PUBLISHER_PORT + $2 - 1)); else echo $((LISTENER_PORT + $2 - 1)); fi
}
app_count() { if [ "$1" = publisher ]; then echo "$PUBLISHERS"; else echo "$LISTENERS"; fi; }

pid_file() { echo "$PID_DIR/$1.pid"; }
nginx_prefix() { echo "$RUN_DIR/nginx"; }

# The pid in a pid file, only if that process is alive AND still the program we started (a pid
# recycled by an unrelated process after a crash must never receive our signals).
live_pid() { # name
  local f pid cmd want
  f="$(pid_file "$1")"
  [ "$1" = nginx ] && f="$(nginx_prefix)/nginx.pid"
  [ -s "$f" ] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$1" in
    publisher-*) want="apps/publisher/dist/main.js" ;;
    listener-*) want="apps/listener/dist/main.js" ;;
    redis | redis-replica | sentinel-* | redis-cluster-*) want="redis-server" ;;
    nginx) want="nginx" ;;
  esac
  [[ "$cmd" == *"$want"* ]] || return 1
  echo "$pid"
}

# Sends SIGTERM (or $3; 0 = only wait, the signal was sent already) and waits up to $2 seconds.
# Returns 0 when the process exited by itself, 1 when it had to be killed with SIGKILL: it did not
# shut down cleanly (an app skipped its drain, Redis may not have finished its AOF write).
stop_pid() { # pid timeout_s [signal]
  local pid=$1 t=$2 sig=${3:-TERM} i
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  warn "pid $pid did not exit within ${t}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  return 1
}

# Raises this shell's open-file limit (inherited by everything it starts) to PUSH_NOFILE. What it
# could not raise is said at once with what to do: the processes would otherwise run out of
# descriptors under load with nothing in the start output to explain it.
raise_nofile() {
  local hard
  hard="$(ulimit -Hn)"
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$NOFILE" ]; then
    ulimit -Hn "$NOFILE" 2>/dev/null && hard="$NOFILE"
  fi
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$NOFILE" ]; then ulimit -n "$NOFILE"; else ulimit -n "$hard"; fi
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NOFILE" ]; then
    warn "limit: open files is $(ulimit -n), not PUSH_NOFILE=$NOFILE: the hard limit $hard could not be raised (not permitted here). Each subscriber needs about 3 descriptors, so this caps the stack at about $(( $(ulimit -n) / 3 )) connections. Raise the hard limit (LimitNOFILE= in a systemd unit, /etc/security/limits.d/ for the user, or the container's --ulimit nofile) and start again, or set PUSH_NOFILE=$hard to accept it (docs/operations.md, Sizing)"
  fi
}

# Byte size of a log file now (0 when missing), to read only what a step appends to it.
log_mark() { stat -c %s "$1" 2>/dev/null || echo 0; }

# nginx's alerts written since mark (e.g. a worker's `setrlimit(RLIMIT_NOFILE, N) failed` when
# worker_rlimit_nofile is above the hard limit: nginx starts anyway and runs with less), printed
# once each with what to do.
report_nginx_alerts() { # mark
  local log="$LOG_DIR/nginx-error.log" line seen=""
  [ -f "$log" ] || return 0
  while IFS= read -r line; do
    # One line per kind of alert: every worker writes its own copy.
    local what="${line#* \[}"
    what="${what#*\] }"
    what="$(printf '%s' "$what" | sed -E 's/^[0-9]+#[0-9]+: //')"
    case "$seen" in *"|$what|"*) continue ;; esac
    seen="$seen|$what|"
    if [[ "$what" == *setrlimit* ]]; then
      warn "limit: nginx: $what. nginx workers run with the inherited open-file limit ($(ulimit -n)) instead of worker_rlimit_nofile $NOFILE, so they refuse connections past it. Raise the hard limit (LimitNOFILE=, /etc/security/limits.d/, the container's --ulimit nofile) or set PUSH_NOFILE to at most $(ulimit -Hn)"
    else
      warn "nginx: $what (in $log)"
    fi
  done < <(tail -c +"$(( $1 + 1 ))" "$log" | grep -E '\[(alert|emerg|crit)\]' || true)
}

# Starts one app process, detached in its own session so it outlives this script and a Ctrl-C in
# the terminal, with the environment saved at start (app.env) so restarts behave the same.
start_app() { # kind index
  local kind=$1 i=$2 name port
  name="$kind-$i"
  port="$(app_port "$kind" "$i")"
  mkdir -p "$PID_DIR" "$LOG_DIR" "$RUN_DIR/supervise"
  rm -f "$(pid_file "$name")"
  (
    # The app settings are exactly those saved at start (app.env), whatever this shell says now:
    # a later start or restart must not change what half of the processes run with.
    for v in $(compgen -e); do
      case "$v" in PUSH_*|REDIS_URL) unset "$v" ;; esac
    done
    set -a
    # shellcheck disable=SC1090
    [ -f "$APP_ENV_FILE" ] && source "$APP_ENV_FILE"
    set +a
    export PUSH_PORT="$port" REDIS_URL="$EFFECTIVE_REDIS_URL" PUSH_CONFIG_FILE="$CONFIG_FILE" PUSH_HOST="${PUSH_HOST:-127.0.0.1}"
    # Publish authentication (docs/security.md). nginx on this host is the stack's only way in, so
    # the publishers believe its X-Real-IP (unless PUSH_TRUSTED_PROXIES is given), and unsigned
    # publishing follows publish_trust below.
    if [ -z "${PUSH_TRUSTED_PROXIES:-}" ] && [ -z "$(config_file_setting PUSH_TRUSTED_PROXIES)" ]; then
      export PUSH_TRUSTED_PROXIES="127.0.0.1/32,::1/128"
    fi
    publish_trust
    [ "$PUBLISH_TRUSTED_FROM" = default ] && export PUSH_PUBLISH_TRUSTED_NETWORKS="$PUBLISH_TRUSTED"
    cd "$ROOT"
    # Its own session (outlives this script and a Ctrl-C in the terminal); the supervisor starts
    # the app, writes its pid file and starts it again when it dies (scripts/lib/supervise.sh).
    exec setsid bash "$ROOT/scripts/lib/supervise.sh" "$name" "$(pid_file "$name")" "$LOG_DIR/$name.log" node "apps/$kind/dist/main.js" </dev/null >/dev/null 2>&1
  ) &
  echo $! >"$(supervisor_pid_file "$name")"
  # The callers read the app's pid file next: wait until the supervisor has written it.
  local t
  for ((t = 0; t < 50; t++)); do live_pid "$name" >/dev/null && return 0; sleep 0.1; done
  warn "$name did not start; see $LOG_DIR/$name.log"
}

supervisor_pid_file() { echo "$RUN_DIR/supervise/$1.pid"; }
# The pid of an app's supervisor (scripts/lib/supervise.sh), only if it is alive and still that.
live_supervisor() { # name
  local f pid
  f="$(supervisor_pid_file "$1")"
  [ -s "$f" ] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"scripts/lib/supervise.sh $1 "* ]] || return 1
  echo "$pid"
}

render_nginx() { # out
  local pubs=() subs=() i
  for ((i = 1; i <= PUBLISHERS; i++)); do pubs+=("127.0.0.1:$(app_port publisher "$i")"); done
  for ((i = 1; i <= LISTENERS; i++)); do subs+=("127.0.0.1:$(app_port listener "$i")"); done
  local hold ws body
  hold="$(app_setting PUSH_LONGPOLL_TIMEOUT_S 40)"
  ws="$(app_setting PUSH_WS_IDLE_TIMEOUT_S 120)"
  body="$(app_setting PUSH_MAX_BODY_BYTES 1048576)"
  mkdir -p "$(nginx_prefix)/tmp" "$LOG_DIR"
  node "$ROOT/scripts/lib/render-nginx.mjs" --out "$1" --prefix "$(nginx_prefix)" --log-dir "$LOG_DIR" \
    --publishers "${pubs[*]}" --listeners "${subs[*]}" --front-bind "$FRONT_BIND" --front-port "$FRONT_PORT" \
    --pub-allow "$PUB_ALLOW" --sub-conn-per-ip "$SUB_CONN_PER_IP" --max-body "$body" --hold-s "$hold" \
    --ws-idle-s "$ws" --workers "$NGINX_WORKERS" --nofile "$NOFILE" --user "$NGINX_USER" --access-log "$NGINX_ACCESS_LOG"
}

# A value saved in app.env (written with printf %q, so read it back the way bash wrote it).
saved_env_setting() { # NAME
  [ -f "$APP_ENV_FILE" ] || return 0
  # shellcheck disable=SC1090
  (unset "$1"; source "$APP_ENV_FILE"; printf '%s' "${!1:-}")
}
# A value in the config file, as the apps parse it (last line wins, optional quotes).
config_file_setting() { # NAME
  local v=""
  [ -f "$CONFIG_FILE" ] && v="$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$CONFIG_FILE" | tail -1)"
  v="${v%"${v##*[![:space:]]}"}"
  if [ "${#v}" -ge 2 ] && { [ "${v:0:1}" = '"' ] || [ "${v:0:1}" = "'" ]; } && [ "${v: -1}" = "${v:0:1}" ]; then v="${v:1:${#v}-2}"; fi
  printf '%s' "$v"
}
# An app setting as the apps will see it: saved environment, then the config file, then default.
app_setting() { # NAME default
  local v
  v="$(saved_env_setting "$1")"
  [ -z "$v" ] && v="$(config_file_setting "$1")"
  echo "${v:-$2}"
}

# Unsigned (Bitrix-style) publishing for the npm start stack. The server's own default is "none",
# but a portal on this host that publishes like Bitrix does (and the README's curl example) must
# work out of the box, so unless the operator says otherwise the publishers trust the networks
# nginx lets publish (PUSH_PUB_ALLOW), or this host only when that is empty. The operator's
# PUSH_PUBLISH_TRUSTED_NETWORKS (environment at start, or config file) wins; `none` turns unsigned
# publishing off (an empty value only means "not set": it cannot hide the config file's value).
# Sets PUBLISH_TRUSTED (the value) and PUBLISH_TRUSTED_FROM (environment | config file | default).
publish_trust() {
  PUBLISH_TRUSTED="$(saved_env_setting PUSH_PUBLISH_TRUSTED_NETWORKS)"
  PUBLISH_TRUSTED_FROM=environment
  if [ -z "$PUBLISH_TRUSTED" ]; then
    PUBLISH_TRUSTED="$(config_file_setting PUSH_PUBLISH_TRUSTED_NETWORKS)"
    PUBLISH_TRUSTED_FROM="config file"
  fi
  if [ -z "$PUBLISH_TRUSTED" ]; then
    PUBLISH_TRUSTED="${PUB_ALLOW:-127.0.0.1/32,::1/128}"
    PUBLISH_TRUSTED_FROM=default
  fi
}
# One line for the start output: who may publish without a signature, and how to change it.
publish_policy_text() {
  publish_trust
  local v="${PUBLISH_TRUSTED,,}"
  if [ "${v//[[:space:]]/}" = none ]; then
    echo "off: every publish, online-status query and mint must be signed (PUSH_PUBLISH_TRUSTED_NETWORKS=none, $PUBLISH_TRUSTED_FROM)"
  elif [ "$PUBLISH_TRUSTED_FROM" = default ]; then
    echo "allowed from $PUBLISH_TRUSTED (default: $([ -n "$PUB_ALLOW" ] && echo PUSH_PUB_ALLOW || echo this host); PUSH_PUBLISH_TRUSTED_NETWORKS=none requires signatures)"
  else
    echo "allowed from $PUBLISH_TRUSTED (PUSH_PUBLISH_TRUSTED_NETWORKS, $PUBLISH_TRUSTED_FROM; none requires signatures)"
  fi
}

# One line for the start output: who may read the admin pages (docs/security.md, "Admin pages").
admin_policy_text() {
  publish_trust
  local v="${PUBLISH_TRUSTED,,}" who
  if [ "${v//[[:space:]]/}" = none ]; then who="no address"; else who="$PUBLISH_TRUSTED"; fi
  if [ -n "$(app_setting PUSH_ADMIN_TOKEN '')" ]; then
    echo "from $who, or anywhere with Authorization: Bearer <PUSH_ADMIN_TOKEN>"
  else
    echo "from $who only (set PUSH_ADMIN_TOKEN to read them from elsewhere with a bearer token)"
  fi
}

# The pid of the redis-server answering on the private port ('' when nothing answers, or when
# what answers is not a redis-server that tells us, e.g. one with a password).
redis_answering_pid() {
  { redis-cli -p "$REDIS_PORT" info server 2>/dev/null || true; } | tr -d '\r' | sed -n 's/^process_id://p'
}
# The private Redis group's processes beside the first redis-server, name and port, one a line:
# a replica and three sentinels (PUSH_REDIS_SENTINEL=1), or five more Cluster nodes (PUSH_REDIS_CLUSTER=1).
redis_group_nodes() {
  if [ "${REDIS_SENTINEL:-0}" = 1 ]; then
    printf '%s %s\n' redis-replica $((REDIS_PORT + 1)) sentinel-1 $((REDIS_PORT + 2)) sentinel-2 $((REDIS_PORT + 3)) sentinel-3 $((REDIS_PORT + 4))
  fi
  if [ "${REDIS_CLUSTER:-0}" = 1 ]; then
    for ((k = 1; k < 6; k++)); do printf 'redis-cluster-%s %s\n' $((k + 1)) $((REDIS_PORT + k)); done
  fi
  return 0
}
# True when a redis-server (data node or sentinel) answers PING on 127.0.0.1:$1.
redis_pings() { [ "$({ redis-cli -p "$1" ping 2>/dev/null || true; } | tr -d '\r')" = PONG ]; }
# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
nginx_cmd() { "$NGINX_BIN" -p "$(nginx_prefix)" -c "$(nginx_prefix)/nginx.conf" -e "$LOG_DIR/nginx-error.log" "$@"; }

# Waits until every URL answers 200; gives up early when a process we started has died for good:
# Redis, or an app's supervisor (which ends only when its app cannot be restarted, e.g. exit 2 for
# a bad configuration; an app it restarts is waited for).
wait_ready() { # timeout_s url...
  local pids=() f p
  for f in "$PID_DIR"/redis.pid "$RUN_DIR"/supervise/*.pid; do [ -f "$f" ] && p="$(tr -dc '0-9' <"$f")" && [ -n "$p" ] && pids+=("$p"); done
  PROBE_PIDS="${pids[*]}" node "$ROOT/scripts/lib/probe.mjs" wait "$@"
}

# The config file every process reads (PUSH_CONFIG_FILE): created when missing, with a signature
# key generated once when neither the environment nor the file has one (never overwritten).
# Used by scripts/start.sh and scripts/standalone.sh, so both run with the same key.
ensure_config_file() {
  if [ -z "${PUSH_SIGNATURE_KEY:-}" ] && ! grep -qE '^[[:space:]]*PUSH_SIGNATURE_KEY=.{16,}' "$CONFIG_FILE" 2>/dev/null; then
    mkdir -p "$(dirname "$CONFIG_FILE")"
    (
      umask 077
      {
        [ -s "$CONFIG_FILE" ] || printf '# Push server settings read by every process (PUSH_CONFIG_FILE); the environment wins.\n# Generated by scripts/%s.sh. Keep it secret: the portal needs PUSH_SIGNATURE_KEY as its signature key.\n' "$SCRIPT_NAME"
        printf 'PUSH_SIGNATURE_KEY=%s\n' "$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")"
      } >>"$CONFIG_FILE"
    )
    say "generated a signature key in $CONFIG_FILE"
  fi
  [ -f "$CONFIG_FILE" ] || { mkdir -p "$(dirname "$CONFIG_FILE")"; (umask 077; printf '# Push server settings (PUSH_CONFIG_FILE); the environment wins.\n' >"$CONFIG_FILE"); }
}

# logrotate rules for this stack's logs (LOG_DIR), run by the operator or cron:
#   logrotate -s $RUN_DIR/logrotate.state $RUN_DIR/logrotate.conf
# The apps write to their stdout, which the scripts opened on the log file in append mode, so the
# apps' logs are copied and truncated in place (copytruncate): the processes need no signal and
# keep writing at the start of the emptied file; a line written during the copy itself can be lost.
# nginx reopens its logs on SIGUSR1 after a rename, losing nothing; redis-server opens its log file
# for every line, so a rename is all it needs.
render_logrotate() { # out
  local tmp="$1.tmp"
  cat >"$tmp" <<CONF
# Log rotation for the push server stack started by scripts/start.sh (rewritten at every start).
# Run: logrotate -s $RUN_DIR/logrotate.state $RUN_DIR/logrotate.conf   (e.g. hourly from cron)
"$LOG_DIR/publisher-*.log" "$LOG_DIR/listener-*.log" {
    daily
    maxsize 100M
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    copytruncate
}
"$LOG_DIR/nginx-error.log" "$LOG_DIR/nginx-access.log" {
    daily
    maxsize 100M
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    sharedscripts
    postrotate
        pid="\$(cat "$(nginx_prefix)/nginx.pid" 2>/dev/null)" && [ -n "\$pid" ] && kill -USR1 "\$pid" || true
    endscript
}
"$LOG_DIR/redis.log" {
    daily
    maxsize 100M
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
}
CONF
  chmod 0644 "$tmp"
  mv "$tmp" "$1"
}
