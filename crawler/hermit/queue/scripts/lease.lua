-- Second step of a lease: take requests from the hosts pick.lua claimed, fairly
-- (one from each host in turn), never more of a host than it may have in flight,
-- one per host when it has a delay, and move each host's next-fetch time forward
-- for the whole fleet (hosts.lua is prepended).
-- KEYS[1] ready, [2] waits, [3] top, [4] active, [5] settings, [6] robots delays,
-- [7] backoff, [8] queued counter, [9] stats, [10] workers ZSET, [11] this worker's
-- leases HASH, [12] lease id counter, then per host: its priorities ZSET, the LIST
-- of its top priority.
-- ARGV[1] worker id, [2] max count, [3] lease timeout (ms), [4] claim score,
-- [5] default delay (ms), [6] default concurrency, then per host: host, top priority,
-- delay factor (the randomized delay's draw, 1 when not randomized).
-- Returns a flat list: lease id, priority, host, entry, lease id, ...
local H = {ready = KEYS[1], waits = KEYS[2], top = KEYS[3], active = KEYS[4],
  settings = KEYS[5], robots = KEYS[6], queued = KEYS[8], stats = KEYS[9], cache = {}}
local now = hosts_now_ms()
redis.call('ZADD', KEYS[10], now + tonumber(ARGV[3]), ARGV[1])
local wanted = tonumber(ARGV[2])
local claim = tonumber(ARGV[4])
local default_delay = tonumber(ARGV[5])
local default_concurrency = tonumber(ARGV[6])

local picked = {}
for i = 7, #ARGV, 3 do
  local k = 13 + (i - 7) / 3 * 2
  local host, priority = ARGV[i], ARGV[i + 1]
  local score = redis.call('ZSCORE', H.ready, host)
  score = score and tonumber(score)
  if score and (score == claim or score <= now) then
    if redis.call('HGET', H.top, host) ~= priority or hosts_paused(H, host) then
      -- Its queue changed since it was picked (or it was paused): look again later.
      if score == claim then redis.call('ZADD', H.ready, 'XX', now, host) end
      hosts_schedule(H, host, now, default_concurrency)
    else
      local free = hosts_concurrency(H, host, default_concurrency)
        - tonumber(redis.call('HGET', H.active, host) or '0')
      local delay = hosts_delay_ms(H, host, default_delay)
      if free <= 0 then
        hosts_unready(H, host, now)
      else
        picked[#picked + 1] = {host = host, priority = priority, priorities_key = KEYS[k],
          list_key = KEYS[k + 1], quota = (delay > 0) and 1 or free, delay = delay,
          factor = tonumber(ARGV[i + 2]), taken = 0, emptied = false}
      end
    end
  end
end

local out = {}
local progress = true
while wanted > 0 and progress do
  progress = false
  for _, p in ipairs(picked) do
    if wanted > 0 and p.quota > 0 and not p.emptied then
      local entry = redis.call('LPOP', p.list_key)
      if entry then
        local id = hosts_int(redis.call('INCR', KEYS[12]))
        redis.call('HSET', KEYS[11], id, p.priority .. ' ' .. p.host .. '\n' .. entry)
        out[#out + 1] = id
        out[#out + 1] = p.priority
        out[#out + 1] = p.host
        out[#out + 1] = entry
        p.taken = p.taken + 1
        p.quota = p.quota - 1
        wanted = wanted - 1
        progress = true
      end
      if not entry or redis.call('EXISTS', p.list_key) == 0 then
        p.emptied = true
      end
    end
  end
end

local leased = 0
for _, p in ipairs(picked) do
  if p.emptied then
    redis.call('ZREM', p.priorities_key, p.priority)
    local next_top = redis.call('ZREVRANGE', p.priorities_key, 0, 0)
    if #next_top > 0 then
      redis.call('HSET', H.top, p.host, next_top[1])
    else
      redis.call('HDEL', H.top, p.host)
    end
  end
  local at = now
  if p.taken > 0 then
    leased = leased + p.taken
    redis.call('HINCRBY', H.active, p.host, p.taken)
    if p.delay > 0 then at = now + math.floor(p.delay * p.factor) end
  end
  local backoff = redis.call('HGET', KEYS[7], p.host)
  if backoff then
    local ok, state = pcall(cjson.decode, backoff)
    if ok and type(state) == 'table' and tonumber(state['until']) and tonumber(state['until']) > at then
      at = tonumber(state['until'])
    end
  end
  -- The host's new place: at its next-fetch time, or out of ready until an ack
  -- frees a slot or new requests arrive.
  redis.call('ZADD', H.ready, 'XX', at, p.host)
  hosts_schedule(H, p.host, now, default_concurrency)
  if redis.call('ZSCORE', H.ready, p.host) == false and at > now then
    redis.call('ZADD', H.waits, 'GT', at, p.host)
  end
end
if leased > 0 then
  redis.call('DECRBY', H.queued, leased)
  redis.call('HINCRBY', H.stats, 'leased', leased)
end
return out
