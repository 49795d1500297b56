-- Forget handoffs their target shard has applied (receive.lua), from the head of the
-- list while their number is at or below the one applied; they stop counting as
-- queued here (they count on the target now).
-- KEYS[1] the handoff LIST, [2] handoff targets SET, [3] queued counter
-- ARGV[1] the target shard, [2] the highest sequence number it applied.
-- Returns the number of handoffs forgotten.
local applied = tonumber(ARGV[2])
local trimmed = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local seq = tonumber(string.match(head, '^(%d+) '))
  if seq and seq > applied then break end
  -- (an entry with no number can't be delivered: receive.lua is never given one)
  redis.call('LPOP', KEYS[1])
  trimmed = trimmed + 1
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
if trimmed > 0 then redis.call('DECRBY', KEYS[3], trimmed) end
return trimmed
