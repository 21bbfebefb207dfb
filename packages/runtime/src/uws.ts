import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as UwsTypes from '@btc-vision/uwebsockets.js';

export type Uws = typeof UwsTypes;
export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from '@btc-vision/uwebsockets.js';

const require = createRequire(import.meta.url);

/** One place a prebuilt uWebSockets.js binding can be loaded from. */
export interface UwsDistribution {
  /** What the logs and errors call it: package, upstream version and, for a copy, which. */
  readonly label: string;
  /** Directory holding its `uws_<platform>_<arch>_<abi>.node` files. */
  directory(): string;
}

/**
 * Where the binding is looked for, in order (docs/operations.md, "Supported platforms"). One
 * version everywhere: uWebSockets.js 20.57.0, upstream's binaries as republished by @btc-vision.
 * 1. The published files: bindings for Node 20, 22, 24 and 25, built against glibc 2.38 (Debian
 *    13, Ubuntu 24.04 and later), where every supported Node runs on them.
 * 2. The copy of its Node 20 binding that scripts/uws-compat.sh makes on an older glibc (Debian
 *    12: 2.36): the same code, with the three C23 functions it takes from glibc 2.38 supplied by a
 *    small library beside it. Absent on glibc 2.38 and later.
 */
export const UWS_DISTRIBUTIONS: readonly UwsDistribution[] = Object.freeze([
  {
    label: 'uWebSockets.js 20.57.0 (@btc-vision/uwebsockets.js)',
    // The package's `exports` hides its files, so find them next to its main module.
    directory: () => dirname(require.resolve('@btc-vision/uwebsockets.js')),
  },
  {
    label: 'uWebSockets.js 20.57.0 (@btc-vision/uwebsockets.js, copy for glibc before 2.38)',
    // packages/runtime/uws-compat, beside src/ and dist/ (so also in the Debian package).
    directory: () => join(dirname(fileURLToPath(import.meta.url)), '..', 'uws-compat'),
  },
]);

export interface LoadedUws {
  readonly uws: Uws;
  /** The native binding's file name and the distribution it came from. */
  readonly detail: string;
  /** Why each distribution before the one that loaded did not (empty when the first did). */
  readonly skipped: readonly string[];
}

export interface LoadOptions {
  /** Preference list; tests pass their own. */
  readonly distributions?: readonly UwsDistribution[];
  /** Largest request head (request line and headers) to accept; see uwsMaxHeaderBytes. */
  readonly maxHeaderBytes?: number;
}

/**
 * uWebSockets.js 20.57 answers 431 to a request whose head exceeds UWS_HTTP_MAX_HEADERS_SIZE,
 * 4 KiB unless set before the binding loads. A subscribe or publish URL
 * naming PUSH_MAX_CHANNELS ids is longer than that: 100 signed ids are 7.4 KB. So the limit is
 * what such a request can need: each id at its longest (a private:public pair with a SHA-256
 * signature, 130 characters, plus an encoded separator) on top of 16 KiB, Node's own default, for
 * the other headers and cookies.
 */
export function uwsMaxHeaderBytes(maxChannels: number): number {
  return 16 * 1024 + maxChannels * 136;
}

/**
 * Loads the native uWebSockets.js binding directly instead of through the package's loader, which
 * throws a bare dlopen error for the first file it tries. Takes the first distribution whose binding
 * for this Node ABI loads; when none does, throws an error naming each one tried, why it did not
 * load and what to do. There is no pure-JS fallback: the process refuses to start.
 */
export function loadUws(abi: string = process.versions.modules, opts: LoadOptions = {}): LoadedUws {
  // `abi` is a parameter only so tests can ask for a binding that does not exist (unit tests
  // directly, process tests through the test-only PUSH_TEST_UWS_ABI).
  const distributions = opts.distributions ?? UWS_DISTRIBUTIONS;
  // Read by the binding once, when it loads.
  if (opts.maxHeaderBytes !== undefined) process.env['UWS_HTTP_MAX_HEADERS_SIZE'] = String(opts.maxHeaderBytes);
  const effectiveAbi = abi === '' ? process.versions.modules : abi;
  const name = `uws_${process.platform}_${process.arch}_${effectiveAbi}.node`;
  const failures: string[] = [];
  for (const dist of distributions) {
    try {
      const uws = require(join(dist.directory(), name)) as Uws;
      return { uws, detail: `${name} from ${dist.label}`, skipped: failures };
    } catch (err) {
      failures.push(`${dist.label}: ${firstLine(err)}`);
    }
  }
  throw new Error(`uWebSockets.js native binding ${name} did not load (${failures.join('; ')}${platformHint(failures)}).`);
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/**
 * What to do about the commonest causes: a Node newer than 20 on a system older than glibc 2.38, or
 * Node 20 there without the copy scripts/uws-compat.sh makes.
 */
function platformHint(failures: readonly string[]): string {
  if (!failures.some((f) => /GLIBC_2\.\d+' not found/.test(f))) return '';
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const glibc = header?.glibcVersionRuntime ?? 'unknown';
  const [major = 0, minor = 0] = glibc.split('.').map(Number);
  const what =
    major === 2 && minor < 36
      ? 'Node 20 runs on glibc 2.36 and 2.37 (Debian 12) through a copy of its binding; older systems are not supported'
      : 'Here only Node 20 runs, on the copy of its binding that scripts/setup.sh makes (scripts/uws-compat.sh); for Node 22 or 24 move to a newer system';
  return `. The uWebSockets.js 20.57 bindings need glibc 2.38 or later (Debian 13, Ubuntu 24.04); this system has glibc ${glibc}. ${what}`;
}
