import { readFileSync } from 'node:fs';
import { parseProcStatus } from './cost.js';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const HZ = 100;

/** CPU time (ticks), resident memory and resident anonymous memory (KiB) of one process, or null when it is gone. */
export function readProc(pid: number): { ticks: number; rssKb: number; rssAnonKb: number } | null {
  try {
    // Fields after the ")" closing the command name: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const mem = parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { ticks: Number(f[11]) + Number(f[12]), rssKb: mem.vmRssKb, rssAnonKb: mem.rssAnonKb };
  } catch {
    return null;
  }
}

/**
 * Kernel memory that sockets cost, machine-wide: TCP buffer pages (/proc/net/sockstat "mem") and
 * all slab memory (/proc/meminfo "Slab", which holds the socket, file and epoll objects).
 */
export function readKernel(): { tcpSockets: number; tcpBufferKb: number; slabKb: number } {
  const sock = readFileSync('/proc/net/sockstat', 'utf8');
  const tcp = /TCP: inuse (\d+) .*mem (\d+)/.exec(sock);
  const mem = /Slab:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return { tcpSockets: Number(tcp?.[1] ?? 0), tcpBufferKb: Number(tcp?.[2] ?? 0) * 4, slabKb: Number(mem?.[1] ?? 0) };
}

export interface GroupUsage {
  /** CPU seconds per wall-clock second over the window (1.0 = one core busy). */
  cpu: number;
  /** Highest summed RSS of the group seen in the window, MiB. */
  peakRssMb: number;
  /** Summed RSS at the last sample, MiB. */
  rssMb: number;
  processes: number;
}

/**
 * Samples the CPU and memory of named groups of processes once a second (the system under test,
 * Redis, the load generator itself) and reports usage over windows the scenario marks. Group
 * membership is asked anew at each sample, so restarted processes are followed.
 */
export class ResourceMonitor {
  private readonly lastTicks = new Map<number, number>();
  private ticks = new Map<string, number>();
  private peak = new Map<string, number>();
  private now = new Map<string, { rssKb: number; n: number }>();
  private windowStart = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly groups: () => Record<string, number[]>) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  sample(): void {
    for (const [name, pids] of Object.entries(this.groups())) {
      let rssKb = 0;
      let n = 0;
      for (const pid of pids) {
        const p = readProc(pid);
        if (p === null) continue;
        n++;
        rssKb += p.rssKb;
        const before = this.lastTicks.get(pid);
        this.lastTicks.set(pid, p.ticks);
        if (before !== undefined) this.ticks.set(name, (this.ticks.get(name) ?? 0) + (p.ticks - before));
      }
      this.now.set(name, { rssKb, n });
      this.peak.set(name, Math.max(this.peak.get(name) ?? 0, rssKb));
    }
  }

  /** Usage since the previous call (or the start), then starts a new window. */
  window(): { seconds: number; groups: Record<string, GroupUsage> } {
    this.sample();
    const seconds = (performance.now() - this.windowStart) / 1000;
    const groups: Record<string, GroupUsage> = {};
    for (const [name, cur] of this.now) {
      groups[name] = {
        cpu: round2((this.ticks.get(name) ?? 0) / HZ / Math.max(seconds, 0.001)),
        peakRssMb: round1((this.peak.get(name) ?? 0) / 1024),
        rssMb: round1(cur.rssKb / 1024),
        processes: cur.n,
      };
    }
    this.ticks = new Map();
    this.peak = new Map();
    this.windowStart = performance.now();
    return { seconds: round2(seconds), groups };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;
export const round2 = (x: number): number => Math.round(x * 100) / 100;
