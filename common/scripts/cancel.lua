-- cancel.lua: cancel a task (batonctl cancel).
--
-- KEYS[1] ready  KEYS[2] scheduled  KEYS[3] deadline  KEYS[4] events
-- ARGV[1] task key prefix  ARGV[2] id  ARGV[3] retention of terminal tasks, ms
--
-- Checks: the task exists and is not finished.
-- Changes: queued or scheduled -> canceled at once (out of its sets, event
-- "canceled"); running -> marked cancel_requested (event
-- "cancel_requested"): the worker learns it at its next lease renewal,
-- stops the handler and reports "canceled" (finish_canceled.lua).
-- Returns "canceled" or "cancel_requested"; error replies NOTFOUND and
-- STATE (with the current state) otherwise.

local prefix, id = ARGV[1], ARGV[2]
local tkey = prefix .. id
local state = redis.call('HGET', tkey, 'state')
if not state then
  return redis.error_reply('NOTFOUND task ' .. id .. ' does not exist')
end
local now = now_ms()
if state == 'queued' or state == 'scheduled' then
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', tkey, 'state', 'canceled', 'finished_ms', num(now))
  emit(KEYS[4], tkey, id, 'canceled', state, 'canceled', now)
  redis.call('PEXPIRE', tkey, tonumber(ARGV[3]))
  return reply('canceled')
elseif state == 'running' then
  if redis.call('HGET', tkey, 'cancel_requested') ~= '1' then
    redis.call('HSET', tkey, 'cancel_requested', '1')
    emit(KEYS[4], tkey, id, 'cancel_requested', 'running', 'running', now)
  end
  return reply('cancel_requested')
end
return redis.error_reply('STATE task ' .. id .. ' is ' .. state .. ' and cannot be canceled')
