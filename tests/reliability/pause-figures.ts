/**
 * The figure table of docs/reliability.md, "Redis paused": every pause length under a 500 msg/s
 * stream and under 100-message batches, once with the default PUSH_PUBLISH_TIMEOUT_MS (the
 * publisher waits for the outcome) and once with a 2 s bound (answers "unknown", senders retry with
 * the same identity). Run with `npm run figures:redis-pause` (about 7 minutes); prints a Markdown
 * table and exits non-zero if any row shows a lost, duplicated or untrue outcome.
 * Usage: node --import tsx tests/reliability/pause-figures.ts [pause seconds ...]
 */
import { startFrontStack } from '../helpers/front-stack.js';
import { BATCHES, STREAM, runPause, type PauseFigures } from './pause-harness.js';

const pauses = (process.argv.slice(2).length > 0 ? process.argv.slice(2).map(Number) : [2.5, 5, 8, 15]).map((s) => Math.round(s * 1000));
const bounds: Array<{ label: string; env: Record<string, string> }> = [
  { label: '20 s (default)', env: {} },
  { label: '2 s', env: { PUSH_PUBLISH_TIMEOUT_MS: '2000' } },
];

const rows: string[] = [];
let bad = 0;
for (const bound of bounds) {
  const stack = await startFrontStack({ publishers: 2, listeners: 1, env: { PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32', ...bound.env } });
  const r = stack.redis.client();
  try {
    for (const pauseMs of pauses) {
      for (const make of [STREAM, BATCHES]) {
        const f: PauseFigures = await runPause(stack.front, r, make(pauseMs));
        const answers = Object.entries(f.answers)
          .map(([k, v]) => `${k === '0' ? 'none' : k}: ${v}`)
          .join(', ');
        const ok = f.lost === 0 && f.duplicated === 0 && f.wrongId === 0 && f.untrue === 0 && f.failed === 0 && f.unacknowledged === 0 && f.acknowledged === f.messages;
        if (!ok) bad++;
        rows.push(`| ${pauseMs / 1000} s | ${f.mode === 'stream' ? 'single messages' : '100-message batches'} | ${bound.label} | ${f.messages} (${f.sentRate}/s) | ${answers} | ${f.retried} | ${f.acknowledged} | ${f.lost} | ${f.duplicated} | ${f.untrue + f.wrongId} | ${(f.slowestAnswerMs / 1000).toFixed(1)} s |`);
        process.stderr.write(`${JSON.stringify({ bound: bound.label, ...f })}\n`);
      }
    }
  } finally {
    await r.client('UNPAUSE').catch(() => undefined);
    await stack.stop();
  }
}
process.stdout.write(
  [
    '| pause | publishing | PUSH_PUBLISH_TIMEOUT_MS | messages (sent rate) | answers (all attempts) | requests retried | acknowledged | lost | delivered twice | untrue answers | slowest answer |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n'),
);
process.exit(bad === 0 ? 0 : 1);
