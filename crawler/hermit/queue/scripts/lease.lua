-- Lease up to N requests, highest priority first, and refresh this worker's deadline.
-- KEYS[1] priorities ZSET, KEYS[2] workers ZSET, KEYS[3] this worker's leases HASH,
-- KEYS[4] lease id counter, KEYS[5] stats HASH
-- ARGV[1] key base, ARGV[2] worker id, ARGV[3] max count, ARGV[4] lease timeout (ms)
-- Returns a flat list: lease id, priority, entry, lease id, priority, entry, ...
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[4]), ARGV[2])
local wanted = tonumber(ARGV[3])
local out = {}
while wanted > 0 do
  local top = redis.call('ZREVRANGE', KEYS[1], 0, 0)
  if #top == 0 then break end
  local priority = top[1]
  local queue_key = ARGV[1] .. ':queue:' .. priority
  local entries = redis.call('LPOP', queue_key, wanted)
  if entries then
    local last = redis.call('INCRBY', KEYS[4], #entries)
    local first = last - #entries
    for j, entry in ipairs(entries) do
      local id = tostring(first + j)
      redis.call('HSET', KEYS[3], id, priority .. ' ' .. entry)
      out[#out + 1] = id
      out[#out + 1] = priority
      out[#out + 1] = entry
    end
    wanted = wanted - #entries
  end
  if redis.call('EXISTS', queue_key) == 0 then
    redis.call('ZREM', KEYS[1], priority)
  end
end
if #out > 0 then redis.call('HINCRBY', KEYS[5], 'leased', #out / 3) end
return out
