-- The verifier's one round trip (DESIGN §7): replay, revocation, every GCRA
-- rate limit and the amount limits of one request, decided and counted
-- atomically. See state/src/consume.rs for the rules and redis/script.rs for
-- the caller. Nothing is written until every check has passed, except the
-- jti, which is single-use even when the request is refused.
--
-- KEYS[1]        agentauth:{uid}:jti:<jti>
-- KEYS[2]        agentauth:{uid}:revoked
-- KEYS[3]        agentauth:{uid}:since                     ms; absent unless re-published after a data loss
-- KEYS[3+i]      agentauth:{uid}:rl:<i-1>                  i = 1..n
-- KEYS[4+n]      agentauth:{uid}:day:<date>:<currency>     only with a transaction
--
-- ARGV[1]        now in unix µs, or '' for Redis TIME (tests pin the clock)
-- ARGV[2]        jti ttl, ms
-- ARGV[3]        n, the number of rate limits
-- ARGV[4]        the proof's iat, seconds
-- ARGV[3+2i]     T   (emission interval, µs) of limit i
-- ARGV[4+2i]     tau (tolerance, µs) of limit i
-- with a transaction, from b = 5 + 2n:
-- ARGV[b]        the UTC day (days since the epoch) the caller named KEYS[4+n] for
-- ARGV[b+1]      amount, minor units, decimal string
-- ARGV[b+2]      the amount's currency
-- ARGV[b+3]      the limits' currency
-- ARGV[b+4]      max per transaction, minor units, or ''
-- ARGV[b+5]      max per day, minor units, or ''
-- ARGV[b+6]      day key ttl, ms
--
-- Reply (first element is the outcome):
--   {0, limit, remaining, reset_ms, spent}   allowed; limit = -1 without limits, spent = '' without a transaction
--   {1}                                      jti already used
--   {8}                                      the proof predates the grant's since: nothing done
--   {2}                                      grant revoked
--   {3, limit, retry_after_us}               rate limited (the limit with the longest wait)
--   {4}                                      currency mismatch
--   {5}                                      amount over the per-transaction limit
--   {6, spent}                               over the daily limit; spent = the day's sum so far
--   {7, day}                                 the caller named another day than this clock's: nothing done, retry
--   {9, message}                             a stored value is malformed: nothing done
--
-- Numbers: Lua numbers are doubles. Instants and durations in µs stay below
-- 2^53 (core/src/gcra.rs), so the GCRA arithmetic is exact. Amounts may be
-- any u64, which doubles cannot hold, so sums are added and compared as
-- decimal strings, exactly like the u64 arithmetic of check_transaction_minor.

-- Redis < 5 needs this before writing after TIME; Redis 7 ignores it.
if redis.replicate_commands then redis.replicate_commands() end

local U64_MAX = '18446744073709551615'

-- Compares two canonical decimal strings (no leading zeros).
local function dec_cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

-- Adds two canonical decimal strings.
local function dec_add(a, b)
  local out, i, j, carry = {}, #a, #b, 0
  while i > 0 or j > 0 or carry > 0 do
    local s = carry
    if i > 0 then s = s + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then s = s + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = string.char(48 + s % 10)
    carry = (s - s % 10) / 10
  end
  if #out == 0 then return '0' end
  return string.reverse(table.concat(out))
end

local function canonical(s)
  return s == '0' or (#s <= 20 and string.find(s, '^[1-9]%d*$') ~= nil)
end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local n = tonumber(ARGV[3])
local has_tx = #KEYS == 4 + n
local b = 5 + 2 * n

-- 0. The day of the daily sum is this clock's, not the caller's: decline
-- before writing anything, so the caller can retry with this day.
if has_tx then
  local day = math.floor(now / 86400000000)
  if day ~= tonumber(ARGV[b]) then return {7, day} end
end

-- 0b. A proof whose whole second precedes the grant's since may have been
-- used before this Redis lost its data: refuse it, writing nothing
-- (keys::predates).
local since = redis.call('GET', KEYS[3])
if since then
  local s = tonumber(since)
  if not s then return {9, KEYS[3] .. ' does not hold a number'} end
  if tonumber(ARGV[4]) * 1000 + 1000 <= s then return {8} end
end

-- 1. Replay: the jti is claimed first and stays claimed whatever follows.
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return {1} end

-- 2. Revocation.
if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end

-- 3. Every rate limit: gcra::step, line by line; nothing written yet.
local new_tats, reset_mss = {}, {}
local best, best_rem, best_reset = -1, 0, 0
local worst, worst_wait = -1, 0
for i = 1, n do
  local t = tonumber(ARGV[3 + 2 * i])
  local tau = tonumber(ARGV[4 + 2 * i])
  local stored = redis.call('GET', KEYS[3 + i])
  local tat = now
  if stored then
    local s = tonumber(stored)
    if not s then return {9, KEYS[3 + i] .. ' does not hold a number'} end
    if s > now then tat = s end
  end
  local ahead = tat - now
  if ahead <= tau then
    local new_tat = tat + t
    local reset = new_tat - now
    local rem = 0
    if reset <= tau then rem = math.floor((tau - reset) / t) + 1 end
    -- ceil of an exact quotient below 2^53: as Decision::reset_after_ms.
    local reset_ms = math.ceil(reset / 1000)
    new_tats[i], reset_mss[i] = new_tat, reset_ms
    if best < 0 or rem < best_rem or (rem == best_rem and reset_ms > best_reset) then
      best, best_rem, best_reset = i - 1, rem, reset_ms
    end
  elseif worst < 0 or ahead - tau > worst_wait then
    worst, worst_wait = i - 1, ahead - tau
  end
end
if worst >= 0 then return {3, worst, worst_wait} end

-- 4. The transaction: check_transaction_minor, same checks, same order.
local spent = ''
if has_tx then
  local amount = ARGV[b + 1]
  if ARGV[b + 2] ~= ARGV[b + 3] then return {4} end
  if ARGV[b + 4] ~= '' and dec_cmp(amount, ARGV[b + 4]) > 0 then return {5} end
  local so_far = redis.call('GET', KEYS[4 + n]) or '0'
  if not canonical(so_far) then return {9, KEYS[4 + n] .. ' does not hold a sum'} end
  local total = dec_add(so_far, amount)
  if dec_cmp(total, U64_MAX) > 0 or (ARGV[b + 5] ~= '' and dec_cmp(total, ARGV[b + 5]) > 0) then
    return {6, so_far}
  end
  spent = total
end

-- 5. Admitted: count it.
for i = 1, n do
  redis.call('SET', KEYS[3 + i], string.format('%.0f', new_tats[i]), 'PX', string.format('%.0f', reset_mss[i]))
end
if has_tx then
  redis.call('SET', KEYS[4 + n], spent, 'PX', ARGV[b + 6])
end
return {0, best, best_rem, best_reset, spent}
