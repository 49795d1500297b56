-- Dedup and enqueue a batch of requests atomically (bloom.lua and hosts.lua are prepended).
-- KEYS[1] ready, [2] waits, [3] top, [4] active, [5] settings, [6] queued counter,
-- [7] stats, [8] Bloom meta, [9] handoff targets SET, [10] blocked hosts SET, then
-- each host's priorities ZSET and queue LISTs, and the handoff LISTs and counters.
-- ARGV[1] 'fifo' or 'lifo', ARGV[2..6] Bloom capacity, error ratio, growth, max chunk
-- bits, kind, ARGV[7] default per-host concurrency, then 9 values per request: filter
-- ('1' = dedup, '0' = dont_filter), h1, h2, priority, host, two key indexes, entry,
-- and the shard its host lives on when that is another shard ('' when it is this one).
-- The key indexes (into KEYS) are its host's queue LIST and priorities ZSET, or, for a
-- host on another shard, the handoff LIST to that shard and its counter: a request
-- new to this shard's filter is then appended there, numbered, in this same call, and
-- counted as queued until hermit.queue.shards delivers it (receive.lua, trim_handoff.lua).
-- Returns one integer per request: 1 queued, 0 duplicate, 2 host blocked (not queued,
-- not marked as seen), or -n: handed off as number n of this shard's handoffs to its
-- host's shard (so the caller can deliver it without reading it back).
local H = {ready = KEYS[1], waits = KEYS[2], top = KEYS[3], active = KEYS[4],
  settings = KEYS[5], queued = KEYS[6], stats = KEYS[7], cache = {}}
local lifo = ARGV[1] == 'lifo'
local default_concurrency = tonumber(ARGV[7])
local bloom = nil
local results = {}
local queued, handed_off, duplicates, blocked = 0, 0, 0, 0
local touched = hosts_touched()
local any_blocked = nil
-- Handoffs per target shard, numbered and appended once the loop is over:
-- target -> {list key, counter key, records, positions in results}.
local handoffs, targets = {}, {}
for i = 8, #ARGV, 9 do
  local host = ARGV[i + 4]
  local target = ARGV[i + 8]
  local result = 1
  local is_blocked
  if target == '' then
    is_blocked = hosts_settings(H, host).blocked == true
  else
    if any_blocked == nil then any_blocked = redis.call('SCARD', KEYS[10]) > 0 end
    is_blocked = any_blocked and redis.call('SISMEMBER', KEYS[10], host) == 1
  end
  if is_blocked then
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
    if target == '' then
      hosts_enqueue(H, lifo, KEYS[tonumber(ARGV[i + 5])], KEYS[tonumber(ARGV[i + 6])], host, priority,
        ARGV[i + 7], touched)
      queued = queued + 1
    else
      local h = handoffs[target]
      if h == nil then
        h = {list = KEYS[tonumber(ARGV[i + 5])], counter = KEYS[tonumber(ARGV[i + 6])], records = {}, at = {}}
        handoffs[target] = h
        targets[#targets + 1] = target
      end
      h.records[#h.records + 1] = ' ' .. priority .. ' ' .. host .. '\n' .. ARGV[i + 7]
      h.at[#h.at + 1] = #results + 1
      handed_off = handed_off + 1
    end
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
for _, target in ipairs(targets) do
  local h = handoffs[target]
  local first = redis.call('INCRBY', h.counter, #h.records) - #h.records + 1
  for n = 1, #h.records do
    h.records[n] = hosts_int(first + n - 1) .. h.records[n]
    results[h.at[n]] = -(first + n - 1)
  end
  redis.call('RPUSH', h.list, unpack(h.records))
  redis.call('SADD', KEYS[9], target)
end
hosts_enqueued(H, touched, queued, default_concurrency)
if handed_off > 0 then redis.call('INCRBY', H.queued, handed_off) end
if queued + handed_off > 0 then redis.call('HINCRBY', H.stats, 'enqueued', queued + handed_off) end
if duplicates > 0 then redis.call('HINCRBY', H.stats, 'duplicates', duplicates) end
if blocked > 0 then redis.call('HINCRBY', H.stats, 'blocked', blocked) end
return results
