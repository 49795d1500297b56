-- Forget handoffs their target shards have applied (receive.lua): from the head of
-- each target's list, those numbered at or below the one applied there. A list holds
-- consecutive numbers from its head on (push.lua appends them in order, this trims
-- from the head), so how many go follows from the head's number. They stop counting
-- as queued here (they count on the targets now).
-- A record with no number at a list's head (push.lua writes none such) moves to the
-- dead letters, counted, so it can't hold the list up.
-- KEYS[1] handoff targets SET, [2] queued counter, [3] dead letters LIST, [4] stats,
-- then each target's handoff LIST.
-- ARGV: per target, in the order of its LIST in KEYS: the target shard, the highest
-- sequence number it applied.
-- Returns the number of handoffs forgotten.
local trimmed = 0
for t = 1, #ARGV, 2 do
  local list = KEYS[4 + (t + 1) / 2]
  local head = redis.call('LINDEX', list, 0)
  local first = head and tonumber(string.match(head, '^(%d+) '))
  while head and not first do
    redis.call('LPOP', list)
    redis.call('LPUSH', KEYS[3], cjson.encode({reason = 'malformed handoff record', entry = head}))
    redis.call('HINCRBY', KEYS[4], 'dead_letters', 1)
    redis.call('DECR', KEYS[2])
    head = redis.call('LINDEX', list, 0)
    first = head and tonumber(string.match(head, '^(%d+) '))
  end
  if first then
    local length = redis.call('LLEN', list)
    local n = math.min(tonumber(ARGV[t + 1]) - first + 1, length)
    if n > 0 then
      redis.call('LTRIM', list, n, -1)
      trimmed = trimmed + n
      length = length - n
    end
    if length == 0 then redis.call('SREM', KEYS[1], ARGV[t]) end
  else
    redis.call('SREM', KEYS[1], ARGV[t])
  end
end
if trimmed > 0 then redis.call('DECRBY', KEYS[2], trimmed) end
return trimmed
