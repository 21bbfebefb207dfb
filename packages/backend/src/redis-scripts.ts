/**
 * Lua scripts run atomically inside Redis. Keys (prefix P, default "push:"):
 *   P + "id:start"        10-digit unix seconds that starts every mid (set once, never expires)
 *   P + "id:counter"      global INCR counter, the last 16 digits of every mid
 *   P + "m:" + mid        one message record, stored once however many channels it went to; EX = its
 *                         TTL, and deleted as soon as the last channel list drops it (so the history
 *                         cap bounds memory)
 *   P + "r:" + mid        how many channel list entries still hold the mid; same EX as its record
 *   P + "h:{" + ch + "}"  list of mids published to channel ch, oldest first, capped; expires with its
 *                         longest-lived entry so idle channels vanish
 *   P + "g:{" + ch + "}"  mid of the newest entry the cap pushed out of that list (a resume cursor
 *                         older than it missed something); EX = the list's TTL when written
 *   P + "c:{" + ch + "}"  pub/sub topic of channel ch (listeners subscribe only to what they serve)
 *   P + "o:{" + ch + "}"  presence marker, EX = online TTL
 *   P + "stats"           hash: process id -> JSON snapshot (Bitrix /server-stat/)
 *   P + "ch:{" + ch + "}" unix ms of the channel's first creation (mint or first publish), one clock
 *                         (Redis TIME); EX = twice the read window (lifecycle, docs/security.md)
 *   P + "x:{" + ch + "}"  mid of the channel's one channel_expire notice; same EX
 *   P + "n:" + key + ":" + nonce   replay cache of signed requests, EX = 2 x clock skew window + 1;
 *                         "1" for a request that is not a publish, else a publish's outcome (below)
 *   P + "q:" + scope + ":" + id    outcome of an unsigned publish with X-Push-Request-Id (scope "b"
 *                         for the portal, "c:" + public id for a client), same EX; value
 *                         "<fingerprint> <first mid> <count>" (the mids of one publish are consecutive)
 * The "{ch}" hash tags keep each channel's keys in one Cluster slot; the publish script itself
 * still touches several slots and would have to be split per slot on Redis Cluster.
 */

/**
 * Lua shared by the scripts that store records (prepended to them).
 * store: the record plus its reference count, both with the message's TTL.
 * release: drops one reference from each mid pushed out of a list and deletes the record with the
 * last one. A count that goes below 0 did not exist: the record already expired (DECR just
 * recreated the count without a TTL) or was written by a version without counts (it keeps its own
 * TTL); either way only the recreated count is removed, in the same atomic step.
 */
const RECORD_LUA = `
local function store(prefix, mid, record, refs, ttl)
  redis.call('SET', prefix .. 'm:' .. mid, record, 'EX', ttl)
  redis.call('SET', prefix .. 'r:' .. mid, refs, 'EX', ttl)
end
local function release(prefix, mids)
  for k = 1, #mids do
    local rk = prefix .. 'r:' .. mids[k]
    local left = redis.call('DECR', rk)
    if left == 0 then redis.call('DEL', rk, prefix .. 'm:' .. mids[k])
    elseif left < 0 then redis.call('DEL', rk) end
  end
end
-- Appends mid to a channel list: the list lives as long as its longest-lived entry (a new list has
-- no TTL yet, and GT treats "no TTL" as infinite, hence the plain EXPIRE for it); entries beyond
-- the cap leave from the old end and release their records. The newest entry pushed out is kept
-- as the channel's gap mark ("g:{ch}", as long as the list), so HISTORY_SCRIPT can tell a reader
-- whose cursor is older that it missed messages.
-- Trimmed in batches: the list may run up to a tenth over the cap (TRIM_SLACK) before the excess
-- leaves in one LPOP with one gap mark. Readers see only the newest cap entries and take the
-- newest entry beyond them as a gap mark too (HISTORY_SCRIPT), so what a client gets is exactly
-- what an exact cap gives; trimming on every append at the cap (LPOP, TTL, SET of the mark) more
-- than doubled the script's cost per append on a full channel (docs/benchmarks.md, floors).
local function append(prefix, listKey, mid, ttl, cap)
  local len = redis.call('RPUSH', listKey, mid)
  if len == 1 then redis.call('EXPIRE', listKey, ttl) else redis.call('EXPIRE', listKey, ttl, 'GT') end
  if len > cap + math.floor(cap / 10) then
    local out = redis.call('LPOP', listKey, len - cap)
    release(prefix, out)
    redis.call('SET', prefix .. 'g:' .. string.sub(listKey, #prefix + 3), out[#out], 'EX', redis.call('TTL', listKey))
  end
end
`;

/**
 * KEYS: [startKey, counterKey]
 * ARGV: prefix, historyCap, writeWindowMs, createdRetentionS, requestCount, then per request:
 *       identityKey ('' = none), fingerprint, windowS, claimTimestamp and maxSkewS (both '' unless
 *       signed), messageCount, knownCount, then knownCount pairs (channel, its creation ms as read
 *       from "ch:{ch}" earlier), then per message: ttl, recordTail, channelCount, channels...
 * Known creation times: a channel's creation time never changes once written (SET NX), so the
 * caller may pass what an earlier call returned and the script checks the write window against it
 * without reading "ch:{ch}" (that read and its Lua glue were about a quarter of the script's cost,
 * docs/benchmarks.md). The caller drops a remembered time before "ch:{ch}" itself expires.
 * Several publish requests in one call (group commit, see group-commit.ts), carried out one after
 * the other, each all or nothing on its own. Returns one table per request: { 'ok', mid, ... },
 * { 'dup', firstMid, count } (the identity was already carried out with the same fingerprint: its
 * original outcome, nothing written), or { 'err', reason } where reason is "PUSH_ID_CONFLICT" (the
 * identity was carried out with another fingerprint), "PUSH_AUTH_REPLAY" (a nonce spent by a
 * request that was not a publish), "PUSH_AUTH_STALE" (timestamp outside the window around Redis
 * time) or "PUSH_CHANNEL_EXPIRED <ids>" (a channel past its write window). A refused request writes
 * nothing and leaves its identity unused. The outcome record is written with the messages, in the
 * same atomic step, so "stored" and "remembered as stored" cannot disagree; a second request with
 * the same identity later in the same call sees it like any later request. An 'ok' table lists
 * its mids, then pairs (channel, creation ms) for each channel it had to look up or create, for
 * the caller to remember. Ids, storage and
 * PUBLISH happen in one atomic step, so every subscriber receives messages in id order, which is
 * what lets listeners de-duplicate by cursor. Channels seen for the first time get their creation
 * time recorded; each channel is looked up once per request, however many messages name it.
 */
export const PUBLISH_SCRIPT = `${RECORD_LUA}
local prefix = ARGV[1]
local cap = tonumber(ARGV[2])
local writeMs = tonumber(ARGV[3])
local keepS = tonumber(ARGV[4])
local nreq = tonumber(ARGV[5])
local start = redis.call('GET', KEYS[1])
if not start then
  start = redis.call('TIME')[1]
  redis.call('SET', KEYS[1], start)
end
local startNum = tonumber(start)
local t = redis.call('TIME')
local nowS = tonumber(t[1])
local nowNum = nowS * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowMs = string.format('%d', nowNum)

-- Checks one request without writing: returns the refusal reason or nil, the earlier outcome of
-- its identity or nil, the channels to record as created, and the index just past its messages.
local function check(i)
  local idKey = ARGV[i]
  local n = tonumber(ARGV[i + 5])
  local known = tonumber(ARGV[i + 6])
  local reason = nil
  local dup = nil
  if idKey ~= '' then
    local prev = redis.call('GET', idKey)
    if prev == '1' then reason = 'PUSH_AUTH_REPLAY'
    elseif prev then
      local sp = string.find(prev, ' ', 1, true)
      if sp and string.sub(prev, 1, sp - 1) == ARGV[i + 1] then dup = string.sub(prev, sp + 1)
      else reason = 'PUSH_ID_CONFLICT' end
    elseif ARGV[i + 3] ~= '' and math.abs(tonumber(ARGV[i + 3]) - nowS) > tonumber(ARGV[i + 4]) then
      reason = 'PUSH_AUTH_STALE'
    end
  end
  local expired = {}
  local fresh = {}
  local learned = {}
  local seenCh = {}
  local j = i + 7
  for kc = 1, known do
    local ch = ARGV[j]
    seenCh[ch] = true
    if nowNum - tonumber(ARGV[j + 1]) >= writeMs then expired[#expired + 1] = ch end
    j = j + 2
  end
  local first = j
  for m = 1, n do
    local nch = tonumber(ARGV[j + 2])
    if not reason and not dup then
      for c = 1, nch do
        local ch = ARGV[j + 2 + c]
        -- Only plain channel ids have a lifecycle; derived keys (v4 "pub:<id>") follow their pair.
        if not seenCh[ch] and not string.find(ch, ':', 1, true) then
          seenCh[ch] = true
          local created = redis.call('GET', prefix .. 'ch:{' .. ch .. '}')
          if not created then fresh[#fresh + 1] = ch
          elseif nowNum - tonumber(created) >= writeMs then expired[#expired + 1] = ch
          else learned[#learned + 1] = ch; learned[#learned + 1] = created end
        end
      end
    end
    j = j + 3 + nch
  end
  if not reason and not dup and #expired > 0 then reason = 'PUSH_CHANNEL_EXPIRED ' .. table.concat(expired, ' ') end
  return reason, dup, fresh, learned, first, j
end

local results = {}
local i = 6
for r = 1, nreq do
  local reason, dup, fresh, learned, first, nextI = check(i)
  if reason then
    results[r] = { 'err', reason }
  elseif dup then
    local sp = string.find(dup, ' ', 1, true)
    results[r] = { 'dup', string.sub(dup, 1, sp - 1), string.sub(dup, sp + 1) }
  else
    for c = 1, #fresh do redis.call('SET', prefix .. 'ch:{' .. fresh[c] .. '}', nowMs, 'NX', 'EX', keepS) end
    local out = { 'ok' }
    local n = tonumber(ARGV[i + 5])
    local k = first
    for m = 1, n do
      local ttl = tonumber(ARGV[k])
      local tail = ARGV[k + 1]
      local nch = tonumber(ARGV[k + 2])
      k = k + 3
      local counter = redis.call('INCR', KEYS[2])
      local mid = string.format('%010d%016d', startNum, counter)
      local record = mid .. '\\t' .. nowMs .. '\\t' .. tail
      -- One reference per list entry about to be written (a channel listed twice counts twice).
      if ttl > 0 then store(prefix, mid, record, nch, ttl) end
      for c = 1, nch do
        local ch = ARGV[k]
        k = k + 1
        if ttl > 0 then append(prefix, prefix .. 'h:{' .. ch .. '}', mid, ttl, cap) end
        redis.call('PUBLISH', prefix .. 'c:{' .. ch .. '}', record)
      end
      out[m + 1] = mid
    end
    for c = 1, #fresh do out[#out + 1] = fresh[c]; out[#out + 1] = nowMs end
    for c = 1, #learned do out[#out + 1] = learned[c] end
    local idKey = ARGV[i]
    if idKey ~= '' then
      redis.call('SET', idKey, ARGV[i + 1] .. ' ' .. (out[2] or '-') .. ' ' .. n, 'EX', tonumber(ARGV[i + 2]))
    end
    results[r] = out
  end
  i = nextI
end
return results
`;

/**
 * KEYS: history list keys of the channels
 * ARGV: prefix, after ('' = none), historyCap (a list may hold up to a tenth more, see append)
 * Returns { newestAliveMid or '', nowMs, created or '' per key, gap mark or '' per key, newest
 * expired mid or '' per key, floor, record, record, ... } with records oldest first, each mid once.
 * floor: without a newest alive mid, the newest mid issued on any channel (26 zeros if none yet), the
 * long-poll cursor for a client with nothing stored on its channels (HistoryResult.floorMid).
 * Entries whose record expired are skipped: a message is never replayed past its TTL. With a
 * cursor, each key also reports what the reader missed for good: its gap mark ("g:{ch}", the newest
 * mid the cap pushed out) when newer than the cursor, and the newest of its entries after the
 * cursor whose record expired.
 */
export const HISTORY_SCRIPT = `
local prefix = ARGV[1]
local after = ARGV[2]
local cap = tonumber(ARGV[3])
local newest = ''
local seen = {}
local wanted = {}
local holders = {}
-- The newest entry beyond the cap of each key not yet trimmed away: a gap mark like "g:{ch}".
local beyond = {}
for k = 1, #KEYS do
  local ids = redis.call('LRANGE', KEYS[k], -cap - 1, -1)
  if #ids > cap then
    beyond[k] = table.remove(ids, 1)
  end
  for j = #ids, 1, -1 do
    local mid = ids[j]
    if mid > newest and redis.call('EXISTS', prefix .. 'm:' .. mid) == 1 then
      newest = mid
      break
    end
  end
  if after ~= '' then
    for j = 1, #ids do
      local mid = ids[j]
      if mid > after then
        if not seen[mid] then
          seen[mid] = true
          wanted[#wanted + 1] = mid
          holders[mid] = {}
        end
        table.insert(holders[mid], k)
      end
    end
  end
end
table.sort(wanted)
-- Lifecycle: server time and each channel's creation time ('' = unknown) ride along, so the
-- listener learns them without another round trip (keys "h:{ch}" -> "ch:{ch}").
local t = redis.call('TIME')
local out = { newest, string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) }
local n = #KEYS
for k = 1, n do
  local tag = string.sub(KEYS[k], #prefix + 3)
  out[2 + k] = redis.call('GET', prefix .. 'ch:' .. tag) or ''
  local mark = ''
  if after ~= '' then
    mark = redis.call('GET', prefix .. 'g:' .. tag) or ''
    if beyond[k] and beyond[k] > mark then mark = beyond[k] end
  end
  if mark ~= '' and mark <= after then mark = '' end
  out[2 + n + k] = mark
  out[2 + 2 * n + k] = ''
end
local floor = ''
if newest == '' then
  floor = string.rep('0', 26)
  local start = redis.call('GET', prefix .. 'id:start')
  local counter = redis.call('GET', prefix .. 'id:counter')
  if start and counter then floor = string.format('%010d%016d', tonumber(start), tonumber(counter)) end
end
out[3 + 3 * n] = floor
local records = {}
for j = 1, #wanted do
  local rec = redis.call('GET', prefix .. 'm:' .. wanted[j])
  if rec then records[#records + 1] = rec
  else
    -- Oldest first, so the last expired entry seen per key is its newest.
    for _, k in ipairs(holders[wanted[j]]) do out[2 + 2 * n + k] = wanted[j] end
  end
end
for j = 1, #records do out[#out + 1] = records[j] end
return out
`;

/**
 * KEYS: presence keys of the channels, then last-seen keys of the user keys among them
 * ARGV: ttlSeconds, number of presence keys, last-seen keep seconds
 * Marks every channel online for the TTL and records Redis time as the users' last-seen time. One script call instead of a pipeline of SETs: a
 * listener refreshes all of its channels every third of the TTL, and at tens of thousands of
 * channels a pipeline's per-command objects were megabytes of garbage per refresh, which kept an
 * idle listener's heap from settling.
 */
export const PRESENCE_TOUCH_SCRIPT = `
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do redis.call('SET', KEYS[i], '1', 'EX', ttl) end
if #KEYS > n then
  local t = redis.call('TIME')
  local nowMs = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  for i = n + 1, #KEYS do redis.call('SET', KEYS[i], nowMs, 'EX', tonumber(ARGV[3])) end
end
return n
`;

/**
 * KEYS: creation-time keys of the channels
 * ARGV: create ('1' records now for unknown channels, '0' only reads), createdRetentionS
 * Returns { nowMs, created or '' per key }.
 */
export const CHANNEL_TIMES_SCRIPT = `
local t = redis.call('TIME')
local nowMs = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = { nowMs }
for k = 1, #KEYS do
  if ARGV[1] == '1' then redis.call('SET', KEYS[k], nowMs, 'NX', 'EX', tonumber(ARGV[2])) end
  out[k + 1] = redis.call('GET', KEYS[k]) or ''
end
return out
`;

/**
 * KEYS: [startKey, counterKey, createdKey, noticeKey, historyKey]
 * ARGV: prefix, channel, writeWindowMs, readWindowMs, retentionS, historyCap, recordTailAfterExpiry
 * Stores the channel's channel_expire notice once, as an ordinary message (real mid, kept until
 * the read window ends, PUBLISHed), so late subscribers find it after the backlog in history.
 * Returns {'stored', record} | {'early', msUntilWriteWindowEnds} | {'none'}.
 */
export const EXPIRE_NOTICE_SCRIPT = `${RECORD_LUA}
local prefix = ARGV[1]
local writeMs = tonumber(ARGV[3])
local readMs = tonumber(ARGV[4])
local t = redis.call('TIME')
local nowNum = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = redis.call('GET', KEYS[3])
if not created then return { 'none' } end
local age = nowNum - tonumber(created)
if age < writeMs then return { 'early', string.format('%d', writeMs - age) } end
-- Past the read window there is nothing to read: not even a notice whose whole-second TTL outlives it.
if age >= readMs then return { 'none' } end
local existing = redis.call('GET', KEYS[4])
if existing then
  local rec = redis.call('GET', prefix .. 'm:' .. existing)
  if rec then return { 'stored', rec } end
  return { 'none' }
end
local ttl = math.ceil((readMs - age) / 1000)
local start = redis.call('GET', KEYS[1])
if not start then
  start = t[1]
  redis.call('SET', KEYS[1], start)
end
local counter = redis.call('INCR', KEYS[2])
local mid = string.format('%010d%016d', tonumber(start), counter)
local record = mid .. '\t' .. string.format('%d', nowNum) .. '\t' .. string.format('%d', ttl) .. '\t' .. ARGV[7]
store(prefix, mid, record, 1, ttl)
append(prefix, KEYS[5], mid, ttl, tonumber(ARGV[6]))
redis.call('SET', KEYS[4], mid, 'EX', tonumber(ARGV[5]))
redis.call('PUBLISH', prefix .. 'c:{' .. ARGV[2] .. '}', record)
return { 'stored', record }
`;

/**
 * KEYS: [startKey, counterKey]
 * ARGV: gap
 * The id safety gap, taken by each connection before it assigns ids (ID_SAFETY_GAP in
 * redis-backend.ts): advances the counter by `gap`. A counter that is missing while the start
 * exists was lost (restored from an old copy, or never persisted): no gap can say how far it ran,
 * so the id space restarts at the current second, which is above every earlier id as long as the
 * clock did not go back. Returns the new counter.
 */
export const ID_GAP_SCRIPT = `
if redis.call('EXISTS', KEYS[2]) == 0 then
  local start = redis.call('GET', KEYS[1])
  local now = redis.call('TIME')[1]
  if start and tonumber(now) > tonumber(start) then redis.call('SET', KEYS[1], now) end
end
return redis.call('INCRBY', KEYS[2], tonumber(ARGV[1]))
`;

/**
 * KEYS: [nonceKey]
 * ARGV: timestamp (unix s), maxSkewS
 * Returns 'stale' when the timestamp is outside the window around Redis time, 'replay' when the
 * nonce was seen, else 'ok' (and remembers it for as long as that timestamp stays acceptable).
 */
export const CLAIM_NONCE_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
local skew = tonumber(ARGV[2])
if math.abs(tonumber(ARGV[1]) - now) > skew then return 'stale' end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 2 * skew + 1) then return 'ok' end
return 'replay'
`;
