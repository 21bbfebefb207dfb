#!/usr/bin/env bash
# Keeps one app process of the npm start stack running, where no systemd does (under systemd the
# packaged units' Restart= does this). Started by start_app in scripts/lib/common.sh:
#   supervise.sh NAME PIDFILE LOGFILE COMMAND...
# Runs COMMAND with its output appended to LOGFILE and its pid in PIDFILE (what stop, status and
# restart act on). When it exits:
#   - after SIGTERM/SIGINT to this supervisor (npm stop): the supervisor forwards the signal, waits
#     for the process and exits, restarting nothing;
#   - with status 0 (it was told to stop, e.g. the rolling restart's drain): started again at once;
#   - with status 2 (bad configuration: it would fail the same way again): not restarted;
#   - otherwise (a crash, kill -9): started again, at once the first time, then after 1, 2, 4 ...
#     up to 30 s while it keeps dying within 30 s of its start, so a crash loop does not spin.
# Each exit is logged to LOGFILE as a JSON line like the apps' own (pino level 40 = warn).
set -uo pipefail
name=$1 pidfile=$2 log=$3
shift 3

stopping=0
child=""
pause=""
on_stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  [ -n "$pause" ] && kill -TERM "$pause" 2>/dev/null
}
trap on_stop TERM INT
trap '' HUP

note() { # message
  printf '{"level":40,"time":%s,"pid":%s,"supervisor":"%s","msg":"%s"}\n' "$(date +%s%3N)" "$$" "$name" "$1" >>"$log"
}

delay=0
while :; do
  started=$(date +%s)
  "$@" >>"$log" 2>&1 </dev/null &
  child=$!
  printf '%s\n' "$child" >"$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"
  # A trapped signal interrupts wait; wait again until the process is really gone, then once more
  # for its own exit status (bash keeps it for a reaped child).
  wait "$child"
  while kill -0 "$child" 2>/dev/null; do wait "$child"; done
  wait "$child" 2>/dev/null
  rc=$?
  [ "$stopping" = 1 ] && exit 0
  if [ "$rc" -gt 128 ]; then how="was killed by signal $((rc - 128))"; else how="exited with status $rc"; fi
  if [ "$rc" = 2 ]; then
    note "$name (pid $child) $how (bad configuration): not restarted; fix the settings and run npm start"
    exit 2
  fi
  if [ "$rc" = 0 ] || [ $(( $(date +%s) - started )) -ge 30 ]; then delay=0; fi
  note "$name (pid $child) $how; starting it again in ${delay}s"
  if [ "$delay" -gt 0 ]; then
    sleep "$delay" &
    pause=$!
    wait "$pause"
    pause=""
    [ "$stopping" = 1 ] && exit 0
  fi
  if [ "$rc" = 0 ]; then delay=0; elif [ "$delay" = 0 ]; then delay=1; else delay=$(( delay * 2 > 30 ? 30 : delay * 2 )); fi
done
