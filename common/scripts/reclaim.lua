-- reclaim.lua: take back running tasks of one queue whose lease expired
-- (their worker died, hung or lost its connection).
--
-- KEYS[1] running  KEYS[2] ready  KEYS[3] dead  KEYS[4] seq
-- KEYS[5] events   KEYS[6] notify
-- ARGV[1] task key prefix  ARGV[2] most tasks per call
-- ARGV[3] retention of terminal tasks, ms
--
-- Checks: the task is still running and its lease deadline (the score) has
-- passed by Redis time. A renewal that raced us moved the score forward,
-- so ZRANGEBYSCORE no longer returns it.
-- Changes: attempts left -> queued again at the tail of its priority, event
-- "reclaimed"; attempts used up -> dead (dead set), event "dead"; a task
-- whose cancellation was requested -> canceled, event "canceled". Either way
-- the worker and lease are cleared, so the old owner's fencing token no
-- longer matches a running task and its late result is refused.
-- Returns {requeued, dead}.

local prefix = ARGV[1]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', num(now), 'LIMIT', 0, tonumber(ARGV[2]))
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'attempt', 'max_attempts', 'priority',
                       'worker', 'token', 'cancel_requested')
  if h[1] == 'running' then
    local extra = {'worker', h[5] or '', 'token', h[6] or '0', 'error', 'lease expired'}
    redis.call('HDEL', tkey, 'worker', 'lease_ms')
    if h[7] == '1' then
      redis.call('HSET', tkey, 'state', 'canceled', 'finished_ms', num(now))
      emit(KEYS[5], tkey, id, 'canceled', 'running', 'canceled', now, extra)
      redis.call('PEXPIRE', tkey, tonumber(ARGV[3]))
    elseif tonumber(h[2]) >= tonumber(h[3]) then
      redis.call('HSET', tkey, 'state', 'dead', 'finished_ms', num(now), 'error', 'lease expired')
      redis.call('ZADD', KEYS[3], num(now), id)
      emit(KEYS[5], tkey, id, 'dead', 'running', 'dead', now, extra)
      dead = dead + 1
    else
      push_ready(KEYS[2], KEYS[4], id, h[4])
      redis.call('HSET', tkey, 'state', 'queued', 'queued_ms', num(now), 'error', 'lease expired')
      emit(KEYS[5], tkey, id, 'reclaimed', 'running', 'queued', now, extra)
      requeued = requeued + 1
    end
  end
end
wake(KEYS[6], requeued)
return reply({requeued, dead})
