import { parse, type Scenario } from '../options.js';
import { lanesFor, parsePublishAuth, PUBLISH_OPTIONS, runFanout } from './fanout-scenario.js';
import { parseShape } from '../publish-shape.js';

/**
 * `private`: every publish goes to 10 private channels (personal notifications, chat messages),
 * channels have one or two devices each (alternating), half of the WebSocket clients ask for
 * protobuf frames as version-4 clients do. Publishing is one message per request as portals send
 * it (`--shape text`, or `binary` for protocol 4) on 32 lanes, unsigned from a trusted address as
 * nchan's; `--shape batch` is the labelled batch variant (`--batch` messages per request, 1 lane
 * unless `--lanes`). Target: 150,000 deliveries/s sustained, p99 < 25 ms
 * at half that rate, nothing lost.
 */
export const privateScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { channels: '5000', fanout: '10', 'binary-share': '0.5', ...PUBLISH_OPTIONS, lanes: 'auto', 'nchan-lanes': 'auto', batch: '200', 'tick-ms': '0', 'start-rate': '2000', factor: '1.4', 'max-steps': '12', refine: '2', 'max-rate': '1000000' });
  const shape = parseShape(o.str('shape'));
  // Lanes own disjoint slices of at least `fanout` channels each.
  const maxLanes = Math.floor(o.num('channels') / o.num('fanout'));
  return runFanout(
    {
      scenario: 'private',
      transport: 'ws',
      compareNchan: true,
      channels: o.num('channels'),
      devices: (c) => (c % 2 === 0 ? 2 : 1),
      fanout: o.num('fanout'),
      binaryShare: o.num('binary-share'),
      lanes: { push: lanesFor(o.str('lanes'), shape, maxLanes), nchan: lanesFor(o.str('nchan-lanes'), 'text', maxLanes) },
      publishShape: shape,
      publishAuth: parsePublishAuth(o.str('publish-auth')),
      batch: o.num('batch'),
      tickMs: o.num('tick-ms'),
      startRate: o.num('start-rate'),
      factor: o.num('factor'),
      maxSteps: o.num('max-steps'),
      maxRate: o.num('max-rate'),
      refine: o.num('refine'),
      targets: { deliveriesPerSec: 150_000, p99Ms: 25 },
    },
    o,
    log,
  );
};
