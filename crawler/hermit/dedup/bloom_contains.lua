-- ARGV[1]: 12 bytes per fingerprint. Returns one character per fingerprint, '1' = seen.
local packed, out = ARGV[1], {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return string.rep('0', #packed / 12)
end
-- The sizing arguments only matter when creating, which can't happen here.
local bloom = bloom_open(KEYS[1], 1, 0.5, 1, 8)
local n = 0
for offset = 1, #packed, 12 do
  n = n + 1
  out[n] = bloom_contains(bloom, bloom_hashes(packed, offset))
end
return table.concat(out)
