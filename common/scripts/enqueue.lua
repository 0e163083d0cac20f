-- enqueue.lua: ingest a batch of validated tasks of one queue.
--
-- KEYS[1] ready      KEYS[2] scheduled   KEYS[3] deadline
-- KEYS[4] seq        KEYS[5] events      KEYS[6] notify
-- ARGV[1] task key prefix ("baton:{q}:t:")
-- ARGV[2] retention of terminal tasks, ms    ARGV[3] number of tasks N
-- then N groups of 11 values:
--   id, priority, max_attempts, timeout_ms, run_at_ms|'', delay_ms|'',
--   deadline_ms|'', kafka topic, kafka partition, kafka offset, task JSON
--
-- Checks: a task hash with the same id exists (a replayed message) -> that
-- task is left exactly as it is (idempotent enqueue, guarantee 2).
-- Changes, per new task: creates its hash; deadline already passed -> state
-- expired; earliest start in the future -> state scheduled, in the scheduled
-- set at its due time; else state queued, in the ready queue by priority
-- then FIFO. A deadline goes in the deadline set. Appends the "submitted"
-- event (with the task JSON and Kafka coordinates) to the events stream.
-- Returns {queued, scheduled, expired, duplicates}.
-- Cost: per task one EXISTS and one HSET; the seq counter and each set are
-- written once per call.
--
-- Numbers are Lua doubles: run_at and deadline (years 0000-9999) and
-- now + delay_ms (delay_ms at most 365 days, common/task.h) stay below
-- 2^53 in magnitude, so every time here is exact.

local prefix = ARGV[1]
local retention = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now = now_ms()
local now_s = num(now)
local queued, scheduled, expired, duplicates = 0, 0, 0, 0
-- The sets are written once per call (call_many): ready ids and their
-- priorities in task order (their seqs come from one INCRBY), scheduled
-- and deadline score/member pairs.
local ready_ids, ready_prio, sched, deadlines = {}, {}, {}, {}

for i = 0, n - 1 do
  local b = 3 + i * 11
  local id = ARGV[b + 1]
  local tkey = prefix .. id
  if redis.call('EXISTS', tkey) == 1 then
    duplicates = duplicates + 1
  else
    local priority = ARGV[b + 2]
    local due = now
    if ARGV[b + 5] ~= '' then
      due = tonumber(ARGV[b + 5])
    elseif ARGV[b + 6] ~= '' then
      due = now + tonumber(ARGV[b + 6])
    end
    local deadline = ARGV[b + 7]
    local state = 'queued'
    if deadline ~= '' and tonumber(deadline) <= now then
      state = 'expired'
    elseif due > now then
      state = 'scheduled'
    end
    -- The hash keeps what the scripts and batonctl read, and nothing the
    -- key, a default or the history already says (docs/redis.md, task
    -- hash): no id or queue (in the key), token or attempt (0 until the
    -- first claim), submission time, Kafka coordinates (in the "submitted" event and
    -- the history row), due time unless scheduled, deadline unless set.
    -- Small enough to stay in Redis's compact listpack encoding.
    local fields = {'state', state, 'priority', priority, 'max_attempts', ARGV[b + 3],
                    'timeout_ms', ARGV[b + 4], 'task', ARGV[b + 11], 'ev', '1'}
    if deadline ~= '' then
      fields[#fields + 1] = 'deadline_ms'
      fields[#fields + 1] = deadline
    end
    local due_s = now_s
    if due ~= now then
      due_s = num(due)
    end
    if state == 'scheduled' then
      fields[#fields + 1] = 'due_ms'
      fields[#fields + 1] = due_s
    elseif state == 'expired' then
      fields[#fields + 1] = 'finished_ms'
      fields[#fields + 1] = now_s
      fields[#fields + 1] = 'error'
      fields[#fields + 1] = 'deadline passed before start'
    end
    redis.call('HSET', tkey, unpack(fields))
    local extra = {'task', ARGV[b + 11], 'ktopic', ARGV[b + 8], 'kpartition', ARGV[b + 9],
                   'koffset', ARGV[b + 10], 'due', due_s}
    if state == 'expired' then
      extra[#extra + 1] = 'error'
      extra[#extra + 1] = 'deadline passed before start'
    end
    emit(KEYS[5], tkey, id, 'submitted', '', state, now_s, extra, '1', '0')
    if state == 'queued' then
      queued = queued + 1
      ready_ids[queued] = id
      ready_prio[queued] = priority
    elseif state == 'scheduled' then
      sched[#sched + 1] = due_s
      sched[#sched + 1] = id
      scheduled = scheduled + 1
    else
      redis.call('PEXPIRE', tkey, retention)
      expired = expired + 1
    end
    if deadline ~= '' and state ~= 'expired' then
      deadlines[#deadlines + 1] = deadline
      deadlines[#deadlines + 1] = id
    end
  end
end

if queued > 0 then
  -- The seqs first+1 .. first+queued, in task order: FIFO as if each task
  -- had taken its own INCR.
  local first = redis.call('INCRBY', KEYS[4], queued) - queued
  local ready = {}
  for k = 1, queued do
    ready[2 * k - 1] = ready_score(ready_prio[k], first + k)
    ready[2 * k] = ready_ids[k]
  end
  call_many('ZADD', KEYS[1], ready)
end
call_many('ZADD', KEYS[2], sched)
call_many('ZADD', KEYS[3], deadlines)

wake(KEYS[6], queued)
return reply({queued, scheduled, expired, duplicates})
