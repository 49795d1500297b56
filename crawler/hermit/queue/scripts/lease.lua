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
-- delay factor (the randomized delay's draw, 1 when not randomized), this worker's
-- downloads of that host not finished yet.
-- A worker takes at most its share of a host's concurrency (the concurrency over the
-- live workers, rounded up), so that a busy host's slots are spread over the fleet
-- instead of going to whichever worker frees one first.
-- Returns, per host that gave requests: host, priority, count, then count pairs of
-- lease id and entry. The requests were shared out in turns, one of each host
-- (the first of every host, then the second, ...), ids numbered in that order.
local H = {ready = KEYS[1], waits = KEYS[2], top = KEYS[3], active = KEYS[4],
  settings = KEYS[5], robots = KEYS[6], queued = KEYS[8], stats = KEYS[9], cache = {}}
local now = hosts_now_ms()
redis.call('ZADD', KEYS[10], now + tonumber(ARGV[3]), ARGV[1])
local wanted = tonumber(ARGV[2])
local claim = tonumber(ARGV[4])
local default_delay = tonumber(ARGV[5])
local default_concurrency = tonumber(ARGV[6])

local no_backoff = redis.call('HLEN', KEYS[7]) == 0
local picked = {}
local workers = redis.call('ZCARD', KEYS[10])
for i = 7, #ARGV, 4 do
  local k = 13 + (i - 7) / 4 * 2
  local host, priority = ARGV[i], ARGV[i + 1]
  local score = redis.call('ZSCORE', H.ready, host)
  score = score and tonumber(score)
  if score and (score == claim or score <= now + 0.25) then
    if redis.call('HGET', H.top, host) ~= priority or hosts_paused(H, host) then
      -- Its queue changed since it was picked (or it was paused): look again later.
      if score == claim then redis.call('ZADD', H.ready, 'XX', now, host) end
      hosts_schedule(H, host, now, default_concurrency)
    else
      local concurrency = hosts_concurrency(H, host, default_concurrency)
      local active = tonumber(redis.call('HGET', H.active, host) or '0')
      local delay = hosts_delay_ms(H, host, default_delay)
      local share = math.ceil(concurrency / math.max(workers, 1)) - (tonumber(ARGV[i + 3]) or 0)
      if active >= concurrency then
        hosts_unready(H, host, now)
      elseif share <= 0 then
        -- This worker has its share of the host: leave the rest to the others.
        if score == claim then redis.call('ZADD', H.ready, 'XX', now, host) end
      else
        local free = math.min(concurrency - active, share)
        picked[#picked + 1] = {host = host, priority = priority, priorities_key = KEYS[k],
          list_key = KEYS[k + 1], quota = (delay > 0) and 1 or free, delay = delay,
          length = redis.call('LLEN', KEYS[k + 1]), active = active, concurrency = concurrency,
          factor = tonumber(ARGV[i + 2]), taken = 0}
      end
    end
  end
end

-- Hand out the batch one host at a time in turn, then pop each host's share at once.
local remaining = wanted
local progress = true
while remaining > 0 and progress do
  progress = false
  for _, p in ipairs(picked) do
    if remaining > 0 and p.taken < p.quota and p.taken < p.length then
      p.taken = p.taken + 1
      remaining = remaining - 1
      progress = true
    end
  end
end
local total = wanted - remaining
local out = {}
local last_id = total > 0 and redis.call('INCRBY', KEYS[12], total) or 0
local next_id = last_id - total
local popped = {}
local groups = {}  -- per host in popped: its place in out (after host, priority, count)
for n, p in ipairs(picked) do
  if p.taken > 0 then
    popped[n] = redis.call('LPOP', p.list_key, p.taken)
    out[#out + 1] = p.host
    out[#out + 1] = p.priority
    out[#out + 1] = #popped[n]
    groups[n] = #out
    for _ = 1, 2 * #popped[n] do out[#out + 1] = false end
  end
end
-- Number the requests in the turns they were shared in (one host after the other),
-- so a worker that starts them in that order starts them fairly.
local lease_values = {}
for turn = 1, wanted do
  local any = false
  for n, p in ipairs(picked) do
    local entry = popped[n] and popped[n][turn]
    if entry then
      any = true
      next_id = next_id + 1
      local id = hosts_int(next_id)
      lease_values[#lease_values + 1] = id
      lease_values[#lease_values + 1] = p.priority .. ' ' .. p.host .. '\n' .. entry
      out[groups[n] + 2 * turn - 1] = id
      out[groups[n] + 2 * turn] = entry
    end
  end
  if not any then break end
  if #lease_values >= 4000 then  -- unpack() takes a few thousand values at most
    redis.call('HSET', KEYS[11], unpack(lease_values))
    lease_values = {}
  end
end
if #lease_values > 0 then redis.call('HSET', KEYS[11], unpack(lease_values)) end

for _, p in ipairs(picked) do
  local has_queue = true
  if p.taken >= p.length then
    -- That priority's list is empty now: the host's next priority, if any, is its top.
    redis.call('ZREM', p.priorities_key, p.priority)
    local next_top = redis.call('ZREVRANGE', p.priorities_key, 0, 0)
    if #next_top > 0 then
      redis.call('HSET', H.top, p.host, next_top[1])
    else
      redis.call('HDEL', H.top, p.host)
      has_queue = false
    end
  end
  local at = now
  if p.taken > 0 then
    redis.call('HINCRBY', H.active, p.host, p.taken)
    if p.delay > 0 then
      at = now + math.floor(p.delay * p.factor)
    else
      -- A quarter of a millisecond puts it behind every host already waiting at `now`
      -- (ties would go by name), so hosts take turns even within one millisecond;
      -- pick.lua still counts it as ready.
      at = now + 0.25
    end
  end
  if not no_backoff then
    local backoff = redis.call('HGET', KEYS[7], p.host)
    if backoff then
      local ok, state = pcall(cjson.decode, backoff)
      if ok and type(state) == 'table' and tonumber(state['until']) and tonumber(state['until']) > at then
        at = tonumber(state['until'])
      end
    end
  end
  -- The host's new place: at its next-fetch time, or out of ready (remembering that
  -- time) until an ack frees a slot or new requests arrive.
  if has_queue and p.active + p.taken < p.concurrency then
    redis.call('ZADD', H.ready, 'XX', at, p.host)
  else
    redis.call('ZREM', H.ready, p.host)
    if at > now then redis.call('ZADD', H.waits, 'GT', at, p.host) end
  end
end
if total > 0 then
  redis.call('DECRBY', H.queued, total)
  redis.call('HINCRBY', H.stats, 'leased', total)
end
return out
