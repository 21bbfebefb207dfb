import { createHmac } from 'node:crypto';
import { Errors, PushError } from './errors.js';
import { hexEqual, type ChannelSecret } from './channel-id.js';

/**
 * Shared (multi-portal) mode, as push server 2.0 runs it for Bitrix's cloud: every portal has a
 * client id (its public licence code, md5 of the licence key: 32 lowercase hex characters) and a
 * key of its own. The portal signs its channels with that key, adds `clientId=` to every request
 * and subscription URL, and signs each request's body (`signature=`). Pure functions only; the
 * routes live in the publisher and listener (docs/shared-mode.md).
 */

/** A client id: what push server 2.0 accepts (`[a-z0-9]{32}`); portals send 32 hex characters. */
export const CLIENT_ID_RE = /^[a-z0-9]{32}$/;

export function isClientId(value: string): boolean {
  return CLIENT_ID_RE.test(value);
}

/**
 * The separator between a client id and a channel key. A channel key never holds `/` (it separates
 * the ids of a CHANNEL_ID list), so `<client>/<key>` cannot be forged from a personal-mode key or
 * another client's key: every channel key of a portal lives in its own namespace in Redis, in the
 * listeners' subscriptions and in presence.
 */
const NS_SEP = '/';

/** The key a channel of client `clientId` has in the store, pub/sub and presence. */
export function clientChannelKey(clientId: string, key: string): string {
  return `${clientId}${NS_SEP}${key}`;
}

/** The portal's own name for a namespaced key (what it sent); the key itself when not namespaced. */
export function bareChannelKey(key: string): string {
  const i = key.indexOf(NS_SEP);
  return i < 0 ? key : key.slice(i + 1);
}

/** The client a namespaced key belongs to, or null for a personal-mode key. */
export function channelKeyClient(key: string): string | null {
  const i = key.indexOf(NS_SEP);
  return i < 0 ? null : key.slice(0, i);
}

/**
 * Checks `signature=` of a shared-mode request: the lowercase hex HMAC of `data` (the raw body, or
 * the CHANNEL_ID value of an online query) with the portal's key, in the installation's signature
 * algorithm (sha1 by default: 40 hex characters, as the pull module sends). Constant-time compare.
 */
export function requestSignatureValid(data: string | Uint8Array, signature: string | undefined, secret: ChannelSecret): boolean {
  if (signature === undefined || !/^[a-f0-9]{32,128}$/.test(signature)) return false;
  const expected = createHmac(secret.algorithm, secret.key).update(data).digest('hex');
  return hexEqual(expected, signature);
}

/** Throws 4026 unless `signature` checks out (see requestSignatureValid). */
export function checkRequestSignature(data: string | Uint8Array, signature: string | undefined, secret: ChannelSecret): void {
  if (!requestSignatureValid(data, signature, secret)) throw new PushError(Errors.WRONG_REQUEST_SIGNATURE);
}

/**
 * `POST /register-client/` body: a form with `verificationQuery`, itself the query string the
 * pull module sends to Bitrix's licence server (`BX_LICENCE=<public licence code>&BX_TYPE=CP&
 * BX_HASH=...&BX_ALL=y`). Push server 2.0 forwards it to the licence server, which answers with the
 * client id; this server makes no such call, so the client id is the `BX_LICENCE` value itself.
 */
export function parseRegisterRequest(body: string): { readonly clientId: string; readonly verificationQuery: string } {
  if (body.length === 0) throw new PushError(Errors.EMPTY_REQUEST);
  const form = new URLSearchParams(body);
  const verificationQuery = form.get('verificationQuery');
  if (verificationQuery === null || verificationQuery === '') throw new PushError(Errors.VERIFICATION_QUERY_REQUIRED);
  const clientId = new URLSearchParams(verificationQuery).get('BX_LICENCE') ?? '';
  if (!isClientId(clientId)) throw new PushError(Errors.INVALID_CLIENT, 'verificationQuery must carry BX_LICENCE=<32 characters a-z 0-9>.');
  return { clientId, verificationQuery };
}

/** `POST /systemctl/` body: `{"method":"unregister","params":{"clientId":"..."}}` (JSON-RPC-like). */
export interface SystemCommand {
  readonly method: 'unregister';
  readonly clientId: string;
}

/** Parses a `/systemctl/` body in push server 2.0's order of checks: 4032, 4033, 4034, 4035. */
export function parseSystemCommand(body: string): SystemCommand {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new PushError(Errors.BAD_JSON_REQUEST);
  }
  if (value === null || typeof value !== 'object') throw new PushError(Errors.BAD_JSON_REQUEST);
  const o = value as Record<string, unknown>;
  if (typeof o['method'] !== 'string') throw new PushError(Errors.NO_METHOD);
  const params = o['params'];
  if (params === null || typeof params !== 'object') throw new PushError(Errors.NO_PARAMS);
  if (o['method'] !== 'unregister') throw new PushError(Errors.UNKNOWN_COMMAND);
  const clientId = (params as Record<string, unknown>)['clientId'];
  return { method: 'unregister', clientId: typeof clientId === 'string' ? clientId : '' };
}
