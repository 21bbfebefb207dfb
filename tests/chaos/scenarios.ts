import type { ChildProcess } from 'node:child_process';
import { sleep } from '../helpers/ports.js';
import { parsePrometheus, sampleSum } from '../ops/stack-helpers.js';
import { alive } from './chaos-stack.js';
import type { CiGroup, FaultOutcome, Scenario } from './run-scenario.js';
import { StallProxy } from './stall-proxy.js';

/** How long the harness waits for a /readyz answer: the stall budget (2 s), which bounds the check, and 1 s to spare. */
const READYZ_WAIT_MS = 3000;

/** How long a crashed process stays down before the supervisor (here `start.sh`) brings it back. */
const SUPERVISOR_DELAY_MS = 2000;

const healed = (notes: string[] = []): FaultOutcome => ({ healedAt: Date.now(), notes });

/** Kills (or terminates) one process, waits like a supervisor would, then `start.sh` restarts it. */
function crash(name: 'listener-1' | 'publisher-1' | 'redis', sig: 'SIGKILL' | 'SIGTERM', title: string, ciGroup: CiGroup): Scenario {
  return {
    name: `${name.replace(/-1$/, '')}-${sig === 'SIGKILL' ? 'kill9' : 'sigterm'}`,
    title,
    ciGroup,
    async inject(ctx) {
      const pid = ctx.stack.pid(name);
      await ctx.stack.signal(name, sig);
      await sleep(SUPERVISOR_DELAY_MS);
      await ctx.stack.ensureUp();
      const again = ctx.stack.pid(name);
      if (again === pid) throw new Error(`${name} still has pid ${pid}: it was not restarted`);
      return healed([`${name} pid ${pid} ${sig}, back as pid ${again}`]);
    },
  };
}

/** Redis stops executing writes (and PUBLISH) for `ms`, as during an fsync stall or a failover. */
function redisPause(ms: number): Scenario {
  return {
    name: `redis-pause-${ms / 1000}s`,
    title: `Redis paused: CLIENT PAUSE ${ms} WRITE under the stream and 100-message batches`,
    ciGroup: ms > 10_000 ? 'pause-long' : 'pause',
    async inject(ctx) {
      await ctx.stack.redis().call('CLIENT', 'PAUSE', String(ms), 'WRITE');
      const injectedAt = Date.now();
      await sleep(ms);
      return { injectedAt, healedAt: Date.now(), notes: [] };
    },
  };
}

/**
 * listener-1 is replaced by one that reaches Redis through a proxy (same port, same settings), and
 * the proxy freezes its open connections (`match`: only those whose first bytes contain it) for the
 * fault's duration. New connections pass: a listener that notices and reconnects gets through.
 */
function silentStall(name: string, title: string, match: string): Scenario {
  return {
    name,
    title,
    ciGroup: 'stall',
    pinToListener1: true,
    // The promise under test: a stalled connection is detected within 2 s. The listener says so in
    // its log (one line per connection found stalled, with its own time: the measure that does not
    // depend on how promptly this loaded harness polls), by counting it (push_pubsub_stalls_total)
    // and by /readyz 503 while a subscription is down; the first of these counts. When its reconnect
    // gets through at once (new connections pass the proxy) the 503 lasts only milliseconds and a
    // 100 ms poll can miss it. 250 ms of scheduling tolerance on a loaded machine.
    maxServerDetectMs: 2250,
    async prepare(ctx) {
      // Its supervisor stopped too: a listener-1 started again would share the port (SO_REUSEPORT)
      // and answer part of the pinned clients and of the /readyz and /metrics polls below.
      await ctx.stack.stopSupervised('listener-1');
      const proxy = await StallProxy.listen(ctx.stack.redisPort);
      ctx.state['proxy'] = proxy;
      const started = await ctx.stack.startListenerVia(0, proxy.url);
      ctx.state['listener'] = started.proc;
      ctx.state['logLines'] = started.logLines;
    },
    async inject(ctx) {
      const proxy = ctx.state['proxy'] as StallProxy;
      const port = ctx.stack.listenerPorts[0] as number;
      const stalls = async (): Promise<number> => {
        const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(1000) }).then((r) => r.text()).catch(() => '');
        const m = /^push_pubsub_stalls_total(?:\{[^}]*\})? (\d+)/m.exec(text);
        return m === null ? -1 : Number(m[1]);
      };
      const stallsBefore = await stalls();
      const logLines = ctx.state['logLines'] as () => Array<Record<string, unknown>>;
      const t0 = Date.now();
      const frozen = proxy.stall(match);
      if (frozen < 1) throw new Error(`no connection through the proxy matched ${JSON.stringify(match)}`);
      // What listener-1 says about itself while the frozen connections carry nothing.
      const ready = new Map<number, number>();
      let firstUnready: number | null = null;
      let first503: number | null = null;
      let firstCounted: number | null = null;
      while (Date.now() - t0 < ctx.timing.faultMs) {
        // The readiness check is bounded by the stall budget (2 s): waiting a little longer tells "answered 503" from "hangs".
        const status = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(READYZ_WAIT_MS) }).then((r) => r.status).catch(() => 0);
        ready.set(status, (ready.get(status) ?? 0) + 1);
        if (status !== 200 && firstUnready === null) firstUnready = Date.now() - t0;
        if (status === 503 && first503 === null) first503 = Date.now() - t0;
        if (firstCounted === null && stallsBefore >= 0 && (await stalls()) > stallsBefore) firstCounted = Date.now() - t0;
        await sleep(100);
      }
      proxy.resume();
      const readyz = [...ready].map(([s, n]) => `${s === 0 ? 'no answer' : s} x${n}`).join(', ');
      // The listener's own account: a line per connection it found stalled, stamped by its clock (the same machine's).
      const at = (l: Record<string, unknown>): number => Date.parse(String(l['time'])); // ISO time, ms precision
      const found = logLines().filter((l) => /stalled \(open but silent\)/.test(String(l['msg'])) && at(l) >= t0);
      const logged = found.map((l) => `${String(l['connection'])} after ${at(l) - t0} ms`);
      const firstLogged = found.length === 0 ? null : Math.min(...found.map((l) => at(l) - t0));
      const reports = [firstLogged, first503, firstCounted].filter((v): v is number => v !== null);
      const hung = ready.get(0) ?? 0;
      return {
        // The stall begins at the freeze, after the counter was read: detection counts from there.
        injectedAt: t0,
        // A /readyz that does not answer is no report, and a balancer's probe would wait on it.
        problems: hung > 0 ? [`/readyz of listener-1 did not answer within ${READYZ_WAIT_MS} ms ${hung} times during the stall`] : [],
        ...healed([
          `${frozen} connections frozen for ${ctx.timing.faultMs} ms; listener-1 logged as stalled: ${logged.length === 0 ? 'none' : logged.join(', ')}; /readyz of listener-1 during the stall: ${readyz}; first non-200 (or no answer within ${READYZ_WAIT_MS} ms) after ${firstUnready ?? 'never'} ms, first 503 after ${first503 ?? 'never'} ms; stall counted after ${firstCounted ?? 'never'} ms`,
        ]),
        serverDetectMs: reports.length === 0 ? null : Math.min(...reports),
      };
    },
    async cleanup(ctx) {
      const listener = ctx.state['listener'] as ChildProcess | undefined;
      if (listener?.pid !== undefined && alive(listener.pid)) {
        const exited = new Promise((r) => listener.once('exit', r));
        listener.kill('SIGTERM');
        await exited;
      }
      await (ctx.state['proxy'] as StallProxy | undefined)?.close();
      await ctx.stack.ensureUp();
    },
  };
}

export const SCENARIOS: readonly Scenario[] = [
  crash('listener-1', 'SIGKILL', 'listener kill -9 (restarted by start.sh 2 s later)', 'processes'),
  crash('publisher-1', 'SIGTERM', 'publisher SIGTERM (drains; restarted by start.sh)', 'processes'),
  crash('publisher-1', 'SIGKILL', 'publisher kill -9 (restarted by start.sh 2 s later)', 'processes'),
  crash('redis', 'SIGKILL', 'Redis kill -9, restarted by start.sh 2 s later (AOF)', 'redis'),
  {
    name: 'pubsub-kill',
    title: 'pub/sub connections killed: CLIENT KILL TYPE pubsub',
    ciGroup: 'redis',
    async inject(ctx) {
      const n = Number(await ctx.stack.redis().client('KILL', 'TYPE', 'pubsub'));
      if (n < 3) throw new Error(`only ${n} pub/sub connections killed, expected one per listener`);
      return healed([`${n} pub/sub connections killed`]);
    },
  },
  {
    name: 'slow-consumer',
    title: 'slow consumer: one WebSocket stops reading, then reads again',
    ciGroup: 'redis',
    // Bytes for it to fall behind on: about 6 MB/s to every client. The kernel buffers of its one
    // loopback connection (the client's receive and the listener's send buffer, autotuned up to
    // about 10 MB here) fill before the listener holds anything itself, and 2 MB/s over the 8 s of
    // the CI timing did not always get past them (a quiet fresh-clone run saw no close).
    stream: { padBytes: 24000 },
    slowConsumer: true,
    measureFromHealed: true,
    async inject(ctx) {
      const client = ctx.slowClient;
      const socket = (client?.socket as unknown as { _socket?: { pause(): void; resume(): void } } | null)?._socket;
      if (client === null || socket === undefined) throw new Error('slow consumer: no socket to stall');
      const closesBefore = client.closeCodes.length;
      const metrics = `http://127.0.0.1:${ctx.stack.listenerPorts[0]}/metrics`;
      const slowCloses = async (): Promise<number> => sampleSum(parsePrometheus(await (await fetch(metrics)).text()), 'push_slow_consumer_closes_total');
      const serverClosesBefore = await slowCloses();
      socket.pause();
      await sleep(ctx.timing.faultMs);
      socket.resume();
      const at = Date.now();
      await sleep(1000);
      const codes = client.closeCodes.slice(closesBefore);
      const serverCloses = (await slowCloses()) - serverClosesBefore;
      if (serverCloses < 1) throw new Error('the listener never had to close the slow consumer: it did not fall behind enough');
      return {
        healedAt: at,
        notes: [`stopped reading for ${ctx.timing.faultMs} ms; the client saw close codes: ${codes.length === 0 ? 'none (kept up from buffers)' : codes.join(',')}; listener-1 push_slow_consumer_closes_total +${serverCloses}`],
      };
    },
  },
  {
    name: 'rolling-restart',
    title: 'rolling restart: scripts/restart.sh (3 listeners, then 2 publishers)',
    ciGroup: 'restart',
    async inject(ctx) {
      const r = await ctx.stack.rollingRestart();
      if (r.code !== 0) throw new Error(`restart.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
      return healed([`restart.sh exit ${r.code}`]);
    },
  },
  redisPause(2500),
  redisPause(5000),
  redisPause(8000),
  redisPause(15000),
  silentStall('silent-stall', "silent stall of listener-1's Redis subscriber connection (TCP open, nothing forwarded)", 'push-sub'),
  silentStall('silent-stall-all', "silent stall of every Redis connection of listener-1, command connection included", ''),
];

/**
 * Scenarios left out of CI (`ci-<group>.test.ts`); `npm run chaos` runs every scenario.
 * `redis-pause-15s` passes (docs/reliability.md) and is left out for its length only: it adds about
 * 40 s (its own stack, then 15 s of pause under the stream) to a CI run that already covers the
 * 2.5, 5 and 8 s pauses through the same path; the publish wait (20 s) is longer than all four.
 */
export const NOT_YET_IN_CI: readonly string[] = ['redis-pause-15s'];

export const CI_SCENARIOS: readonly Scenario[] = SCENARIOS.filter((s) => !NOT_YET_IN_CI.includes(s.name));
