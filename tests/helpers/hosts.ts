import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestNetwork, type Host, type TestNetwork } from './netns.js';
import { startRedisSentinel, type RedisSentinelHandle } from './redis-sentinel.js';
import { startRedisCluster, type RedisClusterHandle } from './redis-cluster.js';
import { startApp, type AppProcess } from './apps.js';
import { eventually } from './ports.js';
import { run } from '../ops/stack-helpers.js';

const NGINX = '/usr/sbin/nginx';
/** Every app host runs its processes on the same ports, as machines of one installation would. */
export const LISTENER_PORT = 8010;
export const PUBLISHER_PORT = 9010;
export const FRONT_PORT = 8080;

export interface InstallationOptions {
  /** Listener hosts behind nginx (default 2). */
  readonly listeners?: number;
  /** Environment of every app process (on top of what the layout needs). */
  readonly env?: Record<string, string>;
  /** Extra options for scripts/lib/render-nginx.mjs (e.g. --fail-timeout-s). */
  readonly nginxArgs?: readonly string[];
  /**
   * What runs on the three Redis hosts: a Sentinel group (default; a data node and a sentinel
   * each) or a Redis Cluster of three masters with two replicas each (three nodes per host, each
   * host holding one master and a replica of each other host's master).
   */
  readonly redis?: 'sentinel' | 'cluster';
}

/**
 * One installation as separate machines, each a network namespace on 198.18.0.0/15 (netns.ts):
 * three Redis hosts (a data node and a sentinel each, the first node starting as master; or a
 * Redis Cluster, InstallationOptions.redis), listener
 * hosts, a publisher host and an nginx host whose config is the project's own template rendered by
 * scripts/lib/render-nginx.mjs with the remote upstreams, as docs/operations.md tells operators.
 * The test process is the client host: it reaches the installation only through nginx (and each
 * host directly, for the operator's views).
 */
export interface Installation {
  readonly net: TestNetwork;
  /** The Sentinel group (null with `redis: 'cluster'`). */
  readonly group: RedisSentinelHandle | null;
  /** The Redis Cluster (null unless `redis: 'cluster'`). */
  readonly cluster: RedisClusterHandle | null;
  readonly redisHosts: readonly Host[];
  readonly listenerHosts: readonly Host[];
  readonly publisherHost: Host;
  readonly nginxHost: Host;
  /** http://<nginx host>:8080, the one entry point. */
  readonly front: string;
  /** The process running on each listener host now (replaced by restartHost). */
  readonly listeners: AppProcess[];
  publisher: AppProcess;
  /** The environment every app process got. */
  readonly env: Readonly<Record<string, string>>;
  /** nginx's error log so far (upstream timeouts, "no live upstreams"). */
  nginxErrors(): string;
  /**
   * A host restart: every process on it killed with SIGKILL, then started again (with `env` on top
   * of the installation's). Resolves once they are dead, with `up`, which resolves once the new
   * ones are ready (so a fault can return while the host is still coming back).
   */
  restartHost(host: Host, env?: Record<string, string>): Promise<{ up: Promise<void> }>;
  stop(): Promise<void>;
}

export async function startInstallation(opts: InstallationOptions = {}): Promise<Installation> {
  const net = await createTestNetwork();
  const dir = mkdtempSync(join(tmpdir(), 'push-hosts-'));
  let nginx: ChildProcess | null = null;
  let group: RedisSentinelHandle | null = null;
  let cluster: RedisClusterHandle | null = null;
  const apps: AppProcess[] = [];
  try {
    const redisHosts = [await net.addHost(), await net.addHost(), await net.addHost()];
    const listenerHosts: Host[] = [];
    for (let i = 0; i < (opts.listeners ?? 2); i++) listenerHosts.push(await net.addHost());
    const publisherHost = await net.addHost();
    const nginxHost = await net.addHost();
    let url: string;
    if (opts.redis === 'cluster') {
      // Two replicas per master: with one host cut off, every master still has a replica on
      // another host, so replicated publishing goes on for every slot.
      cluster = await startRedisCluster({ masters: 3, replicas: 2, hosts: redisHosts });
      url = cluster.url;
    } else {
      group = await startRedisSentinel({ replicas: 2, dataHosts: redisHosts, sentinelHosts: redisHosts });
      url = group.url;
    }
    const env: Record<string, string> = {
      REDIS_URL: url,
      PUSH_PUBLISH_DURABILITY: 'replicated',
      PUSH_HISTORY_LIMIT: '1000',
      // The processes see clients through nginx: X-Real-IP is believed from the nginx host only,
      // and the client host is the trusted publishing network (the portal) and admin network.
      PUSH_TRUSTED_PROXIES: `${nginxHost.addr}/32`,
      PUSH_PUBLISH_TRUSTED_NETWORKS: `${net.clientAddr}/32`,
      ...opts.env,
    };
    const appEnv = (host: Host, port: number, extra: Record<string, string> = {}): Record<string, string> => ({ ...env, ...extra, PUSH_HOST: host.addr, PUSH_PORT: String(port) });
    const started = await Promise.all([
      ...listenerHosts.map((h) => startApp('listener', appEnv(h, LISTENER_PORT), { netns: h.ns })),
      startApp('publisher', appEnv(publisherHost, PUBLISHER_PORT), { netns: publisherHost.ns }),
    ]);
    apps.push(...started);
    const listeners = started.slice(0, listenerHosts.length);

    // nginx: the template rendered for remote upstreams (max_fails=3 fail_timeout=10s each), with
    // the hold and WebSocket idle timeout the listeners run with, as scripts/start.sh renders it.
    mkdirSync(join(dir, 'tmp'));
    const conf = join(dir, 'nginx.conf');
    const r = await run('node', [
      'scripts/lib/render-nginx.mjs', '--out', conf, '--prefix', dir, '--log-dir', dir,
      '--front-bind', nginxHost.addr, '--front-port', String(FRONT_PORT),
      '--publishers', `${publisherHost.addr}:${PUBLISHER_PORT}`,
      '--listeners', listenerHosts.map((h) => `${h.addr}:${LISTENER_PORT}`).join(' '),
      '--pub-allow', `${net.clientAddr}/32`,
      '--hold-s', env['PUSH_LONGPOLL_TIMEOUT_S'] ?? '40', '--ws-idle-s', env['PUSH_WS_IDLE_TIMEOUT_S'] ?? '120',
      '--workers', '1', '--nofile', '4096', ...(opts.nginxArgs ?? []),
    ], {});
    if (r.code !== 0) throw new Error(`render-nginx: ${r.stderr}`);
    nginx = spawn('ip', ['netns', 'exec', nginxHost.ns, NGINX, '-p', dir, '-c', conf, '-e', join(dir, 'nginx-error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
    const front = `http://${nginxHost.addr}:${FRONT_PORT}`;
    await eventually(async () => (await fetch(`${front}/readyz`).catch(() => null))?.status === 200, 15_000, 'nginx and a ready publisher behind it');

    const inst: Installation = {
      net,
      group,
      cluster,
      redisHosts,
      listenerHosts,
      publisherHost,
      nginxHost,
      front,
      listeners,
      publisher: started[started.length - 1] as AppProcess,
      env,
      nginxErrors: () => {
        try {
          return readFileSync(join(dir, 'nginx-error.log'), 'utf8');
        } catch {
          return '';
        }
      },
      async restartHost(host, extra = {}) {
        const li = listenerHosts.indexOf(host);
        if (li >= 0) {
          await (listeners[li] as AppProcess).stop('SIGKILL');
          const up = startApp('listener', appEnv(host, LISTENER_PORT, extra), { netns: host.ns }).then((a) => {
            listeners[li] = a;
            apps.push(a);
          });
          return { up };
        }
        if (host === publisherHost) {
          await inst.publisher.stop('SIGKILL');
          const up = startApp('publisher', appEnv(host, PUBLISHER_PORT, extra), { netns: host.ns }).then((a) => {
            inst.publisher = a;
            apps.push(a);
          });
          return { up };
        }
        throw new Error(`restartHost: ${host.addr} runs no app process`);
      },
      async stop() {
        await teardown();
      },
    };
    return inst;
  } catch (err) {
    await teardown();
    throw err;
  }

  async function teardown(): Promise<void> {
    if (nginx !== null && nginx.exitCode === null) {
      const n = nginx;
      await new Promise<void>((resolve) => {
        n.once('exit', () => resolve());
        n.kill('SIGTERM');
        setTimeout(() => n.kill('SIGKILL'), 5000).unref();
      });
    }
    await Promise.all(apps.map((a) => a.stop('SIGKILL')));
    await group?.stop();
    await cluster?.stop();
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
