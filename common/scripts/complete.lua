-- complete.lua: a worker reports the success of some of its tasks of one
-- queue (its completer sends all of a round's successes of the queue in
-- one call).
--
-- KEYS[1] running  KEYS[2] events
-- ARGV[1] task key prefix  ARGV[2] retention of terminal tasks, ms
-- then triples: task id, fencing token, result (JSON text)
--
-- Checks, per task, exactly as for a single one: the task is running and
-- the token is its current one. Anything else (lease reclaimed, task
-- re-claimed by another worker) is refused with "STALE" and changes
-- nothing for that task: a late worker never overwrites the new owner
-- (guarantee 3); the other tasks of the call are not affected. Except a
-- repeat of this attempt's own success: a worker retries when the reply
-- was lost (broken connection, Redis restarted after writing it); the task
-- is then succeeded with this very token, which only this attempt can have
-- done, since every claim takes a new token. It gets 1 and changes
-- nothing, instead of a false "lease taken over".
-- Changes, per accepted task: state succeeded, result and finished time
-- kept, out of the running set, hash kept for the retention period;
-- "succeeded" event (all the call's events in one stream entry).
-- Cost: per task one HMGET, one HSET, one HDEL and one PEXPIRE; the
-- running set is written once per call.
-- Returns one answer per triple, in order: 1, or the error reply
-- "STALE ..." nested in the array.

local prefix = ARGV[1]
local retention = tonumber(ARGV[2])
local now_s = num(now_ms())
local out, done = {}, {}
for i = 3, #ARGV - 2, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'token', 'worker', 'attempt', 'ev')
  if h[1] == 'running' and h[2] == token then
    done[#done + 1] = id
    local seq = num((tonumber(h[5]) or 0) + 1)
    redis.call('HSET', tkey, 'state', 'succeeded', 'result', result, 'finished_ms', now_s,
               'ev', seq)
    redis.call('HDEL', tkey, 'lease_ms')
    emit(KEYS[2], tkey, id, 'succeeded', 'running', 'succeeded', now_s,
         {'worker', h[3] or '', 'token', token, 'result', result}, seq, h[4] or '0')
    redis.call('PEXPIRE', tkey, retention)
    out[#out + 1] = 1
  elseif h[1] == 'succeeded' and h[2] == token then
    out[#out + 1] = 1
  else
    out[#out + 1] = stale_reply(id, h, token)
  end
end
call_many('ZREM', KEYS[1], done)
return reply(out)
