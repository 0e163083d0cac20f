-- expire.lua: expire tasks of one queue whose deadline passed before they
-- started.
--
-- KEYS[1] deadline  KEYS[2] ready  KEYS[3] scheduled  KEYS[4] events
-- ARGV[1] task key prefix  ARGV[2] most tasks per call
-- ARGV[3] retention of terminal tasks, ms
--
-- Checks: the task is still queued or scheduled (a task that started is
-- past its deadline's reach: the entry is only removed).
-- Changes: state -> expired, out of the ready/scheduled set, finished time
-- set, the task hash kept for the retention period; appends "expired".
-- Returns {expired, next deadline in ms or -1}.

local prefix = ARGV[1]
local retention = tonumber(ARGV[3])
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', num(now), 'LIMIT', 0, tonumber(ARGV[2]))
local expired = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local tkey = prefix .. id
  local state = redis.call('HGET', tkey, 'state')
  if state == 'queued' or state == 'scheduled' then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('HSET', tkey, 'state', 'expired', 'finished_ms', num(now),
               'error', 'deadline passed before start')
    emit(KEYS[4], tkey, id, 'expired', state, 'expired', now,
         {'error', 'deadline passed before start'})
    redis.call('PEXPIRE', tkey, retention)
    expired = expired + 1
  end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_deadline = -1
if head[2] then next_deadline = tonumber(head[2]) end
return reply({expired, num(next_deadline)})
