#!/usr/bin/env bash
# `npm test`: installs what is missing, builds, then runs every unit and integration test with
# node's test runner. Integration tests start their own redis-server and nginx on free ports.
# Without arguments it then runs scripts/test-platforms.sh (Node 22 and 24 in a Debian 13 root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_PACKAGES="${SETUP_PACKAGES:-php-cli chromium openssl faketime prometheus}" bash scripts/setup.sh
# Tests are not part of the build (tsx runs them), so type-check them strictly here.
./node_modules/.bin/tsc -p tsconfig.tests.json
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mapfile -t files < <(find packages apps tools tests -name '*.test.ts' -not -path '*/node_modules/*' -not -path '*/dist/*' | sort)
if [ $# -gt 0 ]; then exec node --import tsx --test --test-timeout=300000 "$@"; fi
status=0
node --import tsx --test --test-timeout=300000 "${files[@]}" || status=$?
# Then the stack, protocol and fault tests under Node 22 and 24 in a Debian 13 root (a few
# minutes; too long for one test file under the timeout above). 77: this machine cannot, it says why.
platforms=0
bash scripts/test-platforms.sh || platforms=$?
if [ "$platforms" -ne 0 ] && [ "$platforms" -ne 77 ]; then status=1; fi
exit "$status"
