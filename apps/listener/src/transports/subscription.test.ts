import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PushError, publicChannelKey, signChannel, signChannelPair, signSubscriptionToken } from '@push/protocol';
import { parseClientSubscription, parseSubscription } from './subscription.js';

const secret = { key: 'k', algorithm: 'sha1' as const };
const opts = { secret, maxChannels: 5 };
const NOW = 1_800_000_000_000;
const S = 'a'.repeat(32);
const P = 'b'.repeat(32);
const Q = 'c'.repeat(32);
const tok = (claims: { sub?: string; chan?: string[]; exp?: number }): string => signSubscriptionToken({ iss: 'h', exp: NOW / 1000 + 60, ...claims }, secret.key);
const q = (entries: Record<string, string>): Map<string, string> => new Map(Object.entries(entries));

it('subscriptions from CHANNEL_ID and from a token, with their format and identity', () => {
  const table: Array<[string, Map<string, string>, unknown]> = [
    ['v3 text', q({ CHANNEL_ID: signChannel(S, secret) }), { channels: [S], format: 'text', publicId: null, userId: null }],
    ['v4 protobuf pair', q({ CHANNEL_ID: `${signChannelPair(P, Q, secret)}/${signChannel(S, secret)}`, binaryMode: 'true' }), { channels: [P, publicChannelKey(Q), S], format: 'protobuf', publicId: Q, userId: null }],
    ['v5 with channel ids', q({ CHANNEL_ID: signChannel(S, secret), jsonRpc: 'true' }), { channels: [S], format: 'jsonrpc', publicId: null, userId: null }],
    ['v5 token with a user', q({ token: tok({ sub: '7', chan: [S] }), jsonRpc: 'true' }), { channels: [S, 'user:7'], format: 'jsonrpc', publicId: null, userId: '7' }],
    ['v5 guest token', q({ token: tok({ chan: [S, P, Q] }), jsonRpc: 'true' }), { channels: [S, P, Q], format: 'jsonrpc', publicId: null, userId: null }],
    ['a token wins over CHANNEL_ID', q({ token: tok({ sub: '8' }), CHANNEL_ID: signChannel(S, secret), jsonRpc: 'true' }), { channels: ['user:8'], format: 'jsonrpc', publicId: null, userId: '8' }],
    ['an empty token falls back to CHANNEL_ID', q({ token: '', CHANNEL_ID: signChannel(S, secret) }), { channels: [S], format: 'text', publicId: null, userId: null }],
  ];
  for (const [name, query, expected] of table) assert.deepEqual(parseSubscription(query, opts, NOW), expected, name);
});

it('refusals are 4010: a bad token, a bad channel list, nothing at all', () => {
  const bad: Array<[string, Map<string, string>]> = [
    ['expired token', q({ token: tok({ sub: '7', exp: NOW / 1000 - 1 }) })],
    ['token of another key', q({ token: signSubscriptionToken({ exp: NOW / 1000 + 60, sub: '7' }, 'other') })],
    ['bad signature on CHANNEL_ID', q({ CHANNEL_ID: `${S}.${'0'.repeat(40)}` })],
    ['nothing', q({})],
  ];
  for (const [name, query] of bad) assert.throws(() => parseSubscription(query, opts, NOW), (e: unknown) => e instanceof PushError && e.spec.code === 4010, name);
});

it('shared mode: a portal subscription is checked with the portal key and its keys are put in its namespace; names it sends stay bare', () => {
  const C = 'e'.repeat(32);
  const portal = { key: 'portal-key', algorithm: 'sha1' as const };
  const popts = { secret: portal, maxChannels: 5 };
  const ns = (k: string): string => `${C}/${k}`;
  const table: Array<[string, Map<string, string>, unknown]> = [
    ['v4 pair', q({ CHANNEL_ID: `${signChannelPair(P, Q, portal)}/${signChannel(S, portal)}`, binaryMode: 'true' }), { channels: [ns(P), ns(publicChannelKey(Q)), ns(S)], format: 'protobuf', publicId: Q, userId: null }],
    ['v5 token', q({ token: signSubscriptionToken({ iss: 'h', exp: NOW / 1000 + 60, sub: '7', chan: [S] }, portal.key), jsonRpc: 'true' }), { channels: [ns(S), ns('user:7')], format: 'jsonrpc', publicId: null, userId: '7' }],
  ];
  for (const [name, query, expected] of table) assert.deepEqual(parseClientSubscription(query, popts, C, NOW), expected, name);
  // Personal mode (no client): exactly parseSubscription.
  const personal = q({ CHANNEL_ID: signChannel(S, secret) });
  assert.deepEqual(parseClientSubscription(personal, opts, null, NOW), parseSubscription(personal, opts, NOW));
  // Signed with the installation key or another portal's key: 4010.
  for (const other of [secret, { key: 'other-portal', algorithm: 'sha1' as const }]) {
    assert.throws(() => parseClientSubscription(q({ CHANNEL_ID: signChannel(S, other) }), popts, C, NOW), (e: unknown) => e instanceof PushError && e.spec.code === 4010);
    assert.throws(() => parseClientSubscription(q({ token: signSubscriptionToken({ iss: 'h', exp: NOW / 1000 + 60, sub: '7' }, other.key) }), popts, C, NOW), (e: unknown) => e instanceof PushError && e.spec.code === 4010);
  }
});
