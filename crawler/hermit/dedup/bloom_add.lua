-- ARGV: capacity, error ratio, growth, max chunk bits, kind, then 12 bytes per
-- fingerprint (h1 and h2 big-endian) in one string, which is cheaper to send and
-- parse than two decimal numbers each. Returns one character per fingerprint, '1' = new.
local bloom = bloom_open(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5])
local packed, out, n = ARGV[6], {}, 0
for offset = 1, #packed, 12 do
  n = n + 1
  out[n] = bloom_add(bloom, bloom_hashes(packed, offset))
end
bloom_flush(bloom)
return table.concat(out)
