import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OriginPolicy, parseOrigins } from './origins.js';

describe('parseOrigins', () => {
  it('accepts exact and wildcard origins, normalised as browsers send them', () => {
    assert.deepEqual(parseOrigins('https://Portal.Example.com, http://127.0.0.2:8080 https://*.bitrix24.example:443/'), [
      { scheme: 'https', host: 'portal.example.com', port: '', wildcard: false },
      { scheme: 'http', host: '127.0.0.2', port: '8080', wildcard: false },
      { scheme: 'https', host: 'bitrix24.example', port: '', wildcard: true },
    ]);
    assert.deepEqual(parseOrigins(''), []);
  });
  const bad: Array<[string, string]> = [
    ['no scheme', 'portal.example.com'],
    ['other scheme', 'ftp://portal.example.com'],
    ['a path', 'https://portal.example.com/app'],
    ['a query', 'https://portal.example.com?x=1'],
    ['user info', 'https://user@portal.example.com'],
    ['wildcard over a top-level domain', 'https://*.com'],
    ['wildcard in the middle', 'https://portal.*.example.com'],
    ['wildcard over an address', 'http://*.127.0.0.1'],
    ['bad port', 'https://portal.example.com:99999'],
    ['a bare star', '*'],
    ['null', 'null'],
  ];
  for (const [name, entry] of bad) {
    it(`refuses ${name}: ${entry}`, () => {
      assert.throws(() => parseOrigins(`https://ok.example.com, ${entry}`), (err: Error) => err.message.includes(JSON.stringify(entry)) && !err.message.includes('ok.example.com'));
    });
  }
});

describe('OriginPolicy', () => {
  const policy = new OriginPolicy(parseOrigins('https://portal.example.com,http://127.0.0.2:8080,https://*.bitrix24.example'));
  const table: Array<[string, boolean]> = [
    ['https://portal.example.com', true],
    ['https://PORTAL.example.com', true],
    ['https://portal.example.com:443', true],
    ['http://portal.example.com', false],
    ['https://portal.example.com:8443', false],
    ['https://evil.portal.example.com', false],
    ['https://portal.example.com.evil.example', false],
    ['http://127.0.0.2:8080', true],
    ['http://127.0.0.2', false],
    ['http://127.0.0.3:8080', false],
    ['https://a.bitrix24.example', true],
    ['https://a.b.bitrix24.example', true],
    ['https://bitrix24.example', false],
    ['https://xbitrix24.example', false],
    ['http://a.bitrix24.example', false],
    ['https://*.bitrix24.example', false],
    ['null', false],
    ['garbage', false],
    ['', true],
  ];
  for (const [origin, allowed] of table) {
    it(`${JSON.stringify(origin)} -> ${allowed ? 'allowed' : 'refused'}`, () => assert.equal(policy.allows(origin), allowed));
  }
  it('an empty list allows everything (the check is off)', () => {
    const off = new OriginPolicy([]);
    assert.equal(off.enabled, false);
    assert.equal(off.allows('https://anything.example'), true);
    assert.equal(off.allows('null'), true);
  });
});
