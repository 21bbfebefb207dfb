#!/usr/bin/env bash
# `npm run chaos [scenario ...]`: the fault suite (tests/chaos, docs/reliability.md). Brings up its
# own `npm start` stack on free loopback ports, injects each fault under a steady publish stream,
# checks every delivery, prints a table and writes chaos-results/chaos-<time>.json. Exit 1 when
# any scenario lost, duplicated or reordered a message, answered wrongly or missed its bound.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node --import tsx tests/chaos/run.ts "$@"
