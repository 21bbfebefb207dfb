#!/usr/bin/env bash
# `npm run standalone`: the single-process mode (listener and publisher in one process over the
# in-memory backend, no Redis, nothing persisted) for development and demos, set up like
# `npm start`: it reads the same config file (PUSH_CONFIG_FILE, ./.push/config.env by default,
# a signature key generated there once when missing) and, unless PUSH_PUBLISH_TRUSTED_NETWORKS is
# set in the environment or that file, accepts unsigned publishing from this host only, so the
# README's curl example works against it. Runs in the foreground; Ctrl-C stops it.
#   PUSH_SKIP_SETUP   1 = do not run scripts/setup.sh (install + build) first
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ROOT"

CONFIG_FILE="$(abspath "${PUSH_CONFIG_FILE:-$ROOT/.push/config.env}")"
if [ "${PUSH_SKIP_SETUP:-0}" != 1 ]; then
  bash "$ROOT/scripts/setup.sh" || die "setup failed (install/build); see the messages above"
fi
ensure_config_file
export PUSH_CONFIG_FILE="$CONFIG_FILE"
if [ -z "${PUSH_PUBLISH_TRUSTED_NETWORKS:-}" ] && [ -z "$(config_file_setting PUSH_PUBLISH_TRUSTED_NETWORKS)" ]; then
  export PUSH_PUBLISH_TRUSTED_NETWORKS="127.0.0.1/32,::1/128"
  say "unsigned publish: allowed from this host (default; PUSH_PUBLISH_TRUSTED_NETWORKS=none requires signatures)"
fi
say "config/keys: $CONFIG_FILE"
exec node "$ROOT/apps/standalone/dist/main.js"
