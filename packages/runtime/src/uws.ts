import { createRequire } from 'node:module';
import type * as UwsTypes from 'uWebSockets.js';

export type Uws = typeof UwsTypes;
export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export interface LoadedUws {
  readonly uws: Uws;
  /** 'native' or 'fallback' (the pure-JS emulation, several times slower). */
  readonly binding: 'native' | 'fallback';
  /** The native binding's file name, and why it did not load when running on the fallback. */
  readonly detail: string;
}

/**
 * Loads the native uWebSockets.js binding directly instead of through the package's loader,
 * because the loader silently falls back to a slow pure-JS emulation when the binary does not
 * load. We refuse that unless explicitly allowed, so a production box never runs degraded unnoticed.
 */
export function loadUws(allowFallback: boolean, abi: string = process.versions.modules): LoadedUws {
  // `abi` is a parameter only so tests can ask for a binding that does not exist (unit tests
  // directly, process tests through the test-only PUSH_TEST_UWS_ABI).
  const effectiveAbi = abi === '' ? process.versions.modules : abi;
  const name = `uws_${process.platform}_${process.arch}_${effectiveAbi}.node`;
  try {
    const uws = require(`uWebSockets.js/binaries/${name}`) as Uws;
    return { uws, binding: 'native', detail: name };
  } catch (err) {
    const why = (err as Error).message.split('\n')[0] ?? String(err);
    if (!allowFallback) {
      throw new Error(
        `uWebSockets.js native binding ${name} did not load (${why}). ` +
          'Refusing to run on the slow pure-JS fallback; set PUSH_ALLOW_UWS_FALLBACK=true to allow it.',
      );
    }
    const uws = require('uWebSockets.js/dist/index.js') as Uws;
    return { uws, binding: 'fallback', detail: `${name} did not load (${why})` };
  }
}
