import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { BACKEND_SENDER, Errors, type EarlierPart, PushError, decodeRecord, encodeRecordTail, publishFingerprint, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import type { Logger, RedisHostPort, RedisTarget } from '@push/runtime';
import { redisOptions, retryStrategy } from './redis-connect.js';
import { CLAIM_NONCE_SCRIPT, CHANNEL_TIMES_SCRIPT, PRESENCE_TOUCH_SCRIPT } from './redis-scripts.js';
import { CLUSTER_CLAIM_PUBLISH_SCRIPT, CLUSTER_EXPIRE_NOTICE_SCRIPT, CLUSTER_HISTORY_SCRIPT, CLUSTER_PART_SCRIPT, CLUSTER_RELEASE_CLAIM_SCRIPT } from './redis-cluster-scripts.js';
import { CONFLICT_REPLY, EXPIRED_REPLY, NOT_REPLICATED, outcomeUnknown, toTimes, withTimeout, type RedisBackendOptions } from './redis-backend.js';
import { DEFAULT_CHANNEL_READ_MS, DEFAULT_CHANNEL_WRITE_MS, DEFAULT_PUBSUB_STALL_MS, LAST_SEEN_KEEP_S, channelRetentionS, isLastSeenKey, type Backend, type Broker, type BrokerHealth, type HistoryGap, type HistoryResult, type MessageHandler, type PublishedIds, type ResyncHandlers } from './types.js';
import { historyGap } from './history-gap.js';
import { ConnectionProbe } from './connection-probe.js';
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

type PartReply = ['ok', ...string[]] | ['dup', string] | ['err', string];

/** Answers that send a command elsewhere or ask for it again: the command did not run. */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;

type ScriptCluster = Cluster & {
  pushPart(numKeys: number, ...args: Array<string | number>): Promise<PartReply>;
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

function clusterOptions(target: ClusterTarget, extra: RedisOptions): ClusterOptions {
  return {
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
  const cmd = new Cluster(seedNodes(target), clusterOptions(target, { commandTimeout, connectionName: 'push-cmd', autoResendUnfulfilledCommands: false })) as ScriptCluster;
  cmd.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis cluster command connection error'));
  // Publishes have their own connections (their timeout is the publish wait), as on one Redis.
  const pub = new Cluster(seedNodes(target), clusterOptions(target, { commandTimeout: publishTimeout, connectionName: 'push-pub', autoResendUnfulfilledCommands: false })) as ScriptCluster;
  pub.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis cluster publish connection error'));
  for (const c of [cmd, pub]) {
    c.defineCommand('pushPart', { lua: CLUSTER_PART_SCRIPT });
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
  const writeMs = opts.channelWriteMs ?? DEFAULT_CHANNEL_WRITE_MS;
  const readMs = opts.channelReadMs ?? DEFAULT_CHANNEL_READ_MS;
  const keepS = channelRetentionS(readMs);
  const createdKey = (ch: string): string => `${p}ch:{${ch}}`;
  const replicaTimeout = opts.replicaTimeoutMs ?? 1000;
  const wanted = opts.replicas ?? 1;

  /**
   * Runs one part; with replicated durability WAIT follows on the same node connection (one
   * pipeline). The client library follows redirections for single commands but not for this
   * pipeline: a redirection or TRYAGAIN means the script did not run, so the part is sent again on
   * a refreshed slot map (a slot that moved, or one in the middle of moving), for up to about 3 s.
   */
  const runPart = async (keys: readonly string[], args: Array<string | number>): Promise<PartReply> => {
    if (opts.durability !== 'replicated') return pub.pushPart(keys.length, ...keys, ...args);
    for (let attempt = 0; ; attempt++) {
      const res = await (pub.pipeline() as unknown as { pushPart(...a: Array<string | number>): { wait(n: number, ms: number): { exec(): Promise<Array<[Error | null, unknown]> | null> } } })
        .pushPart(keys.length, ...keys, ...args)
        .wait(wanted, replicaTimeout)
        .exec();
      const [[err1, out] = [null, null], [err2, replicas] = [null, 0]] = res ?? [];
      if (err1 !== null) {
        if (attempt < 30 && REDIRECTED.test(err1.message)) {
          await new Promise<void>((resolve) => pub.refreshSlotsCache(() => resolve()));
          await new Promise((r) => setTimeout(r, attempt === 0 ? 0 : 100));
          continue;
        }
        throw err1;
      }
      if (err2 !== null) throw err2;
      const reply = out as PartReply;
      return (replicas as number) >= wanted || reply[0] !== 'ok' ? reply : ['err', NOT_REPLICATED];
    }
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
      const [host, portText] = [key.slice(0, key.lastIndexOf(':')), key.slice(key.lastIndexOf(':') + 1)];
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
   * Every key a part script may touch, declared (the script builds the same names): while its slot
   * migrates (reshard), Redis then answers ASK or TRYAGAIN for a half-moved key set instead of
   * letting the script read a missing floor or identity on the old node and write keys there that
   * the migration would then collide with.
   */
  const channelKeys = (ch: string): string[] => [`${p}h:{${ch}}`, `${p}i:{${ch}}`, `${p}ch:{${ch}}`, `${p}g:{${ch}}`];
  const partKeys = (channels: readonly string[], identityKey: string): string[] => [...[...new Set(channels)].flatMap(channelKeys), ...(identityKey === '' ? [] : [identityKey])];
  /** The identity key of one part: in the part's slot (the tag of one of its channels). */
  const partKey = (identityKey: string, channel: string): string => `${p}p:{${channel}}:${identityKey.slice(p.length)}`;

  const store = {
    /**
     * Slot by slot, in the order the messages first name each slot. Each part is one script call,
     * atomic on its shard, whose ids are above those of the request's earlier parts (so a message
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
      // Parts are atomic one by one, not together: a channel past its write window on one shard
      // must refuse the request before another shard stores its part (the part script checks
      // again, atomically, for the rare channel whose window ends in between).
      if (parts.size > 1) {
        const plain = [...new Set(messages.flatMap((m) => m.channels))].filter((c) => !c.includes(':'));
        const times = await channelTimes(plain, '0');
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
        const claim = await pub.pushClaimPublish(1, idKey, fingerprint, windowS, 'nonce' in identity ? identity.timestamp : '', 'nonce' in identity ? identity.maxSkewS : '');
        if (claim === 'stale') throw new PushError(Errors.AUTH_STALE);
        if (claim === 'replay') throw new PushError(Errors.AUTH_REPLAY);
        if (claim === 'conflict') throw new PushError(Errors.REQUEST_ID_CONFLICT);
        claimed = claim;
      }
      const ids: Array<Record<string, string>> = messages.map(() => ({}));
      const firstId: string[] = messages.map(() => '');
      const before: EarlierPart[][] = messages.map(() => []);
      let bound = '';
      let ran = 0;
      let replayed = 0;
      for (const [slot, list] of parts) {
        const first = (list[0] as { channels: string[] }).channels[0] as string;
        const args: Array<string | number> = [p, opts.historyLimit, writeMs, keepS, slotText(slot), bound, idKey === '' ? '' : partKey(idKey, first), fingerprint, windowS, list.length];
        for (const { index, channels } of list) {
          const m = messages[index] as NewMessage;
          args.push(m.ttl, encodeRecordTail(m.ttl, m.type, sender, m.body, before[index]), channels.length, ...channels);
        }
        let out: PartReply;
        try {
          out = await runPart(partKeys(list.flatMap((x) => x.channels), args[6] as string), args);
        } catch (err) {
          if (ran > 0 || replayed > 0 || outcomeUnknown(err)) throw new PushError(Errors.OUTCOME_UNKNOWN, `${(err as Error).message}.`);
          // Certainly not run, and nothing before it: the request stored nothing, its identity stays unused.
          if (claimed === 'new') await pub.pushReleaseClaim(1, idKey, fingerprint).catch(() => 0);
          throw err;
        }
        let mids: string[];
        if (out[0] === 'ok') mids = out.slice(1);
        else if (out[0] === 'dup') {
          mids = out[1].split(' ');
          replayed++;
        } else {
          const reason = out[1];
          if (reason === NOT_REPLICATED) throw new PushError(Errors.NOT_REPLICATED);
          // Refused before writing: nothing of the request is stored if this was its first part.
          if (ran === 0 && replayed === 0 && claimed === 'new') await pub.pushReleaseClaim(1, idKey, fingerprint).catch(() => 0);
          if (ran > 0 || replayed > 0) throw new PushError(Errors.OUTCOME_UNKNOWN, `Part of the publish was stored, another refused (${reason}).`);
          if (reason === CONFLICT_REPLY) throw new PushError(Errors.REQUEST_ID_CONFLICT);
          if (reason.startsWith(EXPIRED_REPLY)) throw new PushError(Errors.CHANNEL_EXPIRED, `Expired: ${reason.slice(EXPIRED_REPLY.length).trim().split(' ').join(', ')}.`);
          throw new Error(`publish part script: unexpected reply ${reason}`);
        }
        if (out[0] === 'ok') ran++;
        for (const [k, { index, channels }] of list.entries()) {
          const mid = mids[k] as string;
          if (firstId[index] === '') firstId[index] = mid;
          for (const c of channels) (ids[index] as Record<string, string>)[c] = mid;
          for (const c of channels) (before[index] as EarlierPart[]).push({ channel: c, mid });
          if (mid > bound) bound = mid;
        }
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
        // The cursor must be below every later id on every channel: the lowest group floor.
        const f = out[2 + 3 * n] ?? '';
        if (f !== '' && (floor === '' || f < floor)) floor = f;
        for (let j = 3 + 3 * n; j < out.length; j++) {
          const msg = decodeRecord(out[j] as string);
          if (msg !== null) byMid.set(msg.mid, msg);
        }
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
      await connected();
      await pubConnected();
      await cmd.ping();
      await pub.ping();
    },
  };

  /** Runs `fn` once per slot group of `channels`, in parallel. */
  const perSlot = async <T>(channels: readonly string[], fn: (group: string[]) => Promise<T>): Promise<T[]> => Promise.all([...bySlot(channels, (c) => c).values()].map(fn));

  return {
    kind: 'redis',
    store,
    presence: {
      async touch(channels: readonly string[]): Promise<void> {
        if (channels.length === 0) return;
        await connected();
        await perSlot(channels, (g) => {
          const seen = g.filter(isLastSeenKey).map((c) => `${p}ls:{${c}}`);
          return cmd.pushPresenceTouch(g.length + seen.length, ...g.map((c) => `${p}o:{${c}}`), ...seen, opts.onlineTtlSeconds, g.length, LAST_SEEN_KEEP_S);
        });
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
    // Only the per-master subscription connections are probed here; the command and publish
    // connections belong to the client library's Cluster object (a silent one of those shows as
    // commands timing out, not as a counted stall).
    connectionStalls(): Readonly<Record<string, number>> {
      let sub = 0;
      for (const b of brokers) sub += b.health().stalls;
      return { 'push-sub': sub };
    },
    createBroker(): Broker {
      const b = new ClusterBroker();
      brokers.add(b);
      return b;
    },
    async close(): Promise<void> {
      for (const b of [...brokers]) await b.close();
      cmd.disconnect(false);
      pub.disconnect(false);
    },
  };

  async function channelTimes(channels: readonly string[], create: '0' | '1'): Promise<ChannelTimes> {
    await connected();
    const groups = [...bySlot(channels.map((c, i) => ({ c, i })), (x) => x.c).values()];
    const created: Array<number | null> = channels.map(() => null);
    let now = 0;
    const outs = await Promise.all(groups.map((g) => cmd.pushChannelTimes(g.length, ...g.map((x) => createdKey(x.c)), create, String(keepS))));
    if (groups.length === 0) {
      const [s, us] = (await cmd.time()) as unknown as [string, string];
      now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    }
    for (const [gi, g] of groups.entries()) {
      const t = toTimes(outs[gi] as string[]);
      now = Math.max(now, t.now);
      for (const [k, { i }] of g.entries()) created[i] = t.created[k] ?? null;
    }
    return { now, created };
  }
}
