import { runPrefix, sourceAddress, type ConnSpec } from '../channels.js';
import { publishStep } from '../fanout.js';
import { Timeline } from '../timeline.js';
import { formatCpuPerDelivery } from '../cost.js';
import { fmt, parse, type Scenario, pushExtras } from '../options.js';
import { sleep } from '../processes.js';
import { withTarget } from '../session.js';
import { PushTarget } from '../targets/push.js';

/**
 * `storm`: WebSocket clients under steady publishing while every listener is restarted at once
 * (SIGTERM: drain, goodbye with 4111, exit; then started again on its port). Clients reconnect
 * with random jitter, retrying while nothing listens, and resume from the mid of the last message
 * they got. Nothing may be lost, duplicated or reordered; the report shows how long the cluster
 * took to have every client back and what the storm did to latency.
 */
export const stormScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { clients: '10000', channels: '1000', rate: '2000', 'restart-at': '5', jitter: '2000', 'binary-share': '0.5', lanes: '8', batch: '50' });
  o.num('seconds'); // validated; the default is raised below so the storm fits inside the publishing
  const seconds = Math.max(o.num('seconds'), o.num('restart-at') + 15);
  const clients = o.num('clients');
  const channels = o.num('channels');
  const prefix = runPrefix();
  const share = o.num('binary-share');
  return withTarget(() => PushTarget.start({ listeners: o.num('listeners'), publishers: o.num('publishers'), prefix, auth: 'ed25519', ...pushExtras(o) }), o.num('workers'), async (s) => {
    const t = s.target as PushTarget;
    log(t.describe);
    const urls = t.subscribeTarget().urls.length;
    const devices = Array.from({ length: channels }, () => 0);
    const conns: ConnSpec[] = Array.from({ length: clients }, (_, i) => {
      const chan = i % channels;
      devices[chan] = (devices[chan] ?? 0) + 1;
      const binary = Math.floor((i + 1) * share) > Math.floor(i * share);
      return { chan, kind: binary ? 'ws-binary' : 'ws-text', url: i % urls, local: sourceAddress(i) };
    });
    log(`  opening ${fmt(clients)} WebSockets on ${fmt(channels)} channels ...`);
    const opened = await s.fleet.open(t.subscribeTarget(), conns, { reconnect: true, reconnectJitterMs: o.num('jitter'), concurrency: 50 });
    log(`  ${fmt(opened.opened)} open in ${opened.ms} ms; publishing ${fmt(o.num('rate'))} msg/s for ${seconds} s, all listeners restart at ${o.num('restart-at')} s`);
    let storm = { downMs: [] as number[], recoveredMs: -1, reconnects: 0 };
    const during = async (): Promise<void> => {
      await sleep(o.num('restart-at') * 1000);
      const before = (await s.fleet.progress()).reconnects;
      const t0 = performance.now();
      const { downMs } = await t.restartListeners();
      let recoveredMs = -1;
      while (performance.now() - t0 < 60_000) {
        const p = await s.fleet.progress();
        if (p.connected >= clients) {
          recoveredMs = Math.round(performance.now() - t0);
          storm = { downMs, recoveredMs, reconnects: p.reconnects - before };
          return;
        }
        await sleep(100);
      }
      storm = { downMs, recoveredMs, reconnects: (await s.fleet.progress()).reconnects - before };
    };
    const timeline = new Timeline(250);
    const run = { fleet: s.fleet, driver: s.driver, monitor: s.monitor, devices, timeline, plan: { channels, fanout: 1, lanes: o.num('lanes'), shape: 'batch' as const, batch: o.num('batch'), bodyBytes: o.num('body-bytes'), expiry: 3600, presign: 0 } };
    const step = await publishStep(run, o.num('rate'), seconds, { abortLagS: Infinity, maxDrainS: 60, during, label: `${o.num('rate')} msg/s, listeners restarted at ${o.num('restart-at')} s` });
    log(`  listeners back after ${storm.downMs.join(', ')} ms; every client reconnected after ${storm.recoveredMs} ms (${fmt(storm.reconnects)} reconnects)`);
    const failures: string[] = [];
    if (opened.failed > 0) failures.push(`${opened.failed} WebSockets failed to open`);
    if (storm.recoveredMs < 0) failures.push('not every client was connected again within 60 s of the restart');
    if (storm.reconnects < clients) failures.push(`only ${storm.reconnects} reconnects for ${clients} clients: the restart did not reach everyone`);
    if (step.lost > 0) failures.push(`${step.lost} deliveries lost`);
    if (step.duplicates > 0) failures.push(`${step.duplicates} duplicate deliveries`);
    if (step.reordered > 0) failures.push(`${step.reordered} deliveries out of order`);
    if (step.malformed > 0) failures.push(`${step.malformed} unreadable messages`);
    if (step.publishErrors > 0) failures.push(`${step.publishErrors} publish requests failed: ${step.firstPublishError}`);
    const summary = [
      `storm: ${fmt(clients)} clients, all ${urls} listeners restarted at once under ${fmt(o.num('rate'))} msg/s: every client back after ${storm.recoveredMs} ms`,
      `  ${fmt(step.delivered)} deliveries, lost ${step.lost}, duplicates ${step.duplicates}, out of order ${step.reordered}; end-to-end latency p50 ${step.latencyMs.p50} ms, p99 ${step.latencyMs.p99} ms, max ${step.latencyMs.max} ms`,
      `  publish (request sent to answer) p50 ${step.acceptMs.p50} ms, p99 ${step.acceptMs.p99} ms; server CPU ${formatCpuPerDelivery(step.serverCpuPerDelivery)} per delivery (batch shape: up to ${o.num('batch')} messages per signed POST /pub/batch)`,
    ];
    return { scenario: 'storm', ok: failures.length === 0, failures, summary, results: { clients, channels, opened, storm, step }, charts: [{ name: 'push', title: `storm\n${t.describe}`, points: timeline.points }] };
  });
};
