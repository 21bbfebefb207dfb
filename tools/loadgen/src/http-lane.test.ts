import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResponse } from './http-lane.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('HTTP responses read by a publish lane', () => {
  // A complete response is consumed whole (consumed = its length).
  const cases: Array<{ name: string; bytes: string; want: { status: number; text: string; close: boolean } | null }> = [
    { name: 'Content-Length body', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}', want: { status: 200, text: '{}', close: false } },
    { name: 'no body and no length', bytes: 'HTTP/1.1 202 Accepted\r\n\r\n', want: { status: 202, text: '', close: false } },
    { name: 'empty chunked body (the Bitrix push server 1.0 publish answer)', bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: { status: 200, text: '', close: false } },
    { name: 'chunked body in two chunks with an extension', bytes: 'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n', want: { status: 400, text: 'abcde', close: false } },
    { name: 'chunked with a trailer', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n', want: { status: 200, text: 'x', close: false } },
    { name: 'Connection: close is reported', bytes: 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', want: { status: 503, text: '', close: true } },
    { name: 'incomplete head', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n', want: null },
    { name: 'incomplete Content-Length body', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', want: null },
    { name: 'incomplete chunk', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', want: null },
    { name: 'chunked without its final empty line', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n', want: null },
    { name: 'not HTTP', bytes: 'garbage here\r\n\r\n', want: { status: 0, text: '', close: false } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(parseResponse(b(c.bytes)), c.want === null ? null : { ...c.want, consumed: c.bytes.length }));

  it('takes only the first of two pipelined responses', () => {
    const first = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n';
    const r = parseResponse(b(`${first}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`));
    assert.deepEqual(r, { status: 200, text: '', consumed: first.length, close: false });
  });
});
