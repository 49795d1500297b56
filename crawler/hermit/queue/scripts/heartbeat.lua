-- Refresh this worker's lease deadline and return the leases of workers whose
-- deadline passed (dead: SIGKILL, OOM kill, lost node) to the queue.
-- requeue.lua is prepended.
-- KEYS[1] workers ZSET, KEYS[2] priorities ZSET
-- ARGV[1] key base, ARGV[2] worker id ('' to only reap), ARGV[3] lease timeout (ms)
-- Returns {dead workers reaped, requests returned}.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local returned, reaped = 0, 0
for _, worker in ipairs(dead) do
  if worker ~= ARGV[2] then
    reaped = reaped + 1
    returned = returned + requeue_leases(ARGV[1], KEYS[2], ARGV[1] .. ':leases:' .. worker, nil)
    redis.call('ZREM', KEYS[1], worker)
  end
end
if returned > 0 then
  -- Counted apart from 'returned' (which includes graceful returns): leases that
  -- had to expire.
  redis.call('HINCRBY', ARGV[1] .. ':stats', 'expired', returned)
end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
end
return {reaped, returned}
