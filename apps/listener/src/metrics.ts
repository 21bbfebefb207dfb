import type { Broker, BrokerHealth } from '@push/backend';
import { Gauge, Histogram, createCommonMetrics, mirroredCounter, timed, type CommonMetrics } from '@push/runtime';
import type { HubCounters } from './hub.js';

/** Listener metrics; names are documented with alert advice in docs/operations.md. */
export interface ListenerMetrics extends CommonMetrics {
  /** Time from the store accepting a message (Redis TIME) to this listener receiving it. */
  readonly pubsubLag: Histogram;
}

export interface ListenerGauges {
  /** The broker's subscription state (read at scrape time). */
  readonly subscriptions: () => BrokerHealth;
  readonly websockets: () => number;
  readonly longPolls: () => number;
  readonly channels: () => number;
  readonly counters: HubCounters;
}

export function createListenerMetrics(): ListenerMetrics {
  const common = createCommonMetrics('listener');
  return {
    ...common,
    pubsubLag: new Histogram({
      name: 'push_pubsub_lag_seconds',
      help: 'Delay from the store accepting a message to this listener receiving it from Redis pub/sub.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [common.registry],
    }),
  };
}

/**
 * Connection and delivery figures, read from the hub and the transports' sets at scrape time so
 * the per-message hot path only bumps plain numbers.
 */
export function registerListenerGauges(m: ListenerMetrics, g: ListenerGauges): void {
  const registers = [m.registry];
  new Gauge({
    name: 'push_connections',
    help: 'Open subscriber connections by transport (ws = WebSocket, lp = parked long poll).',
    labelNames: ['transport'],
    registers,
    collect() {
      this.set({ transport: 'ws' }, g.websockets());
      this.set({ transport: 'lp' }, g.longPolls());
    },
  });
  new Gauge({ name: 'push_channels', help: 'Channels with at least one local subscriber.', registers, collect() { this.set(g.channels()); } });
  new Gauge({
    name: 'push_pubsub_connections',
    help: 'Redis subscriber connections by state (up = carrying its subscriptions; down = connecting, stalled or resubscribing; readiness is 503 while any is down).',
    labelNames: ['state'],
    registers,
    collect() {
      const h = g.subscriptions();
      this.set({ state: 'up' }, h.connections - h.down);
      this.set({ state: 'down' }, h.down);
    },
  });
  mirroredCounter(m.registry, 'push_pubsub_stalls_total', 'Subscriber connections found open but silent for PUSH_PUBSUB_STALL_MS and reconnected (each is then refilled from history).', () => g.subscriptions().stalls);
  const c = g.counters;
  new Gauge({ name: 'push_coalesce_window_seconds', help: 'Current load-adaptive coalescing window (0 = flushing in the next event-loop turn).', registers, collect() { this.set(c.coalesceWindowMs / 1000); } });
  mirroredCounter(m.registry, 'push_messages_received_total', 'Messages received from Redis pub/sub (once per subscribed channel).', () => c.received);
  mirroredCounter(m.registry, 'push_messages_delivered_total', 'Messages written to subscriber connections (one per connection).', () => c.delivered);
  mirroredCounter(m.registry, 'push_frames_sent_total', 'Socket writes (several coalesced messages make one).', () => c.frames);
  mirroredCounter(m.registry, 'push_bytes_out_total', 'Payload bytes written to subscribers.', () => c.bytesOut);
  mirroredCounter(m.registry, 'push_messages_dropped_total', 'Messages not written because the connection was already gone (the client resumes by mid).', () => c.dropped);
  mirroredCounter(m.registry, 'push_resume_truncated_total', 'Resumes told that messages after their cursor are gone (pull/history_gap: history cap or TTL).', () => c.truncatedResumes);
  mirroredCounter(m.registry, 'push_slow_consumer_closes_total', 'WebSockets closed because they could not keep up (4110).', () => c.slowConsumerCloses);
}


/** The same broker, with (un)subscribe round trips timed and the pub/sub lag of every message observed. */
export function instrumentBroker(broker: Broker, m: ListenerMetrics): Broker {
  // Observed once per message: a message to several channels arrives once per channel, back to
  // back, all with the same lag (a histogram observation per copy showed in the listener's profile).
  let lastMid = '';
  return {
    setHandler: (handler) =>
      broker.setHandler((channel, msg) => {
        if (msg.mid !== lastMid) {
          lastMid = msg.mid;
          m.pubsubLag.observe(Math.max(0, Date.now() - msg.createdMs) / 1000);
        }
        handler(channel, msg);
      }),
    onResync: (handlers) => broker.onResync(handlers),
    subscribe: (channels) => timed(m.redisDuration, 'subscribe', () => broker.subscribe(channels)),
    unsubscribe: (channels) => timed(m.redisDuration, 'unsubscribe', () => broker.unsubscribe(channels)),
    health: () => broker.health(),
    close: () => broker.close(),
  };
}
