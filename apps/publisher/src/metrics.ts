import { Counter, Histogram, createCommonMetrics, type CommonMetrics } from '@push/runtime';

/** Publisher metrics; names are documented with alert advice in docs/operations.md. */
export interface PublisherMetrics extends CommonMetrics {
  /**
   * Publishing requests (portal publishes in every form and client `/bitrix/rest/` publishes) by
   * outcome: ok, rejected (4xx), unavailable (Redis down, 503 4109), unknown (no answer from Redis
   * in time, 504 4134), draining (503).
   */
  readonly requests: Counter<'result'>;
  /** From request start to the 200 (body read, validation, Redis script). */
  readonly publishDuration: Histogram;
}

export function createPublisherMetrics(): PublisherMetrics {
  const common = createCommonMetrics('publisher');
  const registers = [common.registry];
  return {
    ...common,
    requests: new Counter({ name: 'push_publish_requests_total', help: 'Publish requests by result.', labelNames: ['result'], registers }),
    publishDuration: new Histogram({
      name: 'push_publish_duration_seconds',
      help: 'Time from publish request to acknowledgement.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
}

