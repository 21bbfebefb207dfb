/**
 * What the system under test spends, as pure arithmetic over the samples resources.ts takes
 * (table-tested in cost.test.ts): CPU per delivery and memory per connection.
 */

/** Per process group: CPU seconds per wall-clock second over a window (1.0 = one core busy). */
export type CpuByGroup = Readonly<Record<string, { readonly cpu: number; readonly processes?: number }>>;

/** Groups that are not the system under test: the load generator's own processes. */
export const NOT_SERVER: readonly string[] = ['loadgen'];

export interface CpuPerDelivery {
  /** Every server process together (listeners, publishers, Redis, nginx where it is in the path), microseconds per delivery. */
  totalUs: number;
  /** The same split by process group. */
  byGroupUs: Record<string, number>;
}

/**
 * Server CPU per delivery over a window of `seconds`: the CPU time every group but the load
 * generator used, divided by the deliveries the clients counted in that window. Zero deliveries
 * (or no window) give null: there is no cost per delivery to speak of.
 */
export function cpuPerDelivery(usage: CpuByGroup, seconds: number, delivered: number): CpuPerDelivery | null {
  if (!(delivered > 0) || !(seconds > 0)) return null;
  const byGroupUs: Record<string, number> = {};
  let total = 0;
  for (const [group, u] of Object.entries(usage)) {
    // A group without processes (ingest starts no listeners) is left out rather than shown as 0.
    if (NOT_SERVER.includes(group) || u.processes === 0) continue;
    const us = (u.cpu * seconds * 1e6) / delivered;
    byGroupUs[group] = round2(us);
    total += us;
  }
  return { totalUs: round2(total), byGroupUs };
}

/** "37.5 us (listeners 15.1, publishers 8.2, redis 14.2)", or "n/a" with nothing delivered. */
export function formatCpuPerDelivery(c: CpuPerDelivery | null): string {
  if (c === null) return 'n/a (nothing delivered)';
  const parts = Object.entries(c.byGroupUs).map(([g, us]) => `${g} ${us}`);
  return `${c.totalUs} us${parts.length === 0 ? '' : ` (${parts.join(', ')})`}`;
}

/** The memory lines of /proc/<pid>/status the reports use, in KiB (0 when a line is missing). */
export interface ProcMemory {
  /** Resident set: anonymous + file-backed + shared memory pages in RAM. */
  vmRssKb: number;
  /**
   * Resident anonymous memory: the heap, stacks and buffers the process itself allocated. Unlike
   * VmRSS it does not count code and libraries mapped from files, which the kernel can drop and
   * read again, so a machine that reclaims file pages does not make a process look smaller.
   */
  rssAnonKb: number;
}

/** Reads VmRSS and RssAnon from the text of /proc/<pid>/status. */
export function parseProcStatus(status: string): ProcMemory {
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    return m === null ? 0 : Number(m[1]);
  };
  return { vmRssKb: kb('VmRSS'), rssAnonKb: kb('RssAnon') };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
