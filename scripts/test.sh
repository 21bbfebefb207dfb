#!/usr/bin/env bash
# `npm test`: installs what is missing, builds, then runs every unit and integration test with
# node's test runner. Integration tests start their own redis-server and nginx on free ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_PACKAGES="${SETUP_PACKAGES:-php-cli chromium openssl faketime prometheus}" bash scripts/setup.sh
# Tests are not part of the build (tsx runs them), so type-check them strictly here.
./node_modules/.bin/tsc -p tsconfig.tests.json
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mapfile -t files < <(find packages apps tools tests -name '*.test.ts' -not -path '*/node_modules/*' -not -path '*/dist/*' | sort)
if [ $# -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-timeout=300000 "${files[@]}"
