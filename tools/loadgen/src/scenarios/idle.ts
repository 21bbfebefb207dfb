import { runPrefix, sourceAddress, type ClientKind, type ConnSpec } from '../channels.js';
import { fmt, parse, type Scenario, pushExtras } from '../options.js';
import { sleep } from '../processes.js';
import { readKernel, readProc } from '../resources.js';
import { withTarget } from '../session.js';
import { BitrixTarget, bitrixEntry } from '../targets/bitrix.js';
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
   * What one more idle connection costs the subscriber processes (listeners, or nginx workers) in
   * anonymous memory (RssAnon of /proc/<pid>/status: heap, buffers, stacks; not code or libraries
   * mapped from files, which a machine reclaiming file pages shrinks and which do not grow with
   * connections): the growth between two settled states, with half and with all of the
   * connections open, divided by the connections added. A garbage-collected heap breathes: right
   * after the handshakes it holds their garbage until V8's memory reducer runs (some 30-50 s after
   * allocation stops), and a settled heap is also smaller than a freshly started one; comparing two
   * settled states with connections open measures the connections, not the heap's mood. Settled
   * = the median of the last third of one sample a second over the settle period.
   */
  serverAnonBytesPerConn: number;
  /** Growth right after opening the second half, per connection added (RssAnon): handshake garbage not yet collected. */
  serverAnonBytesPerConnOpen: number;
  /** Growth from the process start to the settled state with all connections, per connection (RssAnon). */
  serverAnonBytesPerConnFromStart: number;
  /** The samples (KiB of RssAnon over the start), one a second: first settle period, then second. */
  serverAnonSeriesKb: number[];
  /** The same as serverAnonBytesPerConn counted in VmRSS (resident memory of every kind), kept beside it. */
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
const anonKb = (pids: number[]): number => pids.reduce((s, p) => s + (readProc(p)?.rssAnonKb ?? 0), 0);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * `idle`: N WebSockets that only stay connected, each on its own channel. Reports what one idle
 * connection costs the subscriber processes, Redis, and the kernel (slab and TCP buffer growth
 * for both ends). Memory per connection is anonymous memory (RssAnon), VmRSS beside it, labelled.
 * Target: at most 2.5 KB of listener RssAnon per idle WebSocket.
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
      const serverAnon = (): number => anonKb(s.target.subscriberPids());
      const base = { server: server(), serverAnon: serverAnon(), redis: rssKb(redisPids), loadgen: rssKb(loadgen), kernel: readKernel() };
      const urls = s.target.subscribeTarget().urls.length;
      const conns: ConnSpec[] = Array.from({ length: n }, (_, i) => ({ chan: i, kind, url: i % urls, local: sourceAddress(i) }));
      const half = Math.floor(n / 2);
      const series: number[] = [];
      const anonSeries: number[] = [];
      type Settled = { first: number; settled: number };
      const settle = async (): Promise<{ rss: Settled; anon: Settled }> => {
        const rss: number[] = [];
        const anon: number[] = [];
        for (let i = 0; i < settleS; i++) {
          await sleep(1000);
          rss.push(server() - base.server);
          anon.push(serverAnon() - base.serverAnon);
        }
        series.push(...rss);
        anonSeries.push(...anon);
        const of = (xs: number[]): Settled => ({ first: xs[0] ?? 0, settled: median(xs.slice(Math.floor((2 * xs.length) / 3))) });
        return { rss: of(rss), anon: of(anon) };
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
        serverAnonBytesPerConn: per(second.anon.settled - first.anon.settled, n - half),
        serverAnonBytesPerConnOpen: per(second.anon.first - first.anon.settled, n - half),
        serverAnonBytesPerConnFromStart: per(second.anon.settled, opened),
        serverAnonSeriesKb: anonSeries,
        serverRssBytesPerConn: per(second.rss.settled - first.rss.settled, n - half),
        serverRssBytesPerConnFromStart: per(second.rss.settled, opened),
        serverRssBytesPerConnOpen: per(second.rss.first - first.rss.settled, n - half),
        serverRssSeriesKb: series,
        redisRssBytesPerConn: per(after.redis - base.redis, opened),
        kernelSlabBytesPerConn: per(after.kernel.slabKb - base.kernel.slabKb, opened),
        kernelTcpBufferBytesPerConn: per(after.kernel.tcpBufferKb - base.kernel.tcpBufferKb, opened),
        loadgenRssBytesPerConn: per(after.loadgen - base.loadgen, opened),
      };
      log(`  server anonymous memory (RssAnon) ${fmt(r.serverAnonBytesPerConn)} B per connection settled, ${fmt(r.serverAnonBytesPerConnOpen)} B right after opening (VmRSS: ${fmt(r.serverRssBytesPerConn)} B settled, ${fmt(r.serverRssBytesPerConnOpen)} B right after opening), Redis ${fmt(r.redisRssBytesPerConn)} B, kernel slab ${fmt(r.kernelSlabBytesPerConn)} B (both ends)`);
      return r;
    });

  const push = await measure(() => PushTarget.start({ listeners, publishers: 1, prefix, auth: 'hmac-sha256', ...pushExtras(o) }), 'ws-text');
  let nchan: IdleResult | null = null;
  if (!o.flag('no-nchan')) {
    if (!nchanAvailable()) throw new Error('nchan is not installed (Debian libnginx-mod-nchan); npm run bench installs it, or pass --no-nchan');
    nchan = await measure(() => NchanTarget.start({ workers: listeners, prefix, bufferLength: 100, messageTimeoutS: 3600 }), 'nchan-ws');
  }
  let bitrix: IdleResult | null = null;
  const bitrixDir = o.str('bitrix-dir');
  if (bitrixDir !== '') {
    bitrixEntry(bitrixDir);
    bitrix = await measure(() => BitrixTarget.start({ dir: bitrixDir, subscribers: listeners, publishers: 1, prefix }), 'ws-text');
  } else {
    log('Bitrix push server 1.0: skipped (pass --bitrix-dir <path> to a local copy to measure it too)');
  }
  const failures: string[] = [];
  if (push.failed > 0) failures.push(`${push.failed} WebSockets failed to open`);
  if (push.stillOpen < push.connections) failures.push(`${push.connections - push.stillOpen} WebSockets closed while idle`);
  const target = 2500;
  const summary = [
    `idle: ${fmt(push.connections)} WebSockets; memory per connection is anonymous memory (RssAnon from /proc/<pid>/status), VmRSS beside it`,
    `  listener RssAnon ${fmt(push.serverAnonBytesPerConn)} B per connection settled (target <= ${fmt(target)}: ${push.serverAnonBytesPerConn <= target ? 'met' : 'NOT met'}), ${fmt(push.serverAnonBytesPerConnOpen)} B right after opening, ${fmt(push.serverAnonBytesPerConnFromStart)} B counted from the process start`,
    `  listener VmRSS ${fmt(push.serverRssBytesPerConn)} B per connection settled, ${fmt(push.serverRssBytesPerConnOpen)} B right after opening (resident memory of every kind; this figure shrinks when the machine reclaims pages)`,
    `  server CPU per delivery: n/a (idle connections receive nothing)`,
    `  Redis ${fmt(push.redisRssBytesPerConn)} B, kernel slab ${fmt(push.kernelSlabBytesPerConn)} B and TCP buffers ${fmt(push.kernelTcpBufferBytesPerConn)} B per connection (both ends)`,
  ];
  let ratio: number | null = null;
  if (nchan !== null) {
    ratio = push.serverAnonBytesPerConn > 0 ? Math.round((nchan.serverAnonBytesPerConn / push.serverAnonBytesPerConn) * 100) / 100 : null;
    summary.push(`nchan: nginx worker RssAnon ${fmt(nchan.serverAnonBytesPerConn)} B per connection settled (${fmt(nchan.serverAnonBytesPerConnOpen)} right after opening; VmRSS ${fmt(nchan.serverRssBytesPerConn)} B), Redis ${fmt(nchan.redisRssBytesPerConn)} B; ratio nchan/push anonymous memory: ${ratio ?? 'n/a'}`);
  }
  let bitrixRatio: number | null = null;
  if (bitrix !== null) {
    bitrixRatio = push.serverAnonBytesPerConn > 0 ? Math.round((bitrix.serverAnonBytesPerConn / push.serverAnonBytesPerConn) * 100) / 100 : null;
    summary.push(`Bitrix push server 1.0: subscriber process RssAnon ${fmt(bitrix.serverAnonBytesPerConn)} B per connection settled (${fmt(bitrix.serverAnonBytesPerConnOpen)} right after opening; VmRSS ${fmt(bitrix.serverRssBytesPerConn)} B), Redis ${fmt(bitrix.redisRssBytesPerConn)} B; ratio Bitrix/push anonymous memory: ${bitrixRatio ?? 'n/a'}`);
  }
  return { scenario: 'idle', ok: failures.length === 0, failures, summary, results: { push, nchan, bitrix, ratio, bitrixRatio } };
};
