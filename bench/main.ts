/**
 * `npm run bench -- <scenario> [options]`. Scenarios live one per file beside this one; each starts
 * what it needs on free ports (real redis-server, real built server processes), drives load from a
 * separate process, prints its figures and stops everything. Keep runs short: the machines are shared.
 */
import { runIngest } from './ingest.js';

const scenarios: Record<string, (args: string[]) => Promise<void>> = {
  ingest: runIngest,
};

const [name, ...args] = process.argv.slice(2);
const scenario = name === undefined ? undefined : scenarios[name];
if (scenario === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(scenarios).join('|')}> [options]\n`);
  process.exit(2);
}
await scenario(args);
