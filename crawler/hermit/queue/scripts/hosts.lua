-- Library snippet (prepended to the frontier's scripts): the schedule of hosts.
--
-- A host (Scrapy's download slot) has its own queue: one LIST per priority and a
-- ZSET of its priorities. Crawl-wide keys describe every host at once:
--   ready   ZSET host -> when it may next be fetched (ms); a host is here while it has
--           queued requests, is not paused and has free concurrency
--   waits   ZSET host -> a next-fetch time still ahead, for hosts outside ready
--   top     HASH host -> its highest queued priority (present iff it has a queue)
--   active  HASH host -> leases held on it fleet-wide
--   settings HASH host -> JSON set by `hermit hosts` (delay, concurrency, paused, blocked)
--   robots  HASH host -> robots.txt Crawl-delay (ms)
--   backoff HASH host -> JSON {level, until, reason} after 429/503/connection errors
-- Every key reaches a script through KEYS; these functions get them in a table H
-- built by the including script. They define locals only and return nothing.

local function hosts_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hosts_int(x)
  return string.format('%d', x)
end

-- A set of hosts in the order first added: touched.add(host), then touched.list.
local function hosts_touched()
  local seen, list = {}, {}
  return {list = list, add = function(host)
    if not seen[host] then
      seen[host] = true
      list[#list + 1] = host
    end
  end}
end

-- The decoded `hermit hosts` settings of a host ({} if none or unreadable), cached
-- per script call in H.cache.
local function hosts_settings(H, host)
  local cached = H.cache[host]
  if cached ~= nil then return cached end
  local value = {}
  if H.no_settings == nil then H.no_settings = redis.call('HLEN', H.settings) == 0 end
  if H.no_settings then
    H.cache[host] = value
    return value
  end
  local raw = redis.call('HGET', H.settings, host)
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' then value = decoded end
  end
  H.cache[host] = value
  return value
end

local function hosts_concurrency(H, host, default_concurrency)
  local c = tonumber(hosts_settings(H, host).concurrency)
  if c and c >= 1 then return c end
  return default_concurrency
end

-- Delay between two fetches of a host (ms): its own setting, else the default, and
-- never below its robots.txt Crawl-delay.
local function hosts_delay_ms(H, host, default_delay_ms)
  local delay = tonumber(hosts_settings(H, host).delay_ms) or default_delay_ms
  if H.no_robots == nil then H.no_robots = redis.call('HLEN', H.robots) == 0 end
  if not H.no_robots then
    local robots = tonumber(redis.call('HGET', H.robots, host) or '0')
    if robots > delay then delay = robots end
  end
  return delay
end

local function hosts_paused(H, host)
  local s = hosts_settings(H, host)
  return s.paused == true or s.blocked == true
end

-- Take a host out of ready, remembering its next-fetch time if it is ahead.
local function hosts_unready(H, host, now)
  local score = redis.call('ZSCORE', H.ready, host)
  if score then
    redis.call('ZREM', H.ready, host)
    if tonumber(score) > now then
      redis.call('ZADD', H.waits, 'GT', score, host)
    end
  end
end

-- Put a host where it belongs: in ready (at its next-fetch time, or now) if it has
-- queued requests, is not paused and has free concurrency; otherwise out of it.
local function hosts_schedule(H, host, now, default_concurrency)
  if redis.call('HEXISTS', H.top, host) == 0 or hosts_paused(H, host) then
    hosts_unready(H, host, now)
    return
  end
  local active = tonumber(redis.call('HGET', H.active, host) or '0')
  if active >= hosts_concurrency(H, host, default_concurrency) then
    hosts_unready(H, host, now)
    return
  end
  if redis.call('ZSCORE', H.ready, host) then return end
  local at = tonumber(redis.call('ZSCORE', H.waits, host) or '0')
  if at < now then at = now end
  redis.call('ZADD', H.ready, at, host)
  redis.call('ZREM', H.waits, host)
end

-- A request of `host` at `priority` was added to its queue: keep top up to date.
local function hosts_queued(H, host, priority)
  local top = redis.call('HGET', H.top, host)
  if not top or tonumber(priority) > tonumber(top) then
    redis.call('HSET', H.top, host, priority)
  end
end

-- Append one request's entry to its host's queue (list_key, priorities_key: that
-- host's keys; at the head when lifo) and note the host in `touched`.
local function hosts_enqueue(H, lifo, list_key, priorities_key, host, priority, entry, touched)
  local length
  if lifo then
    length = redis.call('LPUSH', list_key, entry)
  else
    length = redis.call('RPUSH', list_key, entry)
  end
  if length == 1 then
    redis.call('ZADD', priorities_key, tonumber(priority), priority)
  end
  hosts_queued(H, host, priority)
  touched.add(host)
end

-- After `count` requests were enqueued: schedule the hosts touched, count them queued.
local function hosts_enqueued(H, touched, count, default_concurrency)
  if count == 0 then return end
  local now = hosts_now_ms()
  for _, host in ipairs(touched.list) do
    hosts_schedule(H, host, now, default_concurrency)
  end
  redis.call('INCRBY', H.queued, count)
end

-- Leases on `host` ended (acked, returned, dead-lettered).
local function hosts_release(H, host, count)
  local left = redis.call('HINCRBY', H.active, host, -count)
  if left <= 0 then redis.call('HDEL', H.active, host) end
end

-- What a download said about its host: 'ok' ends a backoff; a reason ('429', '503',
-- 'timeout', 'connection') backs the host off for every worker, from `base` ms doubling
-- up to `longest` ms, or for its Retry-After (`retry_after` ms, capped) if longer.
-- Answers to requests sent before a backoff began don't lengthen it.
-- Needs H.backoff, H.backoff_until, H.stats, H.ready, H.waits.
local function hosts_outcome(H, host, outcome, retry_after, now, base, longest)
  if outcome == 'ok' then
    if redis.call('HDEL', H.backoff, host) == 1 then
      redis.call('ZREM', H.backoff_until, host)
      redis.call('HINCRBY', H.stats, 'backoff_recovered', 1)
    end
    return
  end
  if outcome == '' then return end
  local state = {level = 0, ['until'] = 0}
  local raw = redis.call('HGET', H.backoff, host)
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' then state = decoded end
  end
  local level = tonumber(state.level) or 0
  local until_ms = tonumber(state['until']) or 0
  if until_ms <= now then
    level = level + 1
    local wait = base * math.pow(2, level - 1)
    if wait > longest then wait = longest end
    until_ms = now + wait
  end
  retry_after = tonumber(retry_after) or 0
  if retry_after > 0 then
    if retry_after > longest then retry_after = longest end
    if now + retry_after > until_ms then until_ms = now + retry_after end
  end
  until_ms = math.floor(until_ms)
  redis.call('HSET', H.backoff, host, cjson.encode({level = level, ['until'] = until_ms, reason = outcome}))
  redis.call('ZADD', H.backoff_until, until_ms, host)
  redis.call('HINCRBY', H.stats, 'backoff:' .. outcome, 1)
  if redis.call('ZSCORE', H.ready, host) then
    redis.call('ZADD', H.ready, 'XX', 'GT', until_ms, host)
  else
    redis.call('ZADD', H.waits, 'GT', until_ms, host)
  end
end

-- A lease value whose download is over starts with '~': its host's slot was freed
-- then (as Scrapy counts a slot's concurrency by downloads), not at its ack.
local function hosts_slot_freed(value)
  return string.byte(value, 1) == 126
end

-- Put one lease value ('<priority> <host>\n<entry>') back at the head of its host's
-- queue (list_key, priorities_key: that host's keys). Returns the host, or nil for a
-- value no lease script wrote (kept in the dead letters rather than dropped).
local function hosts_requeue_value(H, value, list_key, priorities_key)
  local freed = hosts_slot_freed(value)
  if freed then value = string.sub(value, 2) end
  local space = string.find(value, ' ', 1, true)
  local newline = space and string.find(value, '\n', space + 1, true)
  if not newline then
    redis.call('LPUSH', H.dead_letters, cjson.encode({reason = 'malformed lease value', entry = value}))
    redis.call('HINCRBY', H.stats, 'dead_letters', 1)
    return nil
  end
  local priority = string.sub(value, 1, space - 1)
  local host = string.sub(value, space + 1, newline - 1)
  redis.call('LPUSH', list_key, string.sub(value, newline + 1))
  redis.call('ZADD', priorities_key, tonumber(priority), priority)
  hosts_queued(H, host, priority)
  redis.call('INCR', H.queued)
  if not freed then hosts_release(H, host, 1) end
  return host
end
