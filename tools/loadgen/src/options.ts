import { profileChildren } from './ipc.js';
import { setRedisBoost } from './processes.js';
import { cpus } from 'node:os';
import type { ChartData } from './timeline.js';
import { parseArgs } from 'node:util';

export interface ScenarioReport {
  scenario: string;
  /** False when anything was lost, duplicated or reordered, a publish failed, or a connection could not open. */
  ok: boolean;
  failures: string[];
  /** Human-readable lines, printed at the end. */
  summary: string[];
  results: Record<string, unknown>;
  /** Timelines that main.ts draws as `<report>-<name>.png` next to the JSON (unless --no-charts). */
  charts?: ChartData[];
}

export type Scenario = (argv: string[], log: (line: string) => void) => Promise<ScenarioReport>;

type Spec = Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>;

/** Options every scenario understands. */
const COMMON: Spec = {
  listeners: { type: 'string', default: String(cpus().length) },
  publishers: { type: 'string', default: '1' },
  workers: { type: 'string', default: '2' },
  seconds: { type: 'string', default: '5' },
  'body-bytes': { type: 'string', default: '200' },
  'no-nchan': { type: 'boolean', default: false },
  /**
   * A local copy of the Bitrix push server 1.0 (its server.js directory, or a checkout with
   * opt/push-server): run it beside nchan where a scenario compares. Never downloaded or installed.
   */
  'bitrix-dir': { type: 'string', default: '' },
  /** Skip the PNG charts of delivery rate and latency over time (the JSON keeps the points). */
  'no-charts': { type: 'boolean', default: false },
  /** Directory for V8 CPU profiles of the server processes ('' = none); see docs/benchmarks.md. */
  profile: { type: 'string', default: '' },
  /** Extra environment for this server's processes, `KEY=VALUE[,KEY=VALUE...]` (e.g. PUSH_COALESCE_MAX_MS=0). */
  'server-env': { type: 'string', default: '' },
  /** Start every redis-server (ours and nchan's) at nice -N; 0 = default priority (see processes.ts). */
  'redis-boost': { type: 'string', default: '10' },
};

export interface Parsed {
  num(name: string): number;
  /** A comma-separated list of positive numbers (`--connections 32,64,128`). */
  nums(name: string): number[];
  str(name: string): string;
  flag(name: string): boolean;
}

/** Parses the scenario's options over the common ones; unknown options and non-numbers are errors. */
export function parse(argv: string[], own: Record<string, string | boolean>): Parsed {
  const spec: Spec = { ...COMMON };
  for (const [k, v] of Object.entries(own)) spec[k] = typeof v === 'boolean' ? { type: 'boolean', default: v } : { type: 'string', default: v };
  const { values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
  const parsed: Parsed = {
    num(name) {
      const v = Number(values[name]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number (got ${String(values[name])})`);
      return v;
    },
    nums(name) {
      const list = String(values[name]).split(',').map(Number);
      if (list.some((v) => !Number.isFinite(v) || v <= 0)) throw new Error(`--${name} takes positive numbers separated by commas (got ${String(values[name])})`);
      return list;
    },
    str: (name) => String(values[name]),
    flag: (name) => values[name] === true,
  };
  // Every scenario parses its options first thing, before it starts any Redis.
  const boost = parsed.num('redis-boost');
  if (!Number.isInteger(boost) || boost > 19) throw new Error(`--redis-boost must be a whole number 0-19 (got ${boost})`);
  setRedisBoost(boost);
  return parsed;
}

/**
 * Options of the push target that come from the command line: `--profile <dir>` writes
 * .cpuprofile files there (of the server and of the load generator's own processes),
 * `--server-env K=V,...` adds environment to the server processes.
 */
export function pushExtras(o: Parsed): { profileDir?: string; env?: Record<string, string> } {
  const out: { profileDir?: string; env?: Record<string, string> } = {};
  const dir = o.str('profile');
  if (dir !== '') {
    profileChildren(dir);
    out.profileDir = dir;
  }
  const env = o.str('server-env');
  if (env !== '') {
    out.env = {};
    for (const pair of env.split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0 || !/^PUSH_[A-Z0-9_]+$/.test(pair.slice(0, eq))) throw new Error(`--server-env takes PUSH_NAME=value pairs separated by commas (got "${pair}")`);
      out.env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return out;
}

/** Integer with thousands separators, for summaries. */
export const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
