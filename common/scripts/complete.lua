-- complete.lua: a worker reports success.
--
-- KEYS[1] running  KEYS[2] events
-- ARGV[1] task key prefix  ARGV[2] id  ARGV[3] fencing token
-- ARGV[4] result (JSON text)  ARGV[5] retention of terminal tasks, ms
--
-- Checks: the task is running and ARGV[3] is its current token. Anything
-- else (lease reclaimed, task re-claimed by another worker) is refused
-- with "stale" and changes nothing: a late worker never overwrites the
-- new owner (guarantee 3). Except a repeat of this attempt's own success:
-- a worker retries when the reply was lost (broken connection, Redis
-- restarted after writing it); the task is then succeeded with this very
-- token, which only this attempt can have done, since every claim takes a
-- new token. It gets 1 and changes nothing, instead of a false "lease
-- taken over".
-- Changes: state succeeded, result and finished time kept, out of the
-- running set, hash kept for the retention period; "succeeded" event.
-- Returns 1, or the error reply "STALE ...".

local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local tkey = prefix .. id
local h, stale = running_with(tkey, id, token, 'worker', 'attempt', 'ev')
if not h then
  local done = redis.call('HMGET', tkey, 'state', 'token')
  if done[1] == 'succeeded' and done[2] == token then
    return reply(1)
  end
  return stale
end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
local seq = (tonumber(h[5]) or 0) + 1
redis.call('HSET', tkey, 'state', 'succeeded', 'result', ARGV[4], 'finished_ms', num(now),
           'ev', num(seq))
redis.call('HDEL', tkey, 'lease_ms')
emit(KEYS[2], tkey, id, 'succeeded', 'running', 'succeeded', now,
     {'worker', h[3] or '', 'token', token, 'result', ARGV[4]}, seq, h[4] or '0')
redis.call('PEXPIRE', tkey, tonumber(ARGV[5]))
return reply(1)
