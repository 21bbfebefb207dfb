import { readFileSync } from 'node:fs';
import { parseRedisUrl, type RedisTarget } from './redis-url.js';
import { SIGNATURE_ALGORITHMS, parseTtlTable, DEFAULT_TTL_TABLE, parseKeyRing, parseNetworks, parseOrigins, type NetworkSpec, type OriginRule, type PublishKeySpec, type SignatureAlgorithm, type TtlPolicy } from '@push/protocol';

/**
 * All settings, parsed once at start from the environment (and optionally a KEY=VALUE file named
 * by PUSH_CONFIG_FILE; the environment wins), validated together so every problem is reported in
 * one go, then frozen. Nothing else in the code base reads process.env.
 * The table in README.md documents each variable; tests keep the two in sync.
 */
export interface Config {
  readonly redisUrl: string;
  /** REDIS_URL parsed: one Redis, a Sentinel group or a Cluster (redis-url.ts). */
  readonly redis: RedisTarget;
  /** 'replicated': a publish is acknowledged only once a replica holds it (WAIT); 'local': once the master does. */
  readonly publishDurability: 'local' | 'replicated';
  /** How long 'replicated' waits for a replica before answering 504 (4170). */
  readonly publishReplicaTimeoutMs: number;
  /** How many replicas must confirm a publish under 'replicated' (WAIT numreplicas). */
  readonly publishReplicas: number;
  readonly keyPrefix: string;
  readonly host: string;
  readonly port: number;
  readonly signatureKey: string;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly maxBodyBytes: number;
  readonly maxChannels: number;
  readonly maxBatchMessages: number;
  /** Message bytes x channels per publish request (see fanoutBytes in @push/protocol). */
  readonly maxFanoutBytes: number;
  /** Messages per protocol-4 RequestBatch (binary publish, client publishing); Bitrix uses 100. */
  readonly maxRequestMessages: number;
  /** Connections per `priv:pub` channel in one listener; the oldest is closed with 4029 beyond it. */
  readonly maxConnPerChannel: number;
  /** Receivers per second a client may publish to, per sender public id and process; 0 = unlimited. */
  readonly clientRate: number;
  /** Token bucket size of that limit: the most receivers a client may reach in one burst. */
  readonly clientBurst: number;
  /**
   * 'personal': one portal, keyed by PUSH_SIGNATURE_KEY (the default). 'shared': many portals, each
   * registered with its own client id and key, isolated from each other (docs/shared-mode.md).
   */
  readonly mode: 'personal' | 'shared';
  /** Shared mode: connections one portal may hold on one listener; 0 = unlimited. */
  readonly clientMaxConnections: number;
  /** Shared mode: messages per second one portal may publish through one publisher (burst: 2 s worth); 0 = unlimited. */
  readonly clientPublishRate: number;
  readonly ttl: TtlPolicy;
  readonly historyLimit: number;
  readonly longPollTimeoutMs: number;
  readonly wsIdleTimeoutS: number;
  readonly wsMaxBackpressureBytes: number;
  readonly onlineTtlS: number;
  readonly statsIntervalS: number;
  readonly unsubscribeDelayMs: number;
  /** Upper bound of a listener's load-adaptive coalescing window, ms; 0 = always flush at once. */
  readonly coalesceMaxMs: number;
  /** A Redis subscriber connection silent this long (no data, no PING answer) is reconnected, ms. */
  readonly pubsubStallMs: number;
  /** Test only: the Node ABI to look the native uWS binding up for ('' = this Node's). */
  readonly testUwsAbi: string;
  readonly shutdownGraceMs: number;
  readonly standalonePublisherPort: number;
  readonly logLevel: string;
  /** Keys that may sign publisher requests (docs/security.md); empty = no signed publishing. */
  readonly publishKeys: readonly PublishKeySpec[];
  /** Sources allowed to publish unsigned (what Bitrix portals send); empty (the default) = none. */
  readonly publishTrustedNetworks: readonly NetworkSpec[];
  /** Accepted difference between a signed request's timestamp and Redis time, in seconds. */
  readonly publishMaxSkewS: number;
  /**
   * How long a publish waits for Redis's answer before it is answered 504 4134 (outcome unknown);
   * below nginx's 30 s proxy_read_timeout for the publisher locations (docs/reliability.md).
   */
  readonly publishTimeoutMs: number;
  /** Peers (e.g. nginx) whose client-address header is believed; empty = use the socket address. */
  readonly trustedProxies: readonly NetworkSpec[];
  /** Lowercase header carrying the client address when the peer is a trusted proxy. */
  readonly realIpHeader: string;
  /** Bearer token that opens the admin pages (/status, /server-stat/, /metrics) from anywhere; '' = none. */
  readonly adminToken: string;
  /** Origins whose pages may open WebSockets, long-poll and publish as clients; empty = any origin. */
  readonly allowedOrigins: readonly OriginRule[];
  /** A channel accepts publishes this long after its first creation. */
  readonly channelWriteS: number;
  /** A channel accepts subscribers this long after its first creation (>= channelWriteS). */
  readonly channelReadS: number;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

interface VarSpec {
  readonly name: string;
  readonly def: string | undefined;
}

/** Every variable with its default; `undefined` = required. Order = README order. */
export const CONFIG_VARS: readonly VarSpec[] = [
  { name: 'REDIS_URL', def: 'redis://127.0.0.1:6379' },
  { name: 'PUSH_PUBLISH_DURABILITY', def: 'local' },
  { name: 'PUSH_PUBLISH_REPLICA_TIMEOUT_MS', def: '1000' },
  { name: 'PUSH_PUBLISH_REPLICAS', def: '1' },
  { name: 'PUSH_KEY_PREFIX', def: 'push:' },
  { name: 'PUSH_HOST', def: '127.0.0.1' },
  { name: 'PUSH_PORT', def: undefined },
  { name: 'PUSH_SIGNATURE_KEY', def: undefined },
  { name: 'PUSH_SIGNATURE_ALGO', def: 'sha1' },
  { name: 'PUSH_MAX_BODY_BYTES', def: '1048576' },
  { name: 'PUSH_MAX_CHANNELS', def: '100' },
  { name: 'PUSH_MAX_BATCH_MESSAGES', def: '1000' },
  { name: 'PUSH_MAX_FANOUT_BYTES', def: '16777216' },
  { name: 'PUSH_MAX_REQUEST_MESSAGES', def: '100' },
  { name: 'PUSH_MAX_CONN_PER_CHANNEL', def: '100' },
  { name: 'PUSH_CLIENT_RATE', def: '50' },
  { name: 'PUSH_CLIENT_BURST', def: '500' },
  { name: 'PUSH_MODE', def: 'personal' },
  { name: 'PUSH_CLIENT_MAX_CONNECTIONS', def: '100000' },
  { name: 'PUSH_CLIENT_PUBLISH_RATE', def: '2000' },
  { name: 'PUSH_TTL_TABLE', def: DEFAULT_TTL_TABLE },
  { name: 'PUSH_HISTORY_LIMIT', def: '100' },
  { name: 'PUSH_LONGPOLL_TIMEOUT_S', def: '40' },
  { name: 'PUSH_WS_IDLE_TIMEOUT_S', def: '120' },
  { name: 'PUSH_WS_MAX_BACKPRESSURE_BYTES', def: '262144' },
  { name: 'PUSH_ONLINE_TTL_S', def: '130' },
  { name: 'PUSH_STATS_INTERVAL_S', def: '1' },
  { name: 'PUSH_UNSUBSCRIBE_DELAY_MS', def: '5000' },
  { name: 'PUSH_COALESCE_MAX_MS', def: '250' },
  { name: 'PUSH_PUBSUB_STALL_MS', def: '2000' },
  { name: 'PUSH_TEST_UWS_ABI', def: '' },
  { name: 'PUSH_SHUTDOWN_GRACE_S', def: '10' },
  { name: 'PUSH_STANDALONE_PUBLISHER_PORT', def: '9010' },
  { name: 'PUSH_LOG_LEVEL', def: 'info' },
  { name: 'PUSH_CONFIG_FILE', def: '' },
  { name: 'PUSH_PUBLISH_KEYS', def: '' },
  { name: 'PUSH_PUBLISH_TRUSTED_NETWORKS', def: '' },
  { name: 'PUSH_PUBLISH_MAX_SKEW_S', def: '300' },
  { name: 'PUSH_PUBLISH_TIMEOUT_MS', def: '20000' },
  { name: 'PUSH_TRUSTED_PROXIES', def: '' },
  { name: 'PUSH_REAL_IP_HEADER', def: 'x-real-ip' },
  { name: 'PUSH_ADMIN_TOKEN', def: '' },
  { name: 'PUSH_ALLOWED_ORIGINS', def: '' },
  { name: 'PUSH_CHANNEL_WRITE_S', def: '43200' },
  { name: 'PUSH_CHANNEL_READ_S', def: '86400' },
];

/**
 * Seconds between WebSocket pings at worst for a given PUSH_WS_IDLE_TIMEOUT_S. uWS pings a socket
 * that was silent for the idle timeout minus a margin (16 s from 32 s up, 8 s from 16 s, else 4 s)
 * and drops it when that margin passes without an answer; its timers tick every 4 s, counted here
 * as possible extra delay. The protocol wants a ping at least every 120 s.
 */
export function wsPingIntervalS(idleTimeoutS: number): number {
  const margin = idleTimeoutS >= 32 ? 16 : idleTimeoutS >= 16 ? 8 : 4;
  return idleTimeoutS - margin + 4;
}
const MAX_PING_INTERVAL_S = 120;
/** Largest accepted PUSH_WS_IDLE_TIMEOUT_S: pings at most MAX_PING_INTERVAL_S apart. */
export const MAX_WS_IDLE_TIMEOUT_S = MAX_PING_INTERVAL_S + 16 - 4;

/** A Redis URL fit for an error message: password (user info, `password=` parameter) hidden. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, (_, scheme: string) => `${scheme}***@`).replace(/([?&](?:password|pass|auth)=)[^&#]*/gi, '$1***');
}

/** Reads KEY=VALUE lines (# comments, optional quotes); the format scripts/start.sh writes. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    let v = t.slice(eq + 1).trim();
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) v = v.slice(1, -1);
    out[t.slice(0, eq).trim()] = v;
  }
  return out;
}

export interface ConfigDefaults {
  /** Default port of the app being configured (publisher 9010, listener 8010 like Bitrix). */
  readonly port: number;
}

export function loadConfig(env: Env, defaults: ConfigDefaults): Readonly<Config> {
  const problems: string[] = [];
  let merged: Record<string, string | undefined> = { ...env };
  const file = env['PUSH_CONFIG_FILE'];
  if (file !== undefined && file !== '') {
    try {
      // An empty variable counts as unset, so `PUSH_SIGNATURE_KEY=` does not hide the file's key.
      const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
      merged = { ...parseEnvFile(readFileSync(file, 'utf8')), ...set };
    } catch (err) {
      problems.push(`PUSH_CONFIG_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const get = (name: string): string | undefined => {
    const v = merged[name];
    if (v !== undefined && v !== '') return v;
    if (name === 'PUSH_PORT') return String(defaults.port);
    return CONFIG_VARS.find((s) => s.name === name)?.def;
  };
  const int = (name: string, min: number, max: number): number => {
    const raw = get(name) ?? '';
    if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return min;
    }
    return Number(raw);
  };

  const redisUrl = get('REDIS_URL') ?? '';
  let redis: RedisTarget = { kind: 'single', url: redisUrl };
  try {
    redis = parseRedisUrl(redisUrl);
  } catch (err) {
    problems.push(`REDIS_URL: ${(err as Error).message}, got ${JSON.stringify(redactUrl(redisUrl))}`);
  }
  const publishDurability = get('PUSH_PUBLISH_DURABILITY') ?? '';
  if (publishDurability !== 'local' && publishDurability !== 'replicated') problems.push(`PUSH_PUBLISH_DURABILITY: local or replicated, got ${JSON.stringify(publishDurability.slice(0, 20))}`);
  const signatureKey = get('PUSH_SIGNATURE_KEY') ?? '';
  if (signatureKey.length < 16) problems.push('PUSH_SIGNATURE_KEY: required, at least 16 characters (the portal\'s pull "signature_key")');
  const algo = get('PUSH_SIGNATURE_ALGO') ?? '';
  if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(algo)) problems.push(`PUSH_SIGNATURE_ALGO: one of ${SIGNATURE_ALGORITHMS.join(', ')}, got ${JSON.stringify(algo)}`);
  let ttl: TtlPolicy | undefined;
  try {
    ttl = parseTtlTable(get('PUSH_TTL_TABLE') ?? '');
  } catch (err) {
    problems.push(`PUSH_TTL_TABLE: ${(err as Error).message}`);
  }
  const logLevel = get('PUSH_LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) problems.push(`PUSH_LOG_LEVEL: fatal|error|warn|info|debug|trace|silent, got ${JSON.stringify(logLevel)}`);
  const keyPrefix = get('PUSH_KEY_PREFIX') ?? '';
  if (!/^[A-Za-z0-9:_.-]{0,32}$/.test(keyPrefix)) problems.push('PUSH_KEY_PREFIX: up to 32 characters from A-Z a-z 0-9 : _ . -');

  const listOf = <T>(name: string, parse: (text: string) => T[]): T[] => {
    try {
      return parse(get(name) ?? '');
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
      return [];
    }
  };
  const publishKeys = listOf('PUSH_PUBLISH_KEYS', parseKeyRing);
  // `none` says "no unsigned publishing" explicitly: an empty value counts as unset and would let
  // the config file's list, or the npm start stack's default, apply.
  const publishTrustedNetworks = listOf('PUSH_PUBLISH_TRUSTED_NETWORKS', (t) => (t.trim().toLowerCase() === 'none' ? [] : parseNetworks(t)));
  const trustedProxies = listOf('PUSH_TRUSTED_PROXIES', parseNetworks);
  const allowedOrigins = listOf('PUSH_ALLOWED_ORIGINS', parseOrigins);
  const realIpHeader = (get('PUSH_REAL_IP_HEADER') ?? '').toLowerCase();
  if (!/^[a-z0-9-]{1,64}$/.test(realIpHeader)) problems.push(`PUSH_REAL_IP_HEADER: a header name, got ${JSON.stringify(realIpHeader)}`);
  // Sent in an Authorization header: visible ASCII only, and long enough not to be guessed.
  const adminToken = get('PUSH_ADMIN_TOKEN') ?? '';
  if (adminToken !== '' && !/^[\x21-\x7e]{16,256}$/.test(adminToken)) problems.push('PUSH_ADMIN_TOKEN: 16-256 visible ASCII characters without spaces (e.g. openssl rand -hex 32), or empty for none');
  // uWS accepts 8-960 s and warns on stderr (a non-JSON line) unless it is a multiple of 4.
  const wsIdleTimeout = (): number => {
    const raw = get('PUSH_WS_IDLE_TIMEOUT_S') ?? '';
    const v = Number(raw);
    if (!/^[0-9]+$/.test(raw) || v < 8 || v > MAX_WS_IDLE_TIMEOUT_S || v % 4 !== 0) {
      problems.push(`PUSH_WS_IDLE_TIMEOUT_S: expected a multiple of 4 from 8 to ${MAX_WS_IDLE_TIMEOUT_S} (pings must go out at least every ${MAX_PING_INTERVAL_S} s), got ${JSON.stringify(raw)}`);
      return 8;
    }
    return v;
  };
  const testUwsAbi = get('PUSH_TEST_UWS_ABI') ?? '';
  if (!/^[0-9]{0,4}$/.test(testUwsAbi)) problems.push(`PUSH_TEST_UWS_ABI: a Node ABI number (tests only), got ${JSON.stringify(testUwsAbi.slice(0, 20))}`);
  const mode = get('PUSH_MODE') ?? '';
  if (mode !== 'personal' && mode !== 'shared') problems.push(`PUSH_MODE: personal or shared, got ${JSON.stringify(mode.slice(0, 20))}`);
  const channelWriteS = int('PUSH_CHANNEL_WRITE_S', 1, 365 * 86400);
  const channelReadS = int('PUSH_CHANNEL_READ_S', 1, 365 * 86400);
  if (channelReadS < channelWriteS) problems.push('PUSH_CHANNEL_READ_S: must be at least PUSH_CHANNEL_WRITE_S (a channel stays readable after it stops being writable)');

  const config: Config = {
    redisUrl,
    redis,
    publishDurability: publishDurability === 'replicated' ? 'replicated' : 'local',
    // Below the 3 s command timeout, so a WAIT that runs out is answered 4170, not 4109.
    publishReplicaTimeoutMs: int('PUSH_PUBLISH_REPLICA_TIMEOUT_MS', 10, 2500),
    publishReplicas: int('PUSH_PUBLISH_REPLICAS', 1, 16),
    keyPrefix,
    host: get('PUSH_HOST') ?? '127.0.0.1',
    port: int('PUSH_PORT', 1, 65535),
    signatureKey,
    signatureAlgorithm: algo as SignatureAlgorithm,
    maxBodyBytes: int('PUSH_MAX_BODY_BYTES', 1024, 64 * 1024 * 1024),
    maxChannels: int('PUSH_MAX_CHANNELS', 1, 10000),
    maxBatchMessages: int('PUSH_MAX_BATCH_MESSAGES', 1, 100000),
    maxFanoutBytes: int('PUSH_MAX_FANOUT_BYTES', 65536, 1024 * 1024 * 1024),
    maxRequestMessages: int('PUSH_MAX_REQUEST_MESSAGES', 1, 100000),
    maxConnPerChannel: int('PUSH_MAX_CONN_PER_CHANNEL', 1, 100000),
    clientRate: int('PUSH_CLIENT_RATE', 0, 1_000_000),
    clientBurst: int('PUSH_CLIENT_BURST', 1, 1_000_000),
    mode: mode === 'shared' ? 'shared' : 'personal',
    clientMaxConnections: int('PUSH_CLIENT_MAX_CONNECTIONS', 0, 10_000_000),
    clientPublishRate: int('PUSH_CLIENT_PUBLISH_RATE', 0, 10_000_000),
    ttl: ttl ?? parseTtlTable(DEFAULT_TTL_TABLE),
    historyLimit: int('PUSH_HISTORY_LIMIT', 1, 10000),
    longPollTimeoutMs: int('PUSH_LONGPOLL_TIMEOUT_S', 1, 3600) * 1000,
    wsIdleTimeoutS: wsIdleTimeout(),
    wsMaxBackpressureBytes: int('PUSH_WS_MAX_BACKPRESSURE_BYTES', 1024, 64 * 1024 * 1024),
    onlineTtlS: int('PUSH_ONLINE_TTL_S', 10, 86400),
    statsIntervalS: int('PUSH_STATS_INTERVAL_S', 1, 3600),
    unsubscribeDelayMs: int('PUSH_UNSUBSCRIBE_DELAY_MS', 0, 600000),
    coalesceMaxMs: int('PUSH_COALESCE_MAX_MS', 0, 1000),
    pubsubStallMs: int('PUSH_PUBSUB_STALL_MS', 200, 600000),
    testUwsAbi,
    shutdownGraceMs: int('PUSH_SHUTDOWN_GRACE_S', 1, 600) * 1000,
    standalonePublisherPort: int('PUSH_STANDALONE_PUBLISHER_PORT', 0, 65535),
    logLevel,
    publishKeys,
    publishTrustedNetworks,
    publishMaxSkewS: int('PUSH_PUBLISH_MAX_SKEW_S', 1, 3600),
    publishTimeoutMs: int('PUSH_PUBLISH_TIMEOUT_MS', 500, 25000),
    trustedProxies,
    realIpHeader,
    adminToken,
    allowedOrigins,
    channelWriteS,
    channelReadS,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
