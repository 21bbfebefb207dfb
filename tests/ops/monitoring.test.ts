import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, publish, signed } from '../helpers/clients.js';
import { parsePrometheus, run } from './stack-helpers.js';

const RULES = join(ROOT, 'monitoring/prometheus/push-server-rules.yml');
const DASHBOARD = join(ROOT, 'monitoring/grafana/push-server-dashboard.json');

interface Dashboard {
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
}
const dashboardExprs = (): Array<{ panel: string; expr: string }> =>
  (JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard).panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** The expressions of the alert rules, read from the YAML by the one key they sit under. */
function ruleExprs(): string[] {
  const out: string[] = [];
  const lines = readFileSync(RULES, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i] as string);
    if (m === null) continue;
    if (m[2] !== '|') {
      out.push(m[2] as string);
      continue;
    }
    const block: string[] = [];
    const indent = (m[1] as string).length;
    while (i + 1 < lines.length && ((lines[i + 1] as string).trim() === '' || /^\s*/.exec(lines[i + 1] as string)![0].length > indent)) block.push(lines[++i] as string);
    out.push(block.join('\n').trim());
  }
  return out;
}

const KEYWORDS = new Set(['by', 'without', 'and', 'or', 'unless', 'offset', 'bool', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * Metric names a PromQL expression reads: identifiers left after removing strings, label
 * matchers, range and offset durations, grouping clauses and function calls.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\d+[smhdwy]/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice((m.index ?? 0) + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

describe('monitoring kit: PromQL name extraction', () => {
  const cases: Array<[string, string[]]> = [
    ['push_redis_up == 0', ['push_redis_up']],
    ['sum by (instance) (rate(push_publish_requests_total{result="unavailable"}[5m])) > 0', ['push_publish_requests_total']],
    ['histogram_quantile(0.99, sum by (le, command) (rate(push_redis_command_duration_seconds_bucket[5m]))) > 0.05', ['push_redis_command_duration_seconds_bucket']],
    ['sum(push_connections) < 0.5 * sum(push_connections offset 10m) and sum(x_y offset 1h) > 100', ['push_connections', 'x_y']],
    ['process_open_fds{job="$job"} / process_max_fds{job="a{b}"}', ['process_open_fds', 'process_max_fds']],
  ];
  for (const [expr, want] of cases) it(expr, () => assert.deepEqual(metricNames(expr), want));
});

describe('monitoring kit: rules and dashboard', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let lis: AppProcess;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'push-monitoring-'));
    redis = await startRedis();
    [pub, lis] = await Promise.all([startApp('publisher', { REDIS_URL: redis.url }), startApp('listener', { REDIS_URL: redis.url })]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('promtool check rules accepts the alert rules', async () => {
    const r = await run('promtool', ['check', 'rules', RULES], {});
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: 1[0-9] rules found/);
  });

  it('promtool test rules: the alerts fire on the failures they describe and stay quiet otherwise', async () => {
    const r = await run('promtool', ['test', 'rules', join(ROOT, 'monitoring/prometheus/push-server-rules.test.yml')], {});
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  });

  it('every dashboard query is valid PromQL (checked by promtool as recording rules)', async () => {
    const exprs = dashboardExprs();
    assert.ok(exprs.length >= 15, `${exprs.length} queries`);
    const file = join(dir, 'dashboard-queries.yml');
    // JSON strings are valid YAML scalars; the dashboard's $job variable becomes its value.
    const rules = exprs.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e.expr.replaceAll('$job', 'push-server'))}`).join('\n');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
    const r = await run('promtool', ['check', 'rules', file], {});
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`SUCCESS: ${exprs.length} rules found`), r.stdout);
  });

  it('every metric the rules and the dashboard read is exported by a publisher or a listener', async () => {
    // Some traffic, so labelled series (by result, by command, by transport) exist.
    const ch = channelId();
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    assert.equal((await publish(pub.url, [ch], { module_id: 'm', command: 'c' })).status, 200);
    await ws.waitFor(1);
    ws.close();
    const exported = new Set<string>();
    for (const app of [pub, lis]) {
      for (const [name, family] of parsePrometheus(await (await fetch(`${app.url}/metrics`)).text())) {
        exported.add(name);
        for (const s of family.samples) exported.add(s.name);
        if (family.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix);
      }
    }
    const used = [...ruleExprs().map((expr) => ({ where: 'rules', expr })), ...dashboardExprs().map((e) => ({ where: `dashboard "${e.panel}"`, expr: e.expr }))];
    assert.ok(used.length >= 30, `${used.length} expressions`);
    const seen = new Set<string>();
    for (const { where, expr } of used) {
      for (const name of metricNames(expr)) {
        seen.add(name);
        // `up` is recorded by Prometheus itself for every scrape target.
        if (name === 'up') continue;
        assert.ok(exported.has(name), `${where}: ${name} is not exported by any process (${expr})`);
      }
    }
    // The kit covers what the issue asks to watch.
    for (const name of ['push_messages_published_total', 'push_messages_delivered_total', 'push_connections', 'push_pubsub_lag_seconds_bucket', 'push_redis_up']) assert.ok(seen.has(name), name);
  });
});
