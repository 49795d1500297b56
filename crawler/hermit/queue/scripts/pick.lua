-- First step of a lease: pick up to N hosts that may be fetched now and claim them
-- for a moment, so that workers leasing at the same time pick different hosts
-- (hosts.lua is prepended).
-- KEYS[1] ready, [2] waits, [3] top, [4] backoff HASH, [5] backoff deadlines ZSET
-- ARGV[1] max hosts, ARGV[2] claim (ms), ARGV[3] forget a backoff this long after it ended (ms)
-- Returns {claim score, ms until the next host is ready (-1: none), host, its top
-- priority, host, its top priority, ...}; lease.lua takes the claim score back.
local now = hosts_now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)
if #forgotten > 0 then
  redis.call('HDEL', KEYS[4], unpack(forgotten))
  redis.call('ZREM', KEYS[5], unpack(forgotten))
end
-- Half a millisecond tells a claim from any next-fetch time (whole milliseconds).
local claim = now + tonumber(ARGV[2]) + 0.5
-- A host leased in this very millisecond waits at now + 0.25 (lease.lua): still ready,
-- but after those that waited longer.
local hosts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + 0.25, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {string.format('%.1f', claim), -1}
if #hosts > 0 then
  local tops = redis.call('HMGET', KEYS[3], unpack(hosts))
  local claims = {}
  for i, host in ipairs(hosts) do
    if tops[i] then
      claims[#claims + 1] = claim
      claims[#claims + 1] = host
      out[#out + 1] = host
      out[#out + 1] = tops[i]
    else
      redis.call('ZREM', KEYS[1], host)  -- nothing queued: not ready
    end
  end
  if #claims > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(claims)) end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then
  local wait = tonumber(first[2]) - now
  if wait < 0 then wait = 0 end
  out[2] = math.floor(wait)
end
return out
