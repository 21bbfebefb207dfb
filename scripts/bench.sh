#!/usr/bin/env bash
# `npm run bench -- <scenario> [options]` and `npm run bench:smoke`: installs what the benchmarks
# need on top of the stack (Debian's libnginx-mod-nchan for the side-by-side runs, fonts-dejavu-core
# for the chart labels), builds, raises the descriptor limit (tens of thousands of sockets per
# process) and runs the load generator.
# docs/benchmarks.md describes the scenarios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_PACKAGES="${SETUP_PACKAGES:-libnginx-mod-nchan fonts-dejavu-core}" bash scripts/setup.sh >&2
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node tools/loadgen/dist/main.js "$@"
