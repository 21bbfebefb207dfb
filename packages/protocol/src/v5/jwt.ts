import { createHmac, timingSafeEqual } from 'node:crypto';
import { CHANNEL_ID_RE } from '../channel-id.js';
import { Errors, PushError } from '../errors.js';

/**
 * Subscription tokens of protocol 5 (`token=<jwt>` instead of `CHANNEL_ID`). The portal makes them
 * in its pull module (`Bitrix\Pull\Auth\Jwt::create`): HS256 (the default of its JWT encoder) keyed
 * with the pull signature key, the one shared with this server (PUSH_SIGNATURE_KEY), with the claims
 * `iss` (the portal's host id), `iat`, `exp` (iat + 12 h), `sub` (the user id, for a logged-in user)
 * and `chan` (comma-joined bare channel ids: the shared channel, plus the private and public ids for
 * a guest). Pure: token, key and clock in; claims or a PushError out.
 *
 * Every refusal is `4010: Wrong Channel Id.` plus a detail: the official client reacts to close code
 * 4010 (and only to it) by fetching a new config, which carries a new token; any other code would
 * make it reconnect with the same, still refused, token forever.
 */

export interface JwtClaims {
  /** The portal's host id; not checked in personal mode (one portal, one key). */
  readonly iss: string;
  /** The user id (decimal digits) or null for a token that names channels only. */
  readonly sub: string | null;
  /** Bare 32-hex channel ids from `chan`, de-duplicated, in order. */
  readonly chan: readonly string[];
  /** Unix seconds. */
  readonly exp: number;
}

export interface JwtLimits {
  /** Most channel ids a token may name (PUSH_MAX_CHANNELS). */
  readonly maxChannels: number;
  /** Seconds of clock difference tolerated for `iat` and `nbf` (not for `exp`). */
  readonly leewayS: number;
}

const SEGMENT_RE = /^[A-Za-z0-9_-]*$/;
const USER_RE = /^[1-9][0-9]{0,18}$/;
/** A token longer than this is not something a portal makes (its claims are a few ids). */
export const MAX_TOKEN_LENGTH = 8192;

function refuse(detail: string): PushError {
  return new PushError(Errors.WRONG_CHANNEL_ID, detail);
}

function decodeSegmentJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw refuse(`The token ${what} is not base64url JSON.`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw refuse(`The token ${what} is not a JSON object.`);
  return value as Record<string, unknown>;
}

function numericClaim(claims: Record<string, unknown>, name: string, required: boolean): number | null {
  const v = claims[name];
  if (v === undefined) {
    if (required) throw refuse(`The token has no "${name}" claim.`);
    return null;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw refuse(`The token's "${name}" claim is not a number.`);
  return v;
}

/**
 * Verifies a subscription token: structure, algorithm (exactly HS256: `none`, other HMAC sizes and
 * public-key algorithms are refused before any signature check, so a token cannot choose how it is
 * checked), signature (constant time), expiry, and the claims this server uses.
 */
export function verifySubscriptionToken(token: string, key: string, nowS: number, limits: JwtLimits): JwtClaims {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw refuse('The token is empty or too long.');
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT_RE.test(p))) throw refuse('The token is not a JWT (three base64url segments).');
  const [head, body, sig] = parts as [string, string, string];
  const header = decodeSegmentJson(head, 'header');
  if (header['alg'] !== 'HS256') throw refuse(`The token algorithm must be HS256, not ${JSON.stringify(header['alg'] ?? null).slice(0, 20)}.`);
  if (header['crit'] !== undefined) throw refuse('The token has critical header parameters this server does not know.');
  const expected = createHmac('sha256', key).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refuse('The token signature does not match (signed with another key?).');
  const claims = decodeSegmentJson(body, 'payload');
  const exp = numericClaim(claims, 'exp', true) as number;
  if (nowS >= exp) throw refuse('The token has expired; the client gets a new one with its config.');
  const iat = numericClaim(claims, 'iat', false);
  if (iat !== null && iat > nowS + limits.leewayS) throw refuse('The token was issued in the future; check the portal clock.');
  const nbf = numericClaim(claims, 'nbf', false);
  if (nbf !== null && nbf > nowS + limits.leewayS) throw refuse('The token is not valid yet.');
  const iss = claims['iss'];
  if (iss !== undefined && typeof iss !== 'string') throw refuse('The token\'s "iss" claim is not a string.');
  let sub: string | null = null;
  if (claims['sub'] !== undefined) {
    if (typeof claims['sub'] !== 'string' || !USER_RE.test(claims['sub'])) throw refuse('The token\'s "sub" claim is not a user id.');
    sub = claims['sub'];
  }
  const chan: string[] = [];
  if (claims['chan'] !== undefined) {
    if (typeof claims['chan'] !== 'string') throw refuse('The token\'s "chan" claim is not a string.');
    for (const id of claims['chan'].split(',')) {
      if (id === '') continue;
      if (!CHANNEL_ID_RE.test(id)) throw refuse('The token\'s "chan" claim holds something that is not a channel id.');
      if (!chan.includes(id)) chan.push(id);
    }
  }
  if (chan.length > limits.maxChannels) throw refuse('The token names too many channels.');
  if (sub === null && chan.length === 0) throw refuse('The token names neither a user nor a channel.');
  return { iss: typeof iss === 'string' ? iss : '', sub, chan, exp };
}

/**
 * Makes a token the way the portal does (HS256, same claims). For tests, the CLI and portals
 * without the Bitrix pull module; the server itself only verifies.
 */
export function signSubscriptionToken(claims: { iss?: string; iat?: number; exp: number; sub?: string; chan?: readonly string[] }, key: string, header: Record<string, unknown> = { typ: 'JWT', alg: 'HS256' }): string {
  const payload: Record<string, unknown> = { iss: claims.iss ?? '', exp: claims.exp };
  if (claims.iat !== undefined) payload['iat'] = claims.iat;
  if (claims.sub !== undefined) payload['sub'] = claims.sub;
  if (claims.chan !== undefined) payload['chan'] = claims.chan.join(',');
  const head = Buffer.from(JSON.stringify(header)).toString('base64url');
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
