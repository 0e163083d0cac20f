-- finish_canceled.lua: a worker confirms it stopped a task whose
-- cancellation was requested while it ran.
--
-- KEYS[1] running  KEYS[2] events
-- ARGV[1] task key prefix  ARGV[2] id  ARGV[3] fencing token
-- ARGV[4] retention of terminal tasks, ms
--
-- Checks: running with the current token, else "STALE" (changes nothing).
-- Changes: state canceled, out of the running set; event "canceled".
-- Returns 1.

local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local tkey = prefix .. id
local h, stale = running_with(tkey, id, token, 'worker')
if not h then
  return stale
end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', tkey, 'state', 'canceled', 'finished_ms', num(now))
redis.call('HDEL', tkey, 'lease_ms')
emit(KEYS[2], tkey, id, 'canceled', 'running', 'canceled', now,
     {'worker', h[3] or '', 'token', token})
redis.call('PEXPIRE', tkey, tonumber(ARGV[4]))
return reply(1)
