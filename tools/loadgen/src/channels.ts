import { randomBytes } from 'node:crypto';

/**
 * Channel ids of a run: a random 16-hex-digit prefix per run plus the channel's index, so any
 * process can derive id <-> index without a table, and runs never collide in a reused Redis.
 */
export function runPrefix(): string {
  return randomBytes(8).toString('hex');
}

export function channelName(prefix: string, index: number): string {
  return prefix + index.toString(16).padStart(16, '0');
}

/** The kinds of subscriber the workers can play. */
export type ClientKind = 'ws-text' | 'ws-binary' | 'lp-text' | 'lp-binary' | 'nchan-ws';

/** What a worker needs to reach the system under test. */
export interface SubscribeTarget {
  /** 'bitrix': the Bitrix push server 1.0, whose clients are this server's text WebSockets. */
  readonly kind: 'push' | 'nchan' | 'bitrix';
  /** Base URLs of the subscriber endpoints (one per listener process, or nginx), e.g. http://127.0.0.1:8010 */
  readonly urls: readonly string[];
  readonly prefix: string;
  /** Channel signature key and algorithm (push only). */
  readonly signatureKey: string;
}

export interface ConnSpec {
  readonly chan: number;
  readonly kind: ClientKind;
  /** Index into target.urls of the endpoint to use first. */
  readonly url: number;
  /**
   * Loopback source address for this connection (127.0.0.x), beyond one address's ~28k ports per
   * destination; undefined = let the kernel choose (127.0.0.1 and any free port).
   */
  readonly local: string | undefined;
}

/**
 * The first `perAddress` connections use the kernel's choice: binding a source address first
 * makes the kernel search for a port unique to that address (slow once thousands are taken).
 * Further blocks of `perAddress` get 127.0.0.2, 127.0.0.3, ...
 */
export function sourceAddress(i: number, perAddress = 20_000): string | undefined {
  const block = Math.floor(i / perAddress);
  return block === 0 ? undefined : `127.0.0.${1 + block}`;
}
