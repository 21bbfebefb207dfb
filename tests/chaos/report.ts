import type { ScenarioResult } from './run-scenario.js';

const ms = (v: number | null): string => (v === null ? 'never' : String(v));

/** One row per scenario: what was published, what went wrong, how fast it was noticed and repaired. */
export function resultTable(results: readonly ScenarioResult[]): string {
  const head = ['scenario', 'result', 'acked', 'unacked (unknown)', 'lost msg/dlv', 'dup msg/dlv', 'order', 'wrong ans.', 'detect ms', 'recover ms', 'unready ms', 'healed ms', 'p50/p99 ms', 'answers'];
  const rows = results.map((r) => {
    const v = r.verdict;
    const answers = Object.entries(r.answers).map(([s, n]) => `${s}:${n}`).join(' ');
    return [r.name, r.ok ? 'pass' : 'FAIL', v.acked, `${v.unacked} (${v.unknownOutcome})`, `${v.lostMessages}/${v.lost}`, `${v.duplicatedMessages}/${v.duplicated}`, v.reordered, v.unackedDelivered, ms(v.detectMs), ms(v.recoverMs), r.serverDetectMs === null ? '-' : String(r.serverDetectMs), r.healedMs, `${v.latencyP50Ms}/${v.latencyP99Ms}`, answers].map(String);
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The failures and notes of each scenario, indented under its name. */
export function resultDetails(results: readonly ScenarioResult[]): string {
  return results
    .map((r) => {
      const p99 = r.verdict.clients.map((c) => `${c.name} ${c.latencyP99Ms}`).join(', ');
      return [`${r.name} (${r.title}; ${r.clients} clients, ${Math.round(r.durationMs / 1000)} s)`, ...r.notes.map((n) => `  note: ${n}`), `  p99 ms per client: ${p99}`, ...r.failures.map((f) => `  FAILED: ${f}`)].join('\n');
    })
    .join('\n');
}
