-- The end of leased requests' work, in two steps (hosts.lua is prepended):
--  'downloaded': their downloads ended. Free their hosts' slots now, as Scrapy's
--    downloader counts a host's concurrency by downloads in flight; the leases stay
--    (marked '~') until their acks, so a worker dying now still loses nothing.
--  'acked' / 'dead_letters': they are fully processed (or dead-lettered). Forget the
--    leases, free the slots their downloads did not, count them under that name.
-- Either way, apply what each response said about its host (hosts_outcome).
-- KEYS[1] this worker's leases HASH, [2] stats, [3] ready, [4] waits, [5] top,
-- [6] active, [7] settings, [8] backoff HASH, [9] backoff deadlines ZSET
-- ARGV[1] default concurrency, [2] backoff base (ms), [3] longest backoff (ms),
-- [4] the step, then runs of leases that said the same of the same host, in their
-- order: host, outcome ('' nothing to say, 'ok', or a backoff reason), Retry-After
-- (ms, 0 if none), the number of leases, then their lease ids.
-- A lease that was already reaped is not counted again, but what its response said
-- about the host still applies. Returns the number of leases forgotten or slots freed.
local H = {ready = KEYS[3], waits = KEYS[4], top = KEYS[5], active = KEYS[6],
  settings = KEYS[7], backoff = KEYS[8], backoff_until = KEYS[9], stats = KEYS[2], cache = {}}
local now = hosts_now_ms()
local default_concurrency = tonumber(ARGV[1])
local base, longest = tonumber(ARGV[2]), tonumber(ARGV[3])
local step = ARGV[4]
local done = 0
local touched = hosts_touched()
local slots_freed = {}  -- host -> slots to free, applied once per host
local answered = {}  -- hosts whose 'ok' was applied in this call
local i = 5
while i <= #ARGV do
  local host, outcome, retry_after = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local last = i + 3 + tonumber(ARGV[i + 3])
  for j = i + 4, last do
    local value = redis.call('HGET', KEYS[1], ARGV[j])
    if value then
      local freed = hosts_slot_freed(value)
      if step == 'downloaded' then
        if not freed then redis.call('HSET', KEYS[1], ARGV[j], '~' .. value) end
      else
        redis.call('HDEL', KEYS[1], ARGV[j])
      end
      if not freed then
        slots_freed[host] = (slots_freed[host] or 0) + 1
        touched.add(host)
      end
      if step ~= 'downloaded' or not freed then done = done + 1 end
    end
    if outcome ~= 'ok' or not answered[host] then
      hosts_outcome(H, host, outcome, retry_after, now, base, longest)
    end
    -- A host's 'ok' ends its backoff: once is enough until another outcome says otherwise.
    if outcome == 'ok' then answered[host] = true elseif outcome ~= '' then answered[host] = nil end
  end
  i = last + 1
end
for _, host in ipairs(touched.list) do
  hosts_release(H, host, slots_freed[host])
  hosts_schedule(H, host, now, default_concurrency)
end
if step ~= 'downloaded' and done > 0 then redis.call('HINCRBY', KEYS[2], step, done) end
return done
