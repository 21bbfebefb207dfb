import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { PushError } from '../errors.js';
import { signSubscriptionToken, verifySubscriptionToken } from './jwt.js';

const KEY = 'portal-signature-key';
const NOW = 1_800_000_000;
const limits = { maxChannels: 3, leewayS: 60 };
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** A token with any header, claims and signing function (to build what a portal never would). */
function forge(header: unknown, claims: unknown, signWith: (input: string) => string): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${signWith(input)}`;
}
const hs = (alg: string, key = KEY) => (input: string) => createHmac(alg, key).update(input).digest('base64url');
const good = { iss: 'host', iat: NOW - 10, exp: NOW + 3600, sub: '7', chan: A };

describe('subscription tokens (JWT)', () => {
  it('a portal token (HS256, iss/iat/exp/sub/chan) gives the user and the channels', () => {
    const token = signSubscriptionToken({ iss: 'host', iat: NOW, exp: NOW + 43200, sub: '7', chan: [A, B, A] }, KEY);
    assert.deepEqual(verifySubscriptionToken(token, KEY, NOW, limits), { iss: 'host', sub: '7', chan: [A, B], exp: NOW + 43200 });
  });
  it('a token with channels only (a guest) or a user only is fine', () => {
    assert.deepEqual(verifySubscriptionToken(forge({ alg: 'HS256' }, { exp: NOW + 1, chan: `${A},${B}` }, hs('sha256')), KEY, NOW, limits).chan, [A, B]);
    assert.equal(verifySubscriptionToken(forge({ alg: 'HS256', typ: 'JWT' }, { exp: NOW + 1, sub: '12' }, hs('sha256')), KEY, NOW, limits).sub, '12');
  });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const refused: Array<[string, string]> = [
    ['expired (exp = now)', forge({ alg: 'HS256' }, { ...good, exp: NOW }, hs('sha256'))],
    ['expired long ago', forge({ alg: 'HS256' }, { ...good, exp: NOW - 86400 }, hs('sha256'))],
    ['no exp', forge({ alg: 'HS256' }, { sub: '7' }, hs('sha256'))],
    ['exp not a number', forge({ alg: 'HS256' }, { ...good, exp: String(NOW + 10) }, hs('sha256'))],
    ['signed with another key', forge({ alg: 'HS256' }, good, hs('sha256', 'another key'))],
    ['payload changed after signing', (() => { const t = forge({ alg: 'HS256' }, good, hs('sha256')).split('.'); return `${t[0]}.${b64({ ...good, sub: '1' })}.${t[2]}`; })()],
    ['signature cut short', forge({ alg: 'HS256' }, good, hs('sha256')).slice(0, -2)],
    ['alg none, no signature', forge({ alg: 'none' }, good, () => '')],
    ['alg none, with a valid HS256 signature', forge({ alg: 'none' }, good, hs('sha256'))],
    ['alg NONE', forge({ alg: 'NONE' }, good, () => '')],
    ['alg HS512 signed with the key', forge({ alg: 'HS512' }, good, hs('sha512'))],
    ['alg HS384 signed with the key', forge({ alg: 'HS384' }, good, hs('sha384'))],
    ['alg RS256', forge({ alg: 'RS256' }, good, (input) => sign('sha256', Buffer.from(input), privateKey).toString('base64url'))],
    ['no alg', forge({ typ: 'JWT' }, good, hs('sha256'))],
    ['crit header', forge({ alg: 'HS256', crit: ['exp'] }, good, hs('sha256'))],
    ['issued in the future', forge({ alg: 'HS256' }, { ...good, iat: NOW + 3600 }, hs('sha256'))],
    ['not valid before later', forge({ alg: 'HS256' }, { ...good, nbf: NOW + 3600 }, hs('sha256'))],
    ['sub not a user id', forge({ alg: 'HS256' }, { ...good, sub: 'admin' }, hs('sha256'))],
    ['sub a number, not a string', forge({ alg: 'HS256' }, { ...good, sub: 7 }, hs('sha256'))],
    ['chan holds something else', forge({ alg: 'HS256' }, { ...good, chan: `${A},../x` }, hs('sha256'))],
    ['too many channels', forge({ alg: 'HS256' }, { ...good, chan: [A, B, 'c'.repeat(32), 'd'.repeat(32)].join(',') }, hs('sha256'))],
    ['neither user nor channel', forge({ alg: 'HS256' }, { exp: NOW + 10 }, hs('sha256'))],
    ['two segments', 'abc.def'],
    ['four segments', 'a.b.c.d'],
    ['not base64url', 'a+b.c/d.e=f'],
    ['header not JSON', `${b64('nope')}.${b64(good)}.sig`],
    ['payload an array', forge({ alg: 'HS256' }, [good], hs('sha256'))],
    ['empty', ''],
    ['far too long', 'a'.repeat(9000)],
  ];
  for (const [name, token] of refused) {
    it(`refuses ${name} with 4010 and a detail`, () => {
      assert.throws(() => verifySubscriptionToken(token, KEY, NOW, limits), (e: unknown) => e instanceof PushError && e.spec.code === 4010 && e.wire.startsWith('4010: Wrong Channel Id. ') && e.wire.length > 'Wrong Channel Id. '.length + 8 && Buffer.byteLength(e.wire) <= 123);
    });
  }
  it('accepts iat within the leeway (portal clock slightly ahead)', () => {
    assert.equal(verifySubscriptionToken(forge({ alg: 'HS256' }, { ...good, iat: NOW + 30 }, hs('sha256')), KEY, NOW, limits).sub, '7');
  });
});
