-- Put leases back at the head of their hosts' queues (hosts.lua is prepended): a
-- worker returning what it holds (graceful stop, unstarted requests), or any worker
-- returning the leases of a dead one.
-- KEYS[1] the leases HASH, [2] workers ZSET, [3] ready, [4] waits, [5] top,
-- [6] active, [7] settings, [8] queued counter, [9] stats, [10] dead letters LIST,
-- then the hosts' priorities ZSETs and queue LISTs.
-- ARGV[1] the leases' worker, [2] 'some' (return these leases), 'all' (these, then
-- forget the worker if it holds no more) or 'expired' (as 'all', for a worker whose
-- deadline passed: only if it still has), [3] default concurrency, then 3 values
-- per lease: id, index of its queue LIST in KEYS, index of its priorities ZSET in KEYS
-- (the caller read the lease values to find its host and priority).
-- Returns {requests returned, leases still held (not in ARGV)}.
local H = {ready = KEYS[3], waits = KEYS[4], top = KEYS[5], active = KEYS[6],
  settings = KEYS[7], queued = KEYS[8], stats = KEYS[9], dead_letters = KEYS[10], cache = {}}
local now = hosts_now_ms()
local mode = ARGV[2]
if mode == 'expired' then
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if deadline and tonumber(deadline) > now then return {0, 0} end  -- it came back
end
local returned = 0
local touched = hosts_touched()
for i = 4, #ARGV, 3 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    local host = hosts_requeue_value(H, value, KEYS[tonumber(ARGV[i + 1])], KEYS[tonumber(ARGV[i + 2])])
    redis.call('HDEL', KEYS[1], ARGV[i])
    if host then
      returned = returned + 1
      touched.add(host)
    end
  end
end
for _, host in ipairs(touched.list) do
  hosts_schedule(H, host, now, tonumber(ARGV[3]))
end
local left = redis.call('HLEN', KEYS[1])
if mode ~= 'some' and left == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if returned > 0 then
  redis.call('HINCRBY', H.stats, 'returned', returned)
  if mode == 'expired' then redis.call('HINCRBY', H.stats, 'expired', returned) end
end
return {returned, left}
