-- Refresh this worker's lease deadline and name the workers whose deadline passed
-- (dead: SIGKILL, OOM kill, lost node); the caller returns their leases with
-- requeue.lua in 'expired' mode.
-- KEYS[1] workers ZSET
-- ARGV[1] worker id ('' to only look), ARGV[2] lease timeout (ms)
-- Returns the dead workers' ids (at most 100 a call).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
