import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PushError } from './errors.js';
import { hexEqual, parsePublisherChannels, parseSubscriberChannels, signChannel, signChannelPair, signPublicChannel, signature, type ChannelSecret } from './channel-id.js';

const KEY = 'u9kqCo7qhKIQ8RML9xUGNmcZLVWmS8OsR2UN9jsZuaCY3aqPKGENRWmA36f9r47FHnqXlKuMvgsl0hnft7qCAN8iXHw94nHS4D6dxA07BX1lUjwuMJ0t73Z9wJY25Mpu';
const SHA1: ChannelSecret = { key: KEY, algorithm: 'sha1' };
const PRIV = '3c8264bab589b0de7174e7b0523a40db';
const PUB = 'c18beb389c3e49131dbb2dde597df615';
const SHARED = 'f0e5d42369441879d7e176c96cbbff2d';

describe('signatures: reference test vectors (HMAC-SHA1)', () => {
  const vectors: Array<[string, string]> = [
    [SHARED, '26f59cab4eab972ec7dacec39a4355a3d7627717'],
    [`${PRIV}:${PUB}`, 'e4e4307e2c1485c9310f3a726c5af17ba380b828'],
    [`public:${PUB}`, '95e752af8a6f9cacd5de990f22636d46058f521e'],
  ];
  for (const [data, sig] of vectors) it(`signs ${data}`, () => assert.equal(signature(data, SHA1), sig));
  it('sign helpers build the wire forms', () => {
    assert.equal(signChannel(SHARED, SHA1), `${SHARED}.26f59cab4eab972ec7dacec39a4355a3d7627717`);
    assert.equal(signChannelPair(PRIV, PUB, SHA1), `${PRIV}:${PUB}.e4e4307e2c1485c9310f3a726c5af17ba380b828`);
    assert.equal(signPublicChannel(PUB, SHA1), `${PUB}.95e752af8a6f9cacd5de990f22636d46058f521e`);
  });
  it('the algorithm is switchable and changes the signature length', () => {
    assert.equal(signature(SHARED, { key: KEY, algorithm: 'md5' }).length, 32);
    assert.equal(signature(SHARED, { key: KEY, algorithm: 'sha256' }).length, 64);
    assert.equal(signature(SHARED, { key: KEY, algorithm: 'sha512' }).length, 128);
  });
  it('hexEqual compares exactly', () => {
    assert.equal(hexEqual('abc', 'abc'), true);
    assert.equal(hexEqual('abc', 'abd'), false);
    assert.equal(hexEqual('abc', 'abcd'), false);
  });
});

describe('parseSubscriberChannels', () => {
  const s = (id: string) => signChannel(id, SHA1);
  const ok: Array<[string, string, Array<{ privateId: string; publicId: string | null }>]> = [
    ['one signed channel', s(SHARED), [{ privateId: SHARED, publicId: null }]],
    ['private pair and shared', `${signChannelPair(PRIV, PUB, SHA1)}/${s(SHARED)}`, [{ privateId: PRIV, publicId: PUB }, { privateId: SHARED, publicId: null }]],
    ['duplicates collapse (old SDKs sent priv/priv/shared)', `${s(PRIV)}/${s(PRIV)}/${s(SHARED)}`, [{ privateId: PRIV, publicId: null }, { privateId: SHARED, publicId: null }]],
    ['trailing slash tolerated', `${s(SHARED)}/`, [{ privateId: SHARED, publicId: null }]],
  ];
  for (const [name, raw, want] of ok) it(`accepts: ${name}`, () => assert.deepEqual(parseSubscriberChannels(raw, SHA1, 100), want));

  const bad: Array<[string, string | null]> = [
    ['missing', null],
    ['empty', ''],
    ['only slashes', '//'],
    ['unsigned id', SHARED],
    ['wrong signature', `${SHARED}.${'0'.repeat(40)}`],
    ['signature of another id', `${SHARED}.${signature(PRIV, SHA1)}`],
    ['uppercase hex', s(SHARED).toUpperCase()],
    ['short id', `${SHARED.slice(1)}.${signature(SHARED.slice(1), SHA1)}`],
    ['pair signed as bare private id', `${PRIV}:${PUB}.${signature(PRIV, SHA1)}`],
    ['bare public id with public: signature is not a subscription', signPublicChannel(PUB, SHA1)],
    ['one bad part rejects the list', `${s(SHARED)}/${PRIV}.${'1'.repeat(40)}`],
    ['signature too short', `${SHARED}.abc`],
    ['garbage', '../../etc/passwd'],
  ];
  for (const [name, raw] of bad) {
    it(`rejects with 4010: ${name}`, () => {
      assert.throws(() => parseSubscriberChannels(raw, SHA1, 100), (err: unknown) => err instanceof PushError && err.spec.code === 4010 && err.wire.startsWith('4010: Wrong Channel Id.'));
    });
  }
  it('rejects more channels than the limit with exactly the Bitrix reason (no detail)', () => {
    assert.throws(
      () => parseSubscriberChannels([s(SHARED), s(PRIV)].join('/'), SHA1, 1),
      (err: unknown) => err instanceof PushError && err.spec.code === 4010 && err.wire === '4010: Wrong Channel Id.',
    );
    assert.equal(parseSubscriberChannels([s(SHARED), s(SHARED)].join('/'), SHA1, 2).length, 1, 'at the limit is fine');
  });
});

describe('parsePublisherChannels', () => {
  it('accepts bare ids, signed ids (signature ignored) and pairs', () => {
    assert.deepEqual(parsePublisherChannels(`${SHARED}/${PRIV}.${'0'.repeat(40)}/${PRIV}:${PUB}.abcdefabcdefabcdefabcdefabcdefab`, 100), [SHARED, PRIV]);
  });
  const bad: Array<[string, string | null, number]> = [
    ['missing', null, 4017],
    ['empty', '', 4017],
    ['malformed', 'xyz', 4010],
    ['one malformed among good', `${SHARED}/nothex`, 4010],
  ];
  for (const [name, raw, code] of bad) {
    it(`rejects ${name} with ${code}`, () => assert.throws(() => parsePublisherChannels(raw, 100), (e: unknown) => e instanceof PushError && e.spec.code === code));
  }
  it('rejects over the channel limit with 4018', () => {
    const ids = Array.from({ length: 3 }, (_, i) => String(i).repeat(32));
    assert.throws(() => parsePublisherChannels(ids.join('/'), 2), (e: unknown) => e instanceof PushError && e.spec.code === 4018 && e.spec.status === 400);
  });
});
