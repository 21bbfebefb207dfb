import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** One CIDR block; a bare address is a /32 (IPv4) or /128 (IPv6) block. */
export interface NetworkSpec {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** Parses "10.0.0.0/8, 127.0.0.1 ::1/128" (commas or whitespace). Throws naming every bad entry. */
export function parseNetworks(text: string): NetworkSpec[] {
  const out: NetworkSpec[] = [];
  const bad: string[] = [];
  for (const entry of text.split(/[\s,]+/).filter((e) => e !== '')) {
    const slash = entry.indexOf('/');
    const address = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
    const max = family === 'ipv4' ? 32 : 128;
    const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1);
    const prefix = Number(prefixText);
    if (family === null || !/^[0-9]{1,3}$/.test(prefixText) || prefix > max) bad.push(entry);
    else out.push({ address, prefix, family });
  }
  if (bad.length > 0) throw new Error(`not an address or CIDR block: ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
  return out;
}

/**
 * "::ffff:10.1.2.3" (an IPv4 peer on a dual-stack socket) is matched as 10.1.2.3, so operators can
 * write IPv4 blocks whatever the listening socket is. Anything unparsable matches nothing.
 */
export function normalizeAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | null {
  const a = address.trim().toLowerCase();
  const mapped = /^(?:0{0,4}:){0,5}ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a.replace(/^::/, '0:'));
  if (mapped !== null && isIPv4(mapped[1] as string)) return { address: mapped[1] as string, family: 'ipv4' };
  if (isIPv4(a)) return { address: a, family: 'ipv4' };
  if (isIPv6(a)) return { address: a, family: 'ipv6' };
  return null;
}

/** A set of networks to test addresses against; empty matches nothing. */
const MEMO_MAX = 4096;

export class NetworkSet {
  private readonly list = new BlockList();
  /**
   * Answers by address. BlockList.check builds a SocketAddress per call, a few microseconds that
   * showed in the publisher's profile on every request (docs/benchmarks.md); the addresses a
   * process is asked about are few (the portal's servers, the proxy), so they are remembered,
   * and the memory is cleared whole when it grows past MEMO_MAX (never unbounded).
   */
  private readonly memo = new Map<string, boolean>();
  readonly size: number;
  constructor(specs: readonly NetworkSpec[]) {
    for (const s of specs) this.list.addSubnet(s.address, s.prefix, s.family);
    this.size = specs.length;
  }
  has(address: string): boolean {
    if (this.size === 0) return false;
    let hit = this.memo.get(address);
    if (hit === undefined) {
      const n = normalizeAddress(address);
      hit = n !== null && this.list.check(n.address, n.family);
      if (this.memo.size >= MEMO_MAX) this.memo.clear();
      this.memo.set(address, hit);
    }
    return hit;
  }
}
