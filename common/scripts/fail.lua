-- fail.lua: a worker reports a failed attempt (error or timeout).
--
-- KEYS[1] running  KEYS[2] scheduled  KEYS[3] dead  KEYS[4] events
-- ARGV[1] task key prefix  ARGV[2] id  ARGV[3] fencing token
-- ARGV[4] error text  ARGV[5] reason ("error", "timeout", "crash")
-- ARGV[6] backoff base, ms  ARGV[7] backoff cap, ms
-- ARGV[8] jitter in [0, 1) (from the worker: randomness, not a clock)
-- ARGV[9] 1 = permanent failure, do not retry
-- ARGV[10] retention of terminal tasks, ms
--
-- Checks: running with the current token, else refused with "STALE"
-- (changes nothing).
-- Changes: cancellation requested (batonctl cancel while it ran) -> state
-- canceled, event "canceled": a cancel is never lost to a retry;
-- attempts left and not permanent -> state scheduled, due at
-- Redis TIME + full-jitter exponential backoff
-- (jitter * min(cap, base * 2^(attempt-1))), in the scheduled set, event
-- "failed"; else state dead, in the dead set, event "dead". Error text kept.
-- Returns {state, due time ms or -1}.

local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local tkey = prefix .. id
local h, stale = running_with(tkey, id, token, 'worker', 'attempt', 'max_attempts', 'cancel_requested')
if not h then
  return stale
end
local now = now_ms()
local attempt, max_attempts = tonumber(h[4]), tonumber(h[5])
local extra = {'worker', h[3] or '', 'token', token, 'error', ARGV[4], 'reason', ARGV[5]}
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', tkey, 'lease_ms')
if h[6] == '1' then
  redis.call('HSET', tkey, 'state', 'canceled', 'error', ARGV[4], 'finished_ms', num(now))
  emit(KEYS[4], tkey, id, 'canceled', 'running', 'canceled', now, extra)
  redis.call('PEXPIRE', tkey, tonumber(ARGV[10]))
  return reply({'canceled', '-1'})
end
if attempt < max_attempts and ARGV[9] ~= '1' then
  -- The exponent stops at 62: from attempt 1025 on, 2^(attempt-1) is inf
  -- in Lua's doubles, and a base of 0 times inf is NaN, which ZADD refuses
  -- (tasks enqueued before max_attempts was capped at 1000 can get there).
  local window = tonumber(ARGV[6]) * (2 ^ math.min(attempt - 1, 62))
  if window > tonumber(ARGV[7]) then window = tonumber(ARGV[7]) end
  local due = now + math.floor(tonumber(ARGV[8]) * window)
  redis.call('HSET', tkey, 'state', 'scheduled', 'error', ARGV[4], 'due_ms', num(due))
  redis.call('ZADD', KEYS[2], num(due), id)
  extra[#extra + 1] = 'due'
  extra[#extra + 1] = num(due)
  emit(KEYS[4], tkey, id, 'failed', 'running', 'scheduled', now, extra)
  return reply({'scheduled', num(due)})
end
redis.call('HSET', tkey, 'state', 'dead', 'error', ARGV[4], 'finished_ms', num(now))
redis.call('ZADD', KEYS[3], num(now), id)
emit(KEYS[4], tkey, id, 'dead', 'running', 'dead', now, extra)
return reply({'dead', '-1'})
