-- renew.lua: extend the leases of a worker's running tasks of one queue.
--
-- KEYS[1] running
-- ARGV[1] task key prefix  ARGV[2] lease length, ms
-- then pairs: task id, fencing token
--
-- Checks, per task: still running and the token is the current one.
-- Changes: lease deadline = Redis TIME + lease (hash and running set).
-- Returns one integer per pair: 1 renewed, 2 renewed but cancellation was
-- requested (the worker stops the handler and reports "canceled"), 0
-- refused (stale token or no longer running: the worker must abandon the
-- task without writing).

local prefix = ARGV[1]
local lease = tonumber(ARGV[2])
local now = now_ms()
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'token', 'cancel_requested')
  if h[1] == 'running' and h[2] == token then
    local deadline = num(now + lease)
    redis.call('HSET', tkey, 'lease_ms', deadline)
    redis.call('ZADD', KEYS[1], deadline, id)
    if h[3] == '1' then out[#out + 1] = 2 else out[#out + 1] = 1 end
  else
    out[#out + 1] = 0
  end
end
return out
