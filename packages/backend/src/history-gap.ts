import type { HistoryGap } from './types.js';

/**
 * One channel's gap, as both backends compute it at history-read time from two facts about the
 * channel, each '' when absent or not newer than the reader's cursor: `mark`, the newest mid the
 * history cap pushed out of its list, and `expired`, the newest list entry after the cursor whose
 * record's TTL ended. The bound is the newer of the two: every message of the channel after the
 * cursor and up to it may be gone.
 */
export function historyGap(channel: string, mark: string, expired: string): HistoryGap[] {
  if (mark === '' && expired === '') return [];
  return mark >= expired ? [{ channel, upTo: mark, cause: 'limit' }] : [{ channel, upTo: expired, cause: 'expired' }];
}
