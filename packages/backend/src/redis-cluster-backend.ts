import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { BACKEND_SENDER, Errors, type EarlierPart, PushError, decodeRecord, encodeRecordTail, publishFingerprint, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import type { Logger, RedisHostPort, RedisTarget } from '@push/runtime';
import { checkHeld, redisOptions, retryStrategy, tearDownStalled } from './redis-connect.js';
import { CLAIM_NONCE_SCRIPT, CHANNEL_TIMES_SCRIPT, PRESENCE_TOUCH_SCRIPT } from './redis-scripts.js';
import { CLUSTER_CLAIM_PUBLISH_SCRIPT, CLUSTER_EXPIRE_NOTICE_SCRIPT, CLUSTER_HISTORY_SCRIPT, CLUSTER_NODE_PART_SCRIPT, CLUSTER_RELEASE_CLAIM_SCRIPT } from './redis-cluster-scripts.js';
import { CONFLICT_REPLY, EXPIRED_REPLY, NOT_REPLICATED, outcomeUnknown, toTimes, withTimeout, type RedisBackendOptions } from './redis-backend.js';
import { DEFAULT_CHANNEL_READ_MS, DEFAULT_CHANNEL_WRITE_MS, DEFAULT_PUBSUB_STALL_MS, LAST_SEEN_KEEP_S, channelRetentionS, isLastSeenKey, type Backend, type Broker, type BrokerHealth, type HistoryGap, type HistoryResult, type MessageHandler, type PublishedIds, type ResyncHandlers } from './types.js';
import { historyGap } from './history-gap.js';
import { NotSentError, UnansweredError, createGroupCommit, type GroupCommit } from './group-commit.js';
import { ConnectionProbe, probeTimings } from './connection-probe.js';
import { nonceWindowS, type ChannelTimes, type ExpireNotice, type NonceClaim, type PublishIdentity } from './lifecycle-types.js';
import { redisClientRegistry, redisStatsRegistry } from './redis-registries.js';

type ClusterTarget = Extract<RedisTarget, { kind: 'cluster' }>;

/** The slot of a channel's keys (`{channel}` hash tag), as Redis computes it. */
export function channelSlot(channel: string): number {
  return calculateSlot(`{${channel}}`);
}

const slotText = (slot: number): string => String(slot).padStart(5, '0');

/** Groups items by the slot of the channel each names, keeping first-seen order of slots. */
function bySlot<T>(items: readonly T[], channelOf: (item: T) => string): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const it of items) {
    const s = channelSlot(channelOf(it));
    const list = out.get(s);
    if (list === undefined) out.set(s, [it]);
    else list.push(it);
  }
  return out;
}

/** CLUSTER_NODE_PART_SCRIPT's reply: per slot part 'ran' or 'dup' and its mids, or why nothing was written. */
type PartReply = ['ok', ...string[]] | ['err', string];

/** Answers that send a command elsewhere or ask for it again: the command did not run. */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;
/**
 * What Redis answers when a script touches a key of a slot the node does not serve, or one missing
 * from a slot being migrated, or runs while the cluster is down: the publish script touches every
 * key before it writes any, so nothing of the call ran.
 */
const NOT_LOCAL = /Script attempted to (access a non local key|execute a command while the cluster is down)/;
/** A part group that could not be sent (no connection to that master yet): nothing was sent. */
const NOT_ONE_NODE = /^no connection to master /;
/** Part groups on the wire per node at once (group commit, as PUBLISH_IN_FLIGHT on one Redis). */
const PARTS_IN_FLIGHT = 2;
/** Most parts in one group: one pipeline, and the Redis pause it causes, stays short. */
const MAX_GROUP_PARTS = 256;
const DEFAULT_GROUP_FANOUT_BYTES = 16 * 1024 * 1024;
/**
 * Least time between two watermark probes of one node (listener side): bounds their cost under a
 * steady stream to a few hundred a second per node, for at most this much added delivery delay.
 */
const WATERMARK_PROBE_GAP_MS = 4;
/** Channels whose write window is remembered per process (see learnWritable), at most. */
const WRITABLE_CACHE_MAX = 100_000;

type ScriptCluster = Cluster & {
  pushHistory(numKeys: number, ...args: string[]): Promise<string[]>;
  pushChannelTimes(numKeys: number, ...args: string[]): Promise<string[]>;
  pushPresenceTouch(numKeys: number, ...args: Array<string | number>): Promise<number>;
  pushExpireNotice(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
  pushClaimNonce(numKeys: number, ...args: Array<string | number>): Promise<NonceClaim>;
  pushClaimPublish(numKeys: number, ...args: Array<string | number>): Promise<'new' | 'ok' | 'conflict' | 'replay' | 'stale'>;
  pushReleaseClaim(numKeys: number, ...args: string[]): Promise<number>;
};

/**
 * The watermark a TIME answer (s, us) gives once a PING sent after it is answered on the node's
 * subscription connection: every id that node can still publish is above it (ids are issued at or
 * after the shard's clock), so every message at or below it has been received.
 */
export function watermarkOf(seconds: string, micros: string): string {
  return `${seconds.padStart(10, '0')}0${micros.padStart(6, '0')}999999999`;
}

function clusterOptions(target: ClusterTarget, extra: RedisOptions, natMap: RedisBackendOptions['natMap']): ClusterOptions {
  return {
    ...(natMap === undefined ? {} : { natMap: { ...natMap } }),
    redisOptions: { ...redisOptions(extra), ...(target.password === undefined ? {} : { password: target.password }) },
    enableOfflineQueue: false,
    clusterRetryStrategy: retryStrategy,
    scaleReads: 'master',
    // A failover takes the cluster node timeout plus an election: keep following redirections
    // (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) for about that long instead of failing the request.
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 0,
    slotsRefreshTimeout: 2000,
    slotsRefreshInterval: 5000,
  };
}

function seedNodes(target: ClusterTarget): Array<{ host: string; port: number }> {
  return target.nodes.map((n: RedisHostPort) => ({ host: n.host, port: n.port }));
}

/**
 * The Store, Broker, Presence and registries on Redis Cluster (REDIS_URL=redis+cluster://...),
 * following docs/architecture.md, "Redis Cluster": every key of a channel in its slot, a publish
 * carried out slot by slot (each part atomic, its outcome recorded per slot under the request's
 * identity), ids per channel without a global key, sharded pub/sub with one subscription
 * connection per master, released to the listener in id order behind per-node watermarks.
 */
export function createRedisClusterBackend(opts: RedisBackendOptions & { readonly url: ClusterTarget }): Backend {
  const p = opts.keyPrefix;
  const log = opts.log;
  const target = opts.url;
  const commandTimeout = opts.commandTimeoutMs ?? 3000;
  const publishTimeout = opts.publishTimeoutMs ?? 20_000;
  const cmd = new Cluster(seedNodes(target), clusterOptions(target, { commandTimeout, connectionName: 'push-cmd', autoResendUnfulfilledCommands: false }, opts.natMap)) as ScriptCluster;
  cmd.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis cluster command connection error'));
  // Publishes have their own connections (their timeout is the publish wait), as on one Redis.
  const pub = new Cluster(seedNodes(target), clusterOptions(target, { commandTimeout: publishTimeout, connectionName: 'push-pub', autoResendUnfulfilledCommands: false }, opts.natMap)) as ScriptCluster;
  pub.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis cluster publish connection error'));
  for (const c of [cmd, pub]) {
    c.defineCommand('pushExpireNotice', { lua: CLUSTER_EXPIRE_NOTICE_SCRIPT });
    c.defineCommand('pushClaimPublish', { lua: CLUSTER_CLAIM_PUBLISH_SCRIPT });
    c.defineCommand('pushReleaseClaim', { lua: CLUSTER_RELEASE_CLAIM_SCRIPT });
    c.defineCommand('pushHistory', { lua: CLUSTER_HISTORY_SCRIPT });
    c.defineCommand('pushChannelTimes', { lua: CHANNEL_TIMES_SCRIPT });
    c.defineCommand('pushPresenceTouch', { lua: PRESENCE_TOUCH_SCRIPT });
    c.defineCommand('pushClaimNonce', { lua: CLAIM_NONCE_SCRIPT });
  }
  const readiness = (conn: Cluster): (() => Promise<void>) => {
    let everReady = false;
    const firstReady = new Promise<void>((resolve) => conn.once('ready', () => ((everReady = true), resolve())));
    return async () => {
      if (!everReady) await withTimeout(firstReady, commandTimeout, 'redis cluster not connected yet');
    };
  };
  const connected = readiness(cmd);
  const pubConnected = readiness(pub);

  // Every node connection of the command and publish clients is probed for silent stalls, as on
  // one Redis (connection-probe.ts): a PING after a quiet spell, a check over a new connection to
  // the same node before a suspect is torn down (a WAIT or CLIENT PAUSE holds a command there),
  // and a confirmed stall destroys the connection at once, so what was on it fails now (a publish
  // part: 504 4134) and the client library connects that node again on the next command.
  const stallMs = opts.pubsubStallMs ?? DEFAULT_PUBSUB_STALL_MS;
  const verifyMs = probeTimings(stallMs).verifyMs;
  const stallCounts: Record<'push-cmd' | 'push-pub', number> = { 'push-cmd': 0, 'push-pub': 0 };
  const nodeProbes = new Set<ConnectionProbe>();
  let closing = false;
  const poolOf = (c: Cluster): { getInstanceByKey(key: string): Redis | undefined } => (c as unknown as { connectionPool: { getInstanceByKey(key: string): Redis | undefined } }).connectionPool;
  const nodeKey = (r: Redis): string => `${r.options.host ?? ''}:${r.options.port ?? ''}`;
  const watchNodes = (cluster: Cluster, role: 'push-cmd' | 'push-pub'): void => {
    const seen = new WeakSet<Redis>();
    const attach = (node: Redis): void => {
      if (seen.has(node)) return;
      seen.add(node);
      const key = nodeKey(node);
      let clientId: string | null = null;
      const probe = new ConnectionProbe(
        { ping: () => node.ping() },
        {
          stallMs,
          verify: () => checkHeld((extra) => new Redis(redisOptions({ host: node.options.host ?? '127.0.0.1', port: node.options.port ?? 6379, ...(target.password === undefined ? {} : { password: target.password }), ...extra })), clientId, verifyMs),
          onStall: (silentMs) => {
            stallCounts[role]++;
            log.warn({ connection: role, node: key, silentMs }, 'redis connection stalled (open but silent); reconnecting');
            tearDownStalled(node, `${role} (${key})`);
          },
        },
      );
      nodeProbes.add(probe);
      // Publish parts go straight to the node's connection (sendParts).
      if (role === 'push-pub') node.defineCommand('pushNodePart', { lua: CLUSTER_NODE_PART_SCRIPT });
      const onReady = (): void => {
        if (closing) return;
        clientId = null;
        // Any byte read counts as life: replies and PING answers.
        node.stream.on('data', () => probe.data());
        node.client('ID').then((id) => (clientId = String(id)), () => {});
        probe.start();
      };
      node.on('ready', onReady);
      node.on('close', () => probe.stop());
      node.once('end', () => {
        probe.stop();
        nodeProbes.delete(probe);
      });
      if (node.status === 'ready') onReady();
    };
    // Nodes the client library created while connecting, and every one it creates later.
    for (const n of cluster.nodes('all')) attach(n);
    cluster.on('+node', (n: Redis) => attach(n));
  };
  watchNodes(cmd, 'push-cmd');
  watchNodes(pub, 'push-pub');
  /**
   * Readiness of one client: every master its slot map names answers a PING within the stall
   * budget. A master that is gone (killed, cut off) stays in the map until the cluster has promoted
   * a replica and the map is read again, so until then this names it and the process is not ready.
   */
  const mastersAnswer = async (cluster: Cluster, role: 'push-cmd' | 'push-pub', what: string): Promise<void> => {
    const keys = new Set<string>();
    for (const owners of (cluster as unknown as { slots: Array<string[] | undefined> }).slots) if (owners !== undefined && owners[0] !== undefined) keys.add(owners[0]);
    if (keys.size === 0) throw new Error(`the Redis ${what} (${role}) knows no master yet`);
    const pool = poolOf(cluster);
    await Promise.all(
      [...keys].map(async (key) => {
        const node = pool.getInstanceByKey(key);
        if (node === undefined || node.status === 'end') {
          // A connection torn down (stall) or lost is opened again by the next command for its
          // slots or the next read of the slot map; read it now rather than wait for either.
          cluster.refreshSlotsCache();
          throw new Error(`the Redis ${what} (${role}) to master ${key} is down`);
        }
        const named = node.ping().catch((err: Error) => {
          throw new Error(`the Redis ${what} (${role}) to master ${key} failed: ${err.message}`);
        });
        await withTimeout(named, stallMs, `the Redis ${what} (${role}) to master ${key} did not answer within ${stallMs} ms`);
      }),
    );
  };
  const writeMs = opts.channelWriteMs ?? DEFAULT_CHANNEL_WRITE_MS;
  const readMs = opts.channelReadMs ?? DEFAULT_CHANNEL_READ_MS;
  const keepS = channelRetentionS(readMs);
  const createdKey = (ch: string): string => `${p}ch:{${ch}}`;
  /**
   * A publish to several masters first makes sure no channel is past its write window (below); a
   * channel read once is known to be inside it for a while (learnWritable), so later publishes to
   * it skip that read (one call per slot per publish saved).
   */
  const writableUntil = new Map<string, number>();
  const writableMarginMs = Math.min(5000, Math.floor(writeMs / 10));
  const replicaTimeout = opts.replicaTimeoutMs ?? 1000;
  const wanted = opts.replicas ?? 1;

  /**
   * Publish calls (each: the slot parts of one request that one master serves) travel to their
   * master in groups (group-commit.ts, one group per master): calls of concurrent requests that
   * arrive while a master's groups are out leave together as one pipeline, one write and one read
   * for the publisher and for Redis, instead of one of each per call. Each call is still its own
   * script run, atomic on its own; a call refused or failed in a group affects only itself. With
   * replicated durability one WAIT closes the pipeline and covers every call in it (it follows them
   * on the same connection).
   */
  interface PartCall {
    readonly keys: readonly string[];
    readonly args: ReadonlyArray<string | number>;
    readonly weight: number;
  }
  type PartOutcome = { readonly reply: PartReply } | { readonly error: Error };
  type PartPipeline = { pushNodePart(...a: Array<string | number>): PartPipeline; wait(n: number, ms: number): PartPipeline; exec(): Promise<Array<[Error | null, unknown]> | null> };
  /**
   * One group, as a pipeline on the master's own connection (the client library's connection to
   * that node), not through the Cluster object: its pipelines send again, on their own, a group
   * whose connection closed with it on the wire ("Connection is closed."), which could run a part
   * twice. Here such a group fails, and its parts' outcome is unknown (504 4134), as on one Redis.
   */
  const sendParts = (key: string) => async (calls: readonly PartCall[]): Promise<PartOutcome[]> => {
    const node = poolOf(pub).getInstanceByKey(key);
    if (node === undefined || node.status === 'end') {
      // Nothing was sent: the caller reads the slot map again and sends the parts where it says.
      pub.refreshSlotsCache();
      throw new Error(`no connection to master ${key || '(slot map not read yet)'}`);
    }
    const pipe = node.pipeline() as unknown as PartPipeline;
    for (const c of calls) pipe.pushNodePart(c.keys.length, ...c.keys, ...c.args);
    const replicated = opts.durability === 'replicated';
    if (replicated) pipe.wait(wanted, replicaTimeout);
    const res = (await pipe.exec()) ?? [];
    const [waitErr, replicas] = replicated ? (res[calls.length] ?? [new Error('no WAIT reply'), 0]) : [null, wanted];
    return calls.map((_, i): PartOutcome => {
      const [err, out] = res[i] ?? [new Error('no reply for a publish part'), null];
      if (err !== null) return { error: err };
      const reply = out as PartReply;
      if (reply[0] !== 'ok') return { reply };
      if (waitErr !== null) return { error: waitErr };
      return { reply: (replicas as number) >= wanted ? reply : ['err', NOT_REPLICATED] };
    });
  };
  const partGroups = new Map<string, GroupCommit<PartCall, PartOutcome>>();
  const slotMaster = (slot: number): string => (pub as unknown as { slots: Array<string[] | undefined> }).slots[slot]?.[0] ?? '';
  const groupFor = (node: string): GroupCommit<PartCall, PartOutcome> => {
    let g = partGroups.get(node);
    if (g === undefined) {
      g = createGroupCommit(sendParts(node), { maxInFlight: PARTS_IN_FLIGHT, maxItems: MAX_GROUP_PARTS, maxWeight: opts.maxGroupFanoutBytes ?? DEFAULT_GROUP_FANOUT_BYTES, weight: (c) => c.weight, timeoutMs: publishTimeout });
      partGroups.set(node, g);
    }
    return g;
  };
  /**
   * Runs one call on a master (its slot parts). The client library follows redirections for single
   * commands but not inside a pipeline: a redirection, TRYAGAIN, a key of a slot the node no
   * longer serves (or is migrating) or a master without a connection means nothing of the call ran,
   * so it answers 'moved' after reading the slot map again (the caller regroups and sends again),
   * for up to 30 attempts (about 3 s).
   */
  const runPart = async (node: string, keys: readonly string[], args: ReadonlyArray<string | number>, weight: number, attempt: number): Promise<PartReply | 'moved'> => {
    let out: PartOutcome;
    try {
      out = await groupFor(node).submit({ keys, args, weight });
    } catch (err) {
      if (err instanceof NotSentError || err instanceof UnansweredError || !NOT_ONE_NODE.test((err as Error).message)) throw err;
      out = { error: err as Error };
    }
    if ('reply' in out) return out.reply;
    if (attempt < 30 && (REDIRECTED.test(out.error.message) || NOT_LOCAL.test(out.error.message) || NOT_ONE_NODE.test(out.error.message))) {
      await new Promise<void>((resolve) => pub.refreshSlotsCache(() => resolve()));
      await new Promise((r) => setTimeout(r, attempt === 0 ? 0 : 100));
      return 'moved';
    }
    throw out.error;
  };

  /** Every subscription broker of this backend (listeners create one). */
  const brokers = new Set<ClusterBroker>();

  interface NodeConn {
    readonly key: string;
    readonly sub: Redis;
    readonly time: Redis;
    readonly channels: Set<string>;
    readonly probe: ConnectionProbe;
    /** Settles once both connections are up (callers of node() wait for it). */
    ready: Promise<void>;
    /** Every id at or below it that this node will publish has been received ('' = none yet). */
    watermark: string;
    probing: boolean;
    /** When the last watermark probe started (performance.now()), for the pacing. */
    lastProbeAt: number;
    alive: boolean;
  }

  interface Pending {
    readonly channel: string;
    readonly msg: StoredMessage;
  }

  /**
   * One SSUBSCRIBE connection per master that serves any of this listener's channels (and one
   * command connection beside it for the watermark's TIME). Messages are released to the handler in
   * id order, each once every subscribed node's watermark has passed it, so the hub sees what it
   * sees on one Redis: messages in id order. A node connection that closes, stalls or is refused
   * (failover, slot move) is a lost subscription: `lost`, then its channels are subscribed again
   * wherever CLUSTER SLOTS now puts them, then `restored` (the hub refills from history).
   */
  class ClusterBroker implements Broker {
    private handler: MessageHandler = () => {};
    private resync: ResyncHandlers[] = [];
    private readonly active = new Set<string>();
    private readonly nodes = new Map<string, NodeConn>();
    private readonly where = new Map<string, NodeConn>();
    /** Channels that are active but not subscribed on any node right now (their node went away). */
    private readonly orphans = new Set<string>();
    private regrouping = false;
    private closed = false;
    private stalls = 0;
    private owners: string[] | null = null;
    private pending: Pending[] = [];
    private readonly topicPrefix = `${p}c:{`;
    private readonly stallMs = opts.pubsubStallMs ?? DEFAULT_PUBSUB_STALL_MS;

    /**
     * Master "host:port" of every slot, from CLUSTER SLOTS on any reachable node: asked of every
     * master the client library knows at once, the first answer taken. The library sends a keyless
     * command to one node at random, and one cut off the network (a partition: no answer, no close)
     * would cost a whole command timeout per attempt while the others could answer.
     */
    private async loadOwners(): Promise<string[]> {
      await connected();
      const masters = cmd.nodes('master');
      const slots = (await (masters.length === 0 ? cmd.cluster('SLOTS') : Promise.any(masters.map((m) => m.cluster('SLOTS'))))) as unknown as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
      const owners = new Array<string>(16384).fill('');
      for (const [a, b, [host, port]] of slots) for (let s = a; s <= b; s++) owners[s] = `${host}:${port}`;
      this.owners = owners;
      return owners;
    }

    private async node(key: string): Promise<NodeConn> {
      const existing = this.nodes.get(key);
      if (existing !== undefined) {
        await existing.ready;
        if (!existing.alive) throw new Error(`redis cluster node ${key} went away`);
        return existing;
      }
      const mapped = opts.natMap?.[key];
      const [host, portText] = mapped !== undefined ? [mapped.host, String(mapped.port)] : [key.slice(0, key.lastIndexOf(':')), key.slice(key.lastIndexOf(':') + 1)];
      // No reconnect of its own: a node that goes away may not come back as a master; the broker
      // asks the cluster where the channels live now and opens what it needs (regroup).
      const base = { host, port: Number(portText), retryStrategy: () => null, autoResubscribe: false, commandTimeout, ...(target.password === undefined ? {} : { password: target.password }) };
      const sub = new Redis(redisOptions({ ...base, connectionName: 'push-sub', lazyConnect: true }));
      const time = new Redis(redisOptions({ ...base, connectionName: 'push-sub-time', lazyConnect: true }));
      sub.on('error', (err: Error) => log.warn({ err: { message: err.message }, node: key }, 'redis cluster subscriber connection error'));
      time.on('error', (err: Error) => log.warn({ err: { message: err.message }, node: key }, 'redis cluster watermark connection error'));
      const n: NodeConn = {
        key,
        sub,
        time,
        channels: new Set(),
        watermark: '',
        probing: false,
        lastProbeAt: -Infinity,
        alive: true,
        ready: Promise.resolve(),
        probe: new ConnectionProbe({ ping: () => this.ping(n) }, { stallMs: this.stallMs, onStall: (silentMs: number) => this.stalled(n, silentMs) }),
      };
      this.nodes.set(key, n);
      sub.on('smessageBuffer', (topic: Buffer, payload: Buffer) => this.onMessage(n, topic, payload));
      // A slot that moved away (reshard) while subscribed: the node ends its channels' sharded
      // subscriptions with an unrequested `sunsubscribe`, which the client library takes for the
      // reply to whatever command waits (or reports as a command queue error); an SSUBSCRIBE sent
      // to a node that no longer serves the slot is answered MOVED, which the library reports as
      // this event without settling the command. Either way the connection no longer carries what
      // the broker believes: drop it, so its channels are subscribed where the slots are now.
      sub.on('moved', () => this.dropNode(n, 'a slot moved (MOVED)'));
      sub.on('error', (err: Error) => {
        if (/Command queue state error/.test(err.message)) this.dropNode(n, 'the node ended subscriptions (slot moved)');
      });
      sub.on('close', () => this.nodeLost(n));
      time.on('close', () => this.nodeLost(n));
      n.ready = withTimeout(Promise.all([sub.connect(), time.connect()]), commandTimeout, `redis cluster node ${key} not reachable`).then(
        () => {
          if (n.alive) n.probe.start();
        },
        (err: unknown) => {
          this.nodeLost(n);
          throw err;
        },
      );
      await n.ready;
      return n;
    }

    /**
     * PING on the subscription connection, checked: in subscribed mode Redis answers ["pong", ""].
     * Anything else means the replies no longer line up with the commands (see `moved` above), or
     * the node ended every subscription of the connection: drop it.
     */
    private async ping(n: NodeConn): Promise<void> {
      const reply = (await n.sub.ping()) as unknown;
      const ok = Array.isArray(reply) ? String(reply[0]).toLowerCase() === 'pong' : reply === 'PONG' && n.channels.size === 0;
      if (!ok) {
        this.dropNode(n, 'unexpected PING reply (subscriptions ended by the node)');
        throw new Error('subscription connection out of step');
      }
    }

    private dropNode(n: NodeConn, why: string): void {
      if (!n.alive) return;
      log.warn({ node: n.key, channels: n.channels.size, why }, 'redis cluster subscription connection dropped');
      this.owners = null;
      n.sub.disconnect(false);
    }

    private stalled(n: NodeConn, silentMs: number): void {
      this.stalls++;
      log.warn({ connection: 'push-sub', node: n.key, silentMs, channels: n.channels.size }, 'subscriber connection stalled (open but silent); reconnecting');
      // Lost now, not on the connection's close: a node cut off the network never acknowledges the
      // close, and the client library waits 2 s (its disconnect timeout) before it gives up.
      this.nodeLost(n);
    }

    /** A node connection is gone: its channels are lost until regroup subscribes them again. */
    private nodeLost(n: NodeConn): void {
      if (!n.alive) return;
      n.alive = false;
      n.probe.stop();
      n.sub.disconnect(false);
      n.time.disconnect(false);
      this.nodes.delete(n.key);
      const had = [...n.channels].filter((c) => this.where.get(c) === n);
      for (const c of had) {
        this.where.delete(c);
        if (this.active.has(c)) this.orphans.add(c);
      }
      if (this.closed) return;
      this.owners = null;
      if (had.length > 0) {
        log.warn({ node: n.key, channels: had.length }, 'redis cluster subscription lost; subscribing its channels where the cluster now serves them');
        for (const h of this.resync) h.lost();
        void this.regroup();
      }
      this.release();
    }

    /** Subscribes orphaned channels again until none is left, then says `restored`. */
    private async regroup(): Promise<void> {
      if (this.regrouping) return;
      this.regrouping = true;
      const since = Date.now();
      try {
        for (let attempt = 0; !this.closed && this.orphans.size > 0; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, retryStrategy(attempt)));
          const unplaced = [...this.orphans].filter((c) => this.active.has(c));
          this.orphans.clear();
          try {
            await this.place(unplaced, true);
          } catch (err) {
            for (const c of unplaced) if (this.active.has(c) && !this.where.has(c)) this.orphans.add(c);
            log.warn({ err: { message: (err as Error).message }, channels: this.orphans.size }, 'redis cluster resubscribe failed; retrying');
          }
        }
        if (!this.closed) {
          log.info({ connection: 'push-sub', downMs: Date.now() - since }, 'resubscribed on the cluster; refilling from history');
          for (const h of this.resync) h.restored();
        }
      } finally {
        this.regrouping = false;
        if (this.orphans.size > 0 && !this.closed) void this.regroup();
      }
    }

    /** SSUBSCRIBE `channels` on their slots' masters, one command per slot. */
    private async place(channels: readonly string[], fresh: boolean): Promise<void> {
      const owners = fresh || this.owners === null ? await this.loadOwners() : this.owners;
      const groups = bySlot(channels, (c) => c);
      const work: Array<Promise<void>> = [];
      for (const [slot, list] of groups) {
        work.push(
          (async () => {
            const key = owners[slot];
            if (key === undefined || key === '') throw new Error(`no master serves slot ${slot}`);
            const n = await this.node(key);
            for (let i = 0; i < list.length; i += 512) {
              const part = list.slice(i, i + 512);
              await n.sub.ssubscribe(...part.map((c) => this.topic(c)));
              if (!n.alive) throw new Error(`redis cluster node ${key} went away while subscribing`);
              for (const c of part) {
                n.channels.add(c);
                this.where.set(c, n);
              }
            }
            // A new node's watermark starts empty: learn it, so waiting messages can be released.
            this.probeSoon(n);
          })(),
        );
      }
      const results = await Promise.allSettled(work);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) {
        // A MOVED answer or a vanished node: the map was stale; the caller retries with a fresh one.
        this.owners = null;
        throw failed.reason;
      }
    }

    private topic(channel: string): string {
      return `${this.topicPrefix}${channel}}`;
    }

    private lastMid = '';
    private lastMsg: StoredMessage | null = null;
    private onMessage(n: NodeConn, topic: Buffer, payload: Buffer): void {
      n.probe.data();
      const t = topic.toString('latin1');
      if (!t.startsWith(this.topicPrefix)) return;
      const channel = t.slice(this.topicPrefix.length, -1);
      const mid = payload.toString('latin1', 0, 26);
      let msg = mid === this.lastMid ? this.lastMsg : null;
      if (msg === null) {
        msg = decodeRecord(payload.toString('utf8'));
        if (msg === null) {
          log.warn({ topic: t }, 'dropped malformed pub/sub record');
          return;
        }
        this.lastMid = mid;
        this.lastMsg = msg;
      }
      // Sorted insert (stable for equal mids: one record published to several channels of a slot).
      // A node's stream is nearly in id order, so the search usually ends at the tail.
      let i = this.pending.length;
      while (i > 0 && (this.pending[i - 1] as Pending).msg.mid > mid) i--;
      this.pending.splice(i, 0, { channel, msg });
      for (const node of this.nodes.values()) if (node.channels.size > 0 && node.watermark < mid) this.probeSoon(node);
      this.release();
    }

    /**
     * Advances a node's watermark while messages wait above it: TIME on its command connection (T0),
     * then PING on its subscription connection; once the PING is answered every message the node
     * published with an id at or below T0 has arrived before it (docs/architecture.md).
     */
    private probeSoon(n: NodeConn): void {
      if (n.probing || !n.alive) return;
      n.probing = true;
      void (async () => {
        try {
          do {
            // Paced: under a steady stream a message always waits above the watermark, and back
            // to back probes cost every listener two commands per node per round trip (most of
            // its Redis writes in a profile). One probe per gap covers everything before its TIME.
            const wait = n.lastProbeAt + WATERMARK_PROBE_GAP_MS - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            if (!n.alive) return;
            n.lastProbeAt = performance.now();
            const [s, us] = (await n.time.time()) as unknown as [string, string];
            await this.ping(n);
            n.probe.data();
            if (!n.alive) return;
            const w = watermarkOf(String(s), String(us));
            if (w > n.watermark) n.watermark = w;
            this.release();
          } while (n.alive && this.pending.length > 0 && (this.pending[this.pending.length - 1] as Pending).msg.mid > n.watermark);
        } catch (err) {
          // A node whose watermark cannot advance holds every message back: treat it as lost
          // (resubscribe where the cluster serves its channels now, refill from history).
          if (n.alive) {
            log.warn({ err: { message: (err as Error).message }, node: n.key }, 'watermark probe failed; dropping the node connection');
            this.nodeLost(n);
          }
        } finally {
          n.probing = false;
        }
      })();
    }

    /** Hands over, in id order, every waiting message that every subscribed node's watermark has passed. */
    private release(): void {
      if (this.pending.length === 0) return;
      let floor: string | null = null;
      for (const n of this.nodes.values()) {
        if (!n.alive || n.channels.size === 0) continue;
        if (floor === null || n.watermark < floor) floor = n.watermark;
      }
      let k = 0;
      if (floor === null) k = this.pending.length;
      else while (k < this.pending.length && (this.pending[k] as Pending).msg.mid <= floor) k++;
      if (k === 0) return;
      const out = this.pending.slice(0, k);
      this.pending = this.pending.slice(k);
      for (const { channel, msg } of out) if (this.active.has(channel)) this.handler(channel, msg);
    }

    setHandler(h: MessageHandler): void {
      this.handler = h;
    }
    onResync(h: ResyncHandlers): void {
      this.resync.push(h);
    }
    private queued: Array<{ channels: readonly string[]; resolve: () => void; reject: (err: unknown) => void }> = [];
    subscribe(channels: readonly string[]): Promise<void> {
      if (channels.length === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        this.queued.push({ channels, resolve, reject });
        if (this.queued.length === 1) setImmediate(() => void this.flushSubscribes());
      });
    }
    private async flushSubscribes(): Promise<void> {
      const batch = this.queued;
      this.queued = [];
      const all = [...new Set(batch.flatMap((b) => b.channels))].filter((c) => !this.where.has(c) && !this.orphans.has(c));
      for (const b of batch) for (const c of b.channels) this.active.add(c);
      try {
        try {
          await this.place(all, false);
        } catch {
          // Once more with a fresh slot map (a slot moved since it was read).
          await this.place(all.filter((c) => !this.where.has(c)), true);
        }
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const c of all) if (!this.where.has(c)) this.active.delete(c);
        for (const b of batch) b.reject(err);
      }
    }
    async unsubscribe(channels: readonly string[]): Promise<void> {
      if (channels.length === 0) return;
      const byNode = new Map<NodeConn, string[]>();
      for (const c of channels) {
        this.active.delete(c);
        this.orphans.delete(c);
        const n = this.where.get(c);
        if (n === undefined) continue;
        this.where.delete(c);
        n.channels.delete(c);
        const list = byNode.get(n) ?? [];
        list.push(c);
        byNode.set(n, list);
      }
      await Promise.all(
        [...byNode].map(async ([n, list]) => {
          if (!n.alive || n.sub.status !== 'ready') return;
          // SUNSUBSCRIBE, like SSUBSCRIBE, takes the channels of one slot per call.
          for (const group of bySlot(list, (c) => c).values()) await n.sub.sunsubscribe(...group.map((c) => this.topic(c)));
        }),
      );
    }
    health(): BrokerHealth {
      let down = this.orphans.size > 0 || this.regrouping ? 1 : 0;
      for (const n of this.nodes.values()) if (!n.alive || n.sub.status !== 'ready') down++;
      return { connections: Math.max(1, this.nodes.size), down, stalls: this.stalls };
    }
    async close(): Promise<void> {
      this.closed = true;
      brokers.delete(this);
      for (const n of [...this.nodes.values()]) this.nodeLost(n);
    }
  }

  /**
   * Every key of a slot part, declared for the first slot part of a call (it routes the call; the
   * script touches the others' keys before it writes, see CLUSTER_NODE_PART_SCRIPT): while that slot
   * migrates (reshard), Redis answers ASK or TRYAGAIN for a half-moved key set instead of running.
   */
  const channelKeys = (ch: string): string[] => [`${p}h:{${ch}}`, `${p}i:{${ch}}`, `${p}ch:{${ch}}`, `${p}g:{${ch}}`];
  const partKeys = (channels: readonly string[], identityKey: string): string[] => [...[...new Set(channels)].flatMap(channelKeys), ...(identityKey === '' ? [] : [identityKey])];
  /** The identity key of one part: in the part's slot (the tag of one of its channels). */
  const partKey = (identityKey: string, channel: string): string => `${p}p:{${channel}}:${identityKey.slice(p.length)}`;

  const store = {
    /**
     * Slot by slot, in the order the messages first name each slot, all the slot parts one master
     * serves in one atomic call; each slot part's ids are above those of the earlier ones (so a message
     * sent to several shards has its smallest id in its first part, and later parts name the
     * channels of the earlier ones: a connection holding both gets it once). The request's
     * identity is claimed first (conflict, replay and staleness are decided once, before anything
     * is stored), and each part records its own outcome in its slot, so a retry after a partial
     * failure skips the parts that ran and completes the others.
     */
    async publish(messages: readonly NewMessage[], sender: SenderInfo, identity?: PublishIdentity): Promise<PublishedIds> {
      await pubConnected();
      // Parts: slot -> for each message naming the slot, its channels there.
      const parts = new Map<number, Array<{ index: number; channels: string[] }>>();
      for (const [index, m] of messages.entries()) {
        for (const [slot, chans] of bySlot(m.channels, (c) => c)) {
          const list = parts.get(slot);
          if (list === undefined) parts.set(slot, [{ index, channels: chans }]);
          else list.push({ index, channels: chans });
        }
      }
      // Calls are atomic one by one, not together: a channel past its write window on one master
      // must refuse the request before another master stores its part (the script checks
      // again, atomically, for the rare channel whose window ends in between).
      // One master's slot parts run as one atomic call that checks every channel first; only a
      // request spanning several masters needs the read ahead of its first call.
      if (new Set([...parts.keys()].map(slotMaster)).size > 1) {
        const at = performance.now();
        const plain = [...new Set(messages.flatMap((m) => m.channels))].filter((c) => !c.includes(':') && !((writableUntil.get(c) ?? 0) > at));
        const times = plain.length === 0 ? { now: 0, created: [] } : await channelTimes(plain, '0');
        const expired = plain.filter((_, i) => {
          const created = times.created[i];
          return created !== null && created !== undefined && times.now - created >= writeMs;
        });
        if (expired.length > 0) throw new PushError(Errors.CHANNEL_EXPIRED, `Expired: ${expired.join(', ')}.`);
      }
      let idKey = '';
      let fingerprint = '';
      let windowS = 0;
      let claimed: 'new' | 'ok' | null = null;
      if (identity !== undefined) {
        fingerprint = publishFingerprint(messages, sender);
        if ('nonce' in identity) {
          idKey = `${p}n:${identity.keyId}:${identity.nonce}`;
          windowS = nonceWindowS(identity.maxSkewS);
        } else {
          idKey = `${p}q:${identity.scope}:${identity.requestId}`;
          windowS = identity.windowS;
        }
        // A claim whose answer was lost may have been recorded: nothing is stored yet, but only a
        // retry with the same content is sure to be accepted, which is what "outcome unknown" says.
        const claim = await pub.pushClaimPublish(1, idKey, fingerprint, windowS, 'nonce' in identity ? identity.timestamp : '', 'nonce' in identity ? identity.maxSkewS : '').catch((err: unknown) => {
          if (outcomeUnknown(err)) throw new PushError(Errors.OUTCOME_UNKNOWN, `${(err as Error).message}.`);
          throw err;
        });
        if (claim === 'stale') throw new PushError(Errors.AUTH_STALE);
        if (claim === 'replay') throw new PushError(Errors.AUTH_REPLAY);
        if (claim === 'conflict') throw new PushError(Errors.REQUEST_ID_CONFLICT);
        claimed = claim;
      }
      const ids: Array<Record<string, string>> = messages.map(() => ({}));
      const firstId: string[] = messages.map(() => '');
      /** Per message, its slot parts stored so far as "mid=channel,..." (the record's earlier parts). */
      const earlier: string[] = messages.map(() => '');
      let bound = '';
      let ran = 0;
      let replayed = 0;
      // Slot parts still to run, in order; each call takes the first one and every later one its
      // master serves (one atomic call per master, CLUSTER_NODE_PART_SCRIPT).
      let remaining = [...parts].map(([slot, list]) => ({ slot, list }));
      for (let attempt = 0; remaining.length > 0; ) {
        const node = slotMaster((remaining[0] as { slot: number }).slot);
        const batch = remaining.filter((sp) => slotMaster(sp.slot) === node);
        const msgArgs: Array<string | number> = [];
        const slotArgs: Array<string | number> = [];
        const position = new Map<number, number>();
        let weight = 0;
        for (const { slot, list } of batch) {
          const first = (list[0] as { channels: string[] }).channels[0] as string;
          slotArgs.push(slotText(slot), idKey === '' ? '' : partKey(idKey, first), list.length);
          for (const { index, channels } of list) {
            let at = position.get(index);
            if (at === undefined) {
              at = position.size + 1;
              position.set(index, at);
              const m = messages[index] as NewMessage;
              msgArgs.push(m.ttl, encodeRecordTail(m.ttl, m.type, sender, '').slice(0, -1), earlier[index] as string, m.body);
            }
            weight += (messages[index] as NewMessage).body.length * channels.length;
            slotArgs.push(at, channels.length, ...channels);
          }
        }
        const args: Array<string | number> = [p, opts.historyLimit, writeMs, keepS, bound, fingerprint, windowS, position.size, ...msgArgs, batch.length, ...slotArgs];
        const head = batch[0] as { slot: number; list: Array<{ index: number; channels: string[] }> };
        const keys = partKeys(
          head.list.flatMap((x) => x.channels),
          idKey === '' ? '' : partKey(idKey, (head.list[0] as { channels: string[] }).channels[0] as string),
        );
        let out: PartReply | 'moved';
        try {
          out = await runPart(node, keys, args, weight, attempt);
        } catch (err) {
          if (ran > 0 || replayed > 0 || outcomeUnknown(err)) throw new PushError(Errors.OUTCOME_UNKNOWN, `${(err as Error).message}.`);
          // Certainly not run, and nothing before it: the request stored nothing, its identity stays unused.
          if (claimed === 'new') await pub.pushReleaseClaim(1, idKey, fingerprint).catch(() => 0);
          throw err;
        }
        if (out === 'moved') {
          // Nothing of the call ran: the slot map is read again and the parts grouped anew.
          attempt++;
          continue;
        }
        if (out[0] !== 'ok') {
          const reason = out[1] as string;
          if (reason === NOT_REPLICATED) throw new PushError(Errors.NOT_REPLICATED);
          // Refused before writing: nothing of the request is stored if this was its first call.
          if (ran === 0 && replayed === 0 && claimed === 'new') await pub.pushReleaseClaim(1, idKey, fingerprint).catch(() => 0);
          if (ran > 0 || replayed > 0) throw new PushError(Errors.OUTCOME_UNKNOWN, `Part of the publish was stored, another refused (${reason}).`);
          if (reason === CONFLICT_REPLY) throw new PushError(Errors.REQUEST_ID_CONFLICT);
          if (reason.startsWith(EXPIRED_REPLY)) throw new PushError(Errors.CHANNEL_EXPIRED, `Expired: ${reason.slice(EXPIRED_REPLY.length).trim().split(' ').join(', ')}.`);
          throw new Error(`publish part script: unexpected reply ${reason}`);
        }
        let at = 1;
        for (const { list } of batch) {
          if (out[at++] === 'ran') ran++;
          else replayed++;
          for (const { index, channels } of list) {
            const mid = out[at++] as string;
            if (firstId[index] === '') firstId[index] = mid;
            for (const c of channels) {
              (ids[index] as Record<string, string>)[c] = mid;
              earlier[index] = `${earlier[index] === '' ? '' : `${earlier[index]},`}${mid}=${c}`;
            }
            if (mid > bound) bound = mid;
          }
        }
        remaining = remaining.filter((sp) => !batch.includes(sp));
      }
      const result = firstId as PublishedIds & { replayed?: true; parts?: ReadonlyArray<Readonly<Record<string, string>>> };
      if (replayed > 0 && ran === 0) Object.assign(result, { replayed: true as const });
      if (parts.size > 1) Object.assign(result, { parts: ids });
      return result;
    },

    /**
     * One script per slot, merged: each message once (a message on several of the channels is
     * returned under its smallest id; a later part naming a requested channel among its earlier
     * ones is dropped), oldest first.
     */
    async history(channels: readonly string[], after: string | null): Promise<HistoryResult> {
      await connected();
      const groups = [...bySlot(channels.map((c, i) => ({ c, i })), (x) => x.c).values()];
      const outs = await Promise.all(groups.map((g) => cmd.pushHistory(4 * g.length, ...g.map((x) => `${p}h:{${x.c}}`), ...g.flatMap((x) => [`${p}ch:{${x.c}}`, `${p}g:{${x.c}}`, `${p}i:{${x.c}}`]), p, after ?? '')));
      const wantedSet = new Set(channels);
      const created: Array<number | null> = channels.map(() => null);
      const gaps: HistoryGap[][] = channels.map(() => []);
      const byMid = new Map<string, StoredMessage>();
      let newest = '';
      let floor = '';
      let now = 0;
      for (const [gi, g] of groups.entries()) {
        const out = outs[gi] as string[];
        const n = g.length;
        if ((out[0] ?? '') > newest) newest = out[0] as string;
        now = Math.max(now, Number(out[1]));
        for (const [k, { c, i }] of g.entries()) {
          const v = out[2 + k] ?? '';
          created[i] = v === '' ? null : Number(v);
          gaps[i] = historyGap(c, out[2 + n + k] ?? '', out[2 + 2 * n + k] ?? '');
        }
        // The cursor must be below every later id on every channel: the lowest group floor (every
        // group reports its floor; it is the cursor only when no group has a newest message).
        const f = out[2 + 3 * n] ?? '';
        if (f !== '' && (floor === '' || f < floor)) floor = f;
        for (let j = 3 + 3 * n; j < out.length; j++) {
          const msg = decodeRecord(out[j] as string);
          if (msg !== null) byMid.set(msg.mid, msg);
        }
      }
      // Several slot groups are read by several scripts, not at one instant: a message stored on one
      // shard after its read can have a smaller id than one another, later read returned. Handing
      // out the later one would move the reader's cursor past the other, which then arrives live
      // below the cursor and is dropped (a long poll never sees it). So the result stops at the
      // lowest group floor: every id at or below it was stored before its group's read (each floor
      // is below every id issued after that read), so up to it the result is complete; what lies
      // above was stored after the earliest read began, after the reader subscribed, and arrives
      // live (or in the next poll's read).
      if (groups.length > 1 && floor !== '') {
        for (const mid of [...byMid.keys()]) if (mid > floor) byMid.delete(mid);
        if (newest > floor) newest = floor;
      }
      // A later part is the same message as its earlier part on a requested channel: drop it when
      // that part is returned too or the reader already had it (at or below the cursor). When the
      // earlier part is gone (cap, TTL) the later one is what is left of the message.
      const had = (e: EarlierPart): boolean => wantedSet.has(e.channel) && (byMid.has(e.mid) || (after !== null && e.mid <= after));
      const messages = [...byMid.values()].filter((m) => m.earlier === undefined || !m.earlier.some(had)).sort((a, b) => (a.mid < b.mid ? -1 : 1));
      const newestMid = newest === '' ? null : newest;
      return { messages, gaps: gaps.flat(), newestMid, floorMid: newestMid === null && floor !== '' ? floor : null, channelTimes: { now, created } };
    },

    async ping(): Promise<void> {
      // Every connection is checked and every one that fails is named, not only the first.
      const checks = await Promise.allSettled([connected().then(() => mastersAnswer(cmd, 'push-cmd', 'command connection')), pubConnected().then(() => mastersAnswer(pub, 'push-pub', 'publish connection'))]);
      const failed = checks.flatMap((c) => (c.status === 'rejected' ? [(c.reason as Error).message] : []));
      if (failed.length > 0) throw new Error(failed.join('; '));
    },
  };


  return {
    kind: 'redis',
    store,
    presence: {
      async touch(channels: readonly string[]): Promise<void> {
        if (channels.length === 0) return;
        await connected();
        const touchArgs = (g: readonly string[]): Array<string | number> => {
          const seen = g.filter(isLastSeenKey).map((c) => `${p}ls:{${c}}`);
          return [g.length + seen.length, ...g.map((c) => `${p}o:{${c}}`), ...seen, opts.onlineTtlSeconds, g.length, LAST_SEEN_KEEP_S];
        };
        // One script per slot, sent as one pipeline per master (a listener refreshes thousands of
        // channels, mostly one per slot: one write per node instead of one per slot). The library
        // does not redirect inside a pipeline: a slot that failed there is sent again on its own.
        const byNode = new Map<string, string[][]>();
        for (const g of bySlot(channels, (c) => c).values()) {
          const node = (cmd as unknown as { slots: Array<string[] | undefined> }).slots[channelSlot(g[0] as string)]?.[0] ?? '';
          const list = byNode.get(node);
          if (list === undefined) byNode.set(node, [g]);
          else list.push(g);
        }
        await Promise.all(
          [...byNode.values()].map(async (groups) => {
            const pipe = cmd.pipeline() as unknown as { pushPresenceTouch(...a: Array<string | number>): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> };
            for (const g of groups) pipe.pushPresenceTouch(...touchArgs(g));
            const res = await pipe.exec().catch(() => null);
            const failed = groups.filter((_, i) => res === null || (res[i]?.[0] ?? new Error('no reply')) !== null);
            await Promise.all(failed.map((g) => cmd.pushPresenceTouch(...(touchArgs(g) as [number, ...Array<string | number>]))));
          }),
        );
      },
      async lastSeen(channels: readonly string[]): Promise<Array<number | null>> {
        if (!channels.some(isLastSeenKey)) return channels.map(() => null);
        await connected();
        return Promise.all(
          channels.map(async (c) => {
            if (!isLastSeenKey(c)) return null;
            const v = await cmd.get(`${p}ls:{${c}}`);
            return v === null ? null : Number(v);
          }),
        );
      },
      async online(channels: readonly string[]): Promise<boolean[]> {
        if (channels.length === 0) return [];
        await connected();
        return Promise.all(channels.map(async (c) => (await cmd.exists(`${p}o:{${c}}`)) === 1));
      },
    },
    channels: {
      async create(channels: readonly string[]): Promise<ChannelTimes> {
        return channelTimes(channels, '1');
      },
      async times(channels: readonly string[]): Promise<ChannelTimes> {
        return channelTimes(channels, '0');
      },
      async expireNotice(channel: string, body: string): Promise<ExpireNotice> {
        await pubConnected();
        const tail = encodeRecordTail(0, 'pull_channel_expire', BACKEND_SENDER, body).slice(2);
        const keys = [createdKey(channel), `${p}x:{${channel}}`, `${p}h:{${channel}}`, `${p}i:{${channel}}`, `${p}g:{${channel}}`];
        const out = await pub.pushExpireNotice(keys.length, ...keys, p, channel, writeMs, readMs, keepS, opts.historyLimit, tail, slotText(channelSlot(channel)));
        if (out[0] === 'early') return { kind: 'early', inMs: Number(out[1]) };
        if (out[0] === 'stored') {
          const message = decodeRecord(out[1] as string);
          if (message !== null) return { kind: 'stored', message };
        }
        return { kind: 'none' };
      },
    },
    replay: {
      async claim(keyId: string, nonce: string, timestamp: number, maxSkewS: number): Promise<NonceClaim> {
        await connected();
        return cmd.pushClaimNonce(1, `${p}n:${keyId}:${nonce}`, timestamp, maxSkewS);
      },
    },
    stats: redisStatsRegistry(cmd, p, connected, opts.statsStaleMs),
    clients: redisClientRegistry(cmd, p, connected),
    connectionStalls(): Readonly<Record<string, number>> {
      let sub = 0;
      for (const b of brokers) sub += b.health().stalls;
      return { ...stallCounts, 'push-sub': sub };
    },
    createBroker(): Broker {
      const b = new ClusterBroker();
      brokers.add(b);
      return b;
    },
    async close(): Promise<void> {
      closing = true;
      for (const b of [...brokers]) await b.close();
      for (const probe of nodeProbes) probe.stop();
      cmd.disconnect(false);
      pub.disconnect(false);
    },
  };

  /**
   * Remembers until when (this process's monotonic clock) a channel is certainly inside its write
   * window, from a read of its creation time: `created + window` on the shard's clock, counted from
   * when the read was sent (the shard read its clock after that, so this is early, never late),
   * less a margin for clocks that drift apart. A channel not created yet can only be created later,
   * so its window ends at least a whole window after the read. A creation time never moves earlier
   * (ch: is set once, and after it expires a new one is later), so the bound stays true.
   */
  function learnWritable(channel: string, sentAt: number, shardNow: number, created: number | null): void {
    if (channel.includes(':')) return;
    const until = sentAt + (created === null ? writeMs : created + writeMs - shardNow) - writableMarginMs;
    if (until <= sentAt) return;
    writableUntil.delete(channel);
    writableUntil.set(channel, until);
    if (writableUntil.size > WRITABLE_CACHE_MAX) {
      // Oldest learned first (a Map iterates in insertion order): drop a tenth.
      let drop = Math.ceil(WRITABLE_CACHE_MAX / 10);
      for (const k of writableUntil.keys()) {
        if (drop-- <= 0) break;
        writableUntil.delete(k);
      }
    }
  }

  async function channelTimes(channels: readonly string[], create: '0' | '1'): Promise<ChannelTimes> {
    await connected();
    const groups = [...bySlot(channels.map((c, i) => ({ c, i })), (x) => x.c).values()];
    const created: Array<number | null> = channels.map(() => null);
    let now = 0;
    const sentAt = performance.now();
    const outs = await Promise.all(groups.map((g) => cmd.pushChannelTimes(g.length, ...g.map((x) => createdKey(x.c)), create, String(keepS))));
    if (groups.length === 0) {
      const [s, us] = (await cmd.time()) as unknown as [string, string];
      now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    }
    for (const [gi, g] of groups.entries()) {
      const t = toTimes(outs[gi] as string[]);
      now = Math.max(now, t.now);
      for (const [k, { c, i }] of g.entries()) {
        created[i] = t.created[k] ?? null;
        learnWritable(c, sentAt, t.now, created[i] ?? null);
      }
    }
    return { now, created };
  }
}
