import assert from 'node:assert/strict';
import type { Host } from './netns.js';
import { LISTENER_PORT, type Installation } from './hosts.js';
import { WsClient, channelId, signed } from './clients.js';
import { eventually, sleep } from './ports.js';
import { LongPollClient, ResumingClient, percentile, publishStreamAcrossFault, type ClientOutcome, type StreamClient, type StreamOutcome } from './publish-stream.js';

/**
 * What the multi-host suites (tests/ops/multi-host-*.test.ts) share besides the installation
 * (hosts.ts): the settings that keep the detection timers short, the client mix, the stream across
 * a fault and the guarantees each fault must keep. Method and figures: docs/reliability.md,
 * "Several hosts".
 */

/** Short hold and WebSocket idle timeout, so the timers that bound detection fit a CI run. */
export const HOLD_S = 10;
export const WS_IDLE_S = 16;
/** Clients that watch the server's pings drop a socket silent this long (protocol 5's 20 s). */
export const SILENCE_MS = 20_000;
/** The SDK aborts a long poll 20 s after the server's hold should have answered it (60 s against 40 s). */
export const LP_ABORT_MS = (HOLD_S + 20) * 1000;
/** nginx's proxy_read_timeout for these settings (render-nginx.mjs: max(hold, ws idle) + 30 s). */
export const NGINX_READ_TIMEOUT_MS = (Math.max(HOLD_S, WS_IDLE_S) + 30) * 1000;
const PINGING_WS = 4;
const LONG_POLLS = 4;
/**
 * The installation's options: the nginx config as shipped (remote upstreams: max_fails=3
 * fail_timeout=2s), unless PUSH_TEST_NGINX_FAIL_TIMEOUT_S names another fail_timeout
 * (docs/reliability.md compares the two).
 */
export const SUITE_OPTIONS = {
  env: { PUSH_LONGPOLL_TIMEOUT_S: String(HOLD_S), PUSH_WS_IDLE_TIMEOUT_S: String(WS_IDLE_S) },
  nginxArgs: process.env['PUSH_TEST_NGINX_FAIL_TIMEOUT_S'] === undefined ? [] : ['--fail-timeout-s', process.env['PUSH_TEST_NGINX_FAIL_TIMEOUT_S']],
};

export interface Run {
  readonly r: StreamOutcome;
  /** The listener host the browser-like WebSocket (no ping watch) was sent to by nginx. */
  readonly browserOn: number;
}

export interface FaultRunner {
  /** Open subscriber connections on one listener host, from its own /metrics. */
  connectionsOn(h: Host): Promise<{ ws: number; lp: number }>;
  /** `channels`: the stream's channels (default three new ones), e.g. chosen for the Cluster slots they live in. */
  streamAcross(what: string, fault: (browserOn: number) => Promise<void>, opts?: { deliveryTimeoutMs?: number; channels?: readonly string[] }): Promise<Run>;
  /** Nothing acknowledged lost (unless `lossless` is false), nothing twice, in order, every client resumed. */
  guarantees(r: StreamOutcome, opts?: { lossless?: boolean }): void;
  ms(v: number): string;
}

export function faultRunner(inst: Installation): FaultRunner {
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

  /**
   * Opens the clients through nginx (a browser-like WebSocket that cannot see pings, WebSockets
   * that drop a socket silent for SILENCE_MS, long polls with the SDK's abort), waits until every one
   * is held by a listener, then streams publishes through nginx across `fault`.
   */
  const streamAcross = async (what: string, fault: (browserOn: number) => Promise<void>, opts: { deliveryTimeoutMs?: number; channels?: readonly string[] } = {}): Promise<Run> => {
    await everyListenerInRotation();
    const chans = opts.channels !== undefined ? [...opts.channels] : [channelId(), channelId(), channelId()];
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
  /** The apps' last warnings and errors (pino levels 40 and 50), for failure messages. */
  const appWarnings = (): string => {
    const last = (o: string): string => o.split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-6).map((l) => l.slice(0, 300)).join('\n');
    return [inst.publisher, ...inst.listeners].map((a) => `${a.name} ${a.url}:\n${last(a.output())}`).join('\n');
  };
  const guarantees = (r: StreamOutcome, { lossless = true } = {}): void => {
    const why = summary(r);
    if (r.ackedAfterFault < 30) assert.fail(`publishing resumed (${why})\n${appWarnings()}`);
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

  return { connectionsOn, streamAcross, guarantees, ms };
}

/** Open subscriber connections on one listener host, read from its own /metrics (the operator's view). */
export async function connectionsOn(h: Host): Promise<{ ws: number; lp: number }> {
  const text = await (await fetch(`http://${h.addr}:${LISTENER_PORT}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const gauge = (t: string): number => Number(new RegExp(`^push_connections\\{transport="${t}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { ws: gauge('ws'), lp: gauge('lp') };
}
