"""The Bloom filter against a real Redis: sizing, chunking, atomicity, measured error ratio."""

from __future__ import annotations

import hashlib
import math
import threading

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy import Request
from scrapy.utils.request import RequestFingerprinter

from hermit.dedup.bloom import (
    BLOCK_BITS,
    BLOOM_LUA,
    RedisBloomFilter,
    bit_positions,
    block_bit_positions,
    blocked_error_ratio,
    blocked_layer_sizing,
    fingerprint_hashes,
    layer_error_ratio,
    layer_sizing,
)
from hermit.keys import CrawlKeys

KEYS = CrawlKeys("bloomtest")

# Both kinds of filter: blocked (new filters) and classic (filters made before).
both_kinds = pytest.mark.parametrize("kind", ["blocked", "classic"])


def expected_sizing(kind: str, capacity: int, error_ratio: float, layer: int = 0,
                    block_bits: int = BLOCK_BITS) -> tuple[int, int]:
    """(bits, hashes) Python computes for layer *layer* of a filter of *kind*."""
    ratio = layer_error_ratio(error_ratio, layer, kind)
    if kind == "blocked":
        return blocked_layer_sizing(capacity, ratio, block_bits)
    return layer_sizing(capacity, ratio)


def positions(kind: str, fingerprint: bytes, layer) -> list[int]:
    """The bits *fingerprint* sets in *layer*, as Python computes them."""
    h1, h2 = fingerprint_hashes(fingerprint)
    if kind == "blocked":
        return block_bit_positions(h1, h2, layer.bits, layer.hashes, layer.block_bits)
    return bit_positions(h1, h2, layer.bits, layer.hashes)


def fps(prefix: str, count: int, start: int = 0) -> list[bytes]:
    """Deterministic 20-byte fingerprints, like Scrapy's."""
    return [hashlib.sha1(b"%s-%d" % (prefix.encode(), i)).digest() for i in range(start, start + count)]


def test_layer_sizing_follows_the_formulas():
    bits, hashes = layer_sizing(1_000_000, 1e-4)
    assert bits == math.ceil(-1_000_000 * math.log(1e-4) / math.log(2) ** 2)
    assert hashes == round(bits / 1_000_000 * math.log(2))
    assert layer_sizing(1, 0.5)[1] >= 1


@both_kinds
def test_first_layer_costs_at_most_20_bits_per_item_and_layers_sum_below_the_target(kind):
    for capacity in (1_000_000, 10**9):
        bits, _ = expected_sizing(kind, capacity, 1e-4)
        assert bits / capacity <= 20.0
    # However many layers there are, their error ratios add up to less than the target.
    assert sum(layer_error_ratio(1e-4, i, kind) for i in range(60)) < 1e-4
    assert layer_error_ratio(1e-4, 1, kind) < layer_error_ratio(1e-4, 0, kind) / 5


def test_blocked_sizing_meets_its_ratio_with_the_least_bits():
    for ratio in (1e-2, 1e-4, 1e-6):
        bits, hashes = blocked_layer_sizing(10**6, ratio)
        assert bits % BLOCK_BITS == 0
        load = 10**6 / (bits / BLOCK_BITS)
        assert blocked_error_ratio(BLOCK_BITS, load, hashes) <= ratio
        # A hundredth of a bit per key less misses it, whatever k.
        thinner = BLOCK_BITS / (bits / 10**6 - 0.01)
        assert min(blocked_error_ratio(BLOCK_BITS, thinner, k) for k in range(1, 40)) > ratio
    # Blocks cost more than the classic layout's formula, but not much.
    classic_bits, _ = layer_sizing(10**6, 1e-4)
    assert classic_bits < blocked_layer_sizing(10**6, 1e-4)[0] < 1.1 * classic_bits


def test_blocked_error_ratio_matches_a_simulation():
    """The Poisson formula against blocks filled at random, in Python."""
    import random
    rng = random.Random(7)
    block_bits, hashes, blocks, keys = 1024, 8, 200, 200 * 64
    filled = [set() for _ in range(blocks)]
    for _ in range(keys):
        filled[rng.randrange(blocks)].update(rng.randrange(block_bits) for _ in range(hashes))
    trials = 200_000
    hits = 0
    for _ in range(trials):
        bits = filled[rng.randrange(blocks)]
        hits += all(rng.randrange(block_bits) in bits for _ in range(hashes))
    expected = blocked_error_ratio(block_bits, keys / blocks, hashes)
    assert abs(hits / trials - expected) < 0.15 * expected


def test_fingerprint_hashes_are_48_bit_and_h2_odd():
    fingerprint = RequestFingerprinter().fingerprint(Request("https://example.com/a?b=1"))
    assert len(fingerprint) == 20
    h1, h2 = fingerprint_hashes(fingerprint)
    assert h1 == int.from_bytes(fingerprint[:6], "big")
    assert h2 == int.from_bytes(fingerprint[6:12], "big") | 1
    assert fingerprint_hashes(b"\0" * 20) == (0, 1)
    # Not a 20-byte digest: hashed first, so even similar inputs spread.
    assert fingerprint_hashes(b"https://example.com/1") != fingerprint_hashes(b"https://example.com/2")
    with pytest.raises(TypeError):
        fingerprint_hashes("0" * 40)  # type: ignore[arg-type]


@given(st.binary(min_size=20, max_size=20))
def test_hashes_stay_in_range(fingerprint):
    h1, h2 = fingerprint_hashes(fingerprint)
    assert 0 <= h1 < 2**48 and 0 < h2 < 2**48 and h2 % 2 == 1


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**47 - 1), st.integers(1, 2**40), st.integers(1, 40))
def test_bit_positions_are_double_hashing(h1, half, bits, hashes):
    h2 = 2 * half + 1
    positions = bit_positions(h1, h2, bits, hashes)
    if h2 % bits:
        assert positions == [(h1 + j * h2) % bits for j in range(hashes)]
    else:  # the one deviation: a zero step becomes 1
        assert positions == [(h1 + j) % bits for j in range(hashes)]


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**47 - 1), st.integers(1, 1000),
       st.sampled_from([8, 1024, 8192]), st.integers(1, 30))
def test_block_bit_positions_stay_in_their_block(h1, half, blocks, block_bits, hashes):
    h2 = 2 * half + 1
    found = block_bit_positions(h1, h2, blocks * block_bits, hashes, block_bits)
    block = h1 % blocks
    assert len(found) == hashes
    assert all(block * block_bits <= p < (block + 1) * block_bits for p in found)
    rest = half
    a, b, c = rest % block_bits, (rest // block_bits) % block_bits, (rest // block_bits**2) % block_bits
    assert [p - block * block_bits for p in found] == [
        (a + j * b + c * j * (j - 1) // 2) % block_bits for j in range(hashes)]


@both_kinds
def test_add_then_seen_and_duplicates_within_a_batch(redis_client, kind):
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=1000, kind=kind)
    a, b = fps("a", 2)
    assert bloom.add_many([a, b, a]) == [True, True, False]
    assert bloom.add_many([b, a]) == [False, False]
    assert bloom.contains_many([a, b, fps("c", 1)[0]]) == [True, True, False]
    assert bloom.add(fps("d", 1)[0]) is True
    assert bloom.add_many([]) == [] and bloom.contains_many([]) == []
    info = bloom.info()
    assert info is not None and info.items == 3 and info.layers == 1 and info.capacity == 1000
    assert info.kind == kind


def test_contains_on_a_missing_filter_writes_nothing(redis_client):
    bloom = RedisBloomFilter(redis_client, KEYS)
    assert bloom.contains_many(fps("x", 3)) == [False] * 3
    assert bloom.info() is None
    assert redis_client.keys("*") == []


@both_kinds
def test_batches_larger_than_one_script_call(redis_client, kind):
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=5000, batch_size=700, kind=kind)
    items = fps("b", 3000)
    assert all(bloom.add_many(items))
    assert bloom.contains_many(items) == [True] * 3000
    assert not any(bloom.add_many(items))
    assert bloom.info().items == 3000


@both_kinds
def test_first_writer_sets_the_sizing_and_the_kind(redis_client, kind):
    other = "classic" if kind == "blocked" else "blocked"
    first = RedisBloomFilter(redis_client, KEYS, capacity=1000, error_ratio=1e-3, growth=3, kind=other)
    second = RedisBloomFilter(redis_client, KEYS, capacity=50_000, error_ratio=1e-6, growth=2, kind=kind)
    second.add_many(fps("f", 10))
    assert first.add_many(fps("f", 10)) == [False] * 10
    info = first.info()
    assert (info.capacity, info.error_ratio, info.kind) == (50_000, 1e-6, kind)
    layer = info.layer_details[0]
    assert (layer.bits, layer.hashes) == expected_sizing(kind, 50_000, 1e-6)


def test_invalid_sizing_is_refused(redis_client):
    for kwargs in ({"capacity": 0}, {"error_ratio": 0}, {"error_ratio": 1}, {"growth": 0},
                   {"growth": 1.5}, {"max_chunk_bits": 2**32 + 1}, {"batch_size": 0}, {"kind": "cuckoo"}):
        with pytest.raises(ValueError):
            RedisBloomFilter(redis_client, KEYS, **kwargs)


@both_kinds
def test_bits_are_where_python_computes_them(redis_client, kind):
    capacity = 3000
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=capacity, kind=kind)
    first, second = fps("p", 2)
    bloom.add_many([first])
    layer = bloom.info().layer_details[0]
    assert (layer.bits, layer.hashes) == expected_sizing(kind, capacity, 1e-4)
    bitmap = redis_client.get(KEYS.bloom_chunk(0, 0))
    assert len(bitmap) == math.ceil(layer.bits / 8)  # allocated whole at creation
    set_bits = {i for i in range(layer.bits) if bitmap[i // 8] & (0x80 >> (i % 8))}
    assert set_bits == set(positions(kind, first, layer))
    bloom.add_many([second])
    bitmap = redis_client.get(KEYS.bloom_chunk(0, 0))
    set_bits = {i for i in range(layer.bits) if bitmap[i // 8] & (0x80 >> (i % 8))}
    assert set_bits == set(positions(kind, first, layer)) | set(positions(kind, second, layer))


@both_kinds
def test_layers_split_into_chunks_no_larger_than_max_chunk_bits(redis_client, kind):
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=1000, max_chunk_bits=2**12, kind=kind)
    items = fps("chunk", 5000)
    new = sum(bloom.add_many(items))
    assert new >= 4995  # all but the odd false positive
    info = bloom.info()
    assert info.layers == 3 and info.items == new  # 1000 + 2000 full, then 4000
    for i, layer in enumerate(info.layer_details):
        assert layer.chunk_bits <= 2**12 and layer.chunks == math.ceil(layer.bits / layer.chunk_bits) > 1
        if kind == "blocked":  # whole blocks per chunk, as large as a chunk allows
            assert layer.block_bits == 2**12 and layer.chunk_bits % layer.block_bits == 0
        sizes = [redis_client.strlen(KEYS.bloom_chunk(i, c)) for c in range(layer.chunks)]
        assert max(sizes) <= 2**12 // 8
        assert sum(sizes) * 8 >= layer.bits
        assert not redis_client.exists(KEYS.bloom_chunk(i, layer.chunks))
    assert sorted(bloom.chunk_keys()) == sorted(
        k.decode() for k in redis_client.keys(KEYS.bloom_meta + ":*")
    )
    # Every bit went to the right chunk: the same fingerprints read back as present,
    # and each one's bits are set where Python puts them.
    assert bloom.contains_many(items) == [True] * 5000
    assert not any(bloom.add_many(items))
    layer = info.layer_details[0]
    for fingerprint in items[:50]:
        for position in positions(kind, fingerprint, layer):
            chunk, offset = divmod(position, layer.chunk_bits)
            assert redis_client.getbit(KEYS.bloom_chunk(0, chunk), offset) == 1
    fresh = bloom.contains_many(fps("chunk-fresh", 20_000))
    assert sum(fresh) / len(fresh) <= 1e-4 * 10  # a loose check here; the precise ones below


def _numeric_add_script(client: redis.Redis):
    """A script built the way the queue's push script is: snippet + h1/h2 as numbers."""
    return client.register_script(BLOOM_LUA + """
local bloom = bloom_open(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  ARGV[5])
local out = {}
for i = 7, #ARGV, 2 do
  if ARGV[6] == 'add' then
    out[#out + 1] = bloom_add(bloom, tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
  else
    out[#out + 1] = bloom_contains(bloom, tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
  end
end
bloom_flush(bloom)
return out
""")


@both_kinds
def test_snippet_contract_with_numeric_hashes_matches_the_packed_path(redis_client, kind):
    script = _numeric_add_script(redis_client)
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=300, max_chunk_bits=2**10, kind=kind)
    numeric, packed = fps("num", 400), fps("packed", 400)

    def call(mode, items):
        args = [300, "0.0001", 2, 2**10, kind, mode]
        for fingerprint in items:
            args += fingerprint_hashes(fingerprint)
        return [bool(r) for r in script(keys=[KEYS.bloom_meta], args=args)]

    assert all(call("add", numeric))
    assert all(bloom.add_many(packed))
    # Each path sees what the other set, through layer growth and chunking.
    assert bloom.contains_many(numeric) == [True] * 400
    assert call("contains", packed) == [True] * 400
    assert not any(call("add", packed)) and not any(bloom.add_many(numeric))
    info = bloom.info()
    assert info.items == 800 and info.layers == 2  # 300 full, 500 of 600


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_lua_reads_the_same_hashes_as_python(redis_server, fingerprint):
    client = redis.Redis.from_url(redis_server.url)
    try:
        script = client.register_script(BLOOM_LUA + """
local h1, h2 = bloom_hashes(ARGV[1], 1)
return {string.format('%d', h1), string.format('%d', h2)}
""")
        h1, h2 = script(keys=[], args=[fingerprint[:12]])
        assert (int(h1), int(h2)) == fingerprint_hashes(fingerprint)
    finally:
        client.close()


@both_kinds
def test_racing_clients_never_both_get_new(redis_url, kind):
    rounds, per_round = 30, 400
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    blooms = [RedisBloomFilter(c, KEYS, capacity=2000, batch_size=50, kind=kind) for c in clients]
    results: list[list[bool]] = [[], []]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(index: int, items: list[bytes]) -> None:
        try:
            barrier.wait()
            # Opposite orders make the two clients' batches interleave on the same keys.
            ordered = items if index == 0 else items[::-1]
            flags = blooms[index].add_many(ordered)
            results[index] = flags if index == 0 else flags[::-1]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        both_new = neither_new = 0
        for r in range(rounds):
            items = fps(f"race{r}", per_round)
            threads = [threading.Thread(target=worker, args=(i, items)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors
            both_new += sum(a and b for a, b in zip(*results))
            neither_new += sum(not a and not b for a, b in zip(*results))
        assert both_new == 0
        # Each fingerprint was new to exactly one of them, but for rare false positives.
        assert neither_new <= 3
        assert blooms[0].info().items == rounds * per_round - neither_new
    finally:
        for c in clients:
            c.close()


@both_kinds
def test_delete_removes_every_key(redis_client, kind):
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=500, max_chunk_bits=2**11, kind=kind)
    bloom.add_many(fps("del", 2000))
    redis_client.set("unrelated", 1)
    keys = bloom.chunk_keys()
    assert len(keys) > 3
    assert bloom.delete() == len(keys) + 1
    assert redis_client.keys("*") == [b"unrelated"]
    assert bloom.info() is None and bloom.delete() == 0


def test_leftover_chunks_of_a_lost_meta_hash_are_not_reused(redis_client):
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=1000)
    items = fps("old", 500)
    bloom.add_many(items)
    redis_client.delete(KEYS.bloom_meta)
    assert all(bloom.add_many(items))


@both_kinds
def test_measured_false_positive_ratio_at_one_million(redis_client, kind):
    """Fill a 1M filter to capacity, then look up 1M fingerprints it never saw."""
    capacity, target = 1_000_000, 1e-4
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=capacity, error_ratio=target, kind=kind)
    added = sum(bloom.add_many(fps("member", capacity)))
    # A few inserts were false positives (not counted): top up until the layer is full.
    start = capacity
    while bloom.info().layers == 1:
        added += sum(bloom.add_many(fps("member", capacity - added, start)))
        start += capacity
    info = bloom.info()
    assert info.layer_details[0].items == capacity
    assert info.estimated_false_positive_ratio <= target
    bits_per_item = info.layer_details[0].bits / capacity
    assert bits_per_item <= 20
    # Allocated at its size, not grown bit by bit (which over-allocates up to 1 MB).
    assert redis_client.memory_usage(KEYS.bloom_chunk(0, 0), samples=0) <= 1.1 * info.layer_details[0].bits / 8

    queries = 1_000_000
    false_positives = sum(bloom.contains_many(fps("fresh", queries)))
    measured = false_positives / queries
    print(f"\n1M {kind} filter at capacity: {bits_per_item:.2f} bits/item, measured FPR {measured:.2e}"
          f" ({false_positives} of {queries}), estimated {info.estimated_false_positive_ratio:.2e}")
    assert measured <= target


@both_kinds
def test_measured_false_positive_ratio_after_scaling(redis_client, kind):
    """Three times the first layer's capacity: two full layers, a third started."""
    capacity, target = 10_000, 1e-4
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=capacity, error_ratio=target, growth=2, kind=kind)
    bloom.add_many(fps("scaled", 3 * capacity))
    start = 3 * capacity
    while bloom.info().layers < 3:
        bloom.add_many(fps("scaled", 10, start))
        start += 10
    info = bloom.info()
    assert [layer.capacity for layer in info.layer_details] == [10_000, 20_000, 40_000]
    assert [layer.items for layer in info.layer_details][:2] == [10_000, 20_000]
    assert info.estimated_false_positive_ratio <= target

    queries = 1_000_000
    false_positives = sum(bloom.contains_many(fps("scaled-fresh", queries)))
    measured = false_positives / queries
    print(f"\nscaled filter, {info.layers} layers: measured FPR {measured:.2e} ({false_positives} of {queries}),"
          f" estimated {info.estimated_false_positive_ratio:.2e}")
    assert measured <= target
    # Nothing inserted is lost across layers.
    assert all(bloom.contains_many(fps("scaled", start)))


def test_a_foreign_meta_hash_is_an_error_not_a_guess(redis_client):
    redis_client.hset(KEYS.bloom_meta, mapping={"layers": 1, "cap:0": 10})
    with pytest.raises(redis.ResponseError, match="not a Hermit Bloom filter meta hash"):
        RedisBloomFilter(redis_client, KEYS).add_many(fps("v", 1))
