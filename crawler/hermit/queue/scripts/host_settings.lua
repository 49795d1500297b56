-- Change what `hermit hosts` set for one host, and reschedule it at once
-- (hosts.lua is prepended).
-- KEYS[1] settings, [2] ready, [3] waits, [4] top, [5] active
-- ARGV[1] host, ARGV[2] JSON object of fields to set (a JSON null clears a field),
-- ARGV[3] the concurrency to assume when the host sets none.
-- Returns the host's settings after the change, as JSON ('{}' when none are left).
local H = {settings = KEYS[1], ready = KEYS[2], waits = KEYS[3], top = KEYS[4],
  active = KEYS[5], cache = {}}
local host = ARGV[1]
local current = hosts_settings(H, host)
local changes = cjson.decode(ARGV[2])
for field, value in pairs(changes) do
  if value == cjson.null then current[field] = nil else current[field] = value end
end
local encoded = '{}'
if next(current) == nil then
  redis.call('HDEL', H.settings, host)
else
  encoded = cjson.encode(current)
  redis.call('HSET', H.settings, host, encoded)
end
H.cache[host] = current
hosts_schedule(H, host, hosts_now_ms(), tonumber(ARGV[3]))
return encoded
