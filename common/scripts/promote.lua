-- promote.lua: move due tasks of one queue from the scheduled set to ready.
--
-- KEYS[1] scheduled  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  KEYS[5] notify
-- ARGV[1] task key prefix   ARGV[2] most tasks to move in this call
--
-- Checks: each due id's task is still in state scheduled (an entry left by
-- a task that changed state since is only removed).
-- Changes: scheduled -> queued, in the ready queue at the tail of its
-- priority; appends a "due" event. Safe with several schedulers: the move is
-- one atomic script, so each task moves exactly once.
-- Returns {moved, next due time in ms or -1 when the set is empty}.

local prefix = ARGV[1]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', num(now), 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'priority')
  if h[1] == 'scheduled' then
    push_ready(KEYS[2], KEYS[3], id, h[2])
    redis.call('HSET', tkey, 'state', 'queued', 'queued_ms', num(now))
    emit(KEYS[4], tkey, id, 'due', 'scheduled', 'queued', now)
    moved = moved + 1
  end
end
wake(KEYS[5], moved)
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if head[2] then next_due = tonumber(head[2]) end
return reply({moved, num(next_due)})
