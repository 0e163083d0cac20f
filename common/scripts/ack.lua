-- ack.lua: the history writer acknowledges the entries of one stream that
-- PostgreSQL has committed, and trims the stream of every entry no writer
-- needs any more.
--
-- KEYS[1] events stream (a queue's baton:{q}:events or baton:rejections)
-- ARGV[1] consumer group
-- then the ids of the entries written
--
-- Checks: the caller may XTRIM the stream (ACL), before anything changes:
-- a refusal then leaves the entries pending, and the writer keeps its
-- batch and acknowledges it again later, as it does after any failed
-- acknowledgement. A stream or group that no longer exists: nothing to do.
-- Changes: XACK of the ids; then XTRIM MINID to the smallest id still
-- needed: the group's smallest pending id (an entry a writer holds and has
-- not written yet), or, when nothing is pending, the entry after the
-- group's last delivered id (entries after it were never read). Every
-- entry before that id was delivered and acknowledged, i.e. written: one
-- trim replaces an XDEL per entry, and never passes an entry another
-- writer holds or has not read. An entry a writer acknowledges while an
-- older one is pending stays until that one is acknowledged too.
-- Returns {entries acknowledged, entries trimmed}.

local stream, group = KEYS[1], ARGV[1]
if not redis.acl_check_cmd('XTRIM', stream, 'MINID', '0') then
  return redis.error_reply('NOPERM this user has no permission to run XTRIM on ' .. stream)
end
if redis.call('EXISTS', stream) == 0 then
  return {0, 0}
end
local pending = redis.pcall('XPENDING', stream, group)
if type(pending) ~= 'table' or pending.err then
  return {0, 0} -- no such group: XREADGROUP will say so and the writer re-adopts the stream
end
-- In slices: Lua's unpack() gives at most 8000 values.
local acked = 0
for first = 2, #ARGV, 4000 do
  local ids = {}
  for i = first, math.min(first + 3999, #ARGV) do ids[#ids + 1] = ARGV[i] end
  acked = acked + redis.call('XACK', stream, group, unpack(ids))
end
if #ARGV > 1 then
  pending = redis.call('XPENDING', stream, group)
end
local minid
if tonumber(pending[1]) > 0 then
  minid = pending[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == group then
      local ms, seq = string.match(info['last-delivered-id'], '^(%d+)%-(%d+)$')
      if ms and #seq < 15 then
        minid = ms .. '-' .. num(tonumber(seq) + 1)
      else
        minid = info['last-delivered-id'] -- keeps that one entry: trimmed next time
      end
    end
  end
end
if not minid then
  return {acked, 0}
end
return {acked, redis.call('XTRIM', stream, 'MINID', minid)}
