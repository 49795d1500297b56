-- Forget processed leases; count only those still held (a reaped lease is a no-op).
-- KEYS[1] the worker's leases HASH, KEYS[2] stats HASH; ARGV lease ids.
local removed = redis.call('HDEL', KEYS[1], unpack(ARGV))
if removed > 0 then redis.call('HINCRBY', KEYS[2], 'acked', removed) end
return removed
