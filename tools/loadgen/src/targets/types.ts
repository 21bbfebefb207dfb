import type { SubscribeTarget } from '../channels.js';
import type { PublishTarget } from '../driver.js';

/** A system under test, started by the harness on free ports and stopped after the run. */
export interface Target {
  readonly name: 'push' | 'nchan' | 'bitrix';
  /** One-line description for the report (process counts, versions). */
  readonly describe: string;
  subscribeTarget(): SubscribeTarget;
  publishTarget(): PublishTarget;
  /** Process groups whose CPU and memory the report shows, by pid (asked anew at each sample). */
  pids(): Record<string, number[]>;
  /** Pids of the processes holding subscriber connections (the idle scenario's memory per connection). */
  subscriberPids(): number[];
  stop(): Promise<void>;
}

/** Direct children of a process (nginx workers of a master), from /proc. */
export { childPids } from './proc-children.js';
