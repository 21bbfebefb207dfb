import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import {
  PublishVerifier,
  authHeaders,
  canonicalString,
  decodeKey32,
  ed25519PrivateKey,
  ed25519SignHex,
  hmacSignHex,
  parseAuthHeaders,
  parseKeyRing,
  sha256Hex,
  requestTarget,
  timestampFresh,
} from './publish-auth.js';
import { signChannel, type SignatureAlgorithm } from './channel-id.js';
import { Errors, PushError } from './errors.js';
import { NetworkSet, normalizeAddress, parseNetworks } from './networks.js';
import { channelExpireBody, channelPhase, mintChannelId } from './channel-lifecycle.js';

interface Vectors {
  ed25519: { keyId: string; seedHex: string; publicKeyBase64: string; secretKeyBase64: string };
  hmac: { keyId: string; secret: string };
  channels: Array<{ algorithm: SignatureAlgorithm; key: string; id: string; signed: string }>;
  requests: Array<{
    name: string;
    method: string;
    target: string;
    timestamp: number;
    nonce: string;
    body: string;
    bodySha256: string;
    ed25519: { canonical: string; signature: string };
    hmac: { canonical: string; signature: string };
  }>;
}
const vectors = JSON.parse(readFileSync(new URL('./publish-auth.vectors.json', import.meta.url), 'utf8')) as Vectors;

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof PushError) return err.spec.code;
    throw err;
  }
  return 0;
}

async function asyncCodeOf(fn: () => Promise<unknown>): Promise<number> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof PushError) return err.spec.code;
    throw err;
  }
  return 0;
}

describe('publish signing: shared test vectors', () => {
  const secret = Buffer.from(vectors.ed25519.secretKeyBase64, 'base64');
  const pub = Buffer.from(vectors.ed25519.publicKeyBase64, 'base64');

  it('the vector key pair is RFC 8032 test 1 (independent anchor for tweetnacl, sodium and node:crypto)', () => {
    assert.equal(pub.toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    const sig = ed25519SignHex(ed25519PrivateKey(secret), '');
    assert.equal(sig.slice(0, 32), 'e5564300c360ac729086e2cc806e828a');
    assert.deepEqual(Buffer.from(nacl.sign.keyPair.fromSeed(Buffer.from(vectors.ed25519.seedHex, 'hex')).secretKey), secret);
  });

  for (const v of vectors.requests) {
    it(`${v.name}: body hash, canonical strings and both signatures`, () => {
      assert.equal(sha256Hex(Buffer.from(v.body, 'utf8')), v.bodySha256);
      const parts = { method: v.method, target: v.target, timestamp: v.timestamp, nonce: v.nonce, bodySha256: v.bodySha256 };
      assert.equal(canonicalString({ ...parts, keyId: vectors.ed25519.keyId }), v.ed25519.canonical);
      assert.equal(canonicalString({ ...parts, keyId: vectors.hmac.keyId }), v.hmac.canonical);
      // node:crypto and tweetnacl produce the same deterministic Ed25519 signature.
      assert.equal(ed25519SignHex(ed25519PrivateKey(secret), v.ed25519.canonical), v.ed25519.signature);
      assert.equal(Buffer.from(nacl.sign.detached(Buffer.from(v.ed25519.canonical, 'utf8'), secret)).toString('hex'), v.ed25519.signature);
      assert.equal(hmacSignHex(Buffer.from(vectors.hmac.secret, 'utf8'), v.hmac.canonical), v.hmac.signature);
    });
  }

  it('channel id signatures', () => {
    for (const c of vectors.channels) assert.equal(signChannel(c.id, { key: c.key, algorithm: c.algorithm }), c.signed);
  });

  it("the PHP client's own copy of the vectors (it ships without this package) is byte-for-byte this file", () => {
    const here = readFileSync(new URL('./publish-auth.vectors.json', import.meta.url));
    const php = readFileSync(new URL('../../php-client/tests/publish-auth.vectors.json', import.meta.url));
    assert.ok(php.equals(here), 'copy packages/protocol/src/publish-auth.vectors.json to packages/php-client/tests/ after changing it');
  });
});

for (const placement of ['thread pool', 'inline'] as const) {
  describe(`PublishVerifier, Ed25519 in the ${placement}`, () => {
    const ring = parseKeyRing(`${vectors.ed25519.keyId}:ed25519:${vectors.ed25519.publicKeyBase64}, ${vectors.hmac.keyId}:hmac-sha256:${vectors.hmac.secret}`);
    let asked = 0;
    const verifier = new PublishVerifier(ring, {
      inline: () => {
        asked++;
        return placement === 'inline';
      },
    });
    const v = vectors.requests[0]!;
    const body = Buffer.from(v.body, 'utf8');
    const signedBy = (keyId: string, signature: string, over: Partial<{ timestamp: number; nonce: string }> = {}) => ({
      keyId,
      timestamp: over.timestamp ?? v.timestamp,
      nonce: over.nonce ?? v.nonce,
      signature: Buffer.from(signature, 'hex'),
    });

    it('accepts the vector signatures of both algorithms; only Ed25519 checks ask where to run', async () => {
      asked = 0;
      for (const r of vectors.requests) {
        const b = Buffer.from(r.body, 'utf8');
        const over = { timestamp: r.timestamp, nonce: r.nonce };
        await verifier.verify(signedBy(vectors.ed25519.keyId, r.ed25519.signature, over), r.method, r.target, b);
        await verifier.verify(signedBy(vectors.hmac.keyId, r.hmac.signature, over), r.method, r.target, b);
      }
      assert.equal(asked, vectors.requests.length);
    });

    const flip = (hex: string): string => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
    const cases: Array<[string, () => Promise<void>, number]> = [
      ['unknown key id', () => verifier.verify(signedBy('nobody', v.ed25519.signature), v.method, v.target, body), 4122],
      ['ed25519: one bit of the signature changed', () => verifier.verify(signedBy(vectors.ed25519.keyId, flip(v.ed25519.signature)), v.method, v.target, body), 4123],
      ['hmac: one bit of the signature changed', () => verifier.verify(signedBy(vectors.hmac.keyId, flip(v.hmac.signature)), v.method, v.target, body), 4123],
      ['ed25519: body changed', () => verifier.verify(signedBy(vectors.ed25519.keyId, v.ed25519.signature), v.method, v.target, Buffer.from(`${v.body} `)), 4123],
      ['hmac: query changed', () => verifier.verify(signedBy(vectors.hmac.keyId, v.hmac.signature), v.method, `${v.target}0`, body), 4123],
      ['method changed', () => verifier.verify(signedBy(vectors.ed25519.keyId, v.ed25519.signature), 'GET', v.target, body), 4123],
      ['timestamp changed', () => verifier.verify(signedBy(vectors.ed25519.keyId, v.ed25519.signature, { timestamp: v.timestamp + 1 }), v.method, v.target, body), 4123],
      ['nonce changed', () => verifier.verify(signedBy(vectors.ed25519.keyId, v.ed25519.signature, { nonce: `${v.nonce}x` }), v.method, v.target, body), 4123],
      ['ed25519 signature presented under the hmac key id', () => verifier.verify(signedBy(vectors.hmac.keyId, v.ed25519.signature), v.method, v.target, body), 4123],
      ['hmac-length signature on the ed25519 key', () => verifier.verify(signedBy(vectors.ed25519.keyId, v.hmac.signature), v.method, v.target, body), 4123],
    ];
    for (const [name, fn, code] of cases) it(`refuses: ${name} -> ${code}`, async () => assert.equal(await asyncCodeOf(fn), code));
  });
}

describe('refusal reasons', () => {
  it('missing, malformed, unknown key, bad signature, stale and replayed each have their own code, 401/403', () => {
    const specs = [Errors.AUTH_MISSING, Errors.AUTH_MALFORMED, Errors.AUTH_UNKNOWN_KEY, Errors.AUTH_BAD_SIGNATURE, Errors.AUTH_STALE, Errors.AUTH_REPLAY];
    assert.deepEqual(specs.map((e) => e.code), [4120, 4121, 4122, 4123, 4124, 4125]);
    assert.deepEqual(specs.map((e) => e.status), [401, 401, 401, 401, 401, 403]);
    assert.equal(new Set(specs.map((e) => e.reason)).size, specs.length, 'each with its own reason');
    // No other error shares these codes (tests/security/publish-auth.test.ts sends each over HTTP).
    for (const e of specs) assert.equal(Object.values(Errors).filter((x) => x.code === e.code).length, 1);
  });
});

describe('parseAuthHeaders', () => {
  const ok = { keyId: 'k1', timestamp: '1700000000', nonce: 'abcdefghijklmnop', signature: 'ab'.repeat(64) };
  it('no headers at all is an unsigned request', () => assert.equal(parseAuthHeaders({ keyId: '', timestamp: '', nonce: '', signature: '' }), null));
  it('parses a complete set', () => {
    const r = parseAuthHeaders(ok);
    assert.equal(r?.keyId, 'k1');
    assert.equal(r?.timestamp, 1700000000);
    assert.equal(r?.signature.length, 64);
  });
  const bad: Array<[string, Partial<typeof ok>]> = [
    ['signature missing', { signature: '' }],
    ['key id missing', { keyId: '' }],
    ['key id with a space', { keyId: 'a b' }],
    ['timestamp not a number', { timestamp: '17e8' }],
    ['negative timestamp', { timestamp: '-1' }],
    ['nonce too short', { nonce: 'short' }],
    ['nonce with a slash', { nonce: 'abcdefghijklmnop/' }],
    ['signature upper-case hex', { signature: 'AB'.repeat(64) }],
    ['signature of a wrong length', { signature: 'ab'.repeat(40) }],
    ['signature not hex', { signature: 'zz'.repeat(32) }],
  ];
  for (const [name, over] of bad) it(`malformed: ${name} -> 4121`, () => assert.equal(codeOf(() => parseAuthHeaders({ ...ok, ...over })), 4121));
});

describe('parseKeyRing', () => {
  const pubB64 = vectors.ed25519.publicKeyBase64;
  const pubHex = Buffer.from(pubB64, 'base64').toString('hex');
  it('reads several keys, hex and base64, separated by commas or whitespace', () => {
    const ring = parseKeyRing(`a:ed25519:${pubB64}\n b:ed25519:${pubHex},c:hmac-sha256:${'s'.repeat(32)}`);
    assert.deepEqual(ring.map((k) => [k.id, k.algorithm, k.material.length]), [['a', 'ed25519', 32], ['b', 'ed25519', 32], ['c', 'hmac-sha256', 32]]);
    assert.deepEqual(ring[0]?.material, ring[1]?.material);
  });
  it('an empty text is an empty ring', () => assert.deepEqual(parseKeyRing('  '), []));
  const bad: Array<[string, RegExp]> = [
    ['nocolons', /not <keyId>:<algorithm>:<key>/],
    [`a:rsa:${pubB64}`, /algorithm must be/],
    ['a:ed25519:abcd', /32 bytes/],
    [`a:hmac-sha256:${'s'.repeat(31)}`, /at least 32/],
    [`a:ed25519:${pubB64},a:ed25519:${pubB64}`, /listed twice/],
    [`bad id:ed25519:${pubB64}`, /not <keyId>|key id/],
  ];
  for (const [text, re] of bad) it(`rejects ${JSON.stringify(text.slice(0, 30))}`, () => assert.throws(() => parseKeyRing(text), re));
  it('decodeKey32 accepts url-safe base64 and refuses other lengths', () => {
    assert.equal(decodeKey32(pubB64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=$/, ''))?.toString('hex'), pubHex);
    assert.equal(decodeKey32('ab'.repeat(31)), null);
  });
});

describe('small pure helpers', () => {
  it('requestTarget joins a non-empty query only', () => {
    assert.equal(requestTarget('/pub', ''), '/pub');
    assert.equal(requestTarget('/pub', 'CHANNEL_ID=a'), '/pub?CHANNEL_ID=a');
  });
  it('timestampFresh is inclusive at the window edge', () => {
    assert.equal(timestampFresh(1000, 1300, 300), true);
    assert.equal(timestampFresh(1000, 1301, 300), false);
    assert.equal(timestampFresh(1301, 1000, 300), false);
  });
  it('authHeaders names the four headers', () => {
    assert.deepEqual(Object.keys(authHeaders('k', 1, 'n', 's')).sort(), ['x-push-key-id', 'x-push-nonce', 'x-push-signature', 'x-push-timestamp']);
  });
});

describe('networks', () => {
  const set = new NetworkSet(parseNetworks('10.0.0.0/8, 127.0.0.1 ::1/128 2001:db8::/32'));
  const table: Array<[string, boolean]> = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['::ffff:127.0.0.1', true],
    ['0000:0000:0000:0000:0000:ffff:10.9.9.9', true],
    ['::1', true],
    ['2001:db8:1::5', true],
    ['2001:db9::1', false],
    ['not-an-ip', false],
    ['', false],
  ];
  for (const [addr, want] of table) it(`${JSON.stringify(addr)} -> ${want}`, () => assert.equal(set.has(addr), want));
  it('asked again, the same answers (they are remembered)', () => {
    for (const [addr, want] of table) assert.equal(set.has(addr), want, addr);
  });
  it('remembers a bounded number of addresses and stays right past the bound', () => {
    const s = new NetworkSet(parseNetworks('10.0.0.0/16'));
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 10_000; i++) assert.equal(s.has(`10.${i % 2 === 0 ? 0 : 1}.${(i >> 8) & 255}.${i & 255}`), i % 2 === 0);
    assert.ok((s as unknown as { memo: Map<string, boolean> }).memo.size <= 4096);
  });
  it('an empty set matches nothing', () => assert.equal(new NetworkSet([]).has('127.0.0.1'), false));
  it('rejects bad entries, naming them', () => assert.throws(() => parseNetworks('10.0.0.0/33, foo'), /"10.0.0.0\/33", "foo"/));
  it('normalizeAddress', () => assert.deepEqual(normalizeAddress('::FFFF:1.2.3.4'), { address: '1.2.3.4', family: 'ipv4' }));
});

describe('channel lifecycle helpers', () => {
  const w = { writeMs: 1000, readMs: 3000 };
  const table: Array<[number | null, number, string]> = [
    [null, 5_000_000, 'writable'],
    [1000, 1999, 'writable'],
    [1000, 2000, 'read-only'],
    [1000, 3999, 'read-only'],
    [1000, 4000, 'gone'],
  ];
  for (const [created, now, phase] of table) it(`created ${created}, now ${now} -> ${phase}`, () => assert.equal(channelPhase(created, now, w), phase));
  it('mints 32 lowercase hex characters, different every time', () => {
    const ids = new Set(Array.from({ length: 200 }, () => mintChannelId()));
    assert.equal(ids.size, 200);
    for (const id of ids) assert.match(id, /^[a-f0-9]{32}$/);
  });
  it('channel_expire body has the Bitrix shape', () => {
    const body = JSON.parse(channelExpireBody('abc.def', 1700000000000)) as Record<string, unknown>;
    assert.deepEqual(body, {
      module_id: 'pull',
      command: 'channel_expire',
      params: { action: 'get_config', channel: { id: 'abc.def', type: 'private' } },
      extra: { server_time: '2023-11-14T22:13:20.000Z', server_time_unix: 1700000000 },
    });
  });
});
