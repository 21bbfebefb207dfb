import { parse, type Scenario } from '../options.js';
import { runFanout } from './fanout-scenario.js';

/**
 * `private`: every publish goes to 10 private channels (personal notifications, chat messages),
 * channels have one or two devices each (alternating), half of the WebSocket clients ask for
 * protobuf frames as version-4 clients do. Target: 150,000 deliveries/s sustained, p99 < 25 ms
 * at half that rate, nothing lost.
 */
export const privateScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { channels: '5000', fanout: '10', 'binary-share': '0.5', lanes: '1', 'nchan-lanes': '32', batch: '200', 'tick-ms': '0', 'start-rate': '2000', factor: '1.4', 'max-steps': '12', refine: '2', 'max-rate': '1000000' });
  return runFanout(
    {
      scenario: 'private',
      transport: 'ws',
      compareNchan: true,
      channels: o.num('channels'),
      devices: (c) => (c % 2 === 0 ? 2 : 1),
      fanout: o.num('fanout'),
      binaryShare: o.num('binary-share'),
      lanes: { push: o.num('lanes'), nchan: o.num('nchan-lanes') },
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
