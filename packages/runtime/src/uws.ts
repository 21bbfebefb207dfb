import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UwsTypes from 'uWebSockets.js';

// The types are those of uWebSockets.js 20.30; the code keeps to the part of the API that 20.57
// shares with it (getQuery may return undefined there, hence the `?? ''` at every call).
export type Uws = typeof UwsTypes;
export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';

const require = createRequire(import.meta.url);

/** One npm distribution of uWebSockets.js's prebuilt native bindings. */
export interface UwsDistribution {
  /** What the logs and errors call it: package and upstream version. */
  readonly label: string;
  /** Directory holding its `uws_<platform>_<arch>_<abi>.node` files. */
  directory(): string;
}

/**
 * The distributions we ship, in order of preference (docs/operations.md says why these two).
 * 1. uWebSockets.js 20.30 as published by @trufflesuite: bindings up to Node 20 only, built
 *    against glibc 2.27. Node 20 runs on it everywhere, so Node 20 on Debian 13 runs the same
 *    binding as on Debian 12, where the whole suite runs.
 * 2. uWebSockets.js 20.57 (upstream's current release) as published by @btc-vision: bindings for
 *    Node 20, 22, 24 and 25, built against glibc 2.38 (Debian 13, Ubuntu 24.04 and later). Node 22
 *    and 24 run on it (the Debian 13 platform tests).
 */
export const UWS_DISTRIBUTIONS: readonly UwsDistribution[] = Object.freeze([
  {
    label: 'uWebSockets.js 20.30.0 (@trufflesuite/uws-js-unofficial)',
    directory: () => join(dirname(require.resolve('uWebSockets.js/package.json')), 'binaries'),
  },
  {
    label: 'uWebSockets.js 20.57.0 (@btc-vision/uwebsockets.js)',
    // The package's `exports` hides its files, so find them next to its main module.
    directory: () => dirname(require.resolve('@btc-vision/uwebsockets.js')),
  },
]);

export interface LoadedUws {
  readonly uws: Uws;
  /** 'native' or 'fallback' (the pure-JS emulation, several times slower). */
  readonly binding: 'native' | 'fallback';
  /**
   * The native binding's file name and the distribution it came from; on the fallback, why no
   * native binding loaded. Always starts with the binding's file name.
   */
  readonly detail: string;
  /** Why each preferred distribution before the one that loaded did not (empty when the first did). */
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
 * 4 KiB unless set before the binding loads (20.30 did not enforce it). A subscribe or publish URL
 * naming PUSH_MAX_CHANNELS ids is longer than that: 100 signed ids are 7.4 KB. So the limit is
 * what such a request can need: each id at its longest (a private:public pair with a SHA-256
 * signature, 130 characters, plus an encoded separator) on top of 16 KiB, Node's own default, for
 * the other headers and cookies.
 */
export function uwsMaxHeaderBytes(maxChannels: number): number {
  return 16 * 1024 + maxChannels * 136;
}

/**
 * Loads a native uWebSockets.js binding directly instead of through a package's loader, because
 * the loaders silently fall back to a slow pure-JS emulation (or throw a bare dlopen error) when
 * the binary does not load. Takes the first distribution whose binding for this Node ABI loads,
 * and refuses the fallback unless explicitly allowed, so a production box never runs degraded
 * unnoticed.
 */
export function loadUws(allowFallback: boolean, abi: string = process.versions.modules, opts: LoadOptions = {}): LoadedUws {
  // `abi` is a parameter only so tests can ask for a binding that does not exist (unit tests
  // directly, process tests through the test-only PUSH_TEST_UWS_ABI).
  const distributions = opts.distributions ?? UWS_DISTRIBUTIONS;
  // Read by the binding once, when it loads (20.30 ignores it).
  if (opts.maxHeaderBytes !== undefined) process.env['UWS_HTTP_MAX_HEADERS_SIZE'] = String(opts.maxHeaderBytes);
  const effectiveAbi = abi === '' ? process.versions.modules : abi;
  const name = `uws_${process.platform}_${process.arch}_${effectiveAbi}.node`;
  const failures: string[] = [];
  for (const dist of distributions) {
    try {
      const uws = require(join(dist.directory(), name)) as Uws;
      return { uws, binding: 'native', detail: `${name} from ${dist.label}`, skipped: failures };
    } catch (err) {
      failures.push(`${dist.label}: ${firstLine(err)}`);
    }
  }
  const why = `${failures.join('; ')}${platformHint(failures)}`;
  if (!allowFallback) {
    throw new Error(
      `uWebSockets.js native binding ${name} did not load (${why}). ` +
        'Refusing to run on the slow pure-JS fallback; set PUSH_ALLOW_UWS_FALLBACK=true to allow it.',
    );
  }
  const uws = require('uWebSockets.js/dist/index.js') as Uws;
  return { uws, binding: 'fallback', detail: `${name} did not load (${why})`, skipped: failures };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/** What to do about the commonest cause: a Node newer than 20 on a system older than glibc 2.38. */
function platformHint(failures: readonly string[]): string {
  if (!failures.some((f) => /GLIBC_2\.\d+' not found/.test(f))) return '';
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const glibc = header?.glibcVersionRuntime ?? 'unknown';
  return (
    `. The uWebSockets.js 20.57 bindings, the only ones for Node 22 and later, need glibc 2.38 or later (Debian 13, Ubuntu 24.04); ` +
    `this system has glibc ${glibc}: run Node 20 here, or move to a newer system`
  );
}
