import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';
import { ChaosStack } from './chaos-stack.js';
import { resultDetails, resultTable } from './report.js';
import { runScenario, type ScenarioResult, type Timing } from './run-scenario.js';
import { SCENARIOS } from './scenarios.js';
import { CHAOS_STACK, FULL_TIMING } from './settings.js';

/**
 * `npm run chaos [scenario ...]`: brings up the `npm start` stack on free loopback ports, runs every
 * fault scenario (or the named ones) against it one after another, prints a table, writes the
 * whole result as JSON under chaos-results/ and exits 1 when any scenario lost, duplicated or
 * reordered a message, answered wrongly, or missed its bound. Each scenario ends by itself.
 */
const names = process.argv.slice(2);
const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(' ')}\n`);
  process.exit(2);
}
const chosen = names.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => names.includes(s.name));
const timing: Timing = FULL_TIMING;
const log = (line: string): void => void process.stderr.write(`chaos: ${line}\n`);
const started = new Date();
log(`${chosen.length} scenarios; ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; starting the stack`);
const stack = await ChaosStack.start(CHAOS_STACK);
const results: ScenarioResult[] = [];
try {
  for (const sc of chosen) {
    log(`${sc.name}: ${sc.title}`);
    results.push(await runScenario(stack, sc, timing, log));
    await stack.ensureUp();
  }
} finally {
  await stack.stop();
}
const dir = join(ROOT, 'chaos-results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `chaos-${started.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ started: started.toISOString(), finished: new Date().toISOString(), stack: CHAOS_STACK, timing, cores: cpus().length, results }, null, 2)}\n`);
process.stdout.write(`\n${resultTable(results)}\n\n${resultDetails(results)}\n\nfull report: ${file}\n`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
