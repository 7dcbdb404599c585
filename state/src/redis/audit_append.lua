-- Idempotent append of one producer's audit events (DESIGN §8); the same
-- rules as agentauth_state::audit::check_batch, in one atomic step.
--
-- KEYS[1]  agentauth:{audit}:stream          the audit stream
-- KEYS[2]  agentauth:{audit}:last:<producer>  the producer's newest event, JSON
-- KEYS[3]  agentauth:{audit}:seen:<producer>  hash: seq -> event hash, newest ARGV[1] events
-- KEYS[4]  agentauth:{audit}:heartbeats        hash: producer -> newest event, JSON (its heartbeat)
-- KEYS[5..] agentauth:{audit}:once:<mark>      the once-only marks of the events that carry one
-- ARGV[1]  window: how many (seq, hash) pairs to keep
-- ARGV[2]  the genesis hash (prev of event 0)
-- ARGV[3]  field name of a stream entry
-- ARGV[4]  ttl of KEYS[3], ms (refreshed on every write)
-- ARGV[5]  n, the number of events; then per event 5 values:
--          seq (decimal), prev, hash, JSON, the index in KEYS of its mark (0: none)
-- ARGV[6 + 5n]  the producer (the field of its heartbeat)
-- ARGV[7 + 5n]  ttl of a mark, ms
--
-- A new event with a mark goes in only while the mark is unset, and sets it
-- to "<producer>#<seq>"; an already written event (a retry) is skipped
-- whatever its mark.
--
-- Reply: {0, written, skipped}
--        {1, kind ("gap" | "fork" | "beyond_window"), seq, message}: nothing written
--        {2, seq, mark key}: a new event's mark is set; nothing written
--        {9, message}: the stored last event is unreadable; nothing written
--
-- Every check runs before the first write, so a refusal writes nothing (a
-- Lua error after a write would not roll it back).

local window = tonumber(ARGV[1])
local n = tonumber(ARGV[5])

-- The stored end of the chain.
local next_seq, last_hash, head_seq = 0, ARGV[2], nil
local stored = redis.call('GET', KEYS[2])
if stored then
  local ok, event = pcall(cjson.decode, stored)
  if not ok or type(event) ~= 'table' or type(event.seq) ~= 'number'
      or type(event.hash) ~= 'string' then
    return {9, KEYS[2] .. ' is not an audit event'}
  end
  head_seq = event.seq
  next_seq = event.seq + 1
  last_hash = event.hash
end

local producer = ARGV[6 + 5 * n]

-- Pass 1: classify, write nothing.
local skipped = 0
local marking = {}
for i = 1, n do
  local base = 5 + (i - 1) * 5
  local seq_text, prev, hash = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local seq = tonumber(seq_text)
  if seq < next_seq then
    if i - 1 > skipped then
      return {1, 'fork', seq_text, 'the batch repeats a place it has just written'}
    end
    local at = nil
    if seq == head_seq then
      at = last_hash
    else
      at = redis.call('HGET', KEYS[3], seq_text)
    end
    if not at then
      return {1, 'beyond_window', seq_text,
        'older than the stored window of ' .. ARGV[1] .. ' events'}
    elseif at ~= hash then
      return {1, 'fork', seq_text, 'another event is already stored at this place'}
    end
    skipped = skipped + 1
  elseif seq > next_seq then
    return {1, 'gap', seq_text,
      'the stored chain ends before #' .. string.format('%.0f', next_seq)}
  elseif prev ~= last_hash then
    return {1, 'fork', seq_text, 'it does not link to the stored last event'}
  else
    local mark = tonumber(ARGV[base + 5])
    if mark > 0 then
      if marking[KEYS[mark]] or redis.call('EXISTS', KEYS[mark]) == 1 then
        return {2, seq_text, KEYS[mark]}
      end
      marking[KEYS[mark]] = true
    end
    next_seq = next_seq + 1
    last_hash = hash
  end
end

-- Pass 2: write the new events.
local newest = nil
for i = skipped + 1, n do
  local base = 5 + (i - 1) * 5
  local seq_text, hash, json = ARGV[base + 1], ARGV[base + 3], ARGV[base + 4]
  redis.call('XADD', KEYS[1], '*', ARGV[3], json)
  local mark = tonumber(ARGV[base + 5])
  if mark > 0 then
    redis.call('SET', KEYS[mark], producer .. '#' .. seq_text, 'PX', ARGV[7 + 5 * n])
  end
  redis.call('HSET', KEYS[3], seq_text, hash)
  local old = tonumber(seq_text) - window
  if old >= 0 then
    redis.call('HDEL', KEYS[3], string.format('%.0f', old))
  end
  newest = json
end
if newest then
  redis.call('SET', KEYS[2], newest)
  -- The heartbeat is written with the events, so it never names a record
  -- the stream does not hold: the archiver takes anything missing below it
  -- as a cut tail.
  redis.call('HSET', KEYS[4], producer, newest)
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return {0, n - skipped, skipped}
