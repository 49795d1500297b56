-- Forget processed leases, free the slots of those whose download did not already,
-- and apply what their responses said about their hosts (hosts.lua is prepended).
-- KEYS[1] this worker's leases HASH, [2] stats, [3] ready, [4] waits, [5] top,
-- [6] active, [7] settings, [8] backoff HASH, [9] backoff deadlines ZSET
-- ARGV[1] default concurrency, [2] backoff base (ms), [3] longest backoff (ms),
-- [4] the counter to add to ('acked', or 'dead_letters' for dead-lettered leases),
-- then 4 values per lease: lease id, host, outcome ('' nothing to say, 'ok', or a
-- backoff reason: see hosts_outcome), Retry-After (ms, 0 if none).
-- A lease that was already reaped is not counted again, but what its response said
-- about the host still applies. Returns the number of leases removed.
local H = {ready = KEYS[3], waits = KEYS[4], top = KEYS[5], active = KEYS[6],
  settings = KEYS[7], backoff = KEYS[8], backoff_until = KEYS[9], stats = KEYS[2], cache = {}}
local now = hosts_now_ms()
local default_concurrency = tonumber(ARGV[1])
local base, longest = tonumber(ARGV[2]), tonumber(ARGV[3])
local removed = 0
local touched, touched_list = {}, {}
for i = 5, #ARGV, 4 do
  local host = ARGV[i + 1]
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
    if not hosts_slot_freed(value) then
      hosts_release(H, host, 1)
      if not touched[host] then
        touched[host] = true
        touched_list[#touched_list + 1] = host
      end
    end
  end
  hosts_outcome(H, host, ARGV[i + 2], ARGV[i + 3], now, base, longest)
end
for _, host in ipairs(touched_list) do
  hosts_schedule(H, host, now, default_concurrency)
end
if removed > 0 then redis.call('HINCRBY', KEYS[2], ARGV[4], removed) end
return removed
