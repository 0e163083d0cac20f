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

-- Runs `cmd key v1 v2 ...` for the values of `list`, one command for the
-- whole list (a script that moves many tasks writes each set once per
-- call, not once per task: fewer commands to run and to append to the
-- AOF), split only where Lua's unpack() limit needs it. CALL_VALUES_MAX is
-- even, so score/member pairs are never split.
local CALL_VALUES_MAX = 7000
local function call_many(cmd, key, list)
  local n = #list
  if n == 0 then
    return
  end
  for i = 1, n, CALL_VALUES_MAX do
    redis.call(cmd, key, unpack(list, i, math.min(i + CALL_VALUES_MAX - 1, n)))
  end
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

-- The events of this call. emit() adds each event to a buffer and reply()
-- writes the buffer to the queue's events stream as ONE entry (one XADD per
-- script call, however many tasks it moved): its fields are the events one
-- after the other, each beginning with its field `id` (the task id), so a
-- reader splits the flat field list at every `id` field (common/events.h).
-- No extra field is ever named `id`. Every script that emits returns
-- through reply(), which tests/unit/test_transition.c checks.
local events_key, events_buf, events_bytes = nil, {}, 0
-- Two bounds make a large call write more than one entry: Lua's unpack()
-- gives at most 8000 values (LUAI_MAXCSTACK), and the history writer reads
-- whole entries, so --history-batch-bytes can bound its batches only if an
-- entry stays small (a 500-task enqueue of 64 KiB payloads would be one
-- 32 MiB entry). An event past either bound starts the next entry.
local EVENT_VALUES_MAX = 7000
local EVENT_BYTES_MAX = 65536

local function flush_events()
  if events_key then
    redis.call('XADD', events_key, '*', unpack(events_buf))
    events_key, events_buf, events_bytes = nil, {}, 0
  end
end

-- Returns `x` after writing the call's events (see above).
local function reply(x)
  flush_events()
  return x
end

-- Adds one transition of task `id` (hash `tkey`) to the call's events, with
-- the task's next event number: (queue, id, seq) is the history's
-- idempotency key. `extra` is a flat list of more field/values. `seq` and
-- `attempt`, when given, are the event number and attempt the caller has
-- already written to the hash (ev = seq): emit then reads and writes
-- nothing; else it takes them from the hash (HINCRBY ev, HGET attempt).
-- `at`, `seq` and `attempt` may be numbers or their exact decimal text (a
-- script that emits many events formats the call's time once).
local function emit(events, tkey, id, event, from, to, at, extra, seq, attempt)
  if not seq then
    seq = redis.call('HINCRBY', tkey, 'ev', 1)
  end
  if not attempt then
    attempt = redis.call('HGET', tkey, 'attempt') or '0'
  end
  local nextra = extra and #extra or 0
  local bytes = 64 -- the fixed fields, about
  for i = 2, nextra, 2 do
    local v = extra[i]
    bytes = bytes + (type(v) == 'string' and #v or 24)
  end
  if events_key and (#events_buf + 14 + nextra > EVENT_VALUES_MAX or
                     events_bytes + bytes > EVENT_BYTES_MAX) then
    flush_events()
  end
  events_bytes = events_bytes + bytes
  events_key = events
  local b = events_buf
  local n = #b
  if type(seq) == 'number' then seq = num(seq) end
  if type(at) == 'number' then at = num(at) end
  if type(attempt) == 'number' then attempt = num(attempt) end
  b[n + 1], b[n + 2], b[n + 3], b[n + 4] = 'id', id, 'seq', seq
  b[n + 5], b[n + 6], b[n + 7], b[n + 8] = 'event', event, 'from', from
  b[n + 9], b[n + 10], b[n + 11], b[n + 12] = 'to', to, 'at', at
  b[n + 13], b[n + 14] = 'attempt', attempt
  n = n + 14
  for i = 1, nextra do b[n + i] = extra[i] end
end

-- The "STALE ..." error reply for task `id`, whose hash holds state h[1]
-- and token h[2], refused for the fencing token `token`.
local function stale_reply(id, h, token)
  return redis.error_reply('STALE task ' .. id .. ' is ' .. tostring(h[1]) ..
                           ' with token ' .. tostring(h[2]) .. ', not ' .. token)
end

-- The fencing check of guarantee 3: task `id` (hash `tkey`) must be running
-- with fencing token `token`. Returns the HMGET of 'state', 'token' and
-- the extra fields asked for, or nil and the "STALE ..." error reply to
-- return (the caller changes nothing).
local function running_with(tkey, id, token, ...)
  local h = redis.call('HMGET', tkey, 'state', 'token', ...)
  if h[1] ~= 'running' or h[2] ~= token then
    return nil, stale_reply(id, h, token)
  end
  return h
end
