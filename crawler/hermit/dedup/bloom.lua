-- Library snippet: a scalable Bloom filter in Redis bitmaps (hermit.dedup.bloom).
--
-- A script that dedups prepends this text to its own code, so check-and-set and
-- whatever follows (the queue's push) run as one atomic script call. It defines
-- local functions only and returns nothing.
--
-- Contract for the including script:
--   local bloom = bloom_open(meta_key, capacity, error_ratio, growth, max_chunk_bits, kind)
--       once per call, before the others. Creates the filter if the HASH meta_key is
--       absent (first writer wins: the arguments are ignored when it exists) and
--       returns a table describing its layers. kind: 'blocked' (nil too) or 'classic'.
--   bloom_add(bloom, h1, h2)      -> 1 if new (its bits are now set), 0 if (probably) seen
--   bloom_contains(bloom, h1, h2) -> 1 if (probably) seen, 0 if not; sets nothing
--   bloom_flush(bloom)            once at the end of a call that used bloom_add:
--       writes the layers' item counts to the meta hash (one HSET, not one per item).
-- h1 and h2 are integers below 2^48, h2 odd (hermit.dedup.bloom.fingerprint_hashes);
-- bloom_hashes(packed, offset) reads them from 12 packed bytes instead.
--
-- Layout: the meta HASH holds the kind and sizing and, per layer i (0-based),
-- capacity:i, error_ratio:i, bits:i, hashes:i, chunk_bits:i and count:i. The bits of
-- layer i live in STRING keys <meta_key>:<i>:<chunk> of chunk_bits:i bits each (the
-- last may be shorter), so no key exceeds max_chunk_bits.
--
-- Two kinds, recorded when the filter is created (version 1: classic, version 2:
-- blocked), so every worker of a crawl uses the same:
-- - classic (filters made before blocked ones existed): bit j (0-based) of a
--   fingerprint in a layer of m bits is (h1 + j*h2) mod m; every intermediate stays
--   below 2^53, exact in doubles. A check reads k scattered bits, a new key sets k.
-- - blocked: a layer is cut into blocks of block_bits bits (a power of two, 8192 by
--   default) and all k bits of a fingerprint fall in one block, h1 mod blocks. A
--   check is one GETRANGE of that block; a new key sets only the bits still 0. Its
--   k in-block positions come from h2 (its low bit, forced to 1, dropped) cut into
--   three numbers a, b, c below block_bits: position j = a + j*b + c*j*(j-1)/2,
--   mod block_bits (enhanced double hashing), so two fingerprints share all their
--   positions only if they agree on 3 * log2(block_bits) bits. Blocks hold
--   different numbers of keys, which costs a little: a blocked layer is sized by
--   the exact ratio over a Poisson number of keys per block (bloom_blocked_ratio),
--   19.9 bits per item at p = 1e-4 with the headroom below.

-- Layer i gets error ratio p * h * (1 - r) * r^i, so the compound ratio is at most
-- p * h * (1 - r) * (1 + r + r^2 + ...) = p * h. The headroom h keeps even a
-- filter whose layers are all full measurably below p (a sample of a million
-- lookups varies by ~10%, and rounding k costs a little); r = 0.1 keeps later
-- layers affordable. Layer 0 costs 19.99 bits per item at p = 1e-4 (k = 14).
local BLOOM_HEADROOM = 0.75
local BLOOM_TIGHTENING = 0.1
-- A blocked filter's headroom: its layers are sized by their exact ratio rather than
-- the classic formula's, which leaves less to rounding.
local BLOOM_BLOCKED_HEADROOM = 0.85
local BLOOM_BLOCK_BITS = 8192
-- Read-only probes look at this many bits first: a fingerprint absent from a full
-- layer (half its bits set) passes them with probability 1/16, so the other bits
-- are rarely read.
local BLOOM_FIRST_PROBE = 4
local BLOOM_LN2 = math.log(2)

local function bloom_int(x)
  -- tostring() would print large integers in exponent notation. (Bit offsets are
  -- passed to BITFIELD as numbers: Redis prints those exactly, a bit faster.)
  return string.format('%d', x)
end

local function bloom_layer_table(bloom, i, capacity, bits, hashes, chunk_bits, count)
  local chunks = math.ceil(bits / chunk_bits)
  local keys = {}
  for c = 0, chunks - 1 do keys[c] = bloom.meta .. ':' .. i .. ':' .. c end
  local layer = {
    capacity = capacity, bits = bits, hashes = hashes, chunk_bits = chunk_bits,
    chunks = chunks, count = count, keys = keys, dirty = false,
    -- scratch space reused for every fingerprint: positions[1..hashes], and per
    -- chunk the BITFIELD arguments and their count
    positions = {}, args = {[0] = {}}, arg_count = {}, touched = {},
  }
  if bloom.kind == 'blocked' then
    layer.block_bits = bloom.block_bits
    layer.blocks = bits / bloom.block_bits
    layer.blocks_per_chunk = chunk_bits / bloom.block_bits
  end
  return layer
end

-- The false-positive ratio of a blocked layer whose blocks of block_bits bits hold
-- `load` keys on average (a Poisson number each) with `hashes` bits per key:
-- sum over L of P(L keys) * (1 - (1 - 1/block_bits)^(hashes*L))^hashes.
local function bloom_blocked_ratio(block_bits, load, hashes)
  local log_load, log_p = math.log(load), -load
  local log_keep = hashes * math.log(1 - 1 / block_bits)
  local total = 0
  for keys = 0, math.ceil(load + 12 * math.sqrt(load) + 20) do
    if keys > 0 then log_p = log_p + log_load - math.log(keys) end
    total = total + math.exp(log_p) * (1 - math.exp(log_keep * keys)) ^ hashes
  end
  return total
end

-- The best k for `bits_per_key` and the ratio it gives.
local function bloom_blocked_best(block_bits, bits_per_key)
  local load = block_bits / bits_per_key
  local around = math.floor(bits_per_key * BLOOM_LN2 + 0.5)
  local best_ratio, best_hashes = 2, 1
  for hashes = math.max(1, around - 4), around + 1 do
    local ratio = bloom_blocked_ratio(block_bits, load, hashes)
    if ratio < best_ratio then best_ratio, best_hashes = ratio, hashes end
  end
  return best_ratio, best_hashes
end

-- (bits, hashes) of a blocked layer for `capacity` keys at `error_ratio`: the least
-- bits per key (to 1/1024 of a bit) whose best k meets the ratio, in whole blocks.
local function bloom_blocked_sizing(block_bits, capacity, error_ratio)
  local low, high = 1, 8
  while bloom_blocked_best(block_bits, high) > error_ratio do
    low, high = high, high * 2
    if high > 4096 then
      return error('hermit bloom: no blocked layer of ' .. block_bits .. '-bit blocks reaches error ratio '
        .. string.format('%.3g', error_ratio))
    end
  end
  while high - low > 1 / 1024 do
    local middle = (low + high) / 2
    if bloom_blocked_best(block_bits, middle) > error_ratio then low = middle else high = middle end
  end
  local _, hashes = bloom_blocked_best(block_bits, high)
  local blocks = math.ceil(capacity * high / block_bits)
  return blocks * block_bits, hashes
end

-- Size layer i for `capacity` items at `error_ratio`, record it in the meta hash and
-- allocate its chunks.
local function bloom_add_layer(bloom, i, capacity, error_ratio)
  local bits, hashes, chunk_bits
  if bloom.kind == 'blocked' then
    bits, hashes = bloom_blocked_sizing(bloom.block_bits, capacity, error_ratio)
    -- Whole blocks per chunk, so no block straddles two keys.
    local blocks_per_chunk = math.floor(bloom.max_chunk_bits / bloom.block_bits)
    local chunks = math.ceil(bits / bloom.block_bits / blocks_per_chunk)
    chunk_bits = math.ceil(bits / bloom.block_bits / chunks) * bloom.block_bits
  else
    bits = math.ceil(-capacity * math.log(error_ratio) / (BLOOM_LN2 * BLOOM_LN2))
    hashes = math.max(1, math.floor(bits / capacity * BLOOM_LN2 + 0.5))
    local chunks = math.ceil(bits / bloom.max_chunk_bits)
    chunk_bits = math.ceil(bits / chunks)
  end
  if bits >= 2 ^ 50 then
    return error('hermit bloom: layer ' .. i .. ' would need ' .. bloom_int(bits) .. ' bits')
  end
  local layer = bloom_layer_table(bloom, i, capacity, bits, hashes, chunk_bits, 0)
  bloom.layers[i + 1] = layer
  local s = ':' .. i
  redis.call('HSET', bloom.meta, 'capacity' .. s, bloom_int(capacity),
    'error_ratio' .. s, string.format('%.17g', error_ratio), 'bits' .. s, bloom_int(bits),
    'hashes' .. s, bloom_int(hashes), 'chunk_bits' .. s, bloom_int(chunk_bits), 'count' .. s, '0',
    'layers', bloom_int(i + 1))
  -- Allocate every chunk whole now: a new string gets exactly the size its first
  -- write needs, while growing one bit by bit lets Redis over-allocate by up to
  -- 1 MB. Random positions would reach the far end of each chunk at once anyway.
  -- The UNLINK: leftovers of a filter whose meta hash was deleted are not our bits.
  for c = 0, layer.chunks - 1 do
    local last = math.min(chunk_bits, bits - c * chunk_bits) - 1
    redis.call('UNLINK', layer.keys[c])
    redis.call('BITFIELD', layer.keys[c], 'SET', 'u1', bloom_int(last), '0')
  end
  return layer
end

local function bloom_open(meta_key, capacity, error_ratio, growth, max_chunk_bits, kind)
  local bloom = {meta = meta_key, layers = {}}
  local stored = redis.call('HGETALL', meta_key)
  if #stored == 0 then
    bloom.capacity, bloom.error_ratio, bloom.growth = capacity, error_ratio, growth
    bloom.max_chunk_bits, bloom.tightening = max_chunk_bits, BLOOM_TIGHTENING
    bloom.kind = kind or 'blocked'
    if bloom.kind == 'blocked' then
      -- The largest power of two up to BLOOM_BLOCK_BITS that fits a chunk.
      local block_bits = BLOOM_BLOCK_BITS
      while block_bits > max_chunk_bits do block_bits = block_bits / 2 end
      bloom.block_bits, bloom.headroom = block_bits, BLOOM_BLOCKED_HEADROOM
      redis.call('HSET', meta_key, 'version', '2', 'kind', 'blocked',
        'block_bits', bloom_int(block_bits))
    elseif bloom.kind == 'classic' then
      bloom.headroom = BLOOM_HEADROOM
      redis.call('HSET', meta_key, 'version', '1')
    else
      return error('hermit bloom: unknown filter kind ' .. tostring(kind))
    end
    -- The layer rules are stored too, so a later change of these constants leaves
    -- existing filters consistent.
    redis.call('HSET', meta_key, 'capacity', bloom_int(capacity),
      'error_ratio', string.format('%.17g', error_ratio), 'growth', bloom_int(growth),
      'max_chunk_bits', bloom_int(max_chunk_bits),
      'headroom', string.format('%.17g', bloom.headroom),
      'tightening', string.format('%.17g', BLOOM_TIGHTENING))
    bloom_add_layer(bloom, 0, capacity, error_ratio * bloom.headroom * (1 - BLOOM_TIGHTENING))
    return bloom
  end
  local m = {}
  for i = 1, #stored, 2 do m[stored[i]] = tonumber(stored[i + 1]) end
  if m['version'] == 1 then
    bloom.kind = 'classic'
  elseif m['version'] == 2 then
    bloom.kind, bloom.block_bits = 'blocked', m['block_bits']
  else
    return error('hermit bloom: ' .. meta_key .. ' is not a Hermit Bloom filter meta hash (version 1 or 2)')
  end
  bloom.capacity, bloom.error_ratio, bloom.growth = m['capacity'], m['error_ratio'], m['growth']
  bloom.max_chunk_bits, bloom.tightening = m['max_chunk_bits'], m['tightening']
  bloom.headroom = m['headroom']
  for i = 0, m['layers'] - 1 do
    local s = ':' .. i
    bloom.layers[i + 1] = bloom_layer_table(bloom, i, m['capacity' .. s], m['bits' .. s],
      m['hashes' .. s], m['chunk_bits' .. s], m['count' .. s])
  end
  return bloom
end

-- layer.positions[1..hashes] = (h1 + j*h2) mod bits, stepped so no intermediate
-- exceeds 2 * bits.
local function bloom_positions(layer, h1, h2)
  local bits, positions = layer.bits, layer.positions
  local position = h1 % bits
  local step = h2 % bits
  -- A step of 0 (h2 a multiple of bits) would put every probe on one bit.
  if step == 0 then step = 1 end
  for j = 1, layer.hashes do
    positions[j] = position
    position = position + step
    if position >= bits then position = position - bits end
  end
end

-- BITFIELD `op` ('SET' sets to 1, 'GET' reads) on positions[first..last], one
-- command per chunk touched. True if any bit read (for SET: its old value) was 0.
local function bloom_any_zero(layer, first, last, op)
  local positions, all_args, arg_count = layer.positions, layer.args, layer.arg_count
  local command = op == 'SET' and 'BITFIELD' or 'BITFIELD_RO'
  if layer.chunks == 1 then
    -- The usual case: one key, no grouping.
    local args, n = all_args[0], 0
    if op == 'SET' then
      for j = first, last do
        args[n + 1], args[n + 2], args[n + 3], args[n + 4] = 'SET', 'u1', positions[j], '1'
        n = n + 4
      end
    else
      for j = first, last do
        args[n + 1], args[n + 2], args[n + 3] = 'GET', 'u1', positions[j]
        n = n + 3
      end
    end
    local bits = redis.call(command, layer.keys[0], unpack(args, 1, n))
    for j = 1, #bits do
      if bits[j] == 0 then return true end
    end
    return false
  end
  local chunk_bits, touched, touched_count = layer.chunk_bits, layer.touched, 0
  for j = first, last do
    local offset = positions[j] % chunk_bits
    local chunk = (positions[j] - offset) / chunk_bits
    local n = arg_count[chunk] or 0
    if n == 0 then
      touched_count = touched_count + 1
      touched[touched_count] = chunk
    end
    local args = all_args[chunk]
    if args == nil then
      args = {}
      all_args[chunk] = args
    end
    args[n + 1], args[n + 2], args[n + 3] = op, 'u1', offset
    n = n + 3
    if op == 'SET' then
      args[n + 1] = '1'
      n = n + 1
    end
    arg_count[chunk] = n
  end
  local any_zero = false
  for t = 1, touched_count do
    local chunk = touched[t]
    local n = arg_count[chunk]
    arg_count[chunk] = 0
    -- A read may stop at the first 0; a write must reach every chunk.
    if op == 'SET' or not any_zero then
      local bits = redis.call(command, layer.keys[chunk], unpack(all_args[chunk], 1, n))
      for j = 1, #bits do
        if bits[j] == 0 then any_zero = true end
      end
    end
  end
  return any_zero
end

local function bloom_classic_has(layer, h1, h2)
  bloom_positions(layer, h1, h2)
  local hashes = layer.hashes
  local first = math.min(BLOOM_FIRST_PROBE, hashes)
  if bloom_any_zero(layer, 1, first, 'GET') then return false end
  return hashes == first or not bloom_any_zero(layer, first + 1, hashes, 'GET')
end

-- Classic check and set: true if any of its bits was 0 (all are 1 now).
local function bloom_classic_set(layer, h1, h2)
  bloom_positions(layer, h1, h2)
  -- SET returns each bit's old value: one call sets them all and tells whether
  -- any was 0 (new) or all were 1 (probably seen).
  return bloom_any_zero(layer, 1, layer.hashes, 'SET')
end

local bloom_byte, bloom_floor = string.byte, math.floor
-- The value of bit r (0 = the most significant, as Redis numbers bits) of a byte.
local BLOOM_BIT_VALUE = {[0] = 128, 64, 32, 16, 8, 4, 2, 1}

-- Reads the fingerprint's block of a blocked layer and fills layer.positions with
-- the bit offsets (in the chunk) of its bits that are 0, layer.missing of them.
-- Returns the chunk's key. (The hot path of every check: plain arithmetic, no
-- function calls but the block's read and one string.byte per bit.)
local function bloom_blocked_probe(layer, h1, h2)
  local block_bits, blocks_per_chunk = layer.block_bits, layer.blocks_per_chunk
  local block = h1 % layer.blocks
  local in_chunk = block % blocks_per_chunk
  local chunk = (block - in_chunk) / blocks_per_chunk
  local first_bit = in_chunk * block_bits
  local rest = (h2 - h2 % 2) / 2
  local a = rest % block_bits
  rest = (rest - a) / block_bits
  local b = rest % block_bits
  local c = ((rest - b) / block_bits) % block_bits
  local key = layer.keys[chunk]
  local first_byte = first_bit / 8
  local bytes = redis.call('GETRANGE', key, first_byte, first_byte + block_bits / 8 - 1)
  local positions, missing = layer.positions, 0
  local position, step = a, b
  for _ = 1, layer.hashes do
    local r = position % 8
    local value = BLOOM_BIT_VALUE[r]
    if bloom_byte(bytes, (position - r) / 8 + 1) % (value + value) < value then
      missing = missing + 1
      positions[missing] = first_bit + position
    end
    position = (position + step) % block_bits
    step = (step + c) % block_bits
  end
  layer.missing = missing
  return key
end

local function bloom_blocked_has(layer, h1, h2)
  bloom_blocked_probe(layer, h1, h2)
  return layer.missing == 0
end

-- Blocked check and set: true if any of its bits was 0; sets only those.
local function bloom_blocked_set(layer, h1, h2)
  local key = bloom_blocked_probe(layer, h1, h2)
  local missing = layer.missing
  if missing == 0 then return false end
  local positions, args = layer.positions, layer.args[0]
  local n = 0
  for j = 1, missing do
    args[n + 1], args[n + 2], args[n + 3], args[n + 4] = 'SET', 'u1', positions[j], '1'
    n = n + 4
  end
  redis.call('BITFIELD', key, unpack(args, 1, n))
  return true
end

local function bloom_layer_has(bloom, layer, h1, h2)
  if bloom.kind == 'blocked' then return bloom_blocked_has(layer, h1, h2) end
  return bloom_classic_has(layer, h1, h2)
end

-- 1 if some layer (probably) holds the fingerprint, else 0. Sets nothing.
local function bloom_contains(bloom, h1, h2)
  for i = #bloom.layers, 1, -1 do
    if bloom_layer_has(bloom, bloom.layers[i], h1, h2) then return 1 end
  end
  return 0
end

-- Check and set: 1 if the fingerprint was new (its bits are now set), 0 if not.
local function bloom_add(bloom, h1, h2)
  local layers = bloom.layers
  local newest = #layers
  -- Older layers are full and never written again; only the newest takes bits.
  for i = newest - 1, 1, -1 do
    if bloom_layer_has(bloom, layers[i], h1, h2) then return 0 end
  end
  local layer = layers[newest]
  local new
  if bloom.kind == 'blocked' then
    new = bloom_blocked_set(layer, h1, h2)
  else
    new = bloom_classic_set(layer, h1, h2)
  end
  if not new then return 0 end
  layer.count = layer.count + 1
  layer.dirty = true
  if layer.count >= layer.capacity then
    -- Full: a larger, tighter layer takes the next items, so the filter never
    -- exceeds its error ratio.
    bloom_add_layer(bloom, newest, layer.capacity * bloom.growth,
      bloom.error_ratio * bloom.headroom * (1 - bloom.tightening) * bloom.tightening ^ newest)
  end
  return 1
end

-- Write the changed item counts, once per script call rather than once per item.
local function bloom_flush(bloom)
  local fields = {}
  for i = 1, #bloom.layers do
    local layer = bloom.layers[i]
    if layer.dirty then
      fields[#fields + 1] = 'count:' .. (i - 1)
      fields[#fields + 1] = bloom_int(layer.count)
      layer.dirty = false
    end
  end
  if #fields > 0 then redis.call('HSET', bloom.meta, unpack(fields)) end
end

-- (h1, h2) from the 12 bytes of `packed` at `offset`: two big-endian 48-bit
-- integers, h2 made odd, as hermit.dedup.bloom.fingerprint_hashes computes them.
local function bloom_hashes(packed, offset)
  local a1, a2, a3, a4, a5, a6, b1, b2, b3, b4, b5, b6 = string.byte(packed, offset, offset + 11)
  local h1 = ((((a1 * 256 + a2) * 256 + a3) * 256 + a4) * 256 + a5) * 256 + a6
  local h2 = ((((b1 * 256 + b2) * 256 + b3) * 256 + b4) * 256 + b5) * 256 + b6
  if h2 % 2 == 0 then h2 = h2 + 1 end
  return h1, h2
end
