import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nginxProblems } from './nchan.js';

describe('nginxProblems (nchan error log summary)', () => {
  const shm = (pid: number, chan: string) => `2026/12/03 07:34:45 [error] ${pid}#${pid}: nchan: Out of shared memory while sending IPC keepalive alert for channel /${chan}. Increase nchan_max_reserved_memory.`;
  const cases: Array<[string, string, number, Array<{ text: string; count: number }>]> = [
    ['an empty log', '', 0, []],
    ['notices and warnings only', '2026/12/03 07:00:00 [notice] 1#1: start worker processes\n2026/12/03 07:00:00 [warn] 1#1: 4096 worker_connections exceed open file resource limit', 0, []],
    [
      'repeats group across processes and channel ids, most frequent first',
      [shm(5666, 'a9f559f7592f55e300000000000009d4'), '2026/12/03 07:34:45 [error] 5666#5666: shpool alloc failed', shm(5667, 'a9f559f7592f55e30000000000000f74'), '2026/12/03 07:35:45 [alert] 5985#5985: setrlimit(RLIMIT_NOFILE, 262144) failed (1: Operation not permitted)', shm(5666, 'a9f559f7592f55e30000000000000f76')].join('\n'),
      5,
      [
        { text: '[error] nchan: Out of shared memory while sending IPC keepalive alert for channel /…. Increase nchan_max_reserved_memory.', count: 3 },
        { text: '[error] shpool alloc failed', count: 1 },
        { text: '[alert] setrlimit(RLIMIT_NOFILE, N) failed (N: Operation not permitted)', count: 1 },
      ],
    ],
    [
      'at most three kinds, every line counted',
      ['a', 'b', 'c', 'd', 'd'].map((k) => `2026/12/03 07:00:00 [crit] 7#7: kind ${k}`).join('\n'),
      5,
      [
        { text: '[crit] kind d', count: 2 },
        { text: '[crit] kind a', count: 1 },
        { text: '[crit] kind b', count: 1 },
      ],
    ],
  ];
  for (const [name, log, count, kinds] of cases) {
    it(name, () => {
      assert.deepEqual(nginxProblems(log), { count, kinds });
    });
  }
});
