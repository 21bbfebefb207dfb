import { parse, type Scenario } from '../options.js';
import { parsePublishAuth, PUBLISH_OPTIONS, runFanout } from './fanout-scenario.js';
import { parseShape } from '../publish-shape.js';

/**
 * `broadcast`: one shared channel with 10,000 subscribers (presence lists, portal-wide events).
 * One publishing lane keeps the channel's order. One message per request (`--shape text|binary`),
 * unsigned from a trusted address as nchan's; `--shape batch` sends up to `--batch` per request. Target: 1,000,000 deliveries/s with coalesced
 * frames, nothing lost.
 */
export const broadcastScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { ...PUBLISH_OPTIONS, subscribers: '10000', 'binary-share': '0', batch: '50', 'tick-ms': '0', 'start-rate': '20', factor: '1.25', 'max-steps': '16', refine: '2', 'max-rate': '100000' });
  return runFanout(
    {
      scenario: 'broadcast',
      transport: 'ws',
      compareNchan: true,
      channels: 1,
      devices: () => o.num('subscribers'),
      fanout: 1,
      binaryShare: o.num('binary-share'),
      lanes: { push: 1, nchan: 1 },
      publishShape: parseShape(o.str('shape')),
      publishAuth: parsePublishAuth(o.str('publish-auth')),
      batch: o.num('batch'),
      tickMs: o.num('tick-ms'),
      startRate: o.num('start-rate'),
      factor: o.num('factor'),
      maxSteps: o.num('max-steps'),
      maxRate: o.num('max-rate'),
      refine: o.num('refine'),
      targets: { deliveriesPerSec: 1_000_000, p99Ms: null },
    },
    o,
    log,
  );
};
