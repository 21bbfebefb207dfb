import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { BACKEND_SENDER, encodeRecordTail } from '@push/protocol';
import { benchBody } from '../bench-body.js';
import { channelName, runPrefix, sourceAddress, type ConnSpec, type SubscribeTarget } from '../channels.js';
import { cpuPerDelivery, formatCpuPerDelivery, type CpuPerDelivery } from '../cost.js';
import type { PublishPlan, PublishTarget } from '../driver.js';
import { Fleet } from '../fleet.js';
import {
  deliveriesBetween,
  deliveriesPerMessage,
  floorPerDelivery,
  floorTable,
  formatCommandStats,
  MINIMAL_NO_EXPIRE_SCRIPT,
  MINIMAL_SCRIPT,
  medianBy,
  parseCommandStats,
  parseInfoCpu,
  publishScriptArgs,
  usPerUnit,
  type CommandStat,
  type FloorRow,
} from '../floors.js';
import { Histogram } from '../histogram.js';
import { forkRemote, type Remote } from '../ipc.js';
import { fmt, parse, pushExtras, type Scenario } from '../options.js';
import { ROOT, redisLabel, sleep, startRedis, type RedisInstance } from '../processes.js';
import { ResourceMonitor, type GroupUsage } from '../resources.js';
import { publishStep, type StepResult } from '../fanout.js';
import { withTarget } from '../session.js';
import { PushTarget } from '../targets/push.js';

/**
 * `floors`: the measured floor of each hop of a single-message publish on this machine, with no
 * code of this server in the path except the publish script (Redis part a). Same CPU accounting as
 * the other scenarios (process CPU from /proc, per unit of work; the load generator never counted):
 *
 * 1. listener: CPU per WebSocket delivery of a bare uWebSockets.js server (floor-server.ts) holding
 *    the `private` scenario's sockets (opened by the same client workers), sending a prebuilt text
 *    frame per delivery at fixed rates;
 * 2. Redis: CPU per channel append of (a) this server's publish script, with lists below the history
 *    cap and at it, (b) the minimal store-then-announce script, (c) (b) without the list lifetime;
 *    one message to `fanout` of `channels` channels per call, two calls in flight, two subscriber
 *    connections holding every channel's topic;
 * 3. publisher: CPU per request of a bare uWebSockets.js HTTP server answering the text publish
 *    after reading its body, driven by the `private` scenario's lanes; then the same with one
 *    EVALSHA of a trivial script per request (ioredis), which separates HTTP from the Redis client;
 * 4. ours (`--parts ...,ours`, on by default): this server in the same shape (the same text
 *    clients, lanes and rates), so each floor has our figure beside it from the same sitting.
 */

const PREFIX = 'push:';

interface ListenerStep {
  offeredDeliveriesPerSec: number;
  messagesPerSec: number;
  seconds: number;
  sends: number;
  backpressured: number;
  dropped: number;
  delivered: number;
  deliveriesPerSec: number;
  lost: number;
  duplicates: number;
  reordered: number;
  malformed: number;
  latencyMs: ReturnType<Histogram['summaryMs']>;
  usage: Record<string, GroupUsage>;
  usageSeconds: number;
  /** From /proc clock ticks, as every scenario samples. */
  cpuPerDelivery: CpuPerDelivery | null;
  /** The same counters read at microsecond resolution (the servers' process.cpuUsage). */
  listenerUsPerDelivery: number | null;
}

interface RedisVariant {
  name: string;
  label: string;
  calls: number;
  appends: number;
  seconds: number;
  /** Redis CPU per append from /proc (the accounting of every scenario) and from INFO cpu (Redis's own). */
  usPerAppend: number | null;
  usPerAppendInfo: number | null;
  usPerCall: number | null;
  commands: CommandStat[];
  commandsPerAppend: string;
  published: number;
  /** Redis CPU per append (INFO cpu) of every round, in order; the figures above are the median round's. */
  rounds: Array<number | null>;
}

interface OursStep {
  offeredDeliveriesPerSec: number;
  step: StepResult;
  /** Per process group, per its own unit: listeners per delivery, publisher per request, Redis per channel append and per request. */
  listenerUsPerDelivery: number | null;
  publisherUsPerRequest: number | null;
  redisUsPerAppend: number | null;
  redisUsPerRequest: number | null;
}

interface PublisherStep {
  variant: 'http' | 'http+redis';
  offeredRate: number;
  requests: number;
  requestsPerSec: number;
  errors: number;
  firstError: string;
  acceptMs: ReturnType<Histogram['summaryMs']>;
  usage: Record<string, GroupUsage>;
  usageSeconds: number;
  /** Process CPU per request at microsecond resolution (the server's process.cpuUsage, Redis's INFO cpu). */
  publisherUsPerRequest: number | null;
  redisUsPerRequest: number | null;
  /** The same from /proc clock ticks, as every scenario samples (coarse: a step holds tens of ticks). */
  publisherUsPerRequestTicks: number | null;
  redisUsPerRequestTicks: number | null;
}

export const floorsScenario: Scenario = async (argv, log) => {
  const o = parse(argv, {
    channels: '5000',
    fanout: '10',
    'ws-rates': '30000,15000',
    'pub-rates': 'auto',
    lanes: '32',
    'redis-calls': '20000',
    'redis-in-flight': '2',
    /** Requests per publish script call (the publisher's group commit joins concurrent requests); 1 = one message per call. */
    'redis-group': '1',
    /** Rounds in which the Redis variants take turns; each variant's figure is its median round. */
    'redis-rounds': '3',
    'history-cap': '100',
    parts: 'listener,redis,publisher,ours',
  });
  const channels = o.num('channels');
  const fanout = o.num('fanout');
  const seconds = o.num('seconds');
  const bodyBytes = o.num('body-bytes');
  const parts = new Set(o.str('parts').split(','));
  for (const p of parts) if (!['listener', 'redis', 'publisher', 'ours'].includes(p)) throw new Error(`--parts takes listener, redis, publisher and ours separated by commas (got "${p}")`);
  if (!Number.isInteger(o.num('listeners')) || o.num('listeners') < 1) throw new Error(`--listeners must be a whole number of at least 1 (got ${o.num('listeners')})`);
  if (!Number.isInteger(fanout) || fanout < 1 || fanout > channels) throw new Error(`--fanout must be a whole number from 1 to --channels (got ${fanout})`);
  const devices = Array.from({ length: channels }, (_, c) => (c % 2 === 0 ? 2 : 1));
  const perMessage = deliveriesPerMessage(devices, fanout);
  const wsRates = o.nums('ws-rates');
  const pubRates = o.str('pub-rates') === 'auto' ? wsRates.map((r) => Math.round(r / perMessage)) : o.nums('pub-rates');
  const prefix = runPrefix();
  const names = Array.from({ length: channels }, (_, c) => channelName(prefix, c));

  // Process groups, refilled as each part starts and stops its processes.
  const pids = { listeners: [] as number[], publishers: [] as number[], redis: [] as number[], loadgen: [process.pid] };
  const monitor = new ResourceMonitor(() => ({ listeners: [...pids.listeners], publishers: [...pids.publishers], redis: [...pids.redis], loadgen: [...pids.loadgen] }));
  const failures: string[] = [];
  const rows: FloorRow[] = [];
  const results: Record<string, unknown> = { channels, fanout, deliveriesPerMessage: perMessage, bodyBytes };

  /** CPU time (us) the floor servers have used so far, at microsecond resolution. */
  const cpuOf = async (procs: readonly Remote[]): Promise<number> => (await Promise.all(procs.map((p) => p.call<{ us: number }>('cpu')))).reduce((a, b) => a + b.us, 0);

  // ---- 1. listener floor --------------------------------------------------------------------
  const listenerFloor = async (): Promise<ListenerStep[]> => {
    const listeners = o.num('listeners');
    const servers = Array.from({ length: listeners }, (_, i) => forkRemote('floor-server', `floor-ws-${i + 1}`));
    const fleet = Fleet.start(o.num('workers'));
    pids.listeners = servers.map((s) => s.pid);
    pids.loadgen = [process.pid, ...fleet.pids()];
    const steps: ListenerStep[] = [];
    try {
      const ports = await Promise.all(servers.map((s) => s.call<{ port: number }>('listenWs', { channels })));
      const target: SubscribeTarget = { kind: 'push', urls: ports.map((p) => `http://127.0.0.1:${p.port}`), prefix, signatureKey: 'floors' };
      const conns: ConnSpec[] = [];
      for (let c = 0; c < channels; c++) for (let d = 0; d < (devices[c] as number); d++) conns.push({ chan: c, kind: 'ws-text', url: conns.length % target.urls.length, local: sourceAddress(conns.length) });
      log(`listener floor: ${listeners} bare uWebSockets.js processes (runtime loader), ${fmt(conns.length)} text WebSockets on ${fmt(channels)} channels, ${fanout} channels per message (${perMessage} deliveries), one ws.send of a prebuilt ${bodyBytes + 130}-byte frame per delivery`);
      const opened = await fleet.open(target, conns, { reconnect: false, reconnectJitterMs: 0, concurrency: 50 });
      log(`  ${fmt(opened.opened)} open, ${opened.failed} failed in ${opened.ms} ms`);
      if (opened.failed > 0) failures.push(`listener floor: ${opened.failed} WebSockets failed to open: ${opened.firstError}`);
      let seqs: number[] = new Array<number>(channels).fill(0);
      const step = async (deliveriesPerSec: number, secs: number): Promise<ListenerStep> => {
        const rate = deliveriesPerSec / perMessage;
        const seed = randomInt(2 ** 31);
        await fleet.resetLatency();
        const cpu0 = await cpuOf(servers);
        monitor.window();
        const before = (await fleet.progress()).received;
        const outs = await Promise.all(servers.map((s) => s.call<{ sends: number; backpressured: number; dropped: number; seqs: number[] }>('runWs', { rate, seconds: secs, fanout, seed, bodyBytes })));
        const after = (outs[0] as { seqs: number[] }).seqs;
        if (outs.some((x) => x.seqs.length !== after.length || x.seqs.some((v, i) => v !== after[i]))) failures.push('listener floor: the server processes drew different channels from the same seed');
        const owed = deliveriesBetween(seqs, after, devices);
        seqs = after;
        // Drain: until every owed delivery arrived, or nothing arrived for 2 s.
        let received = before;
        let lastChange = performance.now();
        while (received - before < owed && performance.now() - lastChange < 2000) {
          await sleep(100);
          const now = (await fleet.progress()).received;
          if (now !== received) lastChange = performance.now();
          received = now;
        }
        const win = monitor.window();
        const cpu1 = await cpuOf(servers);
        const c = await fleet.collect(seqs);
        const delivered = received - before;
        return {
          offeredDeliveriesPerSec: deliveriesPerSec,
          messagesPerSec: Math.round(rate),
          seconds: secs,
          sends: outs.reduce((s, x) => s + x.sends, 0),
          backpressured: outs.reduce((s, x) => s + x.backpressured, 0),
          dropped: outs.reduce((s, x) => s + x.dropped, 0),
          delivered,
          deliveriesPerSec: Math.round(delivered / secs),
          lost: c.lost,
          duplicates: c.duplicates,
          reordered: c.reordered,
          malformed: c.malformed,
          latencyMs: c.latency.summaryMs(),
          usage: win.groups,
          usageSeconds: win.seconds,
          cpuPerDelivery: cpuPerDelivery(win.groups, win.seconds, delivered),
          listenerUsPerDelivery: usPerUnit(cpu1 - cpu0, 1e-6, delivered),
        };
      };
      const warm = await step(Math.max(...wsRates) / 2, 2);
      log(`  warm-up: ${fmt(warm.deliveriesPerSec)} deliveries/s`);
      for (const r of wsRates) {
        const s = await step(r, seconds);
        steps.push(s);
        log(`  ${fmt(r)} deliveries/s offered (${fmt(s.messagesPerSec)} msg/s): ${fmt(s.deliveriesPerSec)} delivered/s, listener CPU ${s.listenerUsPerDelivery ?? 'n/a'} us per delivery (/proc ticks: ${formatCpuPerDelivery(s.cpuPerDelivery)}), listeners ${s.usage['listeners']?.cpu ?? 0} cores, load generator ${s.usage['loadgen']?.cpu ?? 0}; e2e p50 ${s.latencyMs.p50} / p99 ${s.latencyMs.p99} ms; lost ${s.lost}, duplicates ${s.duplicates}, out of order ${s.reordered}, backpressured sends ${s.backpressured}`);
        if (s.lost + s.duplicates + s.reordered + s.malformed > 0) failures.push(`listener floor at ${r}/s: lost ${s.lost}, duplicates ${s.duplicates}, out of order ${s.reordered}, unreadable ${s.malformed}`);
        if (s.dropped > 0) failures.push(`listener floor at ${r}/s: uWebSockets.js dropped ${s.dropped} sends`);
      }
    } finally {
      await fleet.stop();
      await Promise.all(servers.map((s) => s.call('close').catch(() => undefined)));
      await Promise.all(servers.map((s) => s.stop()));
      pids.listeners = [];
      pids.loadgen = [process.pid];
    }
    return steps;
  };

  // ---- 2. Redis floor -----------------------------------------------------------------------
  const redisFloor = async (): Promise<RedisVariant[]> => {
    const redis = await startRedis();
    pids.redis = [redis.service.pid];
    const r = new Redis(redis.url);
    const subs = [new Redis(redis.url), new Redis(redis.url)];
    const variants: RedisVariant[] = [];
    try {
      const mod = (await import(pathToFileURL(join(ROOT, 'packages', 'backend', 'dist', 'redis-scripts.js')).href)) as { PUBLISH_SCRIPT?: unknown };
      if (typeof mod.PUBLISH_SCRIPT !== 'string') throw new Error('packages/backend dist has no PUBLISH_SCRIPT: build first (npm run build)');
      const ours = await r.script('LOAD', mod.PUBLISH_SCRIPT) as string;
      const minimal = await r.script('LOAD', MINIMAL_SCRIPT) as string;
      const noExpire = await r.script('LOAD', MINIMAL_NO_EXPIRE_SCRIPT) as string;
      let published = 0;
      for (const s of subs) s.on('messageBuffer', () => published++);
      const topics = names.map((n) => `${PREFIX}c:{${n}}`);
      for (let i = 0; i < topics.length; i += 500) {
        const chunk = topics.slice(i, i + 500);
        await (subs[0] as Redis).subscribe(...chunk.filter((_, k) => k % 2 === 0));
        await (subs[1] as Redis).subscribe(...chunk.filter((_, k) => k % 2 === 1));
      }
      log(`Redis floor: ${redisLabel(redis)}, one message (${bodyBytes}-byte body) to ${fanout} of ${fmt(channels)} channels per call, ${o.num('redis-in-flight')} calls in flight, two subscriber connections holding all ${fmt(channels)} topics`);
      const tail = encodeRecordTail(3600, 'message', BACKEND_SENDER, benchBody(Date.now() * 1000, Date.now() * 1000, Array.from({ length: fanout }, (_, i) => [i, 1] as const), bodyBytes));
      const cap = o.num('history-cap');
      const random = (): string[] => {
        const out = new Set<number>();
        while (out.size < fanout) out.add(randomInt(channels));
        return [...out].map((c) => names[c] as string);
      };
      const group = o.num('redis-group');
      if (!Number.isInteger(group) || group < 1) throw new Error(`--redis-group must be a whole number of at least 1 (got ${group})`);
      // One request per `fanout` channels handed over: a call of `group` requests gets group x fanout channels.
      // A warmed-up publisher hands the script every channel's creation time (it remembers them).
      const knownCreatedMs = Number((await r.time())[0]) * 1000;
      const oursCall = (chans: readonly string[]): Promise<unknown> => {
        const requests: string[][] = [];
        for (let i = 0; i < chans.length; i += fanout) requests.push(chans.slice(i, i + fanout));
        return r.call('EVALSHA', ours, ...publishScriptArgs(PREFIX, { cap, writeWindowMs: 43_200_000, retentionS: 172_800, ttlS: 3600, tail, knownCreatedMs, requests })).then((out) => {
          const outcomes = out as unknown[][];
          if (outcomes.length !== requests.length || outcomes.some((x) => x[0] !== 'ok')) throw new Error(`the publish script answered ${JSON.stringify(out).slice(0, 200)}: its argument layout changed (floors.ts publishScriptArgs)`);
        });
      };
      const startS = Math.floor(Date.now() / 1000);
      const minimalCall = (sha: string) => (chans: readonly string[]): Promise<unknown> => {
        const keys: string[] = [];
        for (const c of chans) keys.push(`${PREFIX}h:{${c}}`, `${PREFIX}c:{${c}}`);
        return r.evalsha(sha, keys.length, ...keys, `${PREFIX}id:counter`, startS, `${PREFIX}m:`, 3600, tail);
      };
      /** `calls` calls of `call`, `inFlight` at a time, channels from `pick`. */
      const drive = async (calls: number, inFlight: number, call: (chans: readonly string[]) => Promise<unknown>, pick: (i: number) => string[]): Promise<void> => {
        let next = 0;
        const lane = async (): Promise<void> => {
          while (next < calls) await call(pick(next++));
        };
        await Promise.all(Array.from({ length: inFlight }, lane));
      };
      const measure = async (name: string, label: string, call: (chans: readonly string[]) => Promise<unknown>, requestsPerCall: number): Promise<RedisVariant> => {
        const calls = Math.ceil(o.num('redis-calls') / requestsPerCall);
        const appends = calls * fanout * requestsPerCall;
        const pick = (): string[] => Array.from({ length: requestsPerCall }, random).flat();
        await r.config('RESETSTAT');
        const published0 = published;
        const info0 = parseInfoCpu(await r.info('cpu'));
        monitor.window();
        const t0 = performance.now();
        await drive(calls, o.num('redis-in-flight'), call, pick);
        // Every announcement reached a subscriber connection (Redis wrote it) before the window closes.
        const deadline = performance.now() + 5000;
        while (published - published0 < appends && performance.now() < deadline) await sleep(20);
        const win = monitor.window();
        const secs = (performance.now() - t0) / 1000;
        const info1 = parseInfoCpu(await r.info('cpu'));
        const commands = parseCommandStats(await r.info('commandstats'))
          // The harness's own INFO and CONFIG RESETSTAT (Redis 7 names it config|resetstat) are not the work.
          .filter((c) => !/^(info|config)(\||$)/.test(c.command));
        const cpu = win.groups['redis']?.cpu ?? 0;
        const v: RedisVariant = {
          name,
          label,
          calls,
          appends,
          seconds: Math.round(secs * 100) / 100,
          usPerAppend: usPerUnit(cpu, win.seconds, appends),
          usPerAppendInfo: usPerUnit(info1 - info0, 1, appends),
          usPerCall: usPerUnit(info1 - info0, 1, calls),
          commands,
          commandsPerAppend: '',
          published: published - published0,
          rounds: [],
        };
        v.commandsPerAppend = formatCommandStats(commands, appends, v.usPerAppendInfo);
        if (v.published !== appends) failures.push(`Redis floor ${name}: ${appends} announcements published, ${v.published} received by the subscribers`);
        log(`    ${label}: ${v.usPerAppendInfo ?? 'n/a'} us Redis CPU per append (/proc ticks ${v.usPerAppend ?? 'n/a'}), ${v.usPerCall ?? 'n/a'} us per call of ${fmt(appends / calls)} appends, ${fmt(calls / secs)} calls/s`);
        log(`      per append (commandstats, wall-clock time inside Redis): ${v.commandsPerAppend}`);
        return v;
      };
      const grouped = group === 1 ? '' : `, ${group} requests per call`;
      if (group > 1) log(`  the publish script gets ${group} requests per call (--redis-group), the minimal scripts one`);
      // Steady state of a long-running server: every list at the history cap, so each append also
      // trims the list, releases the record it pushed out and writes the gap mark. Filled round-robin
      // (not measured) with the script itself, many calls in flight.
      const fillCalls = Math.ceil((channels * cap) / fanout);
      const fill = async (): Promise<void> => {
        await r.flushdb();
        log(`    filling every list to the cap of ${cap} (${fmt(fillCalls)} calls, not measured) ...`);
        await drive(fillCalls, 32, oursCall, (i) => Array.from({ length: fanout }, (_, k) => names[(i * fanout + k) % channels] as string));
      };
      const plan: Array<{ name: string; label: string; call: (chans: readonly string[]) => Promise<unknown>; prepare: () => Promise<unknown>; group: number }> = [
        { name: 'ours', label: `a. publish script, lists below the cap${grouped}`, call: oursCall, prepare: () => r.flushdb(), group },
        { name: 'minimal', label: 'b. minimal store-then-announce', call: minimalCall(minimal), prepare: () => r.flushdb(), group: 1 },
        { name: 'minimal-no-expire', label: 'c. (b) without EXPIRE', call: minimalCall(noExpire), prepare: () => r.flushdb(), group: 1 },
        { name: 'ours-at-cap', label: `a. publish script, lists at the cap${grouped}`, call: oursCall, prepare: fill, group },
      ];
      // The variants take turns, round after round (this machine's speed drifts within minutes);
      // each variant's figure is its median round.
      const rounds = o.num('redis-rounds');
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--redis-rounds must be a whole number of at least 1 (got ${rounds})`);
      const runs = new Map<string, RedisVariant[]>(plan.map((p) => [p.name, []]));
      for (let round = 1; round <= rounds; round++) {
        log(`  round ${round} of ${rounds}:`);
        for (const p of plan) {
          await p.prepare();
          runs.get(p.name)?.push(await measure(p.name, p.label, p.call, p.group));
        }
      }
      const order = ['ours', 'ours-at-cap', 'minimal', 'minimal-no-expire'];
      for (const name of order) {
        const all = runs.get(name) ?? [];
        const mid = medianBy(all, (v) => v.usPerAppendInfo ?? Infinity);
        if (mid !== undefined) variants.push({ ...mid, rounds: all.map((v) => v.usPerAppendInfo) });
      }
    } finally {
      for (const s of subs) s.disconnect();
      r.disconnect();
      await redis.stop();
      pids.redis = [];
    }
    return variants;
  };

  // ---- 3. publisher floor -------------------------------------------------------------------
  const publisherFloor = async (): Promise<PublisherStep[]> => {
    const steps: PublisherStep[] = [];
    let redis: RedisInstance | null = null;
    try {
      for (const variant of ['http', 'http+redis'] as const) {
        if (variant === 'http+redis') {
          redis = await startRedis();
          pids.redis = [redis.service.pid];
        }
        const server = forkRemote('floor-server', `floor-http-${variant}`);
        // Redis's own CPU counters (INFO cpu), read before and after each step on a connection of its own.
        const probe = redis === null ? null : new Redis(redis.url);
        const driver: Remote = forkRemote('driver', 'driver');
        pids.publishers = [server.pid];
        pids.loadgen = [process.pid, driver.pid];
        try {
          const { port } = await server.call<{ port: number }>('listenHttp', redis === null ? {} : { redisUrl: redis.url });
          const target: PublishTarget = { kind: 'push', urls: [`http://127.0.0.1:${port}`], prefix, auth: null };
          await driver.call('setup', { target });
          const lanes = o.num('lanes');
          log(`publisher floor (${variant}): one bare uWebSockets.js HTTP process (runtime loader) answering POST /bitrix/pub/?CHANNEL_ID=... 200 after reading the body${variant === 'http' ? '' : `, after one EVALSHA of a trivial script per request (ioredis, ${redisLabel(redis as RedisInstance)})`}; ${lanes} lanes of the text shape, one request in flight each`);
          const plan = (rate: number, secs: number): PublishPlan => ({ channels, fanout, lanes, shape: 'text', batch: 1, rate, seconds: secs, bodyBytes, expiry: 3600, presign: 0 });
          await driver.call('run', { plan: plan(Math.max(...pubRates) / 2, 2) });
          for (const rate of pubRates) {
            const cpu0 = await cpuOf([server]);
            const redisCpu0 = probe === null ? 0 : parseInfoCpu(await probe.info('cpu'));
            monitor.window();
            const out = await driver.call<Record<string, unknown>>('run', { plan: plan(rate, seconds) });
            const win = monitor.window();
            const cpu1 = await cpuOf([server]);
            const redisCpu1 = probe === null ? 0 : parseInfoCpu(await probe.info('cpu'));
            const accept = new Histogram();
            accept.add(out['accept'] as Parameters<Histogram['add']>[0]);
            const requests = out['requests'] as number;
            const s: PublisherStep = {
              variant,
              offeredRate: rate,
              requests,
              requestsPerSec: Math.round(requests / (out['seconds'] as number)),
              errors: out['errors'] as number,
              firstError: out['firstError'] as string,
              acceptMs: accept.summaryMs(),
              usage: win.groups,
              usageSeconds: win.seconds,
              publisherUsPerRequest: usPerUnit(cpu1 - cpu0, 1e-6, requests),
              redisUsPerRequest: probe === null ? null : usPerUnit(redisCpu1 - redisCpu0, 1, requests),
              publisherUsPerRequestTicks: usPerUnit(win.groups['publishers']?.cpu ?? 0, win.seconds, requests),
              redisUsPerRequestTicks: probe === null ? null : usPerUnit(win.groups['redis']?.cpu ?? 0, win.seconds, requests),
            };
            steps.push(s);
            log(`  ${fmt(rate)} requests/s offered: ${fmt(s.requestsPerSec)}/s answered, publisher CPU ${s.publisherUsPerRequest ?? 'n/a'} us per request (/proc ticks ${s.publisherUsPerRequestTicks ?? 'n/a'})${s.redisUsPerRequest === null ? '' : `, Redis ${s.redisUsPerRequest} us per request (/proc ticks ${s.redisUsPerRequestTicks ?? 'n/a'})`}, publish p50 ${s.acceptMs.p50} / p99 ${s.acceptMs.p99} ms, load generator ${win.groups['loadgen']?.cpu ?? 0} cores`);
            if (s.errors > 0) failures.push(`publisher floor (${variant}) at ${rate}/s: ${s.errors} requests failed: ${s.firstError}`);
          }
        } finally {
          probe?.disconnect();
          await server.call('close').catch(() => undefined);
          await server.stop();
          await driver.stop();
          pids.publishers = [];
          pids.loadgen = [process.pid];
        }
      }
    } finally {
      await redis?.stop();
      pids.redis = [];
    }
    return steps;
  };


  // ---- 4. ours, same shape, same sitting -----------------------------------------------------
  const oursSteps = async (): Promise<OursStep[]> => {
    const oursPrefix = runPrefix();
    return withTarget(() => PushTarget.start({ listeners: o.num('listeners'), publishers: o.num('publishers'), prefix: oursPrefix, auth: 'trusted', ...pushExtras(o) }), o.num('workers'), async (s) => {
      const target = s.target.subscribeTarget();
      const conns: ConnSpec[] = [];
      for (let c = 0; c < channels; c++) for (let d = 0; d < (devices[c] as number); d++) conns.push({ chan: c, kind: 'ws-text', url: conns.length % target.urls.length, local: sourceAddress(conns.length) });
      log(`ours: ${s.target.describe}; the same ${fmt(conns.length)} text WebSockets, ${o.num('lanes')} lanes of the text shape, unsigned from a trusted address`);
      const opened = await s.fleet.open(target, conns, { reconnect: false, reconnectJitterMs: 0, concurrency: 50 });
      log(`  ${fmt(opened.opened)} open, ${opened.failed} failed in ${opened.ms} ms`);
      if (opened.failed > 0) failures.push(`ours: ${opened.failed} WebSockets failed to open: ${opened.firstError}`);
      const run = { fleet: s.fleet, driver: s.driver, monitor: s.monitor, devices, plan: { channels, fanout, lanes: o.num('lanes'), shape: 'text' as const, batch: 1, tickMs: 0, bodyBytes, expiry: 3600, presign: 0 } };
      const warm = await publishStep(run, Math.max(...wsRates) / 2 / perMessage, 2, { label: 'warm-up' });
      log(`  warm-up: ${fmt(warm.deliveriesPerSec)} deliveries/s`);
      const out: OursStep[] = [];
      for (const r of wsRates) {
        const step = await publishStep(run, r / perMessage, seconds);
        const by = step.serverCpuPerDelivery?.byGroupUs ?? {};
        const scale = (us: number | undefined, units: number): number | null => (us === undefined || !(units > 0) ? null : Math.round(((us * step.delivered) / units) * 100) / 100);
        const x: OursStep = {
          offeredDeliveriesPerSec: r,
          step,
          listenerUsPerDelivery: by['listeners'] ?? null,
          publisherUsPerRequest: scale(by['publishers'], step.requests),
          redisUsPerAppend: scale(by['redis'], step.published * fanout),
          redisUsPerRequest: scale(by['redis'], step.requests),
        };
        out.push(x);
        log(`  ${fmt(r)} deliveries/s offered: ${fmt(step.deliveriesPerSec)} delivered/s${step.keptUp ? '' : ' (did not keep up)'}, server CPU ${formatCpuPerDelivery(step.serverCpuPerDelivery)} per delivery; per own unit: listeners ${x.listenerUsPerDelivery ?? 'n/a'} us per delivery, publisher ${x.publisherUsPerRequest ?? 'n/a'} us per request, Redis ${x.redisUsPerAppend ?? 'n/a'} us per append (${x.redisUsPerRequest ?? 'n/a'} per request); publish p99 ${step.acceptMs.p99} ms; lost ${step.lost}`);
        if (step.lost + step.duplicates + step.reordered > 0) failures.push(`ours at ${r}/s: lost ${step.lost}, duplicates ${step.duplicates}, out of order ${step.reordered}`);
      }
      return out;
    });
  };

  let redisV: RedisVariant[] = [];
  let pubSteps: PublisherStep[] = [];
  let wsSteps: ListenerStep[] = [];
  let ours: OursStep[] = [];
  try {
    if (parts.has('redis')) results['redis'] = redisV = await redisFloor();
    if (parts.has('publisher')) results['publisher'] = pubSteps = await publisherFloor();
    if (parts.has('listener')) results['listener'] = wsSteps = await listenerFloor();
  } finally {
    monitor.stop();
  }
  // Ours runs last, with its own processes and sampler (the floors' processes are all stopped).
  if (parts.has('ours')) results['ours'] = ours = await oursSteps();
  // Our figure beside each floor: at the same offered rate, or (Redis scripts) at the highest.
  const oursAt = (deliveriesPerSec: number): OursStep | undefined => ours.find((x) => x.offeredDeliveriesPerSec === deliveriesPerSec);
  // Ours at a step it did not keep up with (the machine is shared) is still its cost per unit, at a lower rate: say so.
  const lagging = (m: OursStep | undefined): string => (m === undefined || m.step.keptUp ? '' : ` (ours did not keep up: ${fmt(m.step.deliveriesPerSec)} deliveries/s)`);
  const oursTop = ours.find((x) => x.offeredDeliveriesPerSec === Math.max(...wsRates));
  for (const x of redisV) rows.push({ hop: 'Redis', measure: x.rounds.length > 1 ? `${x.label} (median of ${x.rounds.length})` : x.label, us: x.usPerAppendInfo, unit: 'channel append', ours: x.name === 'ours' ? (oursTop?.redisUsPerAppend ?? null) : null, note: `${x.usPerCall ?? 'n/a'} us per call of ${fmt(x.appends / x.calls)} appends` });
  for (const x of pubSteps) {
    // With --pub-rates auto, publisher step i has the message rate of listener step i.
    const match = o.str('pub-rates') === 'auto' ? oursAt(wsRates[pubRates.indexOf(x.offeredRate)] ?? -1) : undefined;
    const note = `${fmt(x.requestsPerSec)} req/s${lagging(match)}`;
    rows.push({ hop: 'publisher', measure: x.variant === 'http' ? 'bare HTTP, body read, fixed answer' : 'bare HTTP + one EVALSHA (publisher side)', us: x.publisherUsPerRequest, unit: 'request', ours: match?.publisherUsPerRequest ?? null, note });
    if (x.redisUsPerRequest !== null) rows.push({ hop: 'Redis', measure: 'one trivial EVALSHA (Redis side)', us: x.redisUsPerRequest, unit: 'request', ours: match?.redisUsPerRequest ?? null, note });
  }
  for (const x of wsSteps) {
    const match = oursAt(x.offeredDeliveriesPerSec);
    rows.push({ hop: 'listener', measure: 'bare uWS, one ws.send per delivery', us: x.listenerUsPerDelivery, unit: 'delivery', ours: match?.listenerUsPerDelivery ?? null, note: `${fmt(x.deliveriesPerSec)} deliveries/s${lagging(match)}` });
  }
  const summary = [
    `floors: ${fmt(channels)} channels, ${fanout} per message (${perMessage} deliveries), ${bodyBytes}-byte bodies; process CPU (user + system) per unit, the load generator not counted: floors read at microsecond resolution (the floor servers' getrusage, Redis's INFO cpu: the counters /proc gives in 10 ms ticks, which the log and the report show beside them), ours from /proc ticks as every scenario; client and server share the machine, so every figure includes the kernel's loopback path on both ends`,
    ...floorTable(rows),
  ];
  // The floors added up per delivery at the first rate: what any server that stores each message
  // in Redis and writes each delivery on its own spends at least, beside ours in the same run.
  const topWs = wsSteps[0];
  const topPub = pubSteps.find((x) => x.variant === 'http+redis' && x.offeredRate === pubRates[0]);
  const minimalRedis = redisV.find((x) => x.name === 'minimal');
  const sum = floorPerDelivery({ listenerUs: topWs?.listenerUsPerDelivery ?? null, publisherUsPerRequest: topPub?.publisherUsPerRequest ?? null, redisUsPerAppend: minimalRedis?.usPerAppendInfo ?? null, fanout, deliveriesPerMessage: perMessage });
  const oursFirst = ours.find((x) => x.offeredDeliveriesPerSec === wsRates[0]);
  results['floorPerDelivery'] = sum;
  if (sum !== null) {
    summary.push(
      `sum of the floors per delivery at ${fmt(wsRates[0] ?? 0)} deliveries/s: ${sum.totalUs} us = listener ${sum.listenerUs} + publisher with one Redis call ${sum.publisherUs} (per request / ${perMessage}) + Redis, minimal script ${sum.redisUs} (per append x ${fanout} / ${perMessage})` +
        (oursFirst?.step.serverCpuPerDelivery ? `; ours in this run ${formatCpuPerDelivery(oursFirst.step.serverCpuPerDelivery)}` : ''),
    );
  }
  if (redisV.length > 0) {
    summary.push('Redis per channel append, INFO commandstats of the median round (wall-clock us inside Redis):');
    for (const x of redisV) summary.push(`  ${x.label}: ${x.commandsPerAppend}`);
  }
  if (ours.length > 0) summary.push(`"ours": this server in the same shape in this run (text clients, ${o.num('lanes')} lanes, one message per request), each process group per its own unit at the same offered rate (Redis per append: at ${fmt(Math.max(...wsRates))} deliveries/s, its lists below the cap)`);
  return { scenario: 'floors', ok: failures.length === 0, failures, summary, results: { ...results, table: rows } };
};
