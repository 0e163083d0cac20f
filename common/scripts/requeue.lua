-- requeue.lua: a stopping worker hands back a task it could not finish
-- within its grace period (graceful stop, guarantee 8).
--
-- KEYS[1] running  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  KEYS[5] notify
-- ARGV[1] task key prefix  ARGV[2] id  ARGV[3] fencing token
-- ARGV[4] retention of terminal tasks, ms
--
-- Checks: running with the current token, else "STALE" (changes nothing).
-- Changes: back to the HEAD of its priority in the ready queue (score with
-- a negative sequence number), and the attempt is given back (attempt - 1):
-- being stopped by a deploy is not a failure of the task. State queued,
-- event "returned". A task whose cancellation was requested is canceled
-- instead (event "canceled").
-- Returns 1.

local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local tkey = prefix .. id
local h, stale = running_with(tkey, id, token, 'worker', 'priority', 'cancel_requested')
if not h then
  return stale
end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
if h[5] == '1' then
  redis.call('HSET', tkey, 'state', 'canceled', 'finished_ms', num(now))
  redis.call('HDEL', tkey, 'lease_ms')
  emit(KEYS[4], tkey, id, 'canceled', 'running', 'canceled', now,
       {'worker', h[3] or '', 'token', token})
  redis.call('PEXPIRE', tkey, tonumber(ARGV[4]))
  return reply(1)
end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], ready_score(h[4], -seq), id)
redis.call('HINCRBY', tkey, 'attempt', -1)
redis.call('HSET', tkey, 'state', 'queued', 'queued_ms', num(now))
redis.call('HDEL', tkey, 'worker', 'lease_ms')
emit(KEYS[4], tkey, id, 'returned', 'running', 'queued', now,
     {'worker', h[3] or '', 'token', token})
wake(KEYS[5], 1)
return reply(1)
