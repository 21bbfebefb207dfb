import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { LISTENER_PORT, startInstallation, type Installation } from '../helpers/hosts.js';
import { WsClient, channelId, signed } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { LongPollClient, ResumingClient, percentile, publishStreamAcrossFault, type ClientOutcome, type StreamClient, type StreamOutcome } from '../helpers/publish-stream.js';

/**
 * The installation as separate machines (tests/helpers/hosts.ts): three Redis hosts (a data node
 * and a sentinel each), two listener hosts and a publisher host behind an nginx host running the
 * project's rendered config, and the test process as the client host, each in its own network
 * namespace on 198.18.0.0/15. Under a steady publish stream through nginx, with WebSocket and
 * long-poll clients through nginx, one fault per test: kill -9 of the Redis master (with
 * `replicated` and with `local` durability), the master host cut off the network, a listener host
 * cut off the network, a listener host and the publisher host restarted. Each test asserts the
 * guarantees (nothing acknowledged lost, nothing twice, each channel in order) and prints the
 * figures docs/reliability.md ("Several hosts") reports.
 */
const reason = await netnsUnavailable();

/** Short hold and WebSocket idle timeout, so the timers that bound detection fit a CI run. */
const HOLD_S = 10;
const WS_IDLE_S = 16;
/** Clients that watch the server's pings drop a socket silent this long (protocol 5's 20 s). */
const SILENCE_MS = 20_000;
/** The SDK aborts a long poll 20 s after the server's hold should have answered it (60 s against 40 s). */
const LP_ABORT_MS = (HOLD_S + 20) * 1000;
/** nginx's proxy_read_timeout for these settings (render-nginx.mjs: max(hold, ws idle) + 30 s). */
const NGINX_READ_TIMEOUT_MS = (Math.max(HOLD_S, WS_IDLE_S) + 30) * 1000;
const PINGING_WS = 4;
const LONG_POLLS = 4;
/**
 * The nginx config as shipped (remote upstreams: max_fails=3 fail_timeout=10s), unless
 * PUSH_TEST_NGINX_FAIL_TIMEOUT_S names another fail_timeout: docs/reliability.md compares the two.
 */
const NGINX_ARGS = process.env['PUSH_TEST_NGINX_FAIL_TIMEOUT_S'] === undefined ? [] : ['--fail-timeout-s', process.env['PUSH_TEST_NGINX_FAIL_TIMEOUT_S']];

describe('several hosts: two listeners and a publisher behind nginx, a Sentinel group, clients on another host', { skip: reason ?? false }, () => {
  let inst: Installation;
  before(async () => {
    inst = await startInstallation({ env: { PUSH_LONGPOLL_TIMEOUT_S: String(HOLD_S), PUSH_WS_IDLE_TIMEOUT_S: String(WS_IDLE_S) }, nginxArgs: NGINX_ARGS });
  });
  after(async () => {
    await inst?.stop();
  });

  /** Open subscriber connections on one listener host, read from its own /metrics (the operator's view). */
  const connectionsOn = async (h: Host): Promise<{ ws: number; lp: number }> => {
    const text = await (await fetch(`http://${h.addr}:${LISTENER_PORT}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const gauge = (t: string): number => Number(new RegExp(`^push_connections\\{transport="${t}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { ws: gauge('ws'), lp: gauge('lp') };
  };
  const totals = async (): Promise<{ ws: number; lp: number }> => {
    const per = await Promise.all(inst.listenerHosts.map(connectionsOn));
    return per.reduce((a, b) => ({ ws: a.ws + b.ws, lp: a.lp + b.lp }), { ws: 0, lp: 0 });
  };

  /**
   * Each fault starts from a healthy installation: nginx sends subscribers to every listener again
   * (after a fault it may still hold one disabled for fail_timeout). Probe WebSockets through nginx
   * until each listener has taken one.
   */
  const everyListenerInRotation = async (): Promise<void> => {
    await eventually(async () => {
      const base = await settledCounts();
      const probes = await Promise.all(inst.listenerHosts.map(() => WsClient.connect(inst.front, [signed(channelId())]).catch(() => null)));
      try {
        const now = await Promise.all(inst.listenerHosts.map(connectionsOn));
        return now.every((n, i) => n.ws > (base[i] as { ws: number }).ws);
      } finally {
        for (const p of probes) p?.close();
      }
    }, 60_000, 'nginx sending subscribers to every listener');
  };
  /**
   * Per-listener counts once they stopped moving (closes of earlier clients take a moment to reach
   * the listeners through nginx), so that a new connection shows as an increase.
   */
  const settledCounts = async (): Promise<Array<{ ws: number; lp: number }>> => {
    let last = JSON.stringify(await Promise.all(inst.listenerHosts.map(connectionsOn)));
    const settled = await eventually(async () => {
      await sleep(300);
      const now = await Promise.all(inst.listenerHosts.map(connectionsOn));
      const same = JSON.stringify(now) === last;
      last = JSON.stringify(now);
      return same ? now : null;
    }, 30_000, 'listener connection counts settled');
    return settled as Array<{ ws: number; lp: number }>;
  };

  interface Run {
    readonly r: StreamOutcome;
    /** The listener host the browser-like WebSocket (no ping watch) was sent to by nginx. */
    readonly browserOn: number;
  }

  /**
   * Opens the clients through nginx (a browser-like WebSocket that cannot see pings, WebSockets
   * that drop a socket silent for SILENCE_MS, long polls with the SDK's abort), waits until every one
   * is held by a listener, then streams publishes through nginx across `fault`.
   */
  const streamAcross = async (what: string, fault: (browserOn: number) => Promise<void>, opts: { deliveryTimeoutMs?: number } = {}): Promise<Run> => {
    await everyListenerInRotation();
    const chans = [channelId(), channelId(), channelId()];
    const base = await settledCounts();
    const browser = new ResumingClient(inst.front, chans);
    const clients: StreamClient[] = [browser];
    for (let i = 0; i < PINGING_WS; i++) clients.push(new ResumingClient(inst.front, chans, { silenceMs: SILENCE_MS }));
    for (let i = 0; i < LONG_POLLS; i++) clients.push(new LongPollClient(inst.front, chans, LP_ABORT_MS));
    let r: StreamOutcome;
    let browserOn: number;
    try {
      await browser.open();
      browserOn = (await eventually(async () => {
        const now = await Promise.all(inst.listenerHosts.map(connectionsOn));
        return now.findIndex((n, i) => n.ws > (base[i] as { ws: number }).ws) + 1;
      }, 10_000, 'the browser-like socket seen by a listener')) - 1;
      const before = await totals();
      for (const c of clients.slice(1)) await c.open();
      // Long polls are in the listeners' hands once they are counted there; before that a publish could pass them by.
      await eventually(async () => {
        const t = await totals();
        return t.ws >= before.ws + PINGING_WS && t.lp >= before.lp + LONG_POLLS;
      }, 10_000, 'every client held by a listener');
      const on = browserOn;
      r = await publishStreamAcrossFault(inst.front, clients, chans, () => fault(on), { timeoutMs: 60_000, deliveryTimeoutMs: opts.deliveryTimeoutMs ?? 45_000 });
    } finally {
      for (const c of clients) c.close();
    }
    console.log(`${what}: ${summary(r)}`);
    return { r, browserOn };
  };

  const ms = (v: number): string => (v < 0 ? 'never' : `${v} ms`);
  const figures = (label: string, os: readonly ClientOutcome[]): string => {
    if (os.length === 0) return `${label}: none`;
    const res = os.map((o) => o.resumedMs);
    return `${label} (${os.length}): resumed p50 ${ms(percentile(res, 50))} p99 ${ms(percentile(res, 99))}`;
  };
  const summary = (r: StreamOutcome): string => {
    const dropped = r.clients.filter((o) => o.droppedMs >= 0);
    return [
      `${r.acked} acknowledged (${r.ackedAfterFault} after the fault), ${r.refused} refused, ${r.unknown} resent after 502/504`,
      `lost ${r.lost.length}, duplicated ${r.duplicated}, out of order ${r.outOfOrder}, reconnects ${r.reconnects}`,
      figures('all clients', r.clients),
      figures('WebSocket', r.clients.filter((o) => o.kind === 'ws')),
      figures('long poll', r.clients.filter((o) => o.kind === 'long-poll')),
      figures('clients that lost a connection', dropped),
      `connection given up after the fault: ${dropped.map((o) => `${o.kind} ${o.droppedMs} ms`).join(', ') || 'none'}`,
    ].join('; ');
  };
  const guarantees = (r: StreamOutcome, { lossless = true } = {}): void => {
    const why = summary(r);
    assert.ok(r.ackedAfterFault >= 30, `publishing resumed (${why})`);
    if (lossless && r.lost.length > 0) {
      // What nginx said besides refused connections (a host restarting), for the failure message.
      const nginx = inst.nginxErrors().split('\n').filter((l) => l !== '' && !l.includes('(111: Connection refused)')).slice(-15).map((l) => l.slice(0, 220)).join('\n');
      assert.deepEqual(r.lost, [], `acknowledged, never delivered (${why}; events: ${JSON.stringify(r.clients.map((o) => o.events.slice(-6)))}; nginx: ${nginx})`);
    }
    assert.equal(r.duplicated, 0, `nothing delivered twice (${why})`);
    assert.equal(r.outOfOrder, 0, `each channel in order (${why})`);
    // Generous: a loaded 2-core machine; the figures are printed, not asserted.
    for (const o of r.clients) assert.ok(o.resumedMs >= 0 && o.resumedMs < 90_000, `every client resumed (${o.kind}: ${o.resumedMs} ms; ${o.events.slice(-6).join(' | ')})`);
  };
  const restartedAsReplica = async (node: { start(): Promise<void> }): Promise<void> => {
    // The host's Redis comes back; the sentinels make it a replica of the new master.
    await node.start();
    await inst.group.settled({ replicas: 2, peers: true, timeoutMs: 60_000 });
  };

  it('kill -9 of the Redis master (replicated durability): nothing acknowledged lost, every client resumes', async () => {
    const old = await inst.group.master();
    const { r } = await streamAcross('kill -9 of the master, replicated', () => old.kill(true));
    guarantees(r);
    assert.notEqual((await inst.group.master()).port, old.port, 'a new master');
    await restartedAsReplica(old);
  });

  it('kill -9 of the Redis master with local durability: losses measured, never a duplicate or a reordering', async () => {
    await (await inst.restartHost(inst.publisherHost, { PUSH_PUBLISH_DURABILITY: 'local' })).up;
    try {
      const old = await inst.group.master();
      const { r } = await streamAcross('kill -9 of the master, local', () => old.kill(true));
      // Replication is asynchronous with `local`: what the master acknowledged but no replica held
      // is gone with it. Counted and printed, not assumed zero.
      console.log(`local durability: ${r.lost.length} acknowledged message deliveries missing (${r.lost.join(', ') || 'none'})`);
      guarantees(r, { lossless: false });
      await restartedAsReplica(old);
    } finally {
      await (await inst.restartHost(inst.publisherHost)).up;
    }
  });

  it('the Redis master host cut off the network (partition): the others promote a replica, nothing acknowledged lost', async () => {
    const old = await inst.group.master();
    const oldHost = inst.redisHosts.find((h) => h.addr === old.host) as Host;
    try {
      const { r } = await streamAcross('partition of the master host', () => oldHost.link(false));
      guarantees(r);
      assert.notEqual((await inst.group.master()).port, old.port, 'a new master');
    } finally {
      await oldHost.link(true);
    }
    // The old master comes back as a replica of the new one (the sentinels reconfigure it).
    await inst.group.settled({ replicas: 2, peers: true, timeoutMs: 60_000 });
  });

  it('a listener host cut off the network: its clients notice by their own timers and resume through nginx on the other one', async () => {
    let cut: Host | null = null;
    try {
      const { r, browserOn } = await streamAcross(
        'partition of a listener host',
        async (on) => {
          cut = inst.listenerHosts[on] as Host;
          await cut.link(false);
        },
        // The browser-like socket learns only from nginx's read timeout.
        { deliveryTimeoutMs: NGINX_READ_TIMEOUT_MS + 30_000 },
      );
      guarantees(r);
      const browser = r.clients[0] as ClientOutcome;
      console.log(`browser-like WebSocket on the cut host ${browserOn + 1}: connection given up ${ms(browser.droppedMs)} after the cut (nginx proxy_read_timeout ${NGINX_READ_TIMEOUT_MS} ms), resumed ${ms(browser.resumedMs)}`);
      // It cannot learn sooner than nginx gives up on the silent upstream, and does learn then.
      assert.ok(browser.droppedMs >= NGINX_READ_TIMEOUT_MS - 15_000, `the browser-like socket was closed by nginx's read timeout, not before (${browser.droppedMs} ms)`);
      // nginx says why in its error log.
      assert.match(inst.nginxErrors(), /upstream timed out/, 'nginx logs the timed-out upstream');
      // The cut listener can no longer report to Redis: /server-stat/ (and /status) through nginx
      // stop listing it once its last report is older than two intervals + 10 s (the stream above
      // lasted longer than that).
      const cutId = /"processUniqueId":"([^"]+)"/.exec((inst.listeners[browserOn] as { output(): string }).output())?.[1];
      assert.ok(cutId !== undefined, 'the listener logged its process id');
      const listed = async (): Promise<string[]> => ((await (await fetch(`${inst.front}/server-stat/`)).json()) as Array<{ processUniqueId: string }>).map((p) => p.processUniqueId);
      await eventually(async () => !(await listed()).includes(cutId), 20_000, 'the cut listener gone from /server-stat/');
    } finally {
      await (cut as Host | null)?.link(true);
    }
    // Back on the network, the listener serves again: ready, and its clients of before are gone.
    const back = cut as unknown as Host;
    await eventually(async () => (await fetch(`http://${back.addr}:${LISTENER_PORT}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, 30_000, 'the cut listener ready again');
    await eventually(async () => {
      const n = await connectionsOn(back);
      return n.ws === 0 && n.lp === 0;
    }, 60_000, 'the cut listener dropped the connections whose clients left during the cut');
  });

  it('a listener host restarted (every process killed and started again): its clients resume through nginx', async () => {
    let up: Promise<void> = Promise.resolve();
    const { r, browserOn } = await streamAcross('restart of a listener host', async (on) => {
      ({ up } = await inst.restartHost(inst.listenerHosts[on] as Host));
    });
    await up;
    guarantees(r);
    assert.ok((r.clients[0] as ClientOutcome).droppedMs >= 0, `the browser-like socket on the restarted host ${browserOn + 1} was closed and resumed`);
  });

  it('the publisher host restarted: publishes resume (resent after 502/504 with their identity), nothing acknowledged lost or stored twice', async () => {
    let up: Promise<void> = Promise.resolve();
    const { r } = await streamAcross('restart of the publisher host', async () => {
      ({ up } = await inst.restartHost(inst.publisherHost));
    });
    await up;
    guarantees(r);
  });
});
