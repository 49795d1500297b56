-- Downloads that ended (a response or an error): free their hosts' slots now, as
-- Scrapy's downloader counts a host's concurrency by downloads in flight, and apply
-- what they said about their hosts; the leases stay until their acks (at least once).
-- (hosts.lua is prepended.)
-- KEYS as ack.lua: [1] this worker's leases HASH, [2] stats, [3] ready, [4] waits,
-- [5] top, [6] active, [7] settings, [8] backoff HASH, [9] backoff deadlines ZSET
-- ARGV[1] default concurrency, [2] backoff base (ms), [3] longest backoff (ms), then
-- 4 values per download: lease id, host, outcome, Retry-After (ms).
-- Returns the number of slots freed.
local H = {ready = KEYS[3], waits = KEYS[4], top = KEYS[5], active = KEYS[6],
  settings = KEYS[7], backoff = KEYS[8], backoff_until = KEYS[9], stats = KEYS[2], cache = {}}
local now = hosts_now_ms()
local default_concurrency = tonumber(ARGV[1])
local base, longest = tonumber(ARGV[2]), tonumber(ARGV[3])
local freed = 0
local touched, touched_list = {}, {}
for i = 4, #ARGV, 4 do
  local host = ARGV[i + 1]
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and not hosts_slot_freed(value) then
    redis.call('HSET', KEYS[1], ARGV[i], '~' .. value)
    hosts_release(H, host, 1)
    freed = freed + 1
    if not touched[host] then
      touched[host] = true
      touched_list[#touched_list + 1] = host
    end
  end
  hosts_outcome(H, host, ARGV[i + 2], ARGV[i + 3], now, base, longest)
end
for _, host in ipairs(touched_list) do
  hosts_schedule(H, host, now, default_concurrency)
end
return freed
