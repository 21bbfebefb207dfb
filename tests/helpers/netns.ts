import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args, { timeout: 10_000 })).stdout;
}

export interface Host {
  /** Network namespace name (unique per test run). */
  readonly ns: string;
  /** This host's address on the test network (198.18.0.0/15, the benchmarking range). */
  readonly addr: string;
  /** Cuts the host off the network (its link goes down) or brings it back. */
  link(up: boolean): Promise<void>;
}

export interface TestNetwork {
  /** The address the test process (the "client host", in the root namespace) has on the network. */
  readonly clientAddr: string;
  addHost(): Promise<Host>;
  /** Removes every namespace, link and the bridge it created. */
  destroy(): Promise<void>;
}

/**
 * Several "machines" on one box: one network namespace per host, each joined by a veth pair to a
 * bridge in the root namespace, where the test process itself is the client host. Names carry a
 * random suffix and the /24 a random third octet, so parallel runs do not collide. Needs root
 * (CAP_NET_ADMIN); `netnsUnavailable()` says why not when it cannot work.
 */
export async function createTestNetwork(): Promise<TestNetwork> {
  const tag = randomBytes(3).toString('hex');
  const octet2 = 18 + (randomBytes(1)[0] as number) % 2;
  const octet3 = (randomBytes(1)[0] as number) % 250 + 1;
  const net = `198.${octet2}.${octet3}`;
  const bridge = `pb${tag}`;
  const hosts: Host[] = [];
  await ip('link', 'add', bridge, 'type', 'bridge');
  await ip('addr', 'add', `${net}.1/24`, 'dev', bridge);
  await ip('link', 'set', bridge, 'up');
  return {
    clientAddr: `${net}.1`,
    async addHost(): Promise<Host> {
      const n = hosts.length + 10;
      const ns = `push-${tag}-h${n}`;
      const outer = `pv${tag}${n}`;
      const addr = `${net}.${n}`;
      await ip('netns', 'add', ns);
      await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('link', 'set', outer, 'master', bridge, 'up');
      await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      const host: Host = {
        ns,
        addr,
        async link(up: boolean) {
          await ip('-n', ns, 'link', 'set', 'eth0', up ? 'up' : 'down');
        },
      };
      hosts.push(host);
      return host;
    },
    async destroy(): Promise<void> {
      for (const h of hosts) await ip('netns', 'del', h.ns).catch(() => '');
      await ip('link', 'del', bridge).catch(() => '');
    },
  };
}

/** Null when namespaces can be created here, else the reason (for a skip message). */
export async function netnsUnavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  const probe = `push-probe-${randomBytes(3).toString('hex')}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    return null;
  } catch (err) {
    return `cannot create network namespaces here (needs root / CAP_NET_ADMIN and iproute2): ${(err as Error).message.split('\n')[0]}`;
  }
}
