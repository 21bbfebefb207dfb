import { readFileSync } from 'node:fs';
import { run } from './cli.js';

/** `pushctl`: see `pushctl help`. Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 unreachable or I/O, 4 unexpected. */
const code = await run(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  readStdin: () => readFileSync(0),
  env: process.env,
});
process.exitCode = code;
