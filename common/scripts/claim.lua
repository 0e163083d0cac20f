-- claim.lua: a worker claims up to N ready tasks of one queue.
--
-- KEYS[1] ready  KEYS[2] running  KEYS[3] deadline  KEYS[4] events
-- KEYS[5] paused (exists while the queue is paused)
-- ARGV[1] task key prefix  ARGV[2] worker id  ARGV[3] lease length, ms
-- ARGV[4] most tasks to claim  ARGV[5] retention of terminal tasks, ms
--
-- Checks: the queue is not paused; each popped task is still queued (an
-- entry of a task that changed state since is dropped); a task whose
-- deadline passed before this start is expired instead of claimed.
-- Changes, per claimed task: attempt + 1, a new fencing token (strictly
-- increasing per task: the stored one + 1, read and written inside this
-- atomic call), state running, worker id, lease deadline = Redis TIME +
-- lease (also its score in the running set, which maintenance reads to
-- reclaim expired leases); leaves the deadline set; "claimed" event. Pops
-- in ready order: priority, then FIFO.
-- Cost: per task one HMGET and one HSET; the running and deadline sets are
-- written once per call (call_many), and only a task with a deadline is
-- removed from the deadline set.
-- Returns a flat list: id, token, attempt, max_attempts, timeout_ms, task
-- JSON for each claimed task.

if redis.call('EXISTS', KEYS[5]) == 1 then
  return reply({})
end
local prefix, worker = ARGV[1], ARGV[2]
local retention = tonumber(ARGV[5])
local now = now_ms()
local now_s = num(now)
local lease_s = num(now + tonumber(ARGV[3]))
local out, running, deadlines = {}, {}, {}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[4]))
for i = 1, #popped, 2 do
  local id = popped[i]
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'deadline_ms', 'max_attempts', 'timeout_ms',
                       'task', 'first_started_ms', 'attempt', 'ev', 'token')
  if h[1] == 'queued' then
    local seq = (tonumber(h[8]) or 0) + 1
    local deadline = h[2]
    if deadline then
      deadlines[#deadlines + 1] = id
    end
    if deadline and deadline ~= '' and tonumber(deadline) <= now then
      redis.call('HSET', tkey, 'state', 'expired', 'finished_ms', now_s,
                 'error', 'deadline passed before start', 'ev', num(seq))
      emit(KEYS[4], tkey, id, 'expired', 'queued', 'expired', now_s,
           {'error', 'deadline passed before start'}, seq, h[7] or '0')
      redis.call('PEXPIRE', tkey, retention)
    else
      local token = num((tonumber(h[9]) or 0) + 1)
      local attempt = num((tonumber(h[7]) or 0) + 1)
      if h[6] then
        redis.call('HSET', tkey, 'state', 'running', 'worker', worker, 'attempt', attempt,
                   'ev', num(seq), 'lease_ms', lease_s, 'started_ms', now_s, 'token', token)
      else
        redis.call('HSET', tkey, 'state', 'running', 'worker', worker, 'attempt', attempt,
                   'ev', num(seq), 'lease_ms', lease_s, 'started_ms', now_s, 'token', token,
                   'first_started_ms', now_s)
      end
      running[#running + 1] = lease_s
      running[#running + 1] = id
      emit(KEYS[4], tkey, id, 'claimed', 'queued', 'running', now_s,
           {'worker', worker, 'token', token}, seq, attempt)
      local n = #out
      out[n + 1], out[n + 2], out[n + 3] = id, token, attempt
      out[n + 4], out[n + 5], out[n + 6] = h[3], h[4], h[5]
    end
  end
end
call_many('ZREM', KEYS[3], deadlines)
call_many('ZADD', KEYS[2], running)
return reply(out)
