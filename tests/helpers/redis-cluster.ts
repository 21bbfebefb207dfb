import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { eventually, freePort } from './ports.js';
import { RedisNode, nodeCall } from './redis-node.js';
import type { Host } from './netns.js';

const run = promisify(execFile);

export interface ClusterNodeInfo {
  readonly port: number;
  readonly id: string;
  readonly role: 'master' | 'replica';
  /** Slot ranges this master serves ([] for a replica). */
  readonly slots: ReadonlyArray<readonly [number, number]>;
}

export interface RedisClusterHandle {
  /** `redis+cluster://127.0.0.1:p1,...` naming every node (any one is enough to find the rest). */
  readonly url: string;
  readonly nodes: readonly RedisNode[];
  /** Temporary directory holding every node's data; removed by stop(). */
  readonly dir: string;
  /** The cluster as every node currently sees it, from CLUSTER NODES of a reachable node. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The node that serves `slot` now. */
  masterOf(slot: number): Promise<RedisNode>;
  /** Waits until every running node says cluster_state:ok and agrees on a master for every slot. */
  healthy(timeoutMs?: number): Promise<void>;
  /**
   * `redis-cli --cluster reshard`: moves `slots` slots from the master on `fromPort` to the one on
   * `toPort` (redis-cli takes the source's lowest slots first), keys included, while everything runs.
   */
  reshard(fromPort: number, toPort: number, slots: number): Promise<void>;
  /**
   * CLUSTER FAILOVER on the replica on `port`: a planned switch (the master stops taking writes
   * until the replica has caught up, then the replica takes over its slots), repeated until it
   * serves slots, e.g. to put a master back on its host after a fault moved it elsewhere.
   */
  failover(port: number, timeoutMs?: number): Promise<void>;
  /** An ioredis Cluster client for assertions; disconnected by stop(). */
  client(): Cluster;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly masters?: number;
  /** Replicas per master (default 1). */
  readonly replicas?: number;
  /** CLUSTER node timeout: how long a silent master takes to be failed over. */
  readonly nodeTimeoutMs?: number;
  /**
   * Run node i on hosts[i % hosts.length] (network namespaces of tests/helpers/netns.ts) instead of
   * loopback. redis-cli places replicas on other addresses than their master where it can, so with
   * as many hosts as masters every host holds one master and replicas of the others.
   */
  readonly hosts?: readonly Host[];
}

/**
 * A private Redis Cluster of `masters` masters with one replica each, on free loopback ports, in a
 * temporary directory removed by stop(). Replicas run with cluster-replica-validity-factor 0:
 * Redis 7.0 on one box otherwise refused to promote a replica after kill -9 of its master
 * ("Disconnected from master for longer than allowed"). The cluster bus ports are picked free
 * too (cluster-port) instead of the default port + 10000, which may be taken or above 65535.
 */
export async function startRedisCluster(opts: ClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 1;
  const count = masters * (1 + replicas);
  const dir = mkdtempSync(join(tmpdir(), 'push-cluster-'));
  const nodes: RedisNode[] = [];
  const clients: Cluster[] = [];
  const taken = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) return taken.add(p), p;
    }
  };
  try {
    for (let i = 0; i < count; i++) {
      const p = await port();
      const bus = await port();
      const d = join(dir, String(p));
      mkdirSync(d);
      const h = opts.hosts?.[i % opts.hosts.length];
      const where = h === undefined ? { host: '127.0.0.1' } : { host: h.addr, netns: h.ns };
      nodes.push(
        new RedisNode(p, [
          // Off loopback Redis refuses unauthenticated peers (protected mode); the test network is private.
          '--port', String(p), '--cluster-port', String(bus), '--bind', where.host, '--protected-mode', h === undefined ? 'yes' : 'no', '--dir', d,
          '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1500), '--cluster-replica-validity-factor', '0',
          '--appendonly', 'yes', '--save', '', '--logfile', join(d, 'redis.log'),
        ], where),
      );
    }
    await Promise.all(nodes.map((n) => n.start()));
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 });
  } catch (err) {
    for (const n of nodes) await n.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const at = (n: RedisNode): { host: string; port: number } => ({ host: n.host, port: n.port });
  const topology = async (): Promise<ClusterNodeInfo[]> => {
    let text = '';
    for (const n of nodes) {
      if (!n.running) continue;
      try {
        text = String(await nodeCall(at(n), 'CLUSTER', 'NODES'));
        break;
      } catch {
        /* try the next node */
      }
    }
    return parseClusterNodes(text);
  };
  const handle: RedisClusterHandle = {
    url: `redis+cluster://${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
    nodes,
    dir,
    topology,
    async masterOf(slot: number): Promise<RedisNode> {
      const t = await topology();
      const m = t.find((x) => x.role === 'master' && x.slots.some(([a, b]) => slot >= a && slot <= b));
      const node = nodes.find((n) => n.port === m?.port);
      if (node === undefined) throw new Error(`no master for slot ${slot}`);
      return node;
    },
    async healthy(timeoutMs = 30_000): Promise<void> {
      await eventually(async () => {
        for (const n of nodes) {
          if (!n.running) continue;
          const info = String(await nodeCall(at(n), 'CLUSTER', 'INFO'));
          if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
        }
        // Every slot's master is a running node, as seen by every running node.
        for (const n of nodes) {
          if (!n.running) continue;
          const t = parseClusterNodes(String(await nodeCall(at(n), 'CLUSTER', 'NODES')));
          const served = t.filter((x) => x.role === 'master' && x.slots.length > 0);
          if (served.some((m) => !nodes.find((y) => y.port === m.port)?.running)) return false;
          if (served.reduce((s, m) => s + m.slots.reduce((k, [a, b]) => k + b - a + 1, 0), 0) !== 16384) return false;
        }
        return true;
      }, timeoutMs, 'cluster healthy');
    },
    async reshard(fromPort: number, toPort: number, slots: number): Promise<void> {
      const t = await topology();
      const from = t.find((x) => x.port === fromPort && x.role === 'master');
      const to = t.find((x) => x.port === toPort && x.role === 'master');
      if (from === undefined || to === undefined) throw new Error(`reshard: ${fromPort} and ${toPort} must both be masters`);
      const target = nodes.find((n) => n.port === toPort) as RedisNode;
      await run('redis-cli', ['--cluster', 'reshard', `${target.host}:${toPort}`, '--cluster-from', from.id, '--cluster-to', to.id, '--cluster-slots', String(slots), '--cluster-yes'], { timeout: 60_000 });
      await handle.healthy();
    },
    async failover(port: number, timeoutMs = 60_000): Promise<void> {
      const n = nodes.find((x) => x.port === port);
      if (n === undefined) throw new Error(`failover: no node on ${port}`);
      await eventually(async () => {
        const me = (await topology()).find((x) => x.port === port);
        if (me?.role === 'master' && me.slots.length > 0) return true;
        // Refused while the replica is still loading or syncing: asked again on the next round.
        if (me?.role === 'replica') await nodeCall(at(n), 'CLUSTER', 'FAILOVER').catch(() => '');
        await new Promise((r) => setTimeout(r, 1000));
        return false;
      }, timeoutMs, `node ${port} took over its master's slots`);
      await handle.healthy();
    },
    client(): Cluster {
      const c = new Cluster(nodes.map((n) => ({ host: n.host, port: n.port })), { redisOptions: { maxRetriesPerRequest: 3 } });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async stop(): Promise<void> {
      for (const c of clients) c.disconnect();
      await Promise.all(nodes.map((n) => n.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.healthy();
  // And every replica in sync with its master (a fresh replica that is still loading would neither
  // hold the data nor be promoted).
  await eventually(async () => {
    for (const m of (await topology()).filter((x) => x.role === 'master')) {
      const info = String(await nodeCall(at(nodes.find((n) => n.port === m.port) as RedisNode), 'INFO', 'replication'));
      if (!/state=online/.test(info)) return false;
    }
    return true;
  }, 30_000, 'cluster replicas in sync');
  return handle;
}

/** CLUSTER NODES text -> nodes (failed or handshaking entries included, as Redis lists them). */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const out: ClusterNodeInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    const port = Number(/:(\d+)[@,]/.exec(f[1] ?? '')?.[1]);
    const flags = (f[2] ?? '').split(',');
    if (flags.includes('fail') || flags.includes('noaddr')) continue;
    const slots: Array<[number, number]> = [];
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) continue; // a slot being migrated or imported
      const [a, b] = s.split('-').map(Number);
      if (a !== undefined) slots.push([a, b ?? a]);
    }
    out.push({ port, id: f[0] ?? '', role: flags.includes('master') ? 'master' : 'replica', slots });
  }
  return out;
}
