import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Errors, errorText } from './errors.js';

it('docs/errors.md lists exactly the catalogue, with the same codes, statuses and reasons', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, { code: number; status: number; reason: string }>();
  for (const line of doc.split('\n')) {
    const m = /^\| (\d{4}) \| (\d{3}) \| ([A-Z_]+) \| (.+?) \| .* \|$/.exec(line);
    if (m) rows.set(m[3] as string, { code: Number(m[1]), status: Number(m[2]), reason: m[4] as string });
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(Errors).sort());
  for (const [name, spec] of Object.entries(Errors)) assert.deepEqual(rows.get(name), { code: spec.code, status: spec.status, reason: spec.reason }, name);
  const codes = Object.values(Errors).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length, 'codes are unique');
});

it('every text a WebSocket can be closed with fits a close frame (123 bytes of reason), so clients see it whole', () => {
  // Only the publisher's HTTP answers may be longer: signed-publish errors never close a socket.
  const httpOnly = new Set(['AUTH_MISSING', 'AUTH_MALFORMED', 'AUTH_UNKNOWN_KEY', 'AUTH_BAD_SIGNATURE', 'AUTH_STALE', 'AUTH_REPLAY', 'INVALID_MINT', 'PORTAL_RPC_SIGNATURE', 'PORTAL_RPC_INVALID']);
  for (const [name, spec] of Object.entries(Errors)) {
    if (!httpOnly.has(name)) assert.ok(Buffer.byteLength(errorText(spec)) <= 123, `${name}: ${Buffer.byteLength(errorText(spec))} bytes`);
  }
});
