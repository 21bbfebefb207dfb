import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { NetworkSet, parseNetworks } from '@push/protocol';
import { adminDecision, type AdminPolicy } from './admin-gate.js';
import { clientAddress } from './client-address.js';
import { loadConfig } from './config.js';

const TOKEN = 'a-long-admin-token-0123456789';
const withToken: AdminPolicy = { trusted: new NetworkSet(parseNetworks('127.0.0.1/32 10.0.0.0/8')), tokenDigest: createHash('sha256').update(TOKEN).digest() };
const noToken: AdminPolicy = { trusted: withToken.trusted, tokenDigest: null };
const nobody: AdminPolicy = { trusted: new NetworkSet([]), tokenDigest: withToken.tokenDigest };

/** [case, client address, Authorization header, policy, expected: 'admit' or the refusal code]. */
const cases: ReadonlyArray<readonly [string, string, string, AdminPolicy, 'admit' | 4128 | 4129]> = [
  ['a trusted network, no credentials', '127.0.0.1', '', withToken, 'admit'],
  ['another trusted block', '10.9.8.7', '', noToken, 'admit'],
  ['an IPv4 peer on a dual-stack socket', '::ffff:10.1.2.3', '', noToken, 'admit'],
  ['an untrusted address, no credentials', '127.0.0.2', '', withToken, 4128],
  ['an untrusted address, no token configured', '192.0.2.1', '', noToken, 4128],
  ['no trusted network at all (none)', '127.0.0.1', '', nobody, 4128],
  ['an unparsable address', 'garbage', '', withToken, 4128],
  ['the right token from an untrusted address', '192.0.2.1', `Bearer ${TOKEN}`, withToken, 'admit'],
  ['the scheme is case-insensitive, spacing tolerated', '192.0.2.1', `bearer  ${TOKEN} `, withToken, 'admit'],
  ['the right token with no trusted network at all', '192.0.2.1', `Bearer ${TOKEN}`, nobody, 'admit'],
  ['a wrong token from an untrusted address', '192.0.2.1', 'Bearer wrong-token-0123456789', withToken, 4129],
  ['a token one character short', '192.0.2.1', `Bearer ${TOKEN.slice(0, -1)}`, withToken, 4129],
  ['a wrong token even from a trusted network (a presented token is always checked)', '127.0.0.1', 'Bearer wrong-token-0123456789', withToken, 4129],
  ['a token when the server has none', '192.0.2.1', `Bearer ${TOKEN}`, noToken, 4129],
  ['another scheme is no token: judged by address', '192.0.2.1', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, withToken, 4128],
  ['another scheme from a trusted network', '127.0.0.1', 'Basic eDp5', withToken, 'admit'],
  ['"Bearer" with nothing after it is no token', '192.0.2.1', 'Bearer ', withToken, 4128],
];

describe('adminDecision: who may read /status, /server-stat/, /metrics', () => {
  for (const [name, client, authorization, policy, expected] of cases) {
    it(name, () => {
      const refusal = adminDecision({ client, authorization }, policy);
      if (expected === 'admit') assert.equal(refusal, null);
      else {
        assert.equal(refusal?.spec.code, expected);
        assert.equal(refusal?.spec.status, 401);
        // The refusal names the address it judged, so an operator sees what to list or why.
        if (expected === 4128) assert.ok(refusal?.wire.includes(`Source address ${client}.`), refusal?.wire);
      }
    });
  }
});

describe('clientAddress: the header only from a trusted proxy', () => {
  const proxies = new NetworkSet(parseNetworks('127.0.0.1/32'));
  const table: ReadonlyArray<readonly [string, string, string, string]> = [
    ['a direct client: the peer, whatever it claims', '127.0.0.2', '127.0.0.1', '127.0.0.2'],
    ['behind the trusted proxy: its header', '127.0.0.1', '127.0.0.2', '127.0.0.2'],
    ['behind the trusted proxy without a header: the proxy', '127.0.0.1', '', '127.0.0.1'],
    ['a list: only the last entry, the one the proxy wrote', '127.0.0.1', '127.0.0.1, 127.0.0.3', '127.0.0.3'],
    ['a list ending empty: the peer', '127.0.0.1', '10.0.0.1,', '127.0.0.1'],
  ];
  for (const [name, peer, header, expected] of table) it(name, () => assert.equal(clientAddress(peer, header, proxies), expected));
});

describe('PUSH_ADMIN_TOKEN', () => {
  const base = { PUSH_SIGNATURE_KEY: 'k'.repeat(32) };
  it('is empty (no token) by default and kept as given', () => {
    assert.equal(loadConfig(base, { port: 9010 }).adminToken, '');
    assert.equal(loadConfig({ ...base, PUSH_ADMIN_TOKEN: TOKEN }, { port: 9010 }).adminToken, TOKEN);
  });
  for (const bad of ['short', 'has a space in it 0123456789', `tab\t${'x'.repeat(20)}`, 'x'.repeat(257), `é${'x'.repeat(20)}`]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 30))}`, () => assert.throws(() => loadConfig({ ...base, PUSH_ADMIN_TOKEN: bad }, { port: 9010 }), /PUSH_ADMIN_TOKEN: 16-256 visible ASCII/));
  }
});
