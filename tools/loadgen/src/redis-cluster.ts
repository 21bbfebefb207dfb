import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, getRedisBoost, sleep, spawnService, waitForPort, type RedisInstance, type Service } from './processes.js';

/** Slot ranges that split Redis Cluster's 16,384 slots evenly over `masters` masters (table-tested). */
export function slotRanges(masters: number): Array<[number, number]> {
  if (!Number.isInteger(masters) || masters < 1 || masters > 16384) throw new Error(`a Cluster needs 1 to 16384 masters (got ${masters})`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < masters; i++) out.push([Math.floor((i * 16384) / masters), Math.floor(((i + 1) * 16384) / masters) - 1]);
  return out;
}

/**
 * A private Redis Cluster of `masters` masters and no replicas (a benchmark measures the cost of
 * sharding, not of replication), persistence off like the single Redis of the other runs. Built by
 * hand (CLUSTER ADDSLOTSRANGE and MEET) because redis-cli --cluster create refuses fewer than 3
 * masters; nodes announce 127.0.0.1, since a node that never met another one does not know its own
 * address and would tell clients an empty host. Its `shards` give each master's pid, so the report can show CPU per shard.
 */
export async function startRedisCluster(masters: number): Promise<RedisInstance & { readonly shards: readonly number[] }> {
  const ranges = slotRanges(masters);
  const dir = mkdtempSync(join(tmpdir(), 'push-bench-cluster-'));
  const nodes: Array<{ port: number; bus: number; service: Service }> = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.service.stop('SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      let bus = await freePort();
      while (bus === port) bus = await freePort();
      const d = join(dir, String(port));
      mkdirSync(d);
      const service = spawnService(`redis-shard-${i + 1}`, 'redis-server', ['--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--dir', d, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000']);
      nodes.push({ port, bus, service });
      await waitForPort(port, 10_000, `redis-server (Cluster node ${i + 1})`);
      if (getRedisBoost() > 0) {
        try {
          setPriority(service.pid, -getRedisBoost());
        } catch {
          // Reported by the single-Redis path already; the shards then run at the default.
        }
      }
    }
    const first = nodes[0] as { port: number; bus: number };
    await Promise.all(
      nodes.map(async (n, i) => {
        const c = new Redis(n.port, '127.0.0.1', { lazyConnect: false });
        try {
          const [a, b] = ranges[i] as [number, number];
          await c.call('CLUSTER', 'ADDSLOTSRANGE', String(a), String(b));
          if (i > 0) await c.call('CLUSTER', 'MEET', '127.0.0.1', String(first.port), String(first.bus));
        } finally {
          c.disconnect();
        }
      }),
    );
    // Every node must see every slot served before the server starts.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await Promise.all(
        nodes.map(async (n) => {
          const c = new Redis(n.port, '127.0.0.1');
          try {
            const info = String(await c.call('CLUSTER', 'INFO'));
            return /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(info);
          } finally {
            c.disconnect();
          }
        }),
      );
      if (ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster of ${masters} masters was not ready within 30 s`);
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    service: (nodes[0] as { service: Service }).service,
    port: (nodes[0] as { port: number }).port,
    nice: getRedisBoost() > 0 ? -getRedisBoost() : 0,
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    shards: nodes.map((n) => n.service.pid),
    stop,
  };
}
