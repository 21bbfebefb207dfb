import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Errors, errorText, signChannel } from '@push/protocol';
import { loadUws, parseEnvFile } from '@push/runtime';
import { channelId } from '../helpers/clients.js';
import { storedState } from '../helpers/redis-snapshot.js';
import WebSocket from 'ws';
import { script, stackPorts } from './stack-helpers.js';

/**
 * Requests refused at the front of a real stack from scripts/start.sh (nginx in front of two
 * publishers and a listener).
 *
 * A request header holding a control character (`Message-Type: a\x01b`) through the real nginx
 * of a stack from scripts/start.sh: answered 400 4115 at once by nginx (nginx/header-guard.js),
 * on publisher and subscriber paths, WebSocket handshakes included, with nothing stored; clean
 * headers (tab, bytes 0x80-0xFF) still pass. Raw sockets, because HTTP clients refuse to send such
 * headers. Directly on a process the HTTP parser of uWebSockets.js 20.57, the binding on every
 * supported Node, answers 400 at once (scripts/test-platforms.sh runs this file under Node 22 and
 * 24; Node 20 on glibc before 2.38 runs the copy of its binding made by scripts/uws-compat.sh).
 *
 * PUSH_ALLOWED_ORIGINS through nginx: the listener's 403 4114 for a foreign Origin reaches the
 * client as is (nginx passes Origin on and does not retry a 403 elsewhere).
 */

const ALLOWED_ORIGIN = 'https://portal.example.com';

/** uWebSockets.js closes a connection idle this long; an answer must come well before it. */
const PARSER_IDLE_MS = 10_000;

interface RawAnswer {
  /** Everything received, latin1. */
  readonly text: string;
  readonly ms: number;
}

/** Whether `text` holds a whole response (headers and a Content-Length body). */
function complete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
  return len !== null && text.length - end - 4 >= Number(len[1]);
}

/** Sends raw bytes and collects one response, until it is complete, the peer closes or `waitMs` passes. */
function raw(port: number, request: string, waitMs: number): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let text = '';
    const s = connect(port, '127.0.0.1', () => s.write(Buffer.from(request, 'latin1')));
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, ms: Date.now() - t0 });
    };
    const timer = setTimeout(done, waitMs);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (complete(text)) done();
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', done);
  });
}

const statusOf = (a: RawAnswer): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(a.text)?.[1] ?? 0);
const bodyOf = (a: RawAnswer): string => a.text.slice(a.text.indexOf('\r\n\r\n') + 4);

describe('requests refused at the front: malformed headers, foreign origins', () => {
  let runDir: string;
  let env: Record<string, string>;
  let frontPort: number;
  let pubPort: number;
  let subPort: number;
  let redis: Redis;
  let key: string;

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-headers-'));
    const ports = await stackPorts(runDir, 2, 1);
    frontPort = ports.frontPort;
    pubPort = Number(ports.env['PUSH_PUBLISHER_PORT']);
    subPort = Number(ports.env['PUSH_LISTENER_PORT']);
    env = { ...ports.env, PUSH_PUBLISHERS: '2', PUSH_LISTENERS: '1', PUSH_SIGNATURE_KEY: '', REDIS_URL: '', PUSH_LOG_LEVEL: 'warn', PUSH_SKIP_SETUP: '1', PUSH_SHUTDOWN_GRACE_S: '1', PUSH_ALLOWED_ORIGINS: ALLOWED_ORIGIN };
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    key = parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    redis = new Redis({ port: Number(ports.env['PUSH_REDIS_PORT']), host: '127.0.0.1' });
  });
  after(async () => {
    redis?.disconnect();
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  const publishRequest = (ch: string, header: string, body = '{"module_id":"test","command":"h"}'): string =>
    `POST /bitrix/pub/?CHANNEL_ID=${ch} HTTP/1.1\r\nHost: push\r\n${header}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;

  it('through nginx: publish, long poll and WebSocket handshake with a control character in a header get 400 4115 at once, and nothing is stored', async () => {
    const ch = channelId();
    const sub = encodeURIComponent(signChannel(ch, { key, algorithm: 'sha1' }));
    const before = await storedState(redis);
    const requests: Array<[string, string]> = [
      ['publish, Message-Type: a\\x01b', publishRequest(ch, 'Message-Type: a\x01b')],
      ['publish, escape sequence in another header', publishRequest(ch, 'X-Note: \x1b[31mred')],
      ['publish, DEL', publishRequest(ch, 'Message-Type: a\x7fb')],
      ['long poll', `GET /bitrix/sub/?CHANNEL_ID=${sub} HTTP/1.1\r\nHost: push\r\nX-Client: a\x02b\r\nConnection: close\r\n\r\n`],
      ['WebSocket handshake', `GET /bitrix/subws/?CHANNEL_ID=${sub} HTTP/1.1\r\nHost: push\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Client: a\x1fb\r\n\r\n`],
    ];
    for (const [name, request] of requests) {
      const a = await raw(frontPort, request, PARSER_IDLE_MS + 5_000);
      assert.equal(statusOf(a), 400, `${name}: ${JSON.stringify(a.text.slice(0, 200))}`);
      assert.equal(bodyOf(a), `${errorText(Errors.MALFORMED_HEADER)}\n`, `${name}: the catalogue reason`);
      // A functional bound, not a speed figure: answered by nginx, not after a parser's idle timer.
      assert.ok(a.ms < PARSER_IDLE_MS / 2, `${name}: answered after ${a.ms} ms`);
    }
    // In a header name nginx refuses it itself, with its own 400 page, before the check runs.
    const named = await raw(frontPort, publishRequest(ch, 'X-No\x01te: a'), PARSER_IDLE_MS + 5_000);
    assert.equal(statusOf(named), 400, JSON.stringify(named.text.slice(0, 200)));
    assert.ok(named.ms < PARSER_IDLE_MS / 2, `header name: answered after ${named.ms} ms`);
    assert.equal(await storedState(redis), before, 'nothing was stored');
  });

  it('through nginx: tabs and bytes 0x80-0xFF in header values are not control characters; the same publish with a clean header is stored', async () => {
    const ch = channelId();
    const before = await storedState(redis);
    const a = await raw(frontPort, publishRequest(ch, 'X-Note: caf\xe9\tau lait'), 10_000);
    assert.equal(statusOf(a), 200, a.text.slice(0, 300));
    assert.notEqual(await storedState(redis), before, 'the clean publish was stored');
  });

  it('directly on a process, on every Node: the parser answers 400 at once, nothing is stored and the process goes on serving', async () => {
    const parser = loadUws().detail;
    assert.match(parser, / from uWebSockets\.js 20\.57\.0 /);
    const ch = channelId();
    const before = await storedState(redis);
    for (const port of [pubPort, subPort]) {
      const a = await raw(port, publishRequest(ch, 'Message-Type: a\x01b'), PARSER_IDLE_MS);
      // The parser's own answer (its body is not ours: no callback reaches the application).
      assert.equal(statusOf(a), 400, `port ${port} (${parser}): ${JSON.stringify(a.text)}`);
      assert.ok(a.ms < PARSER_IDLE_MS / 2, `port ${port}: answered at once, not on the idle timer (${a.ms} ms)`);
      const ok = await raw(port, `GET /readyz HTTP/1.1\r\nHost: push\r\nConnection: close\r\n\r\n`, 10_000);
      assert.equal(statusOf(ok), 200, `port ${port}: still serving`);
    }
    assert.equal(await storedState(redis), before, 'nothing stored');
  });

  it('through nginx: a WebSocket handshake from a foreign Origin gets 403 4114; the listed origin opens', async () => {
    const ch = channelId();
    const url = `ws://127.0.0.1:${frontPort}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, { key, algorithm: 'sha1' }))}`;
    const attempt = (origin: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { origin });
        ws.once('open', () => {
          ws.close();
          resolve({ status: 101, body: '' });
        });
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        ws.once('error', reject);
      });
    const foreign = await attempt('https://evil.example');
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /^4114: Origin not allowed: /);
    assert.equal((await attempt(ALLOWED_ORIGIN)).status, 101);
  });
});
