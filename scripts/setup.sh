#!/usr/bin/env bash
# Installs what the stack needs on a fresh Debian/Ubuntu box and builds it. Safe to run again:
# every step is skipped when already done. Used by `npm start` and `npm test`.
#   SETUP_PACKAGES   extra Debian packages to install (space separated), e.g. "php-cli chromium"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
# nginx's JavaScript module: the front checks request headers with it (nginx/header-guard.js).
[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || need+=(libnginx-mod-http-js)
# On glibc older than 2.38 (Debian 12) uWebSockets.js's binding for Node 20 is made loadable by
# scripts/uws-compat.sh, which needs a C compiler and patchelf.
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || true
if [ "$(uname -m)" = x86_64 ] && [ -n "$glibc" ] && [ "$(printf '%s\n2.38\n' "$glibc" | sort -V | head -1)" != 2.38 ]; then
  command -v cc >/dev/null 2>&1 || need+=(gcc)
  [ -f /usr/include/stdio.h ] || need+=(libc6-dev)
  command -v patchelf >/dev/null 2>&1 || need+=(patchelf)
  command -v objcopy >/dev/null 2>&1 || need+=(binutils)
fi
for p in ${SETUP_PACKAGES:-}; do
  case "$p" in
    php-cli) command -v php >/dev/null 2>&1 || need+=(php-cli) ;;
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
    *) dpkg -s "$p" >/dev/null 2>&1 || need+=("$p") ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    say "missing ${need[*]} and not root: install them with your package manager" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or does not hold what the lock file pins. Compared by content
# with npm's record of the last install (node_modules/.package-lock.json), not by modification
# time: a checkout or commit that merely touches the lock file must not wipe and reinstall
# node_modules under processes and tests that are using it.
lock_installed() {
  [ -f node_modules/.package-lock.json ] || return 1
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages ?? {};
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages ?? {};
    for (const [name, p] of Object.entries(want)) {
      if (!name.startsWith("node_modules/")) continue;
      const got = have[name];
      if (got === undefined && p.optional) continue; // optional, e.g. for another platform
      if (got === undefined || got.version !== p.version || got.resolved !== p.resolved) process.exit(1);
    }' 2>/dev/null
}
if [ ! -d node_modules ] || ! lock_installed; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/uws-compat.sh

say "building (tsc -b)"
./node_modules/.bin/tsc -b
