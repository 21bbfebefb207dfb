import { runPrefix, sourceAddress, type ClientKind, type ConnSpec } from '../channels.js';
import { fmt, parse, type Scenario, pushExtras } from '../options.js';
import { sleep } from '../processes.js';
import { readKernel, readProc } from '../resources.js';
import { withTarget } from '../session.js';
import { NchanTarget, nchanAvailable } from '../targets/nchan.js';
import { PushTarget } from '../targets/push.js';
import type { Target } from '../targets/types.js';

interface IdleResult {
  describe: string;
  connections: number;
  failed: number;
  openMs: number;
  stillOpen: number;
  /**
   * What one more idle connection costs the subscriber processes (listeners, or nginx workers):
   * the growth of their RSS between two settled states, with half and with all of the
   * connections open, divided by the connections added. A garbage-collected heap breathes: right
   * after the handshakes it holds their garbage until V8's memory reducer runs (some 30-50 s after
   * allocation stops), and a settled heap is also smaller than a freshly started one; comparing two
   * settled states with connections open measures the connections, not the heap's mood. Settled
   * = the median of the last third of one sample a second over the settle period.
   */
  serverRssBytesPerConn: number;
  /** Growth from the process start to the settled state with all connections, per connection (includes start-up heap changes). */
  serverRssBytesPerConnFromStart: number;
  /** Growth right after opening the second half, per connection added: handshake garbage not yet collected. */
  serverRssBytesPerConnOpen: number;
  /** The samples (KiB of RSS over the start), one a second: first settle period, then second. */
  serverRssSeriesKb: number[];
  /** Growth of Redis' RSS per connection (channel subscriptions and presence keys). */
  redisRssBytesPerConn: number;
  /** Machine-wide kernel growth per connection, both ends of each TCP connection (client included). */
  kernelSlabBytesPerConn: number;
  kernelTcpBufferBytesPerConn: number;
  loadgenRssBytesPerConn: number;
}

const rssKb = (pids: number[]): number => pids.reduce((s, p) => s + (readProc(p)?.rssKb ?? 0), 0);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * `idle`: N WebSockets that only stay connected, each on its own channel. Reports what one idle
 * connection costs the subscriber processes, Redis, and the kernel (slab and TCP buffer growth
 * for both ends). Target: at most 2.5 KB of listener RSS per idle WebSocket.
 */
export const idleScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { connections: '20000', 'settle-seconds': '90' });
  const n = o.num('connections');
  const prefix = runPrefix();
  const listeners = o.num('listeners');
  const settleS = Math.max(1, o.num('settle-seconds'));

  const measure = (start: () => Promise<Target>, kind: ClientKind): Promise<IdleResult> =>
    withTarget(start, o.num('workers'), async (s) => {
      log(s.target.describe);
      await sleep(2000);
      const redisPids = s.target.pids()['redis'] ?? [];
      const loadgen = [...s.fleet.pids()];
      const server = (): number => rssKb(s.target.subscriberPids());
      const base = { server: server(), redis: rssKb(redisPids), loadgen: rssKb(loadgen), kernel: readKernel() };
      const urls = s.target.subscribeTarget().urls.length;
      const conns: ConnSpec[] = Array.from({ length: n }, (_, i) => ({ chan: i, kind, url: i % urls, local: sourceAddress(i) }));
      const half = Math.floor(n / 2);
      const series: number[] = [];
      const settle = async (): Promise<{ first: number; settled: number }> => {
        const mine: number[] = [];
        for (let i = 0; i < settleS; i++) {
          await sleep(1000);
          mine.push(server() - base.server);
        }
        series.push(...mine);
        return { first: mine[0] ?? 0, settled: median(mine.slice(Math.floor((2 * mine.length) / 3))) };
      };
      let opened = 0;
      let failed = 0;
      let openMs = 0;
      const open = async (part: ConnSpec[]): Promise<void> => {
        log(`  opening ${fmt(part.length)} WebSockets ...`);
        const r = await s.fleet.open(s.target.subscribeTarget(), part, { reconnect: false, reconnectJitterMs: 0, concurrency: 50 });
        opened += r.opened;
        failed = r.failed;
        openMs += r.ms;
        log(`  ${fmt(r.opened)} open, ${r.failed} failed in ${r.ms} ms; settling ${settleS} s`);
      };
      await open(conns.slice(0, half));
      const first = await settle();
      await open(conns.slice(half));
      const second = await settle();
      const after = { redis: rssKb(redisPids), loadgen: rssKb(loadgen), kernel: readKernel() };
      const p = await s.fleet.progress();
      const per = (kb: number, count: number): number => Math.round((kb * 1024) / Math.max(1, count));
      const r: IdleResult = {
        describe: s.target.describe,
        connections: opened,
        failed,
        openMs,
        stillOpen: p.connected,
        serverRssBytesPerConn: per(second.settled - first.settled, n - half),
        serverRssBytesPerConnFromStart: per(second.settled, opened),
        serverRssBytesPerConnOpen: per(second.first - first.settled, n - half),
        serverRssSeriesKb: series,
        redisRssBytesPerConn: per(after.redis - base.redis, opened),
        kernelSlabBytesPerConn: per(after.kernel.slabKb - base.kernel.slabKb, opened),
        kernelTcpBufferBytesPerConn: per(after.kernel.tcpBufferKb - base.kernel.tcpBufferKb, opened),
        loadgenRssBytesPerConn: per(after.loadgen - base.loadgen, opened),
      };
      log(`  server RSS ${fmt(r.serverRssBytesPerConn)} B per connection settled (${fmt(r.serverRssBytesPerConnOpen)} right after opening, ${fmt(r.serverRssBytesPerConnFromStart)} counted from the start), Redis ${fmt(r.redisRssBytesPerConn)} B, kernel slab ${fmt(r.kernelSlabBytesPerConn)} B (both ends)`);
      return r;
    });

  const push = await measure(() => PushTarget.start({ listeners, publishers: 1, prefix, auth: 'hmac-sha256', ...pushExtras(o) }), 'ws-text');
  let nchan: IdleResult | null = null;
  if (!o.flag('no-nchan')) {
    if (!nchanAvailable()) throw new Error('nchan is not installed (Debian libnginx-mod-nchan); npm run bench installs it, or pass --no-nchan');
    nchan = await measure(() => NchanTarget.start({ workers: listeners, prefix, bufferLength: 100, messageTimeoutS: 3600 }), 'nchan-ws');
  }
  const failures: string[] = [];
  if (push.failed > 0) failures.push(`${push.failed} WebSockets failed to open`);
  if (push.stillOpen < push.connections) failures.push(`${push.connections - push.stillOpen} WebSockets closed while idle`);
  const target = 2500;
  const summary = [
    `idle: ${fmt(push.connections)} WebSockets, listener RSS ${fmt(push.serverRssBytesPerConn)} B per connection settled (target <= ${fmt(target)}: ${push.serverRssBytesPerConn <= target ? 'met' : 'NOT met'}); ${fmt(push.serverRssBytesPerConnOpen)} B right after opening, ${fmt(push.serverRssBytesPerConnFromStart)} B counted from the process start`,
    `  Redis ${fmt(push.redisRssBytesPerConn)} B, kernel slab ${fmt(push.kernelSlabBytesPerConn)} B and TCP buffers ${fmt(push.kernelTcpBufferBytesPerConn)} B per connection (both ends)`,
  ];
  let ratio: number | null = null;
  if (nchan !== null) {
    ratio = push.serverRssBytesPerConn > 0 ? Math.round((nchan.serverRssBytesPerConn / push.serverRssBytesPerConn) * 100) / 100 : null;
    summary.push(`nchan: nginx worker RSS ${fmt(nchan.serverRssBytesPerConn)} B per connection settled (${fmt(nchan.serverRssBytesPerConnOpen)} right after opening), Redis ${fmt(nchan.redisRssBytesPerConn)} B; ratio nchan/push memory: ${ratio ?? 'n/a'}`);
  }
  return { scenario: 'idle', ok: failures.length === 0, failures, summary, results: { push, nchan, ratio } };
};
