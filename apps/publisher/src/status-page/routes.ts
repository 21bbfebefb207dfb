import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { StatsRegistry } from '@push/backend';
import { Exchange, parseQuery, type AdminGate, type Logger, type TemplatedApp } from '@push/runtime';
import { faviconIco } from './favicon.js';
import { StatusHistory } from './history.js';
import { STATUS_PAGE_HTML } from './page.js';
import { summarize, type ClusterSummary } from './summary.js';

export interface StatusPageDeps {
  readonly stats: StatsRegistry;
  /** Resolves when Redis answers. */
  readonly ping: () => Promise<void>;
  /** Which backend the process runs on: the page must not claim a Redis the process does not have. */
  readonly backend: 'redis' | 'memory';
  readonly log: Logger;
}

const NO_CACHE: readonly [string, string] = ['Cache-Control', 'no-store'];
const CACHE_DAY: readonly [string, string] = ['Cache-Control', 'public, max-age=86400'];
/** Ten minutes of charts at one point a second. */
const HISTORY_POINTS = 600;
const SAMPLE_MS = 1000;

// The chart library (uPlot) is served by the process itself from its npm package: the page works
// on an operations network without outside access.
const require = createRequire(import.meta.url);
const UPLOT_JS = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'));
const UPLOT_CSS = readFileSync(require.resolve('uplot/dist/uPlot.min.css'));
const FAVICON = faviconIco();

/**
 * `GET /status` (the page), `GET /status/data` (its JSON: the cluster view of /server-stat/ plus
 * Redis health and the chart series newer than `?since=<ms>`), the page's chart library, and
 * `/favicon.ico`. The page and its data are behind the admin gate; the library and the icon hold
 * nothing about the installation and stay open. A one-second sampler keeps the chart series;
 * stop() ends it.
 */
export function serveStatusPage(app: TemplatedApp, deps: StatusPageDeps, gate: AdminGate): { stop(): void } {
  const history = new StatusHistory(HISTORY_POINTS);
  const current = async (): Promise<ClusterSummary> => {
    const started = performance.now();
    const redis = deps.ping().then(
      () => ({ up: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 }),
      () => ({ up: false, latencyMs: null }),
    );
    const [r, list] = await Promise.all([redis, deps.stats.list().catch(() => [])]);
    return summarize(list as Record<string, unknown>[], r, Date.now(), deps.backend);
  };
  let sampling = false;
  const sampler = setInterval(() => {
    if (sampling) return;
    sampling = true;
    current()
      .then((s) => history.push({ t: s.generatedAt, publishRate: s.totals.publishRate, deliveryRate: s.totals.deliveryRate, websockets: s.totals.websockets, pollings: s.totals.pollings, latencyP50: s.totals.latencyP50, latencyP99: s.totals.latencyP99 }))
      .catch((err: Error) => deps.log.warn({ err: { message: err.message } }, 'status sample failed'))
      .finally(() => (sampling = false));
  }, SAMPLE_MS);
  sampler.unref();

  const page = (res: Parameters<Parameters<TemplatedApp['get']>[1]>[0]): void =>
    void new Exchange(res).send(200, STATUS_PAGE_HTML, [['Content-Type', 'text/html; charset=utf-8'], NO_CACHE]);
  app.get('/status', gate.guard(page));
  app.get('/status/', gate.guard(page));
  app.get(
    '/status/data',
    gate.guard((res, req) => {
    const ex = new Exchange(res);
    const since = Number(parseQuery(req.getQuery() ?? '').get('since') ?? '0');
    void current().then((s) => {
      ex.send(200, JSON.stringify({ ...s, history: history.since(Number.isFinite(since) ? since : 0) }), [['Content-Type', 'application/json'], NO_CACHE]);
    });
    }),
  );
  app.get('/status/assets/uplot.min.js', (res) => void new Exchange(res).send(200, UPLOT_JS, [['Content-Type', 'text/javascript; charset=utf-8'], CACHE_DAY]));
  app.get('/status/assets/uplot.min.css', (res) => void new Exchange(res).send(200, UPLOT_CSS, [['Content-Type', 'text/css; charset=utf-8'], CACHE_DAY]));
  app.get('/favicon.ico', (res) => void new Exchange(res).send(200, FAVICON, [['Content-Type', 'image/x-icon'], CACHE_DAY]));
  return { stop: () => clearInterval(sampler) };
}
