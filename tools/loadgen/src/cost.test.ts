import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuPerDelivery, formatCpuPerDelivery, parseProcStatus } from './cost.js';

describe('server CPU per delivery', () => {
  const cases: Array<{ name: string; usage: Record<string, { cpu: number; processes?: number }>; seconds: number; delivered: number; want: ReturnType<typeof cpuPerDelivery> }> = [
    {
      name: 'sums every server group and leaves the load generator out',
      usage: { listeners: { cpu: 0.8 }, publishers: { cpu: 0.4 }, redis: { cpu: 0.3 }, loadgen: { cpu: 0.9 } },
      seconds: 10,
      delivered: 400_000,
      // (0.8 + 0.4 + 0.3) cores x 10 s = 15 CPU-seconds over 400,000 deliveries = 37.5 us
      want: { totalUs: 37.5, byGroupUs: { listeners: 20, publishers: 10, redis: 7.5 } },
    },
    {
      name: 'nchan: nginx and its Redis',
      usage: { nginx: { cpu: 1.2 }, redis: { cpu: 0.2 }, loadgen: { cpu: 0.5 } },
      seconds: 5,
      delivered: 100_000,
      want: { totalUs: 70, byGroupUs: { nginx: 60, redis: 10 } },
    },
    {
      name: 'a group with no processes is left out',
      usage: { listeners: { cpu: 0, processes: 0 }, publishers: { cpu: 0.5, processes: 1 }, redis: { cpu: 0.5, processes: 1 } },
      seconds: 2,
      delivered: 20_000,
      want: { totalUs: 100, byGroupUs: { publishers: 50, redis: 50 } },
    },
    { name: 'nothing delivered: no cost per delivery', usage: { listeners: { cpu: 0.1 } }, seconds: 5, delivered: 0, want: null },
    { name: 'an empty window', usage: { listeners: { cpu: 0.1 } }, seconds: 0, delivered: 10, want: null },
    { name: 'only the load generator sampled', usage: { loadgen: { cpu: 1 } }, seconds: 1, delivered: 10, want: { totalUs: 0, byGroupUs: {} } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(cpuPerDelivery(c.usage, c.seconds, c.delivered), c.want));

  it('prints the total and the groups, or says there is none', () => {
    assert.equal(formatCpuPerDelivery({ totalUs: 37.5, byGroupUs: { listeners: 20, redis: 17.5 } }), '37.5 us (listeners 20, redis 17.5)');
    assert.equal(formatCpuPerDelivery(null), 'n/a (nothing delivered)');
  });
});

describe('/proc/<pid>/status memory lines', () => {
  const status = ['Name:\tnode', 'VmPeak:\t 1234567 kB', 'VmRSS:\t   98304 kB', 'RssAnon:\t   61440 kB', 'RssFile:\t   36864 kB', 'RssShmem:\t       0 kB', 'Threads:\t11'].join('\n');
  const cases: Array<{ name: string; text: string; want: ReturnType<typeof parseProcStatus> }> = [
    { name: 'reads VmRSS and RssAnon', text: status, want: { vmRssKb: 98304, rssAnonKb: 61440 } },
    { name: 'a missing line reads as 0 (a kernel without RssAnon)', text: 'Name:\tx\nVmRSS:\t 100 kB\n', want: { vmRssKb: 100, rssAnonKb: 0 } },
    { name: 'does not take VmPeak or RssFile for the fields', text: 'VmPeak:\t 5 kB\nRssFile:\t 7 kB\n', want: { vmRssKb: 0, rssAnonKb: 0 } },
    { name: 'empty text (the process ended)', text: '', want: { vmRssKb: 0, rssAnonKb: 0 } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(parseProcStatus(c.text), c.want));
});
