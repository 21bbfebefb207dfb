/*
 * The three C23 entry points the uWebSockets.js 20.57 Linux bindings import from glibc 2.38, for a
 * system with an older glibc (Debian 12 has 2.36). scripts/uws-compat.sh builds this file into a
 * small shared library and makes a copy of the binding load it (docs/operations.md, "Supported
 * platforms").
 *
 * glibc 2.38 added the __isoc23_ variants because C23 changes these functions in one way only:
 * integer parsing also accepts a 0b/0B prefix with base 2 or base 0 (strtol, strtoul, %i), and
 * scanf gains the %b conversion. The binding calls strtol with base 10 (UWS_HTTP_MAX_HEADERS_SIZE,
 * LSQUIC_LOG_SECRETS), sscanf with "%lu" and "%lx", and strtoul with base 0 only in the statically
 * linked libstdc++'s reading of GLIBCXX_TUNABLES (glibcxx.eh_pool.*): the C99 functions give the
 * same results for every input except a "0b" number in that last variable.
 *
 * Compiled as C99 (-std=c99) so vsscanf is glibc's ISO C99 one (__isoc99_vsscanf), not the older
 * GNU one where %a is an allocation flag.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

long __isoc23_strtol(const char *s, char **end, int base);
unsigned long __isoc23_strtoul(const char *s, char **end, int base);
int __isoc23_sscanf(const char *s, const char *format, ...);

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }

unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }

int __isoc23_sscanf(const char *s, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsscanf(s, format, args);
  va_end(args);
  return n;
}
