import { parse, type Scenario } from '../options.js';
import { parsePublishAuth, runFanout } from './fanout-scenario.js';
import { parseShape } from '../publish-shape.js';

/**
 * `longpoll`: 5,000 long-poll clients, each on its own channel, each answering a 200 by polling
 * again with the mid of the last message it got (a 304 with Last-Message-Id), half of them in
 * protobuf mode (no peer compared: the batch shape, signed, unless `--shape`/`--publish-auth`). Anything published between two polls must come from history: nothing may be lost.
 */
export const longpollScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { shape: 'batch', 'publish-auth': 'ed25519', clients: '5000', 'binary-share': '0.5', lanes: '8', batch: '50', 'tick-ms': '0', 'start-rate': '1000', factor: '1.4', 'max-steps': '10', refine: '2', 'max-rate': '200000' });
  return runFanout(
    {
      scenario: 'longpoll',
      transport: 'lp',
      compareNchan: false,
      channels: o.num('clients'),
      devices: () => 1,
      fanout: 1,
      binaryShare: o.num('binary-share'),
      lanes: { push: o.num('lanes'), nchan: o.num('lanes') },
      publishShape: parseShape(o.str('shape')),
      publishAuth: parsePublishAuth(o.str('publish-auth')),
      batch: o.num('batch'),
      tickMs: o.num('tick-ms'),
      startRate: o.num('start-rate'),
      factor: o.num('factor'),
      maxSteps: o.num('max-steps'),
      maxRate: o.num('max-rate'),
      refine: o.num('refine'),
      targets: { deliveriesPerSec: null, p99Ms: null },
    },
    o,
    log,
  );
};
