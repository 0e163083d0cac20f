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
-- increasing per task: HINCRBY), state running, worker id, lease deadline =
-- Redis TIME + lease (also its score in the running set, which maintenance
-- reads to reclaim expired leases); leaves the deadline set; "claimed"
-- event. Pops in ready order: priority, then FIFO.
-- Returns a flat list: id, token, attempt, max_attempts, timeout_ms, task
-- JSON for each claimed task.

if redis.call('EXISTS', KEYS[5]) == 1 then
  return reply({})
end
local prefix, worker = ARGV[1], ARGV[2]
local lease = tonumber(ARGV[3])
local retention = tonumber(ARGV[5])
local now = now_ms()
local out = {}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[4]))
for i = 1, #popped, 2 do
  local id = popped[i]
  local tkey = prefix .. id
  local h = redis.call('HMGET', tkey, 'state', 'deadline_ms', 'max_attempts', 'timeout_ms',
                       'task', 'first_started_ms', 'attempt', 'ev')
  if h[1] == 'queued' then
    redis.call('ZREM', KEYS[3], id)
    if h[2] and h[2] ~= '' and tonumber(h[2]) <= now then
      redis.call('HSET', tkey, 'state', 'expired', 'finished_ms', num(now),
                 'error', 'deadline passed before start')
      emit(KEYS[4], tkey, id, 'expired', 'queued', 'expired', now,
           {'error', 'deadline passed before start'})
      redis.call('PEXPIRE', tkey, retention)
    else
      local token = redis.call('HINCRBY', tkey, 'token', 1)
      local attempt = tonumber(h[7] or '0') + 1
      local seq = (tonumber(h[8]) or 0) + 1
      local deadline = now + lease
      redis.call('HSET', tkey, 'state', 'running', 'worker', worker, 'attempt', num(attempt),
                 'ev', num(seq), 'lease_ms', num(deadline), 'started_ms', num(now))
      if not h[6] then
        redis.call('HSET', tkey, 'first_started_ms', num(now))
      end
      redis.call('ZADD', KEYS[2], num(deadline), id)
      emit(KEYS[4], tkey, id, 'claimed', 'queued', 'running', now,
           {'worker', worker, 'token', num(token)}, seq, attempt)
      out[#out + 1] = id
      out[#out + 1] = num(token)
      out[#out + 1] = num(attempt)
      out[#out + 1] = h[3]
      out[#out + 1] = h[4]
      out[#out + 1] = h[5]
    end
  end
end
return reply(out)
