/**
 * Lua scripts run atomically inside Redis. Keys (prefix P, default "push:"):
 *   P + "id:start"        10-digit unix seconds that starts every mid (set once, never expires)
 *   P + "id:counter"      global INCR counter, the last 16 digits of every mid
 *   P + "m:" + mid        one message record, stored once however many channels it went to; EX = its TTL
 *   P + "h:{" + ch + "}"  list of mids published to channel ch, oldest first, capped; expires with its
 *                         longest-lived entry so idle channels vanish
 *   P + "c:{" + ch + "}"  pub/sub topic of channel ch (listeners subscribe only to what they serve)
 *   P + "o:{" + ch + "}"  presence marker, EX = online TTL
 *   P + "stats"           hash: process id -> JSON snapshot (Bitrix /server-stat/)
 * The "{ch}" hash tags keep each channel's keys in one Cluster slot; the publish script itself
 * still touches several slots and would have to be split per slot on Redis Cluster.
 */

/**
 * KEYS: [startKey, counterKey]
 * ARGV: prefix, historyCap, messageCount, then per message: ttl, recordTail, channelCount, channels...
 * Returns the assigned mids. Ids, storage and PUBLISH happen in one atomic step, so every
 * subscriber receives messages in id order, which is what lets listeners de-duplicate by cursor.
 */
export const PUBLISH_SCRIPT = `
local prefix = ARGV[1]
local cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local start = redis.call('GET', KEYS[1])
if not start then
  start = redis.call('TIME')[1]
  redis.call('SET', KEYS[1], start)
end
local startNum = tonumber(start)
local t = redis.call('TIME')
local nowMs = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local mids = {}
local i = 4
for m = 1, n do
  local ttl = tonumber(ARGV[i])
  local tail = ARGV[i + 1]
  local nch = tonumber(ARGV[i + 2])
  i = i + 3
  local counter = redis.call('INCR', KEYS[2])
  local mid = string.format('%010d%016d', startNum, counter)
  local record = mid .. '\\t' .. nowMs .. '\\t' .. tail
  if ttl > 0 then
    redis.call('SET', prefix .. 'm:' .. mid, record, 'EX', ttl)
  end
  for c = 1, nch do
    local ch = ARGV[i]
    i = i + 1
    if ttl > 0 then
      local lk = prefix .. 'h:{' .. ch .. '}'
      local len = redis.call('RPUSH', lk, mid)
      if len > cap then redis.call('LTRIM', lk, -cap, -1) end
      if redis.call('TTL', lk) < ttl then redis.call('EXPIRE', lk, ttl) end
    end
    redis.call('PUBLISH', prefix .. 'c:{' .. ch .. '}', record)
  end
  mids[m] = mid
end
return mids
`;

/**
 * KEYS: history list keys of the channels
 * ARGV: prefix, after ('' = none)
 * Returns { newestAliveMid or '', record, record, ... } with records oldest first, each mid once.
 * Entries whose record expired are skipped: a message is never replayed past its TTL.
 */
export const HISTORY_SCRIPT = `
local prefix = ARGV[1]
local after = ARGV[2]
local newest = ''
local seen = {}
local wanted = {}
for k = 1, #KEYS do
  local ids = redis.call('LRANGE', KEYS[k], 0, -1)
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
      if mid > after and not seen[mid] then
        seen[mid] = true
        wanted[#wanted + 1] = mid
      end
    end
  end
end
table.sort(wanted)
local out = { newest }
for j = 1, #wanted do
  local rec = redis.call('GET', prefix .. 'm:' .. wanted[j])
  if rec then out[#out + 1] = rec end
end
return out
`;
