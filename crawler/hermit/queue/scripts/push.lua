-- Dedup and enqueue a batch of requests atomically (bloom.lua is prepended).
-- KEYS[1] priorities ZSET, KEYS[2] Bloom meta HASH, KEYS[3] stats HASH
-- ARGV[1] key base, ARGV[2] 'fifo' or 'lifo',
-- ARGV[3..6] Bloom capacity, error ratio, growth, max chunk bits,
-- then 5 values per request: filter ('1' = dedup, '0' = dont_filter), h1, h2, priority, entry.
-- Returns one integer per request: 1 queued, 0 duplicate.
local base = ARGV[1]
local lifo = ARGV[2] == 'lifo'
local bloom = nil
local results = {}
local queued, duplicates = 0, 0
local touched = {}
for i = 7, #ARGV, 5 do
  local is_new = 1
  if ARGV[i] == '1' then
    if bloom == nil then
      bloom = bloom_open(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
        tonumber(ARGV[5]), tonumber(ARGV[6]))
    end
    is_new = bloom_add(bloom, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]))
  end
  if is_new == 1 then
    local priority = ARGV[i + 3]
    local queue_key = base .. ':queue:' .. priority
    if lifo then
      redis.call('LPUSH', queue_key, ARGV[i + 4])
    else
      redis.call('RPUSH', queue_key, ARGV[i + 4])
    end
    touched[priority] = true
    queued = queued + 1
  else
    duplicates = duplicates + 1
  end
  results[#results + 1] = is_new
end
for priority, _ in pairs(touched) do
  redis.call('ZADD', KEYS[1], tonumber(priority), priority)
end
if bloom ~= nil then
  bloom_flush(bloom)
end
if queued > 0 then redis.call('HINCRBY', KEYS[3], 'enqueued', queued) end
if duplicates > 0 then redis.call('HINCRBY', KEYS[3], 'duplicates', duplicates) end
return results
