import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort } from './ports.js';
import type { Host } from './netns.js';
import { RedisNode, nodeCall } from './redis-node.js';

export const SENTINEL_MASTER_NAME = 'pushmaster';

export interface RedisSentinelHandle {
  /** `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/pushmaster` */
  readonly url: string;
  /** The data nodes: [0] starts as master, the others as its replicas. */
  readonly data: readonly RedisNode[];
  readonly sentinels: readonly RedisNode[];
  /** The data node the sentinels name as master now. */
  master(): Promise<RedisNode>;
  /**
   * Waits until every running sentinel names the same running master, which has `replicas`
   * replicas attached (default: every other running data node); with `peers`, also until each
   * sentinel knows the other two again (needed before the next failover can be authorised).
   */
  settled(opts?: { replicas?: number; peers?: boolean; timeoutMs?: number }): Promise<RedisNode>;
  /** Asks a sentinel for a failover (the graceful kind, SENTINEL FAILOVER) and waits for it. */
  failover(): Promise<RedisNode>;
  stop(): Promise<void>;
}

/**
 * A private master, `replicas` replicas (default 1) and three sentinels (quorum 2) on free loopback ports, in a
 * temporary directory removed by stop(). A master is considered down after 1 s, so a kill -9
 * is followed by a promotion within a few seconds. Sentinels rewrite their config files, so each
 * gets its own writable copy.
 */
export interface SentinelOptions {
  /** Replicas of the master (default 1). */
  readonly replicas?: number;
  /** Run data node i on dataHosts[i] and sentinel i on sentinelHosts[i] (network namespaces). */
  readonly dataHosts?: readonly Host[];
  readonly sentinelHosts?: readonly Host[];
}

export async function startRedisSentinel(opts: SentinelOptions = {}): Promise<RedisSentinelHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'push-sentinel-'));
  const data: RedisNode[] = [];
  const sentinels: RedisNode[] = [];
  const all = (): RedisNode[] => [...data, ...sentinels];
  try {
    // Distinct ports, so a port names one node (freePort may hand out a port twice until it is bound).
    const taken = new Set<number>();
    const port = async (): Promise<number> => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) return taken.add(p), p;
      }
    };
    const masterPort = await port();
    const where = (h: Host | undefined): { host: string; netns?: string } => (h === undefined ? { host: '127.0.0.1' } : { host: h.addr, netns: h.ns });
    const masterHost = where(opts.dataHosts?.[0]).host;
    for (let i = 0; i <= (opts.replicas ?? 1); i++) {
      const p = i === 0 ? masterPort : await port();
      const d = join(dir, `data-${i}-${p}`);
      mkdirSync(d);
      const at = where(opts.dataHosts?.[i]);
      const replica = i === 0 ? [] : ['--replicaof', masterHost, String(masterPort)];
      // Off loopback Redis refuses unauthenticated peers (protected mode); the test network is private.
      data.push(new RedisNode(p, ['--port', String(p), '--bind', at.host, '--protected-mode', 'no', '--dir', d, '--appendonly', 'yes', '--save', '', '--logfile', join(d, 'redis.log'), ...replica], at));
    }
    for (const n of data) await n.start();
    for (let i = 0; i < 3; i++) {
      const p = await port();
      const at = where(opts.sentinelHosts?.[i]);
      const d = join(dir, `sentinel-${i}-${p}`);
      mkdirSync(d);
      const conf = join(d, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${p}`,
          `bind ${at.host}`,
          'protected-mode no',
          `dir ${d}`,
          `logfile ${join(d, 'sentinel.log')}`,
          `sentinel monitor ${SENTINEL_MASTER_NAME} ${masterHost} ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(new RedisNode(p, [conf, '--sentinel'], at));
    }
    await Promise.all(sentinels.map((s) => s.start()));
  } catch (err) {
    for (const n of all()) await n.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const masterPortNow = async (): Promise<number> => {
    for (const s of sentinels) {
      if (!s.running) continue;
      try {
        const addr = (await nodeCall(s, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as string[] | null;
        if (addr !== null) return Number(addr[1]);
      } catch {
        /* the next sentinel */
      }
    }
    throw new Error('no sentinel answers');
  };
  const byPort = (port: number): RedisNode => {
    const n = data.find((d) => d.port === port);
    if (n === undefined) throw new Error(`sentinels name an unknown master on ${port}`);
    return n;
  };
  const handle: RedisSentinelHandle = {
    url: `redis+sentinel://${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${SENTINEL_MASTER_NAME}`,
    data,
    sentinels,
    async master() {
      return byPort(await masterPortNow());
    },
    async settled({ replicas = data.filter((d) => d.running).length - 1, peers = false, timeoutMs = 30_000 } = {}) {
      const port = await eventually(async () => {
        const seen = new Set<number>();
        for (const s of sentinels) {
          if (!s.running) continue;
          // A sentinel cut off the network (a partition test) has no say; the others decide.
          const flat = (await nodeCall(s, 'SENTINEL', 'MASTER', SENTINEL_MASTER_NAME).catch(() => null)) as string[] | null;
          if (flat === null) continue;
          const info = new Map<string, string>();
          for (let i = 0; i + 1 < flat.length; i += 2) info.set(flat[i] as string, flat[i + 1] as string);
          if (info.get('flags') !== 'master') return 0;
          if (peers && info.get('num-other-sentinels') !== '2') return 0;
          seen.add(Number(info.get('port')));
        }
        const [p] = [...seen];
        if (seen.size !== 1 || p === undefined || !byPort(p).running) return 0;
        const role = String(await nodeCall(byPort(p), 'INFO', 'replication'));
        const online = role.match(/state=online/g)?.length ?? 0;
        return /role:master/.test(role) && online >= replicas ? p : 0;
      }, timeoutMs, 'sentinel group settled');
      return byPort(port);
    },
    async failover() {
      const before = await masterPortNow();
      const s = sentinels.find((x) => x.running);
      if (s === undefined) throw new Error('no sentinel running');
      await nodeCall(s, 'SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME);
      await eventually(async () => (await masterPortNow()) !== before, 20_000, 'sentinel failover');
      return handle.settled({ replicas: 0 });
    },
    async stop() {
      await Promise.all(all().map((n) => n.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.settled({ peers: true });
  return handle;
}
