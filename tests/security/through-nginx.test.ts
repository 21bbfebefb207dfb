import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import { encodeRequestBatch, signChannelPair } from '@push/protocol';
import { TEST_KEY } from '../helpers/apps.js';
import { SECRET, channelId } from '../helpers/clients.js';
import { snapshotChanges, takeSnapshot } from '../helpers/redis-snapshot.js';
import { httpRequest, script, stackPorts, type RawHttpResponse } from '../ops/stack-helpers.js';

/**
 * Every decision the processes make by client address, tried through the real nginx of a stack
 * from `npm start` (with the setting, PUSH_PUBLISH_TRUSTED_NETWORKS=127.0.0.1/32), from
 * other loopback addresses playing other machines, with and without forged client-address headers.
 * nginx must hand the processes the address it saw, whatever the client wrote; the processes must
 * believe that header only from nginx (PUSH_TRUSTED_PROXIES). Every refusal leaves Redis as it was.
 *
 * Read the table as: for each route (row) and each way of asking (column), the answer expected.
 */
const TRUSTED = '127.0.0.1';
const OTHER = '127.0.0.2';
const THIRD = '127.0.0.3';
const ADMIN_TOKEN = 'edge-admin-token-0123456789abcdef';

/** Ways of asking: where the request comes from and which headers it carries. */
const SOURCES = {
  untrusted: { from: OTHER, headers: {} },
  'forged X-Real-IP': { from: OTHER, headers: { 'X-Real-IP': TRUSTED } },
  'forged X-Forwarded-For': { from: THIRD, headers: { 'X-Forwarded-For': TRUSTED } },
  'forged both, as lists': { from: THIRD, headers: { 'X-Real-IP': `${TRUSTED}, ${TRUSTED}`, 'X-Forwarded-For': `${TRUSTED}, ${TRUSTED}` } },
  trusted: { from: TRUSTED, headers: {} },
  'admin token, untrusted': { from: OTHER, headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } },
  'wrong admin token, trusted': { from: TRUSTED, headers: { Authorization: 'Bearer not-the-admin-token-000000' } },
} as const satisfies Record<string, { from: string; headers: Record<string, string> }>;
type Source = keyof typeof SOURCES;

/** 200, or a refusal with its catalogue code. `writes`: a 200 that must change Redis (it stores). */
type Expect = { status: 200; writes: boolean } | { status: number; code: number };
const ok = (writes: boolean): Expect => ({ status: 200, writes });
const no = (status: number, code: number): Expect => ({ status, code });

interface Route {
  readonly name: string;
  /** A fresh request each time (fresh channels, so answers do not depend on earlier rows). */
  readonly request: () => { method: 'GET' | 'POST'; target: string; body?: string | Uint8Array; headers?: Record<string, string> };
  readonly expect: Record<Source, Expect>;
}

const msg = (command: string): string => JSON.stringify({ module_id: 'edge', command, params: {} });
const hex = (id: string): Buffer => Buffer.from(id, 'hex');

/** Portal routes: an unsigned request is judged by the real client address only. */
const portal = (writes: boolean): Record<Source, Expect> => ({
  untrusted: no(401, 4120),
  'forged X-Real-IP': no(401, 4120),
  'forged X-Forwarded-For': no(401, 4120),
  'forged both, as lists': no(401, 4120),
  trusted: ok(writes),
  // The admin token opens the admin pages, never publishing; and publishing ignores Authorization.
  'admin token, untrusted': no(401, 4120),
  'wrong admin token, trusted': ok(writes),
});
/** Admin pages: trusted networks or the bearer token; a presented token is always checked. */
const admin: Record<Source, Expect> = {
  untrusted: no(401, 4128),
  'forged X-Real-IP': no(401, 4128),
  'forged X-Forwarded-For': no(401, 4128),
  'forged both, as lists': no(401, 4128),
  trusted: ok(false),
  'admin token, untrusted': ok(false),
  'wrong admin token, trusted': no(401, 4129),
};
/** Same answer whoever asks (the address is not what decides). */
const everyone = (e: Expect): Record<Source, Expect> => Object.fromEntries(Object.keys(SOURCES).map((s) => [s, e])) as Record<Source, Expect>;

/** A client publish (protocol 4, `/bitrix/rest/`): the sender's signed priv:pub pair decides, never the address. */
const restRequest = (path: string, forgeSignature: boolean) => () => {
  const [priv, pub, receiver] = [channelId(), channelId(), channelId()];
  const sig = createHmac('sha1', SECRET.key).update(`public:${receiver}`).digest();
  const body = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: hex(receiver), isPrivate: false, signature: sig }], body: msg('rest'), expiry: 600, type: 'edge_rest' }] } }] });
  const pair = signChannelPair(priv, pub, SECRET);
  const channel = forgeSignature ? `${pair.slice(0, -1)}${pair.endsWith('0') ? '1' : '0'}` : pair;
  return { method: 'POST' as const, target: `${path}?CHANNEL_ID=${encodeURIComponent(channel)}`, body };
};

const textPublish: Route['request'] = () => ({ method: 'POST', target: `/bitrix/pub/?CHANNEL_ID=${channelId()}`, body: msg('text'), headers: { 'Message-Expiry': '600' } });
const mint: Route['request'] = () => ({ method: 'POST', target: '/channels?count=1' });
const get = (target: string): Route['request'] => () => ({ method: 'GET', target });

const ROUTES: readonly Route[] = [
  { name: 'unsigned publish POST /bitrix/pub/', request: textPublish, expect: portal(true) },
  { name: 'unsigned publish POST /pub', request: () => ({ method: 'POST', target: `/pub?CHANNEL_ID=${channelId()}`, body: msg('short'), headers: { 'Message-Expiry': '600' } }), expect: portal(true) },
  { name: 'batch POST /bitrix/pub/batch', request: () => ({ method: 'POST', target: '/bitrix/pub/batch', body: JSON.stringify({ messages: [{ channels: [channelId(), channelId()], body: { module_id: 'edge', command: 'batch', params: {} }, expiry: 600 }] }) }), expect: portal(true) },
  {
    name: 'protocol-4 binary publish POST /bitrix/pub/?binaryMode=true',
    request: () => ({ method: 'POST', target: '/bitrix/pub/?binaryMode=true', body: encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: hex(channelId()), isPrivate: true }], body: msg('binary'), expiry: 600, type: 'edge_binary' }] } }] }) }),
    expect: portal(true),
  },
  { name: 'online status GET /bitrix/pub/?CHANNEL_ID=', request: () => ({ method: 'GET', target: `/bitrix/pub/?CHANNEL_ID=${channelId()}/${channelId()}` }), expect: portal(false) },
  { name: 'mint POST /channels', request: mint, expect: portal(true) },
  { name: 'client publish POST /bitrix/rest/ (signed channel)', request: restRequest('/bitrix/rest/', false), expect: everyone(ok(true)) },
  { name: 'client publish POST /rest/ (signed channel; push server 2.0 path)', request: restRequest('/rest/', false), expect: everyone(ok(true)) },
  { name: 'client publish POST /bitrix/rest/ (forged channel signature)', request: restRequest('/bitrix/rest/', true), expect: everyone(no(400, 4012)) },
  { name: 'status page GET /status', request: get('/status'), expect: admin },
  { name: 'status data GET /status/data', request: get('/status/data'), expect: admin },
  { name: 'cluster stats GET /server-stat/', request: get('/server-stat/'), expect: admin },
  { name: 'cluster stats GET /bitrix/server-stat/', request: get('/bitrix/server-stat/'), expect: admin },
  // nginx does not route /metrics (scrape each process directly): nobody gets it through the front port.
  { name: 'metrics GET /metrics (not routed by nginx)', request: get('/metrics'), expect: everyone(no(404, 4107)) },
];

describe('every trust decision through the real nginx of an npm start stack', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let publisherUrl: string;
  let listenerUrl: string;
  let redis: Redis;

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-edge-'));
    const ports = await stackPorts(runDir, 1, 1);
    env = {
      ...ports.env,
      PUSH_PUBLISHERS: '1',
      PUSH_LISTENERS: '1',
      PUSH_SIGNATURE_KEY: TEST_KEY,
      REDIS_URL: '',
      // The setting; the stack's defaults for everything else that decides trust.
      PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32',
      PUSH_TRUSTED_PROXIES: '',
      PUSH_REAL_IP_HEADER: '',
      PUSH_PUB_ALLOW: '',
      PUSH_ADMIN_TOKEN: ADMIN_TOKEN,
      PUSH_LOG_LEVEL: 'warn',
      PUSH_SKIP_SETUP: '1',
    };
    front = `http://127.0.0.1:${ports.frontPort}`;
    publisherUrl = `http://127.0.0.1:${ports.env['PUSH_PUBLISHER_PORT']}`;
    listenerUrl = `http://127.0.0.1:${ports.env['PUSH_LISTENER_PORT']}`;
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ {2}admin pages: {2}\/status, \/server-stat\/, \/metrics from 127\.0\.0\.1\/32, or anywhere with Authorization: Bearer <PUSH_ADMIN_TOKEN>$/m);
    assert.ok(!r.stdout.includes(ADMIN_TOKEN), 'the token itself is never printed');
    redis = new Redis({ port: Number(ports.env['PUSH_REDIS_PORT']), host: '127.0.0.1', lazyConnect: true });
    await redis.connect();
  });
  after(async () => {
    redis?.disconnect();
    const r = await script('stop', env);
    if (r.code !== 0) process.stderr.write(`stop.sh: ${r.stdout}${r.stderr}\n`);
    rmSync(runDir, { recursive: true, force: true });
  });

  /** Sends one request and checks the answer and what it did to Redis. */
  const check = async (label: string, base: string, req: ReturnType<Route['request']>, source: { from: string; headers: Record<string, string> }, expect: Expect): Promise<RawHttpResponse> => {
    const before = await takeSnapshot(redis);
    const res = await httpRequest(`${base}${req.target}`, { method: req.method, headers: { ...req.headers, ...source.headers }, localAddress: source.from, ...(req.body === undefined ? {} : { body: req.body }) });
    const changes = snapshotChanges(before, await takeSnapshot(redis));
    assert.equal(res.status, expect.status, `${label}: ${res.body}`);
    if ('code' in expect) {
      assert.match(res.body, new RegExp(`^${expect.code}: `), `${label}: the catalogue error`);
      assert.deepEqual(changes, [], `${label}: a refused request changed Redis`);
    } else if (expect.writes) {
      assert.notDeepEqual(changes, [], `${label}: an accepted publish or mint must be stored`);
    }
    return res;
  };

  for (const route of ROUTES) {
    it(route.name, async () => {
      for (const [source, how] of Object.entries(SOURCES) as Array<[Source, (typeof SOURCES)[Source]]>) {
        await check(`${route.name} / ${source}`, front, route.request(), how, route.expect[source]);
      }
    });
  }

  it('a refusal says what to do, and names the address it judged (the one nginx saw, not the forged one)', async () => {
    const pub = await check('publish', front, { method: 'POST', target: `/bitrix/pub/?CHANNEL_ID=${channelId()}`, body: msg('x') }, SOURCES['forged X-Real-IP'], no(401, 4120));
    assert.match(pub.body, /sign it .* or list the source in PUSH_PUBLISH_TRUSTED_NETWORKS\. Source address 127\.0\.0\.2\.$/);
    const stat = await check('server-stat', front, { method: 'GET', target: '/server-stat/' }, SOURCES['forged X-Forwarded-For'], no(401, 4128));
    assert.match(stat.body, /PUSH_PUBLISH_TRUSTED_NETWORKS or send Authorization: Bearer <PUSH_ADMIN_TOKEN>\. Source address 127\.0\.0\.3\.$/);
    assert.equal(stat.headers['www-authenticate'], 'Bearer realm="push-admin"');
    assert.equal(stat.headers['access-control-allow-origin'], '*');
    const page = await check('status', front, { method: 'GET', target: '/status' }, SOURCES.trusted, ok(false));
    assert.match(page.body, /<title>Push server status<\/title>/, 'the page itself for a trusted reader');
    const list = await check('server-stat', front, { method: 'GET', target: '/bitrix/server-stat/' }, SOURCES['admin token, untrusted'], ok(false));
    assert.ok(Array.isArray(JSON.parse(list.body)), list.body);
  });

  it("nginx's own 404 carries Access-Control-Allow-Origin: * like the processes' answers", async () => {
    for (const [method, target] of [['GET', '/nowhere'], ['POST', '/bitrix/nothing/'], ['GET', '/bitrix/subx']] as const) {
      const res = await httpRequest(`${front}${target}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      assert.equal(res.status, 404, `${method} ${target}`);
      assert.equal(res.body, '4107: No such path on this server.\n');
      assert.equal(res.headers['access-control-allow-origin'], '*', `${method} ${target}`);
    }
  });

  // Direct to the processes: the header counts only when the peer is a trusted proxy (nginx's address).
  const fromProxyNaming = { from: TRUSTED, headers: { 'X-Real-IP': OTHER } };
  const PROMETHEUS = /^# HELP /m;
  const DIRECT: ReadonlyArray<{ name: string; kind: 'publisher' | 'listener'; req: Route['request']; source: { from: string; headers: Record<string, string> }; expect: Expect; body?: RegExp }> = [
    { name: 'unsigned publish from another host claiming 127.0.0.1', kind: 'publisher', req: textPublish, source: SOURCES['forged X-Real-IP'], expect: no(401, 4120) },
    { name: 'unsigned publish from another host, no header', kind: 'publisher', req: textPublish, source: SOURCES.untrusted, expect: no(401, 4120) },
    { name: 'unsigned publish from the proxy address naming another client', kind: 'publisher', req: textPublish, source: fromProxyNaming, expect: no(401, 4120) },
    { name: 'unsigned publish from this host', kind: 'publisher', req: textPublish, source: SOURCES.trusted, expect: ok(true) },
    { name: 'mint from another host claiming 127.0.0.1 in lists', kind: 'publisher', req: mint, source: SOURCES['forged both, as lists'], expect: no(401, 4120) },
    { name: '/server-stat/ from another host', kind: 'publisher', req: get('/server-stat/'), source: SOURCES.untrusted, expect: no(401, 4128) },
    { name: '/status/data from another host with the admin token', kind: 'publisher', req: get('/status/data'), source: SOURCES['admin token, untrusted'], expect: ok(false), body: /"processes"|"redis"/ },
    ...(['publisher', 'listener'] as const).flatMap((kind) => [
      { name: '/metrics from another host', kind, req: get('/metrics'), source: SOURCES.untrusted, expect: no(401, 4128) },
      { name: '/metrics from another host claiming 127.0.0.1', kind, req: get('/metrics'), source: SOURCES['forged X-Real-IP'], expect: no(401, 4128) },
      { name: '/metrics from the proxy address naming another client', kind, req: get('/metrics'), source: fromProxyNaming, expect: no(401, 4128) },
      { name: '/metrics from this host (a trusted network)', kind, req: get('/metrics'), source: SOURCES.trusted, expect: ok(false), body: PROMETHEUS },
      { name: '/metrics with the admin token from another host', kind, req: get('/metrics'), source: SOURCES['admin token, untrusted'], expect: ok(false), body: PROMETHEUS },
      { name: '/metrics with a wrong token from this host', kind, req: get('/metrics'), source: SOURCES['wrong admin token, trusted'], expect: no(401, 4129) },
      { name: '/healthz stays open (load balancers)', kind, req: get('/healthz'), source: SOURCES.untrusted, expect: ok(false) },
      { name: '/readyz stays open (load balancers)', kind, req: get('/readyz'), source: SOURCES.untrusted, expect: ok(false) },
    ]),
  ];
  it('direct to the processes: the same decisions, the header believed only from PUSH_TRUSTED_PROXIES', async () => {
    for (const row of DIRECT) {
      const res = await check(`${row.kind}: ${row.name}`, row.kind === 'publisher' ? publisherUrl : listenerUrl, row.req(), row.source, row.expect);
      if (row.body !== undefined) assert.match(res.body, row.body, `${row.kind}: ${row.name}`);
    }
  });
});
