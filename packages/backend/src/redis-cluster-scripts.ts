/**
 * Lua scripts of the Redis Cluster backend (redis-cluster-backend.ts). Each runs in one slot: every
 * key it touches carries the same `{channel}` hash tag (or, for a publish part, the tag of one of
 * the part's channels, all of which share the slot). Keys (prefix P):
 *   P + "h:{" + ch + "}"  the channel's history: whole records (not ids), oldest first, capped; a
 *                         record says when it expires (createdMs, expiry), so no per-record key
 *   P + "g:{" + ch + "}"  mid of the newest record the cap pushed out (the loss signal)
 *   P + "i:{" + ch + "}"  the channel's id floor: the newest id issued on it
 *   P + "c:{" + ch + "}"  sharded pub/sub topic (SPUBLISH / SSUBSCRIBE)
 *   P + "ch:{" + ch + "}", P + "o:{" + ch + "}", P + "ls:{" + ch + "}"  as on one Redis
 *   P + "x:{" + ch + "}"  the channel's channel_expire notice, as a whole record
 *   P + "p:{" + ch + "}:" + identity   one publish part's outcome under the request's identity
 *
 * Ids: S (10 digits, unix s) 0 U (6 digits, us) L (5 digits, the slot) Q (4 digits, sequence). A
 * channel's next id is the larger of the shard's TIME in that form and the smallest id of this slot
 * above the channel's floor (and above a lower bound the caller passes: the ids of the request's
 * earlier parts). The proof is in docs/architecture.md, "Redis Cluster".
 */
const ID_LUA = `
local function fmtId(s, u, slot, q) return string.format('%010d0%06d%s%04d', s, u, slot, q) end
-- The smallest id of this slot strictly above id ('' stays '').
local function above(id, slot)
  if id == '' then return '' end
  local s = tonumber(string.sub(id, 1, 10))
  local u = tonumber(string.sub(id, 12, 17))
  local l = string.sub(id, 18, 22)
  local q = tonumber(string.sub(id, 23, 26))
  if l == slot then
    q = q + 1
    if q > 9999 then q = 0; u = u + 1 end
  elseif l < slot then q = 0
  else q = 0; u = u + 1 end
  if u > 999999 then u = 0; s = s + 1 end
  return fmtId(s, u, slot, q)
end
-- Appends a record to a channel's history: the list lives as long as its longest-lived entry, the
-- cap drops the oldest and keeps the newest dropped mid as the gap mark.
local function append(prefix, ch, record, ttl, cap)
  local listKey = prefix .. 'h:{' .. ch .. '}'
  local len = redis.call('RPUSH', listKey, record)
  if len == 1 then redis.call('EXPIRE', listKey, ttl) else redis.call('EXPIRE', listKey, ttl, 'GT') end
  if len > cap then
    local out = redis.call('LPOP', listKey, len - cap)
    redis.call('SET', prefix .. 'g:{' .. ch .. '}', string.sub(out[#out], 1, 26), 'EX', redis.call('TTL', listKey))
  end
end
`;

/**
 * The parts of a publish that one master serves, carried out as one atomic call: for each slot of
 * the request on that master (a "slot part"), in order, what one script per slot would do (its
 * ids, history appends, SPUBLISH and outcome under the identity, in that slot), each slot part's ids above those of the slot parts before it (in this call and, through
 * lowerBound, in earlier calls), and each later slot part's records naming the earlier slot parts of
 * the same message. One call instead of one per slot: one script run, one write and one reply.
 *
 * Keys of several slots: the script is flagged allow-cross-slot-keys (Redis 7.0), which lets it
 * touch keys of any slot this master serves. Only the first slot part's keys are declared (they
 * route the call); the others are reached by name. Redis checks every key a script touches: a key
 * of a slot this node does not serve, or one that is missing from a slot being migrated, fails the
 * script at that command. So the script first touches every key it may write, and only then writes:
 * a slot that moved or is moving fails the call before anything is written (the caller reads the
 * slot map again and sends the parts where it now says), never in the middle. Sharded channels
 * (SPUBLISH) are served by the slot's old master until a migration completes, so they cannot fail.
 *
 * KEYS: every key of the first slot part (h, i, ch, g of each channel, its identity key), declared
 * ARGV: prefix, historyCap, writeWindowMs, createdRetentionS, lowerBound ('' or an id every id here
 *       must exceed), fingerprint, windowS, messageCount, then per message: ttl, recordHead
 *       ("expiry \t type \t senderType \t senderId"), earlier ('' or "mid=channel,..." of slot
 *       parts run before this call), body; then slotPartCount, then per slot part: slot (5 digits),
 *       identityKey ('' = none), count, then per message of the part: messageIndex (1-based),
 *       channelCount, channels...
 * Returns { 'ok', then per slot part: 'ran' | 'dup', then its mids in order } | { 'err', reason }
 * (PUSH_ID_CONFLICT, or PUSH_CHANNEL_EXPIRED <ids>; nothing written).
 */
export const CLUSTER_NODE_PART_SCRIPT = `#!lua flags=allow-cross-slot-keys
${ID_LUA}
local prefix = ARGV[1]
local cap = tonumber(ARGV[2])
local writeMs = tonumber(ARGV[3])
local keepS = tonumber(ARGV[4])
local fingerprint = ARGV[6]
local nMsg = tonumber(ARGV[8])
local msgs = {}
local j = 9
for m = 1, nMsg do
  msgs[m] = { ttl = tonumber(ARGV[j]), head = ARGV[j + 1], earlier = ARGV[j + 2], body = ARGV[j + 3] }
  j = j + 4
end
local nParts = tonumber(ARGV[j])
j = j + 1
local parts = {}
for k = 1, nParts do
  local part = { slot = ARGV[j], idKey = ARGV[j + 1], items = {} }
  local n = tonumber(ARGV[j + 2])
  j = j + 3
  for i = 1, n do
    local idx = tonumber(ARGV[j])
    local nch = tonumber(ARGV[j + 1])
    local chans = {}
    for c = 1, nch do chans[c] = ARGV[j + 1 + c] end
    part.items[i] = { msg = idx, channels = chans }
    j = j + 2 + nch
  end
  parts[k] = part
end
-- Read phase: every key that may be written is touched here first (see above), and the identity,
-- write window and floors are read.
local t = redis.call('TIME')
local nowS = tonumber(t[1])
local nowUs = tonumber(t[2])
local nowNum = nowS * 1000 + math.floor(nowUs / 1000)
local nowMs = string.format('%d', nowNum)
local expired = {}
local fresh = {}
local floors = {}
for k = 1, nParts do
  local part = parts[k]
  if part.idKey ~= '' then
    local prev = redis.call('GET', part.idKey)
    if prev then
      local sp = string.find(prev, ' ', 1, true)
      if not (sp and string.sub(prev, 1, sp - 1) == fingerprint) then return { 'err', 'PUSH_ID_CONFLICT' } end
      part.dup = string.sub(prev, sp + 1)
    end
  end
  if not part.dup then
    for _, item in ipairs(part.items) do
      for _, ch in ipairs(item.channels) do
        if floors[ch] == nil then
          floors[ch] = redis.call('GET', prefix .. 'i:{' .. ch .. '}') or ''
          redis.call('EXISTS', prefix .. 'h:{' .. ch .. '}', prefix .. 'g:{' .. ch .. '}')
          local created = redis.call('GET', prefix .. 'ch:{' .. ch .. '}')
          if not string.find(ch, ':', 1, true) then
            if not created then fresh[#fresh + 1] = ch
            elseif nowNum - tonumber(created) >= writeMs then expired[#expired + 1] = ch end
          end
        end
      end
    end
  end
end
if #expired > 0 then return { 'err', 'PUSH_CHANNEL_EXPIRED ' .. table.concat(expired, ' ') } end
-- Write phase.
for c = 1, #fresh do redis.call('SET', prefix .. 'ch:{' .. fresh[c] .. '}', nowMs, 'NX', 'EX', keepS) end
local bound = ARGV[5]
local out = { 'ok' }
local keep = {}
for k = 1, nParts do
  local part = parts[k]
  local slot = part.slot
  if part.dup then
    out[#out + 1] = 'dup'
    local i = 0
    for mid in string.gmatch(part.dup, '%S+') do
      i = i + 1
      local item = part.items[i]
      if item then
        local msg = msgs[item.msg]
        for _, ch in ipairs(item.channels) do
          msg.earlier = (msg.earlier == '' and '' or msg.earlier .. ',') .. mid .. '=' .. ch
        end
      end
      if mid > bound then bound = mid end
      out[#out + 1] = mid
    end
  else
    out[#out + 1] = 'ran'
    local nowId = fmtId(nowS, nowUs, slot, 0)
    local low = above(bound, slot)
    local mids = {}
    for i, item in ipairs(part.items) do
      local msg = msgs[item.msg]
      local id = nowId
      if low > id then id = low end
      for _, ch in ipairs(item.channels) do
        local a = above(floors[ch], slot)
        if a > id then id = a end
      end
      local tail = msg.head
      if msg.earlier ~= '' then tail = tail .. '\\t' .. msg.earlier end
      local record = id .. '\\t' .. nowMs .. '\\t' .. tail .. '\\n' .. msg.body
      for _, ch in ipairs(item.channels) do
        floors[ch] = id
        if keep[ch] == nil or msg.ttl > keep[ch] then keep[ch] = msg.ttl end
        if msg.ttl > 0 then append(prefix, ch, record, msg.ttl, cap) end
        redis.call('SPUBLISH', prefix .. 'c:{' .. ch .. '}', record)
      end
      low = above(id, slot)
      if id > bound then bound = id end
      mids[i] = id
      out[#out + 1] = id
    end
    -- Later slot parts of the same message name this one (after its records are built).
    for i, item in ipairs(part.items) do
      local msg = msgs[item.msg]
      for _, ch in ipairs(item.channels) do
        msg.earlier = (msg.earlier == '' and '' or msg.earlier .. ',') .. mids[i] .. '=' .. ch
      end
    end
    if part.idKey ~= '' then
      redis.call('SET', part.idKey, fingerprint .. ' ' .. table.concat(mids, ' '), 'EX', tonumber(ARGV[7]))
    end
  end
end
for ch, ttl in pairs(keep) do
  local k = keepS
  if ttl > k then k = ttl end
  redis.call('SET', prefix .. 'i:{' .. ch .. '}', floors[ch], 'EX', k)
end
return out
`;

/**
 * KEYS: the history keys of some channels of one slot, then their ch, g and i keys (declared only)
 * ARGV: prefix, after ('' = none)
 * Returns { newestAliveMid or '', nowMs, created or '' per key, gap mark or '' per key, newest
 * expired mid after the cursor or '' per key, floor, record, record, ... } (records unsorted, each
 * once). floor: below every id issued on these channels after this read: the shard's TIME one
 * microsecond ago in id form (any later id of any slot has a later U), raised to the lowest channel
 * floor when every channel's floor is above it (a floor ahead of the clock). It is
 * HistoryResult.floorMid (the long-poll cursor of a client with nothing stored), and the bound up to
 * which a read of several slot groups is complete (the backend's history()).
 * A record is alive while createdMs + expiry s is in the future (Redis clock).
 */
export const CLUSTER_HISTORY_SCRIPT = `
local prefix = ARGV[1]
local after = ARGV[2]
local t = redis.call('TIME')
local nowNum = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(rec)
  local c2 = string.find(rec, '\\t', 28, true)
  if not c2 then return false end
  local c3 = string.find(rec, '\\t', c2 + 1, true)
  if not c3 then return false end
  return tonumber(string.sub(rec, 28, c2 - 1)) + tonumber(string.sub(rec, c2 + 1, c3 - 1)) * 1000 > nowNum
end
local n = #KEYS / 4
local out = { '', string.format('%d', nowNum) }
local newest = ''
local seen = {}
local records = {}
for k = 1, n do
  local tag = string.sub(KEYS[k], #prefix + 3)
  out[2 + k] = redis.call('GET', prefix .. 'ch:' .. tag) or ''
  local mark = ''
  if after ~= '' then mark = redis.call('GET', prefix .. 'g:' .. tag) or '' end
  if mark ~= '' and mark <= after then mark = '' end
  out[2 + n + k] = mark
  out[2 + 2 * n + k] = ''
  local recs = redis.call('LRANGE', KEYS[k], 0, -1)
  for j = #recs, 1, -1 do
    local mid = string.sub(recs[j], 1, 26)
    if mid <= newest then break end
    if alive(recs[j]) then
      newest = mid
      break
    end
  end
  if after ~= '' then
    for j = 1, #recs do
      local mid = string.sub(recs[j], 1, 26)
      if mid > after then
        if alive(recs[j]) then
          if not seen[mid] then
            seen[mid] = true
            records[#records + 1] = recs[j]
          end
        else
          out[2 + 2 * n + k] = mid
        end
      end
    end
  end
end
out[1] = newest
local floor = ''
do
  local fs, fu = tonumber(t[1]), tonumber(t[2]) - 1
  if fu < 0 then fs = fs - 1; fu = 999999 end
  floor = string.format('%010d0%06d%05d%04d', fs, fu, 0, 0)
  local lowest = nil
  for k = 1, n do
    local f = redis.call('GET', prefix .. 'i:' .. string.sub(KEYS[k], #prefix + 3)) or ''
    if lowest == nil or f < lowest then lowest = f end
  end
  if lowest ~= nil and lowest > floor then floor = lowest end
end
out[3 + 3 * n] = floor
for j = 1, #records do out[#out + 1] = records[j] end
return out
`;

/**
 * KEYS: [createdKey, noticeKey, historyKey, floorKey, gapKey] of one channel (the last three declared only)
 * ARGV: prefix, channel, writeWindowMs, readWindowMs, retentionS, historyCap, recordTailAfterExpiry, slot
 * The channel's one channel_expire notice, stored as a whole record under x:{ch} and in its history,
 * with an id of the channel's slot. Returns {'stored', record} | {'early', ms} | {'none'}.
 */
export const CLUSTER_EXPIRE_NOTICE_SCRIPT = `${ID_LUA}
local prefix = ARGV[1]
local ch = ARGV[2]
local writeMs = tonumber(ARGV[3])
local readMs = tonumber(ARGV[4])
local slot = ARGV[8]
local t = redis.call('TIME')
local nowNum = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = redis.call('GET', KEYS[1])
if not created then return { 'none' } end
local age = nowNum - tonumber(created)
if age < writeMs then return { 'early', string.format('%d', writeMs - age) } end
if age >= readMs then return { 'none' } end
local existing = redis.call('GET', KEYS[2])
if existing then
  local c2 = string.find(existing, '\\t', 28, true)
  local c3 = string.find(existing, '\\t', c2 + 1, true)
  if tonumber(string.sub(existing, 28, c2 - 1)) + tonumber(string.sub(existing, c2 + 1, c3 - 1)) * 1000 > nowNum then return { 'stored', existing } end
  return { 'none' }
end
local ttl = math.ceil((readMs - age) / 1000)
local id = fmtId(tonumber(t[1]), tonumber(t[2]), slot, 0)
local a = above(redis.call('GET', prefix .. 'i:{' .. ch .. '}') or '', slot)
if a > id then id = a end
local record = id .. '\\t' .. string.format('%d', nowNum) .. '\\t' .. string.format('%d', ttl) .. '\\t' .. ARGV[7]
append(prefix, ch, record, ttl, tonumber(ARGV[6]))
redis.call('SET', prefix .. 'i:{' .. ch .. '}', id, 'EX', tonumber(ARGV[5]))
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[5]))
redis.call('SPUBLISH', prefix .. 'c:{' .. ch .. '}', record)
return { 'stored', record }
`;

/**
 * The request-wide identity of a publish carried out in parts, claimed before the first part runs.
 * KEYS: [identityKey] (n:<key>:<nonce> or q:<scope>:<id>, as on one Redis)
 * ARGV: fingerprint, windowS, claimTimestamp ('' unless signed), maxSkewS
 * Returns 'new' (claimed now), 'ok' (claimed before by a publish with the same content: a retry,
 * whose parts complete what is missing), 'conflict' (other content), 'replay' (a nonce spent by a
 * request that was not a publish) or 'stale' (timestamp outside the window around Redis time).
 * The value "P <fingerprint>" also makes the standalone nonce claim (SET NX) see a replay.
 */
export const CLUSTER_CLAIM_PUBLISH_SCRIPT = `
local prev = redis.call('GET', KEYS[1])
if prev == '1' then return 'replay' end
if prev then
  if prev == 'P ' .. ARGV[1] then return 'ok' end
  return 'conflict'
end
if ARGV[3] ~= '' and math.abs(tonumber(ARGV[3]) - tonumber(redis.call('TIME')[1])) > tonumber(ARGV[4]) then return 'stale' end
redis.call('SET', KEYS[1], 'P ' .. ARGV[1], 'EX', tonumber(ARGV[2]))
return 'new'
`;

/** KEYS: [identityKey]; ARGV: fingerprint. Gives back a claim whose publish stored nothing. */
export const CLUSTER_RELEASE_CLAIM_SCRIPT = `
if redis.call('GET', KEYS[1]) == 'P ' .. ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`;
