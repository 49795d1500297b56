-- Deletes the meta hash and every chunk it names, in one step so no writer can add
-- a layer in between. Returns the number of keys removed.
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return 0 end
local m = {}
for i = 1, #meta, 2 do m[meta[i]] = tonumber(meta[i + 1]) end
local removed = redis.call('UNLINK', KEYS[1])
for i = 0, (m['layers'] or 0) - 1 do
  local bits, chunk_bits = m['bits:' .. i], m['chunk_bits:' .. i]
  if bits and chunk_bits then
    for c = 0, math.ceil(bits / chunk_bits) - 1 do
      removed = removed + redis.call('UNLINK', KEYS[1] .. ':' .. i .. ':' .. c)
    end
  end
end
return removed
