import { Errors, PushError, type ErrorSpec } from '@push/protocol';
import { CORS_ANY, Exchange } from './http.js';
import type { TemplatedApp, Uws, us_listen_socket } from './uws.js';

export interface HealthChecks {
  /** True once the process is draining: readiness answers 503 so balancers stop sending work. */
  readonly isDraining: () => boolean;
  /** Resolves when the backend (Redis) answers. */
  readonly ping: () => Promise<void>;
  /**
   * Another reason to be unready, checked once the ping answered (so Redis down still reads 4109):
   * a listener whose Redis subscription is down, whose new clients would wait for live messages
   * that cannot arrive. Null = none.
   */
  readonly unready?: () => ErrorSpec | null;
}

/**
 * Routes every process has: `/healthz` (alive), `/readyz` (backend reachable and not draining),
 * and the catch-all 404. Register them after the app's own routes.
 */
export function registerCommonRoutes(app: TemplatedApp, checks: HealthChecks): void {
  app.get('/healthz', (res) => void new Exchange(res).send(200, 'ok\n', CORS_ANY));
  app.get('/readyz', (res) => {
    const ex = new Exchange(res);
    if (checks.isDraining()) {
      ex.sendError(Errors.SHUTTING_DOWN);
      return;
    }
    checks.ping().then(
      () => {
        // Redis answers; the other reason, if any, is checked once its answer is in.
        const why = checks.unready?.() ?? null;
        if (why === null) ex.send(200, 'ready\n', CORS_ANY);
        else ex.sendError(why);
      },
      // The reason names what did not answer (which connection, within which bound).
      (err: unknown) => ex.sendError(new PushError(Errors.STORE_UNAVAILABLE, err instanceof Error ? err.message : undefined)),
    );
  });
  app.any('/*', (res) => void new Exchange(res).sendError(Errors.NOT_FOUND));
}

/** Listens and returns the socket and the actual port (port 0 picks a free one). */
export async function listen(uws: Uws, app: TemplatedApp, host: string, port: number): Promise<{ socket: us_listen_socket; port: number }> {
  const socket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${host}:${port}`))));
  });
  return { socket, port: uws.us_socket_local_port(socket as never) };
}
