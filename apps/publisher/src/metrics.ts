import type { Store } from '@push/backend';
import { Counter, Histogram, createCommonMetrics, timed, type CommonMetrics } from '@push/runtime';

/** Publisher metrics; names are documented with alert advice in docs/operations.md. */
export interface PublisherMetrics extends CommonMetrics {
  /** Publish requests by outcome: ok, rejected (4xx), unavailable (Redis down, 503), draining (503). */
  readonly requests: Counter<'result'>;
  /** Accepted messages: stored (TTL > 0, resumable by mid) or live (expiry 0, delivered only to who is connected). */
  readonly messages: Counter<'storage'>;
  /** From request start to the 200 (body read, validation, Redis script). */
  readonly publishDuration: Histogram;
}

export function createPublisherMetrics(): PublisherMetrics {
  const common = createCommonMetrics('publisher');
  const registers = [common.registry];
  return {
    ...common,
    requests: new Counter({ name: 'push_publish_requests_total', help: 'Publish requests by result.', labelNames: ['result'], registers }),
    messages: new Counter({ name: 'push_messages_published_total', help: 'Messages accepted, by storage (stored = kept for resume, live = expiry 0).', labelNames: ['storage'], registers }),
    publishDuration: new Histogram({
      name: 'push_publish_duration_seconds',
      help: 'Time from publish request to acknowledgement.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
}

/** The same store, with every Redis round trip timed. */
export function instrumentStore(store: Store, m: CommonMetrics): Store {
  return {
    publish: (messages, sender) => timed(m.redisDuration, 'publish', () => store.publish(messages, sender)),
    history: (channels, after) => timed(m.redisDuration, 'history', () => store.history(channels, after)),
    ping: () => store.ping(),
  };
}
