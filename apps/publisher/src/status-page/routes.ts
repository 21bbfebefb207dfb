import type { StatsRegistry } from '@push/backend';
import { Exchange, type TemplatedApp } from '@push/runtime';
import { STATUS_PAGE_HTML } from './page.js';
import { summarize } from './summary.js';

export interface StatusPageDeps {
  readonly stats: StatsRegistry;
  /** Resolves when Redis answers. */
  readonly ping: () => Promise<void>;
  /** Which backend the process runs on: the page must not claim a Redis the process does not have. */
  readonly backend: 'redis' | 'memory';
}

const NO_CACHE: readonly [string, string] = ['Cache-Control', 'no-store'];

/** `GET /status` (the page) and `GET /status/data` (its JSON, the same cluster view as /server-stat/ plus Redis health). */
export function serveStatusPage(app: TemplatedApp, deps: StatusPageDeps): void {
  const page = (res: Parameters<Parameters<TemplatedApp['get']>[1]>[0]): void =>
    void new Exchange(res).send(200, STATUS_PAGE_HTML, [['Content-Type', 'text/html; charset=utf-8'], NO_CACHE]);
  app.get('/status', page);
  app.get('/status/', page);
  app.get('/status/data', (res) => {
    const ex = new Exchange(res);
    const started = performance.now();
    const redis = deps.ping().then(
      () => ({ up: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 }),
      () => ({ up: false, latencyMs: null }),
    );
    Promise.all([redis, deps.stats.list().catch(() => [])]).then(([r, list]) => {
      ex.send(200, JSON.stringify(summarize(list as Record<string, unknown>[], r, Date.now(), deps.backend)), [['Content-Type', 'application/json'], NO_CACHE]);
    });
  });
}
