import { nanoid } from 'nanoid';
import { Errors, OriginPolicy, type NewMessage, type PublishLimits } from '@push/protocol';
import { instrumentStore, type Backend } from '@push/backend';
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
import { AdminGate, CORS_ANY, Exchange, RateMeter, bitrixStatFields, clientLimiter, every, listen, registerCommonRoutes, registerRedisStalls, serveMetrics, startRedisProbe, type Config, type HttpResponse, type Logger, type TemplatedApp, type Uws } from '@push/runtime';

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
  const publish = publishHandler(portalPublishRoute({ guard, limits, v4: v4Deps, maxSkewS: config.publishMaxSkewS }), host);
  const rest = publishHandler(restRoute({ ...v4Deps, secret: channelSecret, maxChannels: config.maxChannels, limiter: clientLimiter(config, metrics.registry), maxSkewS: config.publishMaxSkewS, origins: new OriginPolicy(config.allowedOrigins) }), host);

  // Protocol 5: the portal publishes and asks for last-seen times in JSON-RPC (json-rpc-api.ts).
  const jsonRpcApi = publishHandler(jsonRpcApiRoute({ presence: backend.presence, secret: channelSecret, limits }), host);

  const app: TemplatedApp = uws.App();
  app.post(MINT_PATH, mintHandler(lookups));
  app.any(MINT_PATH, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  for (const path of PUBLISH_PATHS) {
    app.post(path, publish);
    app.get(path, onlineStatusHandler(lookups));
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
  const admin = new AdminGate(config);
  for (const path of SERVER_STAT_PATHS) app.get(path, admin.guard(serverStat));
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
