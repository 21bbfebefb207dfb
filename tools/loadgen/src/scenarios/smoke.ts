import type { StepResult } from '../fanout.js';
import { parse, type Scenario, type ScenarioReport } from '../options.js';
import { broadcastScenario } from './broadcast.js';
import { idleScenario } from './idle.js';
import { ingestScenario } from './ingest.js';
import { longpollScenario } from './longpoll.js';
import { privateScenario } from './private.js';
import { stormScenario } from './storm.js';

/**
 * `smoke` (npm run bench:smoke): every scenario at small sizes, under two minutes, for CI. It fails
 * on any loss, duplicate, reordering or error, and on an efficiency regression measured by ratio
 * against nchan in the same run (server CPU per delivery at the same offered rate), never by
 * absolute time, so a slower or busier machine does not fail it. At these sizes neither system is
 * near its limit and the ratio sits around 1 (the full runs in docs/benchmarks.md are the
 * comparison); the default floor of 0.5 is a tripwire for a change that doubles our cost per
 * delivery. The targets printed by each part apply to full-size runs, not to these sizes.
 */
export const smokeScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { 'min-efficiency-ratio': '0.5' });
  const common = ['--listeners', String(o.num('listeners')), '--workers', String(o.num('workers')), ...(o.flag('no-nchan') ? ['--no-nchan'] : [])];
  const parts: Array<[string, Scenario, string[]]> = [
    ['private', privateScenario, ['--channels', '1000', '--start-rate', '800', '--factor', '1.5', '--max-steps', '1', '--refine', '0', '--seconds', '3', '--lanes', '16', '--nchan-lanes', '16']],
    ['broadcast', broadcastScenario, ['--subscribers', '1000', '--start-rate', '50', '--factor', '2', '--max-steps', '2', '--refine', '0', '--seconds', '2']],
    ['idle', idleScenario, ['--connections', '2000', '--settle-seconds', '2']],
    ['longpoll', longpollScenario, ['--clients', '500', '--start-rate', '200', '--max-steps', '1', '--refine', '0', '--seconds', '2']],
    ['storm', stormScenario, ['--clients', '1000', '--channels', '100', '--rate', '200', '--restart-at', '2', '--seconds', '8', '--jitter', '500']],
    ['ingest', ingestScenario, ['--seconds', '2', '--algo', 'hmac', '--connections', '32']],
  ];
  const reports: ScenarioReport[] = [];
  const failures: string[] = [];
  const summary: string[] = [];
  for (const [name, run, args] of parts) {
    log(`--- ${name}`);
    const r = await run([...common, ...args], log);
    reports.push(r);
    for (const f of r.failures) failures.push(`${name}: ${f}`);
    summary.push(...r.summary.map((line) => `[smoke sizes] ${line}`));
  }
  // Efficiency by ratio: at the same offered rate, nchan's server CPU per delivery over ours.
  const minRatio = o.num('min-efficiency-ratio');
  for (const r of reports.filter((x) => x.scenario === 'private' || x.scenario === 'broadcast')) {
    const res = r.results as { push: { ramp: { steps: StepResult[] } }; nchan: { ramp: { steps: StepResult[] } } | null };
    if (res.nchan === null) continue;
    const ours = res.push.ramp.steps[0]?.serverCpuPer100k ?? 0;
    const theirs = res.nchan.ramp.steps[0]?.serverCpuPer100k ?? 0;
    const ratio = ours === 0 ? 0 : Math.round((theirs / ours) * 100) / 100;
    summary.push(`${r.scenario} efficiency (server CPU per delivery, nchan / push, first step): ${ratio}`);
    if (ratio < minRatio) failures.push(`${r.scenario}: efficiency ratio to nchan ${ratio} below ${minRatio} (push ${ours}, nchan ${theirs} CPU-seconds per 100k deliveries)`);
  }
  const charts = reports.flatMap((r) => (r.charts ?? []).map((c) => ({ ...c, name: `${r.scenario}-${c.name}` })));
  return { scenario: 'smoke', ok: failures.length === 0, failures, summary, results: { reports }, charts };
};
