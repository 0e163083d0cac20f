-- retry.lua: give a dead task a new set of attempts (batonctl retry).
--
-- KEYS[1] dead  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  KEYS[5] notify
-- ARGV[1] task key prefix  ARGV[2] id
--
-- Checks: the task exists and is dead.
-- Changes: out of the dead set, attempt back to 0, error kept until the
-- next outcome, state queued at the tail of its priority; event "retried".
-- Returns 1; error replies NOTFOUND and STATE otherwise.

local prefix, id = ARGV[1], ARGV[2]
local tkey = prefix .. id
local h = redis.call('HMGET', tkey, 'state', 'priority')
if not h[1] then
  return redis.error_reply('NOTFOUND task ' .. id .. ' does not exist')
end
if h[1] ~= 'dead' then
  return redis.error_reply('STATE task ' .. id .. ' is ' .. h[1] .. ', only dead tasks are retried')
end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', tkey, 'attempt', '0', 'state', 'queued', 'queued_ms', num(now))
redis.call('HDEL', tkey, 'finished_ms')
push_ready(KEYS[2], KEYS[3], id, h[2])
emit(KEYS[4], tkey, id, 'retried', 'dead', 'queued', now)
wake(KEYS[5], 1)
return reply(1)
