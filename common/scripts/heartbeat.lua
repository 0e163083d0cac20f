-- heartbeat.lua: a worker records itself in the registry.
--
-- KEYS[1] the worker's hash ("baton:worker:<id>")  KEYS[2] "baton:workers"
-- ARGV[1] worker id  ARGV[2] time to live, ms
-- then field/value pairs (host, pid, queues, concurrency, busy, done, failed,
-- started_ms)
--
-- Changes: the hash gets the fields plus heartbeat_ms = Redis TIME and
-- expires after the TTL unless renewed (a dead worker disappears by
-- itself); baton:workers (sorted by last heartbeat) lists it, and loses
-- entries older than the TTL (workers killed without a goodbye).
-- Returns the heartbeat time, ms.

local now = now_ms()
local args = {KEYS[1], 'id', ARGV[1], 'heartbeat_ms', num(now)}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', unpack(args))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], num(now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. num(now - tonumber(ARGV[2])))
return num(now)
