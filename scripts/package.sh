#!/usr/bin/env bash
# `npm run package`: builds the Debian package push-server_<version>_amd64.deb with dpkg-deb.
#   PUSH_PACKAGE_OUT  directory for the .deb (./build)
#   PUSH_SKIP_SETUP   1 = do not run scripts/setup.sh (install + build) first
# Contents: the built publisher, listener and pushctl with the workspace packages they import and
# the production dependencies from node_modules (uWebSockets.js 20.57.0 reduced to its linux x64
# binding for Node 20, plus the copy of it for glibc before 2.38 that scripts/uws-compat.sh makes,
# so one package serves Debian 12 and 13), under /usr/lib/push-server; /usr/bin/pushctl; systemd units; nginx config for the
# package's own nginx instance (/etc/push-server/nginx.conf); the settings template (the postinst
# makes /etc/push-server/push-server.env with a key of its own); logrotate rules; docs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'push package: %s\n' "$*"; }
die() { printf 'push package: %s\n' "$*" >&2; exit 1; }

command -v dpkg-deb >/dev/null || die "dpkg-deb is not installed (Debian package dpkg)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "builds amd64 packages only (the bundled uWebSockets.js binding is linux x64)"
if [ "${PUSH_SKIP_SETUP:-0}" != 1 ]; then bash scripts/setup.sh || die "setup failed (install/build)"; fi
# The copy for glibc before 2.38, made here whatever this machine's glibc (setup makes it only
# where it is needed); a no-op when setup made it already.
UWS_COMPAT_FORCE=1 bash scripts/uws-compat.sh || die "could not make the uWebSockets.js binding copy for glibc before 2.38"
VERSION="$(node -p 'require("./package.json").version')"
NODE_ABI=115 # Node 20: the package depends on it (below); its copy for older glibc is made for this ABI only
OUT="${PUSH_PACKAGE_OUT:-$ROOT/build}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d "$OUT/stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
LIB="$STAGE/usr/lib/push-server"

# 1. Code: built output and package.json of each workspace the processes and pushctl need.
for w in packages/protocol packages/runtime packages/backend apps/publisher apps/listener apps/cli; do
  [ -f "$w/dist/main.js" ] || [ -f "$w/dist/index.js" ] || die "$w is not built (npm run build)"
  mkdir -p "$LIB/$w"
  cp "$w/package.json" "$LIB/$w/"
  cp -r "$w/dist" "$LIB/$w/dist"
  find "$LIB/$w/dist" \( -name '*.tsbuildinfo' -o -name '*.test.*' -o -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.js.map' \) -delete
done
# Beside runtime's dist/, where its loader looks (packages/runtime/src/uws.ts).
mkdir -p "$LIB/packages/runtime/uws-compat"
install -m 0644 "packages/runtime/uws-compat/uws_linux_x64_${NODE_ABI}.node" packages/runtime/uws-compat/libisoc23-compat.so "$LIB/packages/runtime/uws-compat/"
mkdir -p "$LIB/apps/cli/bin"
cp apps/cli/bin/pushctl.js "$LIB/apps/cli/bin/"
node -e '
  const p = require("./package.json");
  const out = { name: p.name, version: p.version, private: true, description: p.description, license: p.license, type: p.type, engines: p.engines };
  require("fs").writeFileSync(process.argv[1], JSON.stringify(out, null, 2) + "\n");' "$LIB/package.json"

# 2. Production dependencies, exactly the lock file's non-dev entries, copied from node_modules;
#    the workspace packages are linked the way npm links them.
node -e '
  const fs = require("fs");
  const lock = require("./package-lock.json").packages;
  for (const [path, p] of Object.entries(lock)) {
    if (!path.startsWith("node_modules/") || p.dev || p.link) continue;
    if (!fs.existsSync(path)) { if (p.optional) continue; console.error("missing " + path + " (npm ci)"); process.exit(1); }
    console.log(path);
  }' >"$STAGE/deps.txt"
while IFS= read -r dep; do
  mkdir -p "$LIB/$(dirname "$dep")"
  # Nested dependencies are listed on their own; copy each package without its node_modules.
  mkdir -p "$LIB/$dep"
  tar -C "$dep" --exclude=./node_modules -cf - . | tar -C "$LIB/$dep" -xf -
done <"$STAGE/deps.txt"
rm "$STAGE/deps.txt"
# Native bindings for other platforms and Node versions would only be dead weight (about 100 MB):
# the package targets Node 20 (Depends below).
find "$LIB/node_modules/@btc-vision/uwebsockets.js" -name 'uws_*.node' ! -name "uws_linux_x64_${NODE_ABI}.node" -delete
[ -f "$LIB/node_modules/@btc-vision/uwebsockets.js/uws_linux_x64_${NODE_ABI}.node" ] || die "uWebSockets.js has no binding for Node 20 (npm ci)"
mkdir -p "$LIB/node_modules/@push"
for w in protocol runtime backend; do ln -s "../../packages/$w" "$LIB/node_modules/@push/$w"; done
for w in publisher listener cli; do ln -s "../../apps/$w" "$LIB/node_modules/@push/$w"; done

# 3. Commands, units, configuration, rotation, docs.
install -D -m 0755 /dev/stdin "$STAGE/usr/bin/pushctl" <<'SH'
#!/bin/sh
exec /usr/bin/node /usr/lib/push-server/apps/cli/bin/pushctl.js "$@"
SH
for u in packaging/systemd/*; do install -D -m 0644 "$u" "$STAGE/lib/systemd/system/$(basename "$u")"; done
install -D -m 0644 packaging/logrotate/push-server "$STAGE/etc/logrotate.d/push-server"
install -D -m 0644 packaging/debian/push-server.env "$STAGE/usr/share/push-server/push-server.env"
mkdir -p "$STAGE/etc/push-server"
node scripts/lib/render-nginx.mjs --out "$STAGE/etc/push-server/nginx.conf" --prefix /var/lib/push-server/nginx --log-dir /var/log/push-server \
  --publishers "127.0.0.1:9010 127.0.0.1:9011" --listeners "127.0.0.1:8010 127.0.0.1:8011" --front-bind 0.0.0.0 --front-port 8080 \
  --pub-allow "127.0.0.1/32 ::1/128" --workers auto --nofile 65536
# The master runs as root under systemd; its workers as the package's user (the renderer writes
# this line only when it runs as root itself).
sed -i -E 's/^(# user: .*|user .*;)$/user push-server push-server;/' "$STAGE/etc/push-server/nginx.conf"
grep -q '^user push-server push-server;$' "$STAGE/etc/push-server/nginx.conf" || die "rendered nginx config has no user line"
{
  printf '# /etc/push-server/nginx.conf of the push-server package, for push-server-nginx.service: the\n'
  printf '# upstream blocks list the default instances (publishers 9010-9011, listeners 8010-8011); edit\n'
  printf '# them when enabling others, then systemctl reload push-server-nginx. Rendered from the template:\n#\n'
  cat "$STAGE/etc/push-server/nginx.conf"
} >"$STAGE/nginx.conf" && mv "$STAGE/nginx.conf" "$STAGE/etc/push-server/nginx.conf"
chmod 0644 "$STAGE/etc/push-server/nginx.conf"
DOC="$STAGE/usr/share/doc/push-server"
install -D -m 0644 LICENSE "$DOC/copyright"
install -m 0644 README.md CHANGELOG.md docs/operations.md docs/errors.md docs/security.md "$DOC/"

# 4. Control data.
mkdir -p "$STAGE/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$STAGE/DEBIAN/"
printf '/etc/push-server/nginx.conf\n/etc/logrotate.d/push-server\n' >"$STAGE/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: push-server
Version: $VERSION
Architecture: amd64
Maintainer: the push-server authors <push-server@localhost>
Installed-Size: $SIZE
Depends: nodejs (>= 20), nodejs (<< 21), redis-server (>= 5:6), nginx | nginx-core | nginx-light, adduser, logrotate
Section: net
Priority: optional
Description: Bitrix-compatible real-time push server
 Publishers store messages in Redis and announce them; listeners stream them
 to long-poll and WebSocket clients behind nginx. A drop-in for the Bitrix
 push server (same paths, channel signatures, message ids and frames).
 .
 Needs Node.js 20 (the package ships uWebSockets.js's binding for Node 20
 only, with a copy of it for glibc before 2.38); systemd units per process
 kind, own nginx instance.
CONTROL
DEB="$OUT/push-server_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Zgzip --build "$STAGE" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1))"
