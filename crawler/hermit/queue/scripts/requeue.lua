-- Library snippet (prepended to release.lua and heartbeat.lua): put leased
-- requests back at the head of their priority's list.
-- A lease value is '<priority> <entry>'.

local function requeue_value(base, priorities_key, value)
  local space = string.find(value, ' ', 1, true)
  if not space then
    -- Not written by a lease script: keep it for a human rather than drop it.
    redis.call('LPUSH', base .. ':dead-letters',
      cjson.encode({reason = 'malformed lease value', entry = value}))
    redis.call('HINCRBY', base .. ':stats', 'dead_letters', 1)
    return 0
  end
  local priority = string.sub(value, 1, space - 1)
  redis.call('LPUSH', base .. ':queue:' .. priority, string.sub(value, space + 1))
  redis.call('ZADD', priorities_key, tonumber(priority), priority)
  return 1
end

-- Requeue every lease of a hash (ids == nil) or the given lease ids; return how many.
local function requeue_leases(base, priorities_key, hash_key, ids)
  local returned = 0
  if ids == nil then
    local all = redis.call('HGETALL', hash_key)
    for i = 2, #all, 2 do
      returned = returned + requeue_value(base, priorities_key, all[i])
    end
    redis.call('DEL', hash_key)
  else
    for _, id in ipairs(ids) do
      local value = redis.call('HGET', hash_key, id)
      if value then
        returned = returned + requeue_value(base, priorities_key, value)
        redis.call('HDEL', hash_key, id)
      end
    end
  end
  if returned > 0 then
    redis.call('HINCRBY', base .. ':stats', 'returned', returned)
  end
  return returned
end
