import { nanoid } from 'nanoid';
import { Errors, OriginPolicy, type NewMessage, type PublishLimits } from '@push/protocol';
import { ClientDirectory, instrumentStore, type Backend } from '@push/backend';
import { PORTAL_SIGNED } from './auth/publish-guard.js';
import { portalLimiter, sharedOnlineStatusHandler, sharedPortalRoute, sharedServerStatHandler, type PortalScope } from './routes/shared-portal.js';
import { REGISTER_PATHS, SYSTEMCTL_PATHS, listClientsHandler, registerHandler, systemctlHandler } from './routes/client-admin.js';
import { PublishGuard } from './auth/publish-guard.js';
import { VerifyPlacement } from './auth/verify-placement.js';
import { createPublisherMetrics, type PublisherMetrics } from './metrics.js';
import { serveStatusPage } from './status-page/routes.js';
import type { V4RouteDeps } from './binary-publish.js';
import { REST_PATHS, restRoute } from './rest.js';
import { JSON_RPC_API_PATHS, jsonRpcApiRoute } from './json-rpc-api.js';
import { answerError, publishHandler, type PipelineHost } from './routes/publish-pipeline.js';
import { PUBLISH_PATHS, portalPublishRoute } from './routes/portal-publish.js';
import { MINT_PATH, mintHandler, onlineStatusHandler } from './routes/lookups.js';
import { AdminGate, CORS_ANY, Exchange, parseQuery, RateMeter, bitrixStatFields, clientLimiter, every, listen, registerCommonRoutes, registerRedisStalls, serveMetrics, startRedisProbe, type Config, type HttpResponse, type Logger, type TemplatedApp, type Uws } from '@push/runtime';

export { MINT_PATH, PUBLISH_PATHS };
const TEXT = ['Content-Type', 'text/plain; charset=utf-8'] as const;
/** Browsers may preflight a client publish; the body is raw protobuf, and a retry carries its request id. */
const REST_PREFLIGHT = [...CORS_ANY, ['Access-Control-Allow-Methods', 'POST, OPTIONS'], ['Access-Control-Allow-Headers', 'Content-Type, X-Push-Request-Id'], TEXT] as const;
/** The Bitrix stats route (`/server-stat/`), also under `/bitrix/` like push server 2.0's nginx serves it. */
export const SERVER_STAT_PATHS = ['/server-stat', '/server-stat/*', '/bitrix/server-stat', '/bitrix/server-stat/*'];

export interface PublisherHandle {
  readonly port: number;
  readonly processUniqueId: string;
  stop(): Promise<void>;
}

interface Counters {
  requests: number;
  published: number;
  rejected: number;
  unavailable: number;
  byType: Map<string, number>;
}

/**
 * The publisher: route modules composed on one uWS app. Every publish path (text, batch, protocol-4
 * binary, `/bitrix/rest/`) runs through the one pipeline of routes/publish-pipeline.ts.
 */
export async function startPublisher(uws: Uws, config: Config, backend: Backend, log: Logger, metrics: PublisherMetrics = createPublisherMetrics()): Promise<PublisherHandle> {
  // Every Redis round trip of this process is timed for /metrics.
  const store = instrumentStore(backend.store, metrics);
  const processUniqueId = nanoid(8);
  const limits: PublishLimits = { maxChannels: config.maxChannels, maxBatchMessages: config.maxBatchMessages, ttl: config.ttl, maxFanoutBytes: config.maxFanoutBytes };
  const counters: Counters = { requests: 0, published: 0, rejected: 0, unavailable: 0, byType: new Map() };
  // Ed25519 checks run inline while the event loop has time to spare, in the thread pool when busy.
  const placement = new VerifyPlacement();
  const guard = new PublishGuard(config, backend.replay, placement.inline);
  let draining = false;
  let inFlight = 0;
  const host: PipelineHost = {
    store,
    metrics,
    maxBodyBytes: config.maxBodyBytes,
    log: log.child({ component: 'publish' }),
    isDraining: () => draining,
    enter: () => void inFlight++,
    leave: () => void inFlight--,
    counted(kind) {
      if (kind === 'request') counters.requests++;
      else if (kind === 'rejected') counters.rejected++;
      else counters.unavailable++;
    },
    published(messages: readonly NewMessage[]) {
      // push_messages_published_total is counted by the instrumented store, for every publish path.
      counters.published += messages.length;
      for (const m of messages) counters.byType.set(m.type, (counters.byType.get(m.type) ?? 0) + 1);
    },
  };
  const v4Deps: V4RouteDeps = {
    store,
    presence: backend.presence,
    stats: backend.stats,
    ttl: config.ttl,
    limits: { maxMessages: config.maxRequestMessages, maxChannels: config.maxChannels, maxFanoutBytes: config.maxFanoutBytes },
  };
  const channelSecret = { key: config.signatureKey, algorithm: config.signatureAlgorithm };
  const lookups = { guard, backend, host, maxChannels: config.maxChannels, channelSecret, channelWriteS: config.channelWriteS, channelReadS: config.channelReadS };
  const restLimiter = clientLimiter(config, metrics.registry);
  const origins = new OriginPolicy(config.allowedOrigins);
  const shared = config.mode === 'shared';
  const directory = new ClientDirectory(backend.clients);
  // One PUSH_CLIENT_PUBLISH_RATE budget per portal in this process, whatever path it publishes on.
  const portalBudget = portalLimiter(config.clientPublishRate);
  const admin = new AdminGate(config);
  let publish: ReturnType<typeof publishHandler>;
  let rest: ReturnType<typeof publishHandler>;
  let onlineStatus: ReturnType<typeof onlineStatusHandler>;
  if (!shared) {
    publish = publishHandler(portalPublishRoute({ guard, limits, v4: v4Deps, maxSkewS: config.publishMaxSkewS }), host);
    rest = publishHandler(restRoute({ ...v4Deps, secret: channelSecret, maxChannels: config.maxChannels, limiter: restLimiter, maxSkewS: config.publishMaxSkewS, origins }), host);
    onlineStatus = onlineStatusHandler(lookups);
  } else {
    // Shared mode (docs/shared-mode.md): the same routes, built per portal over its own view of
    // the backend, behind its client id and key.
    const v4For = (scope: PortalScope | null) => (scope === null ? v4Deps : { ...v4Deps, ...scope.parts(v4Deps) });
    const sharedDeps = { directory, algorithm: config.signatureAlgorithm, limiter: portalBudget };
    publish = publishHandler(sharedPortalRoute((scope) => portalPublishRoute({ guard: PORTAL_SIGNED, limits, v4: v4For(scope), maxSkewS: config.publishMaxSkewS }), { ...sharedDeps, signed: true }), host);
    rest = publishHandler(sharedPortalRoute((scope) => restRoute({ ...v4For(scope), secret: scope?.secret ?? channelSecret, maxChannels: config.maxChannels, limiter: restLimiter, maxSkewS: config.publishMaxSkewS, origins, ...(scope === null ? {} : { senderScope: scope.clientId }) }), { ...sharedDeps, limiter: null, signed: false }), host);
    onlineStatus = sharedOnlineStatusHandler({ directory, algorithm: config.signatureAlgorithm, base: v4Deps, host, maxChannels: config.maxChannels });
  }

  // Protocol 5: the portal publishes and asks for last-seen times in JSON-RPC (json-rpc-api.ts). In
  // shared mode per portal: the route checks `signature=` with the portal's key itself (4140).
  const jsonRpcApi = shared
    ? publishHandler(sharedPortalRoute((scope) => jsonRpcApiRoute({ presence: scope === null ? backend.presence : scope.parts(v4Deps).presence, secret: scope?.secret ?? channelSecret, limits }), { directory, algorithm: config.signatureAlgorithm, limiter: portalBudget, signed: false }), host)
    : publishHandler(jsonRpcApiRoute({ presence: backend.presence, secret: channelSecret, limits }), host);

  const app: TemplatedApp = uws.App();
  app.post(MINT_PATH, mintHandler(lookups));
  app.any(MINT_PATH, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  for (const path of PUBLISH_PATHS) {
    app.post(path, publish);
    app.get(path, onlineStatus);
    app.any(path, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  }
  for (const path of REST_PATHS) {
    app.post(path, rest);
    app.options(path, (res) => void new Exchange(res).send(200, '', REST_PREFLIGHT));
    app.any(path, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  }
  for (const path of JSON_RPC_API_PATHS) {
    app.post(path, jsonRpcApi);
    app.any(path, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  }
  // Admin and cluster views: trusted networks or PUSH_ADMIN_TOKEN only (docs/security.md).
  const serverStat = (res: HttpResponse): void => {
    const ex = new Exchange(res);
    backend.stats.list().then(
      (list) => ex.send(200, JSON.stringify(list), [...CORS_ANY, TEXT]),
      (err: unknown) => answerError(ex, err, host),
    );
  };
  // Shared-mode registration (push server 2.0's routes), for the operator's trusted networks or
  // admin token only: without the licence-server check, whoever may call it may register portals.
  const clientAdmin = { registry: backend.clients, directory, installationSecret: channelSecret, host, log: log.child({ component: 'clients' }) };
  for (const path of REGISTER_PATHS) {
    app.post(path, shared ? admin.guard(registerHandler(clientAdmin)) : (res) => void new Exchange(res).sendError(Errors.SHARED_MODE_ONLY));
    app.get(path, shared ? admin.guard(listClientsHandler(clientAdmin)) : (res) => void new Exchange(res).sendError(Errors.SHARED_MODE_ONLY));
    app.any(path, (res) => void new Exchange(res).sendError(shared ? Errors.METHOD_NOT_ALLOWED : Errors.SHARED_MODE_ONLY));
  }
  for (const path of SYSTEMCTL_PATHS) {
    app.post(path, shared ? admin.guard(systemctlHandler(clientAdmin)) : (res) => void new Exchange(res).sendError(Errors.SHARED_MODE_ONLY));
    app.any(path, (res) => void new Exchange(res).sendError(shared ? Errors.METHOD_NOT_ALLOWED : Errors.SHARED_MODE_ONLY));
  }
  // Shared mode: a request naming a portal gets that portal's view; the operator's otherwise.
  const operatorStat = admin.guard(serverStat);
  const portalStat = sharedServerStatHandler({ directory, algorithm: config.signatureAlgorithm, base: v4Deps, host });
  for (const path of SERVER_STAT_PATHS) app.get(path, shared ? (res, req) => (parseQuery(req.getQuery() ?? '').has('clientId') ? portalStat(res, req) : operatorStat(res, req)) : operatorStat);
  registerRedisStalls(metrics.registry, () => backend.connectionStalls());
  serveMetrics(app, metrics.registry, admin);
  const statusPage = serveStatusPage(app, { stats: backend.stats, ping: () => store.ping(), backend: backend.kind, log: log.child({ component: 'status-page' }) }, admin);
  registerCommonRoutes(app, { isDraining: () => draining, ping: () => store.ping() });
  const { socket: listenSocket, port } = await listen(uws, app, config.host, config.port);
  const redisProbe = startRedisProbe(metrics, () => store.ping());
  const publishRate = new RateMeter();
  const reporter = every(config.statsIntervalS * 1000, log.child({ component: 'stats' }), 'stats report', () =>
    backend.stats.report({
      pid: process.pid,
      date: Date.now(),
      processUniqueId,
      type: 'publisher',
      port,
      websockets: 0,
      pollings: 0,
      channels: 0,
      messages: { published: counters.published, rejected: counters.rejected, unavailable: counters.unavailable, byType: Object.fromEntries(counters.byType) },
      ...bitrixStatFields(config, backend.kind),
      // Extra fields for the status page; Bitrix readers of /server-stat/ ignore them.
      rates: { published: publishRate.rate(counters.published, Date.now()) },
      draining,
    }),
  );

  return {
    port,
    processUniqueId,
    async stop(): Promise<void> {
      // Stop accepting (readiness 503, new publishes 503 so nginx retries them elsewhere, listen
      // socket closed), let in-flight publishes reach Redis and be acknowledged, then go.
      draining = true;
      metrics.draining.set(1);
      uws.us_listen_socket_close(listenSocket);
      reporter.stop();
      redisProbe.stop();
      statusPage.stop();
      placement.close();
      // Leave a second of the grace period for closing the Redis connections.
      const deadline = Date.now() + Math.max(500, config.shutdownGraceMs - 1000);
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await backend.stats.remove(processUniqueId).catch(() => {});
    },
  };
}
