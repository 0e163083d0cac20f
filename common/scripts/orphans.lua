-- orphans.lua: the history writer takes over events no writer will ever
-- read again.
--
-- KEYS[1] events stream (a queue's baton:{q}:events or baton:rejections)
-- ARGV[1] consumer group   ARGV[2] consumer (the calling writer)
-- ARGV[3] most entries looked at in this call
--
-- The stream holds exactly the events PostgreSQL does not have yet: a
-- writer deletes an entry in the same transaction that acknowledges it.
-- So an entry at or behind the group's last delivered id should be in a
-- pending list, where XAUTOCLAIM finds it when its writer is gone. One that
-- is not was lost by the group: acknowledged without being deleted (by a
-- writer of an earlier version killed between its XACK and its XDEL) or
-- skipped by the group's position (an operator's XGROUP SETID, a restore
-- of an older stream under a newer group). XREADGROUP would never return
-- it again and the backlog would never drain.
-- Checks: which of the oldest ARGV[3] entries up to the last delivered id
-- are in no pending list (one script: a writer acknowledging meanwhile
-- cannot make an entry look lost).
-- Changes: those entries become pending for ARGV[2] (XCLAIM ... FORCE), as
-- if it had read them, so a writer dying with them leaves them to
-- XAUTOCLAIM like any other entry.
-- Returns the claimed entries ([id, [field, value, ...]] as XCLAIM does),
-- empty when there are none, or the error reply "NOGROUP ..." when the
-- stream has no such group.

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local count = tonumber(ARGV[3])
if redis.call('EXISTS', stream) == 0 then
  return redis.error_reply('NOGROUP no stream ' .. stream)
end
local last, npending
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == group then
    last, npending = info['last-delivered-id'], info['pending']
  end
end
if not last then
  return redis.error_reply('NOGROUP no consumer group ' .. group .. ' on ' .. stream)
end
local entries = redis.call('XRANGE', stream, '-', last, 'COUNT', count)
if #entries == 0 then
  return {}
end
-- Every pending entry in the range, even those whose entry was deleted.
local pending = {}
if npending > 0 then
  local first_id, last_id = entries[1][1], entries[#entries][1]
  for _, p in ipairs(redis.call('XPENDING', stream, group, first_id, last_id, npending)) do
    pending[p[1]] = true
  end
end
local claim = {'XCLAIM', stream, group, consumer, '0'}
for _, e in ipairs(entries) do
  if not pending[e[1]] then claim[#claim + 1] = e[1] end
end
if #claim == 5 then
  return {}
end
claim[#claim + 1] = 'FORCE'
return redis.call(unpack(claim))
