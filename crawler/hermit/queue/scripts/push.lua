-- Dedup and enqueue a batch of requests atomically (bloom.lua and hosts.lua are prepended).
-- KEYS[1] ready, [2] waits, [3] top, [4] active, [5] settings, [6] queued counter,
-- [7] stats, [8] Bloom meta, then each host's priorities ZSET and queue LISTs.
-- ARGV[1] 'fifo' or 'lifo', ARGV[2..6] Bloom capacity, error ratio, growth, max chunk
-- bits, kind, ARGV[7] default per-host concurrency, then 8 values per request: filter
-- ('1' = dedup, '0' = dont_filter), h1, h2, priority, host, index of its queue LIST in
-- KEYS, index of its host's priorities ZSET in KEYS, entry.
-- Returns one integer per request: 1 queued, 0 duplicate, 2 host blocked (not queued,
-- not marked as seen).
local H = {ready = KEYS[1], waits = KEYS[2], top = KEYS[3], active = KEYS[4],
  settings = KEYS[5], queued = KEYS[6], stats = KEYS[7], cache = {}}
local lifo = ARGV[1] == 'lifo'
local default_concurrency = tonumber(ARGV[7])
local bloom = nil
local results = {}
local queued, duplicates, blocked = 0, 0, 0
local touched = hosts_touched()
for i = 8, #ARGV, 8 do
  local host = ARGV[i + 4]
  local result = 1
  if hosts_settings(H, host).blocked == true then
    result = 2
  elseif ARGV[i] == '1' then
    if bloom == nil then
      bloom = bloom_open(KEYS[8], tonumber(ARGV[2]), tonumber(ARGV[3]),
        tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
    end
    result = bloom_add(bloom, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]))
  end
  if result == 1 then
    local priority = ARGV[i + 3]
    local list_key = KEYS[tonumber(ARGV[i + 5])]
    local length
    if lifo then
      length = redis.call('LPUSH', list_key, ARGV[i + 7])
    else
      length = redis.call('RPUSH', list_key, ARGV[i + 7])
    end
    if length == 1 then
      redis.call('ZADD', KEYS[tonumber(ARGV[i + 6])], tonumber(priority), priority)
    end
    hosts_queued(H, host, priority)
    touched.add(host)
    queued = queued + 1
  elseif result == 0 then
    duplicates = duplicates + 1
  else
    blocked = blocked + 1
  end
  results[#results + 1] = result
end
if bloom ~= nil then
  bloom_flush(bloom)
end
if queued > 0 then
  local now = hosts_now_ms()
  for _, host in ipairs(touched.list) do
    hosts_schedule(H, host, now, default_concurrency)
  end
  redis.call('INCRBY', H.queued, queued)
  redis.call('HINCRBY', H.stats, 'enqueued', queued)
end
if duplicates > 0 then redis.call('HINCRBY', H.stats, 'duplicates', duplicates) end
if blocked > 0 then redis.call('HINCRBY', H.stats, 'blocked', blocked) end
return results
