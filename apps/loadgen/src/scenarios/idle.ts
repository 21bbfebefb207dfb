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
   * Growth of the subscriber processes' RSS divided by the connections (listeners, or nginx
   * workers): the median of one sample a second over the settle period. A garbage-collected heap
   * breathes (the handshakes leave garbage, V8 shrinks the heap once allocation stops, periodic
   * presence refreshes grow it a little again), so a single sample would be luck; the maximum is
   * reported beside it.
   */
  serverRssBytesPerConn: number;
  serverRssBytesPerConnMax: number;
  /** The samples behind the median, bytes per connection, one a second. */
  serverRssSeries: number[];
  /** Growth of Redis' RSS per connection (channel subscriptions and presence keys). */
  redisRssBytesPerConn: number;
  /** Machine-wide kernel growth per connection, both ends of each TCP connection (client included). */
  kernelSlabBytesPerConn: number;
  kernelTcpBufferBytesPerConn: number;
  loadgenRssBytesPerConn: number;
}

const rssKb = (pids: number[]): number => pids.reduce((s, p) => s + (readProc(p)?.rssKb ?? 0), 0);

/**
 * `idle`: N WebSockets that only stay connected, each on its own channel. Reports what one idle
 * connection costs the subscriber processes (RSS growth / N), Redis, and the kernel (slab and TCP
 * buffer growth / N for both ends). Target: at most 2.5 KB of listener RSS per idle WebSocket.
 */
export const idleScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { connections: '20000', 'settle-seconds': '60' });
  const n = o.num('connections');
  const prefix = runPrefix();
  const listeners = o.num('listeners');

  const measure = (start: () => Promise<Target>, kind: ClientKind): Promise<IdleResult> =>
    withTarget(start, o.num('workers'), async (s) => {
      log(s.target.describe);
      await sleep(2000);
      const redisPids = s.target.pids()['redis'] ?? [];
      const loadgen = [...s.fleet.pids()];
      const before = { server: rssKb(s.target.subscriberPids()), redis: rssKb(redisPids), loadgen: rssKb(loadgen), kernel: readKernel() };
      const urls = s.target.subscribeTarget().urls.length;
      const conns: ConnSpec[] = Array.from({ length: n }, (_, i) => ({ chan: i, kind, url: i % urls, local: sourceAddress(i) }));
      log(`  opening ${fmt(n)} WebSockets ...`);
      const opened = await s.fleet.open(s.target.subscribeTarget(), conns, { reconnect: false, reconnectJitterMs: 0, concurrency: 50 });
      log(`  ${fmt(opened.opened)} open, ${opened.failed} failed in ${opened.ms} ms; sampling for ${o.num('settle-seconds')} s`);
      const per = (kb: number): number => Math.round((kb * 1024) / Math.max(1, opened.opened));
      const series: number[] = [];
      for (let i = 0; i < Math.max(1, o.num('settle-seconds')); i++) {
        await sleep(1000);
        series.push(per(rssKb(s.target.subscriberPids()) - before.server));
      }
      const after = { server: rssKb(s.target.subscriberPids()), redis: rssKb(redisPids), loadgen: rssKb(loadgen), kernel: readKernel() };
      const p = await s.fleet.progress();
      const sorted = [...series].sort((a, b) => a - b);
      const r: IdleResult = {
        describe: s.target.describe,
        connections: opened.opened,
        failed: opened.failed,
        openMs: opened.ms,
        stillOpen: p.connected,
        serverRssBytesPerConn: sorted[Math.floor(sorted.length / 2)] ?? 0,
        serverRssBytesPerConnMax: sorted[sorted.length - 1] ?? 0,
        serverRssSeries: series,
        redisRssBytesPerConn: per(after.redis - before.redis),
        kernelSlabBytesPerConn: per(after.kernel.slabKb - before.kernel.slabKb),
        kernelTcpBufferBytesPerConn: per(after.kernel.tcpBufferKb - before.kernel.tcpBufferKb),
        loadgenRssBytesPerConn: per(after.loadgen - before.loadgen),
      };
      log(`  server RSS ${fmt(r.serverRssBytesPerConn)} B/conn (median; max ${fmt(r.serverRssBytesPerConnMax)}), Redis ${fmt(r.redisRssBytesPerConn)} B/conn, kernel slab ${fmt(r.kernelSlabBytesPerConn)} B/conn (both ends)`);
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
    `idle: ${fmt(push.connections)} WebSockets, listener RSS ${fmt(push.serverRssBytesPerConn)} B per connection, median over ${push.serverRssSeries.length} s (max ${fmt(push.serverRssBytesPerConnMax)}; target <= ${fmt(target)}: ${push.serverRssBytesPerConn <= target ? 'met' : 'NOT met'})`,
    `  Redis ${fmt(push.redisRssBytesPerConn)} B, kernel slab ${fmt(push.kernelSlabBytesPerConn)} B and TCP buffers ${fmt(push.kernelTcpBufferBytesPerConn)} B per connection (both ends)`,
  ];
  let ratio: number | null = null;
  if (nchan !== null) {
    ratio = push.serverRssBytesPerConn > 0 ? Math.round((nchan.serverRssBytesPerConn / push.serverRssBytesPerConn) * 100) / 100 : null;
    summary.push(`nchan: nginx worker RSS ${fmt(nchan.serverRssBytesPerConn)} B per connection (max ${fmt(nchan.serverRssBytesPerConnMax)}), Redis ${fmt(nchan.redisRssBytesPerConn)} B; ratio nchan/push memory: ${ratio ?? 'n/a'}`);
  }
  return { scenario: 'idle', ok: failures.length === 0, failures, summary, results: { push, nchan, ratio } };
};
