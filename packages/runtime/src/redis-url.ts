/**
 * Where Redis is, as REDIS_URL names it. Three forms (docs/operations.md, "Redis topologies"):
 *
 *   redis://[[user]:password@]host[:port][/db]   one Redis (also rediss:// for TLS, unix:///path)
 *   redis+sentinel://[:password@]host[:port][,host[:port]...]/<master-name>[/db]
 *                                                   a Sentinel group (ports default to 26379); the
 *                                                   password is the data nodes' (requirepass), the
 *                                                   sentinels themselves are reached without one
 *   redis+cluster://[:password@]host[:port][,host[:port]...]
 *                                                   a Redis Cluster (ports default to 6379); any
 *                                                   reachable node is enough to find the others
 *
 * Hosts are names, IPv4 addresses or bracketed IPv6 addresses ([::1]:26379). A password with
 * reserved characters is percent-encoded. Parsed once by the configuration, never again.
 */
export interface RedisHostPort {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly kind: 'single'; readonly url: string }
  | { readonly kind: 'sentinel'; readonly sentinels: readonly RedisHostPort[]; readonly masterName: string; readonly password?: string; readonly db: number }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisHostPort[]; readonly password?: string };

const SENTINEL_FORM = 'redis+sentinel://[:password@]host:port[,host:port...]/<master-name>[/db]';
const CLUSTER_FORM = 'redis+cluster://[:password@]host:port[,host:port...]';

function hostList(text: string, defaultPort: number, form: string): RedisHostPort[] {
  if (text === '') throw new Error(`no host given; expected ${form}`);
  return text.split(',').map((part) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(part);
    if (m === null) throw new Error(`${JSON.stringify(part)} is not host[:port]; expected ${form}`);
    const port = m[2] === undefined ? defaultPort : Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`port ${m[2]} of ${JSON.stringify(part)} is outside 1-65535`);
    const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
    return { host, port };
  });
}

/** `:password@` or nothing; a user name is refused (Sentinel and Cluster use requirepass here). */
function splitAuth(rest: string, form: string): { password?: string; hosts: string } {
  const at = rest.lastIndexOf('@');
  if (at < 0) return { hosts: rest };
  const auth = rest.slice(0, at);
  if (!auth.startsWith(':')) throw new Error(`credentials must be ":password@" (no user name); expected ${form}`);
  let password: string;
  try {
    password = decodeURIComponent(auth.slice(1));
  } catch {
    throw new Error('the password is not valid percent-encoding');
  }
  if (password === '') throw new Error(`empty password; leave out ":@" for none; expected ${form}`);
  return { password, hosts: rest.slice(at + 1) };
}

/** Throws an Error whose message says what is wrong (never echoing the password). */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^(redis|rediss|unix):\/\//.test(url)) return { kind: 'single', url };
  if (url.startsWith('redis+sentinel://')) {
    const rest = url.slice('redis+sentinel://'.length);
    const slash = rest.indexOf('/', rest.lastIndexOf('@') + 1);
    if (slash < 0) throw new Error(`the master name is missing; expected ${SENTINEL_FORM}`);
    const { password, hosts } = splitAuth(rest.slice(0, slash), SENTINEL_FORM);
    const path = rest.slice(slash + 1).split('/');
    const masterName = path[0] ?? '';
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(masterName)) throw new Error(`the master name must be 1-128 of A-Z a-z 0-9 . _ -; expected ${SENTINEL_FORM}`);
    if (path.length > 2) throw new Error(`too many path parts; expected ${SENTINEL_FORM}`);
    const dbText = path[1] ?? '0';
    if (!/^[0-9]{1,5}$/.test(dbText)) throw new Error(`the database must be a number; expected ${SENTINEL_FORM}`);
    const sentinels = hostList(hosts, 26379, SENTINEL_FORM);
    return { kind: 'sentinel', sentinels, masterName, db: Number(dbText), ...(password === undefined ? {} : { password }) };
  }
  if (url.startsWith('redis+cluster://')) {
    const rest = url.slice('redis+cluster://'.length).replace(/\/$/, '');
    const { password, hosts } = splitAuth(rest, CLUSTER_FORM);
    if (hosts.includes('/')) throw new Error(`a Cluster has no database number or path; expected ${CLUSTER_FORM}`);
    const nodes = hostList(hosts, 6379, CLUSTER_FORM);
    return { kind: 'cluster', nodes, ...(password === undefined ? {} : { password }) };
  }
  throw new Error(`expected redis://host:port[/db], unix:///path, ${SENTINEL_FORM} or ${CLUSTER_FORM}`);
}
