import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { timelinePng } from './chart.js';
import type { Scenario } from './options.js';
import { ROOT } from './processes.js';
import { broadcastScenario } from './scenarios/broadcast.js';
import { clusterScenario } from './scenarios/cluster.js';
import { floorsScenario } from './scenarios/floors.js';
import { idleScenario } from './scenarios/idle.js';
import { ingestScenario } from './scenarios/ingest.js';
import { longpollScenario } from './scenarios/longpoll.js';
import { privateScenario } from './scenarios/private.js';
import { smokeScenario } from './scenarios/smoke.js';
import { stormScenario } from './scenarios/storm.js';
import { machine } from './session.js';

/**
 * `npm run bench -- <scenario> [options]`: starts the system under test (and nchan beside it where
 * the scenario compares), drives it, prints a summary, writes the full JSON report under
 * bench-results/ and exits 1 when the scenario's self-check failed (anything lost, duplicated,
 * reordered, or a request refused).
 */
const scenarios: Record<string, Scenario> = {
  idle: idleScenario,
  private: privateScenario,
  broadcast: broadcastScenario,
  ingest: ingestScenario,
  longpoll: longpollScenario,
  storm: stormScenario,
  smoke: smokeScenario,
  cluster: clusterScenario,
  floors: floorsScenario,
};

const [name, ...args] = process.argv.slice(2);
const scenario = name === undefined ? undefined : scenarios[name];
if (scenario === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(scenarios).join('|')}> [options]\n(docs/benchmarks.md describes each scenario and its options)\n`);
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const started = new Date();
const env = machine();
log(`bench ${name}: ${env['cpu']} x${env['cores']}, node ${env['node']}, redis ${env['redis']}, nginx ${env['nginx']}, load ${(env['loadAverageAtStart'] as number[]).join(' ')}, speed index ${env['sha256PerSecond']} sha256/s`);
try {
  const report = await scenario(args, log);
  const out = { ...report, args, started: started.toISOString(), finished: new Date().toISOString(), machine: env };
  const dir = join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  const charts = args.includes('--no-charts') ? [] : (report.charts ?? []);
  const pngs = charts.map((c) => {
    const png = file.replace(/\.json$/, `-${c.name}.png`);
    writeFileSync(png, timelinePng(c.title, c.points));
    return png;
  });
  process.stdout.write(`\n${report.summary.join('\n')}\n`);
  if (!report.ok) process.stdout.write(`\nFAILED:\n${report.failures.map((f) => `  - ${f}`).join('\n')}\n`);
  process.stdout.write(`\nfull report: ${file}\n${pngs.map((p) => `chart: ${p}\n`).join('')}`);
  process.exit(report.ok ? 0 : 1);
} catch (err) {
  log(`bench ${name} failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
