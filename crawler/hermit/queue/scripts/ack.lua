-- Forget processed leases, free their hosts' slots, and apply what the responses
-- said about their hosts (hosts.lua is prepended).
-- KEYS[1] this worker's leases HASH, [2] stats, [3] ready, [4] waits, [5] top,
-- [6] active, [7] settings, [8] backoff HASH, [9] backoff deadlines ZSET
-- ARGV[1] default concurrency, [2] backoff base (ms), [3] longest backoff (ms),
-- [4] the counter to add to ('acked', or 'dead_letters' for dead-lettered leases),
-- then 4 values per lease: lease id, host, outcome ('' nothing to say, 'ok' the host
-- answered, else the reason to back the host off: '429', '503', 'timeout', 'connection'),
-- Retry-After (ms, 0 if none).
-- A lease that was already reaped is not counted again, but what its response said
-- about the host still applies. Returns the number of leases removed.
local H = {ready = KEYS[3], waits = KEYS[4], top = KEYS[5], active = KEYS[6],
  settings = KEYS[7], cache = {}}
local now = hosts_now_ms()
local default_concurrency = tonumber(ARGV[1])
local base, longest = tonumber(ARGV[2]), tonumber(ARGV[3])
local removed = 0
local touched, touched_list = {}, {}
for i = 5, #ARGV, 4 do
  local host, outcome = ARGV[i + 1], ARGV[i + 2]
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    removed = removed + 1
    hosts_release(H, host, 1)
    if not touched[host] then
      touched[host] = true
      touched_list[#touched_list + 1] = host
    end
  end
  if outcome == 'ok' then
    if redis.call('HDEL', KEYS[8], host) == 1 then
      redis.call('ZREM', KEYS[9], host)
      redis.call('HINCRBY', KEYS[2], 'backoff_recovered', 1)
    end
  elseif outcome ~= '' then
    local state = {level = 0, ['until'] = 0}
    local raw = redis.call('HGET', KEYS[8], host)
    if raw then
      local ok, decoded = pcall(cjson.decode, raw)
      if ok and type(decoded) == 'table' then state = decoded end
    end
    local level = tonumber(state.level) or 0
    local until_ms = tonumber(state['until']) or 0
    -- Answers to requests sent before the backoff began don't make it longer.
    if until_ms <= now then
      level = level + 1
      local wait = base * math.pow(2, level - 1)
      if wait > longest then wait = longest end
      until_ms = now + wait
    end
    local retry_after = tonumber(ARGV[i + 3]) or 0
    if retry_after > 0 then
      if retry_after > longest then retry_after = longest end
      if now + retry_after > until_ms then until_ms = now + retry_after end
    end
    until_ms = math.floor(until_ms)
    redis.call('HSET', KEYS[8], host, cjson.encode({level = level, ['until'] = until_ms, reason = outcome}))
    redis.call('ZADD', KEYS[9], until_ms, host)
    redis.call('HINCRBY', KEYS[2], 'backoff:' .. outcome, 1)
    if redis.call('ZSCORE', H.ready, host) then
      redis.call('ZADD', H.ready, 'XX', 'GT', until_ms, host)
    else
      redis.call('ZADD', H.waits, 'GT', until_ms, host)
    end
  end
end
for _, host in ipairs(touched_list) do
  hosts_schedule(H, host, now, default_concurrency)
end
if removed > 0 then redis.call('HINCRBY', KEYS[2], ARGV[4], removed) end
return removed
