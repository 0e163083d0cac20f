-- orphans.lua: the history writer takes over events no writer will ever
-- read again.
--
-- KEYS[1] events stream (a queue's baton:{q}:events or baton:rejections)
-- ARGV[1] consumer group   ARGV[2] consumer (the calling writer)
-- ARGV[3] most entries looked at in this call
--
-- Every entry of the stream before the group's smallest pending id (or,
-- with nothing pending, up to its last delivered id) was delivered and is
-- in no pending list, so it was acknowledged (written) or lost; and every
-- acknowledgement trims the stream up to exactly that point in the same
-- script (ack.lua). So an entry found there is one the group lost:
-- acknowledged without being deleted by a writer of an earlier version
-- (killed between its XACK and its XDEL), or skipped by the group's
-- position (an operator's XGROUP SETID, a restore of an older stream under
-- a newer group). XREADGROUP would never return it again and the next
-- trim would drop it unwritten. (An entry skipped while an older one is
-- pending is not found: it looks like one acknowledged by another writer,
-- which stays until the older one is acknowledged.)
-- Checks: the oldest ARGV[3] entries before that point (one script: a
-- writer acknowledging meanwhile cannot make an entry look lost).
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
-- Up to the smallest pending id (excluded), else the last delivered one.
local upto = last
if npending > 0 then
  upto = '(' .. redis.call('XPENDING', stream, group)[2]
end
local entries = redis.call('XRANGE', stream, '-', upto, 'COUNT', count)
if #entries == 0 then
  return {}
end
local claim = {'XCLAIM', stream, group, consumer, '0'}
for _, e in ipairs(entries) do claim[#claim + 1] = e[1] end
claim[#claim + 1] = 'FORCE'
return redis.call(unpack(claim))
