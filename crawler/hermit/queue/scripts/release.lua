-- Return leased requests to the queue at once (requeue.lua is prepended).
-- KEYS[1] priorities ZSET, KEYS[2] this worker's leases HASH, KEYS[3] workers ZSET
-- ARGV[1] key base, ARGV[2] worker id, ARGV[3] 'all' (and forget the worker) or 'some',
-- ARGV[4..] lease ids when 'some'. Returns how many requests went back.
if ARGV[3] == 'all' then
  local returned = requeue_leases(ARGV[1], KEYS[1], KEYS[2], nil)
  redis.call('ZREM', KEYS[3], ARGV[2])
  return returned
end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
return requeue_leases(ARGV[1], KEYS[1], KEYS[2], ids)
