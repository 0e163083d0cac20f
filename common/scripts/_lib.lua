-- _lib.lua: helpers shared by every baton script. common/redis.c prepends
-- this file to each other script before SCRIPT LOAD, so each script is one
-- self-contained unit in Redis and the helpers are written once.
--
-- Numbers: Lua turns numbers into text with "%.14g", which would round
-- millisecond times and ready scores; every number that goes back to Redis
-- goes through num() ("%.0f", exact below 2^53).

local SCORE_SPAN = 140737488355328 -- 2^47, common/queue.h BATON_SCORE_SPAN

local function num(n)
  return string.format('%.0f', n)
end

-- Redis TIME in milliseconds (docs/guarantees.md guarantee 5: time from Redis).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ready score: strict priority (9 first), FIFO by seq within a priority.
local function ready_score(priority, seq)
  return num((9 - tonumber(priority)) * SCORE_SPAN + seq)
end

-- Puts task `id` at the tail of its priority level in the ready queue.
local function push_ready(ready, seqkey, id, priority)
  local seq = redis.call('INCR', seqkey)
  redis.call('ZADD', ready, ready_score(priority, seq), id)
end

-- Wakes up to `n` idle workers blocked on the queue's notify list; the list
-- is bounded, an extra wake-up only costs a worker one empty claim.
local function wake(notify, n)
  if n > 0 then
    if n > 64 then n = 64 end
    local tokens = {}
    for i = 1, n do tokens[i] = '1' end
    redis.call('RPUSH', notify, unpack(tokens))
    redis.call('LTRIM', notify, -1024, -1)
  end
end

-- Appends one transition of task `id` (hash `tkey`) to the queue's events
-- stream, with the task's next event number: (queue, id, seq) is the
-- history's idempotency key. `extra` is a flat list of more field/values.
local function emit(events, tkey, id, event, from, to, at, extra)
  local seq = redis.call('HINCRBY', tkey, 'ev', 1)
  local attempt = redis.call('HGET', tkey, 'attempt') or '0'
  local args = {events, '*', 'id', id, 'seq', num(seq), 'event', event,
                'from', from, 'to', to, 'at', num(at), 'attempt', attempt}
  if extra then
    for i = 1, #extra do args[#args + 1] = extra[i] end
  end
  redis.call('XADD', unpack(args))
end

-- The fencing check of guarantee 3: task `id` (hash `tkey`) must be running
-- with fencing token `token`. Returns the HMGET of 'state', 'token' and
-- the extra fields asked for, or nil and the "STALE ..." error reply to
-- return (the caller changes nothing).
local function running_with(tkey, id, token, ...)
  local h = redis.call('HMGET', tkey, 'state', 'token', ...)
  if h[1] ~= 'running' or h[2] ~= token then
    return nil, redis.error_reply('STALE task ' .. id .. ' is ' .. tostring(h[1]) ..
                                  ' with token ' .. tostring(h[2]) .. ', not ' .. token)
  end
  return h
end
