-- Enqueue requests other shards handed off to this one (hosts.lua is prepended):
-- their hosts live here, the other shards' filters marked them seen (push.lua).
-- KEYS[1] ready, [2] waits, [3] top, [4] active, [5] settings, [6] queued counter,
-- [7] stats, [8] handoffs received HASH, then the hosts' priorities ZSETs and LISTs.
-- ARGV[1] 'fifo' or 'lifo', [2] default per-host concurrency, then per source shard:
-- the source, its number of requests, and 6 values per request, in the order the
-- source numbered them: sequence number, priority, host, index of its queue LIST in
-- KEYS, of its priorities ZSET, entry.
-- A request numbered at or below the last one applied from its source was delivered
-- before (a deliverer that died before trimming, or two at once): it is skipped. One
-- numbered beyond the next expected ends that source's part: an older handoff is
-- still on its way, and the source's list is delivered from its head instead.
-- A host blocked since the request was handed off gets it counted as blocked, not queued.
-- Returns {requests queued, then per source: the source, the highest number applied from it}.
local H = {ready = KEYS[1], waits = KEYS[2], top = KEYS[3], active = KEYS[4],
  settings = KEYS[5], queued = KEYS[6], stats = KEYS[7], cache = {}}
local lifo = ARGV[1] == 'lifo'
local queued, blocked = 0, 0
local touched = hosts_touched()
local out = {0}
local i = 3
while i <= #ARGV do
  local source, count = ARGV[i], tonumber(ARGV[i + 1])
  local last = tonumber(redis.call('HGET', KEYS[8], source) or '0')
  local applied = last
  for j = i + 2, i + 1 + count * 6, 6 do
    local seq = tonumber(ARGV[j])
    if seq > applied + 1 then break end
    if seq > applied then
      applied = seq
      local host = ARGV[j + 2]
      if hosts_settings(H, host).blocked == true then
        blocked = blocked + 1
      else
        hosts_enqueue(H, lifo, KEYS[tonumber(ARGV[j + 3])], KEYS[tonumber(ARGV[j + 4])], host, ARGV[j + 1],
          ARGV[j + 5], touched)
        queued = queued + 1
      end
    end
  end
  if applied > last then redis.call('HSET', KEYS[8], source, hosts_int(applied)) end
  out[#out + 1] = source
  out[#out + 1] = hosts_int(applied)
  i = i + 2 + count * 6
end
hosts_enqueued(H, touched, queued, tonumber(ARGV[2]))
if blocked > 0 then redis.call('HINCRBY', H.stats, 'blocked', blocked) end
out[1] = queued
return out
