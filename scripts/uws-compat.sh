#!/usr/bin/env bash
# Makes uWebSockets.js 20.57's binding for Node 20 load on a glibc older than 2.38 (Debian 12 has
# 2.36). Run by scripts/setup.sh after npm ci; does nothing on glibc 2.38 or later, where the
# binding loads as published, nor when the copy is already made from the installed binding.
#
# Upstream builds the binding on glibc 2.38, so it imports three C23 functions by that version
# (__isoc23_strtol, __isoc23_strtoul, __isoc23_sscanf) and nothing newer than 2.36 otherwise. The
# copy made here, in packages/runtime/uws-compat/ (git-ignored; the loader in
# packages/runtime/src/uws.ts looks there after the published binding):
#   libisoc23-compat.so   those three functions on top of glibc's C99 ones (packages/runtime/native/isoc23.c
#                         says why that is the same for every call the binding makes)
#   uws_linux_x64_115.node  the published file with the GLIBC_2.38 requirement removed
#                         (scripts/lib/elf-drop-version.mjs) and the library above added as needed,
#                         found next to it ($ORIGIN) wherever the directory is installed
# Its code and data are checked to be byte for byte the published ones.
#   UWS_COMPAT_FORCE=1  make the copy even on glibc 2.38 or later (to inspect it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'uws-compat: %s\n' "$*"; }
die() { printf 'uws-compat: %s\n' "$*" >&2; exit 1; }

OUT=packages/runtime/uws-compat
ABI=115 # Node 20: Node 22 and later are supported on glibc 2.38 systems only (docs/operations.md)
NAME="uws_linux_x64_${ABI}.node"
SHIM=libisoc23-compat.so

# Only glibc, x86-64, older than 2.38.
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || exit 0
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || true
[ -n "$glibc" ] || exit 0
if [ "${UWS_COMPAT_FORCE:-0}" != 1 ] && [ "$(printf '%s\n2.38\n' "$glibc" | sort -V | head -1)" = 2.38 ]; then exit 0; fi
if [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -1)" != 2.36 ]; then
  # The binding needs arc4random (2.36) too; the processes say so when they start.
  say "glibc $glibc is older than 2.36, which uWebSockets.js 20.57 needs even in a copy: no copy made" >&2
  exit 0
fi

SRC="$(node -p 'require("path").dirname(require.resolve("@btc-vision/uwebsockets.js"))')/$NAME"
[ -f "$SRC" ] || die "$SRC is missing (npm ci)"
# The copy is remade when any of its inputs changes.
stamp="$(cat "$SRC" packages/runtime/native/isoc23.c scripts/lib/elf-drop-version.mjs "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$OUT/$NAME" ] && [ -f "$OUT/$SHIM" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then exit 0; fi

for tool in cc patchelf objcopy; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian packages gcc, libc6-dev, patchelf, binutils; scripts/setup.sh installs them)"
done
say "glibc $glibc: making $OUT/$NAME from uWebSockets.js 20.57.0's"
TMP="$(mktemp -d "$ROOT/packages/runtime/.uws-compat.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
cc -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared -Wl,-soname,"$SHIM" -o "$TMP/$SHIM" packages/runtime/native/isoc23.c
cp "$SRC" "$TMP/$NAME"
unbound="$(node scripts/lib/elf-drop-version.mjs "$TMP/$NAME" GLIBC_2.38)"
provided="$(nm -D --defined-only "$TMP/$SHIM" | awk '$2 == "T" {print $3}' | sort)"
# A future binding needing another 2.38 function must fail here, not when the parser first calls it.
[ "$unbound" = "$provided" ] || die "the binding needs $(echo $unbound) from glibc 2.38; $SHIM provides $(echo $provided)"
# Two runs: patchelf 0.14 garbles the string table when both changes are made in one.
patchelf --add-needed "$SHIM" "$TMP/$NAME"
patchelf --set-rpath '$ORIGIN' "$TMP/$NAME"
for section in .text .rodata .data; do
  objcopy -O binary --only-section="$section" "$SRC" "$TMP/a.bin"
  objcopy -O binary --only-section="$section" "$TMP/$NAME" "$TMP/b.bin"
  [ -s "$TMP/a.bin" ] && cmp -s "$TMP/a.bin" "$TMP/b.bin" || die "$section of the copy differs from the published binding's"
  rm "$TMP/a.bin" "$TMP/b.bin"
done
if [ "$(printf '%s\n2.38\n' "$glibc" | sort -V | head -1)" != 2.38 ] && [ "$(node -p process.versions.modules)" = "$ABI" ]; then
  node -e 'if (typeof require(process.argv[1]).App !== "function") process.exit(1)' "$TMP/$NAME" || die "the copy does not load in Node $(node -v)"
fi
# Each file replaced by a rename, library first: a process starting meanwhile finds either copy
# whole, and one that loaded the previous copy keeps its mapped files.
mkdir -p "$OUT"
chmod 0644 "$TMP/$NAME" "$TMP/$SHIM"
mv -f "$TMP/$SHIM" "$OUT/$SHIM"
mv -f "$TMP/$NAME" "$OUT/$NAME"
echo "$stamp" >"$TMP/.stamp"
mv -f "$TMP/.stamp" "$OUT/.stamp"
say "made $OUT/$NAME and $OUT/$SHIM"
