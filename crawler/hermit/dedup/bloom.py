"""A scalable Bloom filter in Redis bitmaps, for request fingerprints.

Two kinds (``bloom.lua`` describes both): ``blocked``, what new filters are, keeps
all of a fingerprint's bits in one 8192-bit block, so a check reads one block and a
new fingerprint writes only its bits still 0; ``classic``, what filters made before
it are, scatters them over the whole layer. The kind is stored with the filter, and
whoever opens it later uses that kind, whatever they asked for.

The filter logic is Lua (``bloom.lua``; the scripts ``bloom_add.lua``,
``bloom_contains.lua`` and ``bloom_delete.lua`` call it), so a whole batch of
check-and-sets is one atomic script call: two workers can never both see one URL as
new. The request queue prepends the same snippet to its push script, making dedup
and push one step.

Sizing: a layer for ``n`` items at error ratio ``p`` has ``m = ceil(-n ln p / (ln 2)^2)``
bits and ``k = round(m/n ln 2)`` hash functions. Layer ``i`` holds ``capacity *
growth**i`` items at error ratio ``p_i = p * h * (1 - r) * r**i`` with ``r = 0.1``
and headroom ``h = 0.75``, so the compound error ratio of any number of layers is at
most ``p * h * (1 - r) * (1 + r + r**2 + ...) = 0.75 p``: a full filter measures
below ``p`` even with the sampling noise of a million lookups. Layer 0 costs
19.99 bits per item at ``p = 1e-4`` (k = 14). A layer that reaches its capacity
always gets a successor, so the ratio is never silently exceeded.

A fingerprint's ``k`` bits in a layer of ``m`` bits are ``(h1 + j*h2) mod m`` for
``j = 0..k-1`` (double hashing), with ``h1`` and ``h2`` taken from the fingerprint
itself: a SHA1 digest is already uniformly distributed, so no more hashing is needed.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import redis

from hermit.dedup.sizing import DEDUP_CAPACITY, DEDUP_ERROR_RATIO, DEDUP_GROWTH, DEDUP_MAX_CHUNK_BITS
from hermit.keys import CrawlKeys
from hermit.queue.shards import layout_keys

logger = logging.getLogger(__name__)


def _lua(name: str) -> str:
    return resources.files("hermit.dedup").joinpath(name).read_text()


#: The filter's functions (``bloom_open``, ``bloom_add``, ...), which the scripts that
#: use a filter (below, and the queue's push) start with.
BLOOM_LUA = _lua("bloom.lua")
#: The filter's scripts, each run on ``KEYS[1]``: the filter's meta hash (``CrawlKeys.bloom_meta``).
ADD_LUA = BLOOM_LUA + "\n" + _lua("bloom_add.lua")
CONTAINS_LUA = BLOOM_LUA + "\n" + _lua("bloom_contains.lua")
DELETE_LUA = _lua("bloom_delete.lua")

# Must match BLOOM_HEADROOM, BLOOM_BLOCKED_HEADROOM, BLOOM_TIGHTENING and
# BLOOM_BLOCK_BITS in bloom.lua (a filter stores the values it was made with).
HEADROOM = 0.75
BLOCKED_HEADROOM = 0.85
TIGHTENING = 0.1
BLOCK_BITS = 8192
KINDS = ("blocked", "classic")

# Fingerprints per script call: ~10-25 ms of Redis time; larger batches are no faster.
DEFAULT_BATCH_SIZE = 2000

_FINGERPRINT_BYTES = 20  # Scrapy's request fingerprints are SHA1 digests
_HASH_BYTES = 6  # each of h1, h2: 48 bits, so h1 + j*h2 stays exact in Lua doubles


def _hash_bytes(fingerprint: bytes) -> bytes:
    """The 12 bytes h1 and h2 are read from.

    A 20-byte fingerprint is used as it is; anything else is SHA1-hashed first, so
    that a custom fingerprint that is not a uniform digest still spreads evenly.
    """
    if not isinstance(fingerprint, (bytes, bytearray, memoryview)):
        raise TypeError(f"a fingerprint is bytes, not {type(fingerprint).__name__}")
    if len(fingerprint) != _FINGERPRINT_BYTES:
        fingerprint = hashlib.sha1(fingerprint).digest()
    return bytes(fingerprint[: 2 * _HASH_BYTES])


def fingerprint_hashes(fingerprint: bytes) -> tuple[int, int]:
    """``(h1, h2)``: two 48-bit integers from a fingerprint, ``h2`` odd (never 0).

    Scrapy's ``crawler.request_fingerprinter.fingerprint(request)`` returns a 20-byte
    SHA1 digest: h1 is its first 6 bytes, h2 the next 6, both big-endian. 48 bits keep
    ``h1 + j*h2`` exact in Lua's doubles (< 2**53).
    """
    raw = _hash_bytes(fingerprint)
    h1 = int.from_bytes(raw[:_HASH_BYTES], "big")
    h2 = int.from_bytes(raw[_HASH_BYTES:], "big") | 1
    return h1, h2


def layer_sizing(capacity: int, error_ratio: float) -> tuple[int, int]:
    """``(bits, hashes)`` of a layer holding *capacity* items at *error_ratio*."""
    ln2 = math.log(2)
    bits = math.ceil(-capacity * math.log(error_ratio) / (ln2 * ln2))
    hashes = max(1, math.floor(bits / capacity * ln2 + 0.5))
    return bits, hashes


def layer_error_ratio(error_ratio: float, layer: int, kind: str = "classic") -> float:
    """The error ratio layer *layer* (0-based) is sized for, in a filter of *kind*
    targeting *error_ratio*."""
    headroom = BLOCKED_HEADROOM if kind == "blocked" else HEADROOM
    return error_ratio * headroom * (1 - TIGHTENING) * TIGHTENING**layer


def blocked_error_ratio(block_bits: int, load: float, hashes: int) -> float:
    """The false-positive ratio of a blocked layer whose blocks hold *load* keys on
    average (a Poisson number each), *hashes* bits per key: the sum over L of
    ``P(L) * (1 - (1 - 1/block_bits)**(hashes*L))**hashes``. Mirrors bloom.lua."""
    if load <= 0:
        return 0.0
    log_load, log_p = math.log(load), -load
    log_keep = hashes * math.log(1 - 1 / block_bits)
    total = 0.0
    for keys in range(math.ceil(load + 12 * math.sqrt(load) + 20) + 1):
        if keys > 0:
            log_p = log_p + log_load - math.log(keys)
        total = total + math.exp(log_p) * (1 - math.exp(log_keep * keys)) ** hashes
    return total


def _blocked_best(block_bits: int, bits_per_key: float) -> tuple[float, int]:
    load = block_bits / bits_per_key
    around = math.floor(bits_per_key * math.log(2) + 0.5)
    best_ratio, best_hashes = 2.0, 1
    for hashes in range(max(1, around - 4), around + 2):
        ratio = blocked_error_ratio(block_bits, load, hashes)
        if ratio < best_ratio:
            best_ratio, best_hashes = ratio, hashes
    return best_ratio, best_hashes


def blocked_layer_sizing(capacity: int, error_ratio: float, block_bits: int = BLOCK_BITS) -> tuple[int, int]:
    """``(bits, hashes)`` of a blocked layer: the least bits per key (to 1/1024 bit)
    whose best k meets *error_ratio*, in whole blocks. Mirrors bloom.lua."""
    low, high = 1.0, 8.0
    while _blocked_best(block_bits, high)[0] > error_ratio:
        low, high = high, high * 2
    while high - low > 1 / 1024:
        middle = (low + high) / 2
        if _blocked_best(block_bits, middle)[0] > error_ratio:
            low = middle
        else:
            high = middle
    hashes = _blocked_best(block_bits, high)[1]
    return math.ceil(capacity * high / block_bits) * block_bits, hashes


def bit_positions(h1: int, h2: int, bits: int, hashes: int) -> list[int]:
    """The bits a fingerprint sets in a layer of *bits* bits: ``(h1 + j*h2) mod bits``.

    Mirrors ``bloom_positions`` in the Lua, including its one deviation: a step
    ``h2 mod bits`` of 0 becomes 1, so the probes never all land on one bit.
    """
    position, step = h1 % bits, h2 % bits
    if step == 0:
        step = 1
    out = []
    for _ in range(hashes):
        out.append(position)
        position = (position + step) % bits
    return out


def block_bit_positions(h1: int, h2: int, bits: int, hashes: int, block_bits: int) -> list[int]:
    """The bits (in the layer) a fingerprint sets in a blocked layer of *bits* bits:
    all in block ``h1 mod blocks``, at ``a + j*b + c*j*(j-1)/2 mod block_bits`` with
    ``a``, ``b``, ``c`` cut from ``h2 // 2``. Mirrors ``bloom_blocked_probe``."""
    block = h1 % (bits // block_bits)
    rest = h2 // 2
    a, rest = rest % block_bits, rest // block_bits
    b, c = rest % block_bits, (rest // block_bits) % block_bits
    out, position, step = [], a, b
    for _ in range(hashes):
        out.append(block * block_bits + position)
        position, step = (position + step) % block_bits, (step + c) % block_bits
    return out


@dataclass(frozen=True)
class BloomLayer:
    """One layer: ``capacity`` (items), ``error_ratio`` (what it is sized for when
    full), ``bits``, ``hashes`` (k), ``chunk_bits`` (bits per chunk key), ``items``
    (new fingerprints it took) and ``block_bits`` (0 for a classic layer)."""

    capacity: int
    error_ratio: float
    bits: int
    hashes: int
    chunk_bits: int
    items: int
    block_bits: int = 0

    @property
    def chunks(self) -> int:
        return math.ceil(self.bits / self.chunk_bits)

    @property
    def estimated_false_positive_ratio(self) -> float:
        """For the items it holds now: ``(1 - e^(-k n / m))^k`` (classic), or
        :func:`blocked_error_ratio` at the mean load per block (blocked)."""
        if self.block_bits:
            load = self.items / (self.bits / self.block_bits)
            return blocked_error_ratio(self.block_bits, load, self.hashes)
        return (1 - math.exp(-self.hashes * self.items / self.bits)) ** self.hashes


@dataclass(frozen=True)
class BloomInfo:
    """The filter's state, as shown by ``hermit dedup info`` and ``hermit status``.

    ``items``: new fingerprints added; ``capacity``: items all current layers hold
    before another is added; ``bits``/``bytes``: bitmap size (Redis allocates a
    little more); ``fill_ratio`` = items / capacity; ``estimated_false_positive_ratio``:
    the chance a fresh fingerprint is reported as seen now, over all layers;
    ``error_ratio``: the target it never exceeds; ``kind``: ``blocked`` or ``classic``.
    """

    layers: int
    items: int
    capacity: int
    bits: int
    bytes: int
    fill_ratio: float
    estimated_false_positive_ratio: float
    error_ratio: float
    layer_details: tuple[BloomLayer, ...]
    kind: str = "blocked"
    #: Shards of the crawl the figures add up (their layers one after the other).
    shards: int = 1

    def describe_layers(self) -> str:
        """``'2 layer(s)'``, or ``'16 layer(s) over 16 shards'``."""
        return f"{self.layers} layer(s)" + (f" over {self.shards} shards" if self.shards > 1 else "")


class RedisBloomFilter:
    """Scalable Bloom filter of one crawl, in the crawl's ``bloom`` keys.

    Parameters, applied when the filter is created (an existing filter keeps its
    stored sizing, whoever created it):

    - ``capacity``: items the first layer holds (default 1,000,000);
    - ``error_ratio``: target false-positive ratio of the whole filter (default 1e-4);
    - ``growth``: capacity factor of each new layer (default 2);
    - ``max_chunk_bits``: largest bitmap key in bits (default and maximum 2**32,
      Redis' 512 MB string limit);
    - ``batch_size``: fingerprints per script call (default 2000). A script blocks
      Redis while it runs (~3-10 µs per fingerprint); larger batches are no faster;
    - ``kind``: ``blocked`` (default) or ``classic``, for a filter made now.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: CrawlKeys,
        *,
        capacity: int = DEDUP_CAPACITY.default,
        error_ratio: float = DEDUP_ERROR_RATIO.default,
        growth: int = DEDUP_GROWTH.default,
        max_chunk_bits: int = DEDUP_MAX_CHUNK_BITS.default,
        batch_size: int = DEFAULT_BATCH_SIZE,
        kind: str = "blocked",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"Bloom capacity must be at least 1, not {capacity}")
        if not 0 < error_ratio < 1:
            raise ValueError(f"Bloom error ratio must be between 0 and 1, not {error_ratio}")
        if int(growth) != growth or growth < 1:
            raise ValueError(f"Bloom growth must be a whole number >= 1, not {growth}")
        if not 8 <= max_chunk_bits <= 2**32:
            raise ValueError(f"Bloom max chunk bits must be in [8, 2**32], not {max_chunk_bits}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {batch_size}")
        if kind not in KINDS:
            raise ValueError(f"Bloom filter kind must be one of {KINDS}, not {kind!r}")
        self.client = client
        self.keys = keys
        self.capacity = int(capacity)
        self.error_ratio = float(error_ratio)
        self.growth = int(growth)
        self.max_chunk_bits = int(max_chunk_bits)
        self.batch_size = batch_size
        self.kind = kind
        self._add = client.register_script(ADD_LUA)
        self._contains = client.register_script(CONTAINS_LUA)
        self._delete = client.register_script(DELETE_LUA)

    def _batches(self, fingerprints: Sequence[bytes]) -> list[bytes]:
        step = self.batch_size
        return [
            b"".join(_hash_bytes(fp) for fp in fingerprints[start : start + step])
            for start in range(0, len(fingerprints), step)
        ]

    def add_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """Check and set: True for each fingerprint that was new (it is now in the filter).

        A fingerprint repeated within *fingerprints* is new the first time only.
        Each batch of ``batch_size`` is one script call.
        """
        result: list[bool] = []
        params = [self.capacity, repr(self.error_ratio), self.growth, self.max_chunk_bits, self.kind]
        for packed in self._batches(fingerprints):
            reply = self._add(keys=[self.keys.bloom_meta], args=[*params, packed])
            result.extend(flag == 0x31 for flag in reply)  # b"1"
        return result

    def contains_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """True for each fingerprint (probably) in the filter; writes nothing."""
        result: list[bool] = []
        for packed in self._batches(fingerprints):
            reply = self._contains(keys=[self.keys.bloom_meta], args=[packed])
            result.extend(flag == 0x31 for flag in reply)
        return result

    def add(self, fingerprint: bytes) -> bool:
        """:meth:`add_many` for one fingerprint (one round trip: batch when you can)."""
        return self.add_many([fingerprint])[0]

    def __contains__(self, fingerprint: bytes) -> bool:
        return self.contains_many([fingerprint])[0]

    def info(self) -> BloomInfo | None:
        """The stored filter's state, or None if no fingerprint was added yet."""
        raw = self.client.hgetall(self.keys.bloom_meta)
        if not raw:
            return None
        meta = {k.decode(): v.decode() for k, v in raw.items()}
        block_bits = int(meta.get("block_bits", 0))
        layers = tuple(
            BloomLayer(
                capacity=int(meta[f"capacity:{i}"]), error_ratio=float(meta[f"error_ratio:{i}"]),
                bits=int(meta[f"bits:{i}"]),
                hashes=int(meta[f"hashes:{i}"]), chunk_bits=int(meta[f"chunk_bits:{i}"]),
                items=int(meta[f"count:{i}"]), block_bits=block_bits,
            )
            for i in range(int(meta["layers"]))
        )
        capacity = sum(layer.capacity for layer in layers)
        items = sum(layer.items for layer in layers)
        bits = sum(layer.bits for layer in layers)
        # A fresh fingerprint is a false positive if any layer reports it.
        all_layers_negative = math.prod(1 - layer.estimated_false_positive_ratio for layer in layers)
        return BloomInfo(
            layers=len(layers), items=items, capacity=capacity, bits=bits,
            bytes=sum(math.ceil(layer.bits / 8) for layer in layers),
            fill_ratio=items / capacity if capacity else 0.0,
            estimated_false_positive_ratio=1 - all_layers_negative,
            error_ratio=float(meta["error_ratio"]), layer_details=layers,
            kind="blocked" if block_bits else "classic",
        )

    def chunk_keys(self) -> list[str]:
        """The bitmap keys of every layer, per the stored meta hash."""
        info = self.info()
        if info is None:
            return []
        return [
            self.keys.bloom_chunk(i, c)
            for i, layer in enumerate(info.layer_details)
            for c in range(layer.chunks)
        ]

    def memory_usage_bytes(self) -> int:
        """What Redis reports (``MEMORY USAGE``) for the meta hash and every chunk."""
        keys = [self.keys.bloom_meta, *self.chunk_keys()]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())

    def delete(self) -> int:
        """Drop the filter (meta hash and bitmaps); returns the number of keys removed."""
        return int(self._delete(keys=[self.keys.bloom_meta]))


def fingerprint_shard(fingerprint: bytes, shards: int) -> int:
    """The shard of a crawl whose filter checks *fingerprint* (hermit.queue.shards).

    Read from bytes 12-15 of the fingerprint's digest, which the filter's own hashes
    (bytes 0-11, :func:`fingerprint_hashes`) don't use: a shard then gets
    fingerprints spread over all its filter's blocks.
    """
    if shards == 1:
        return 0
    digest = fingerprint if len(fingerprint) == _FINGERPRINT_BYTES else hashlib.sha1(fingerprint).digest()
    return int.from_bytes(digest[12:16], "big") % shards


class ShardedBloomFilter:
    """The filter of a crawl over *shards* shards: each fingerprint in the filter of its
    shard (:func:`fingerprint_shard`), each shard's filter sized for its share of
    *capacity*. Has :class:`RedisBloomFilter`'s ``add_many``, ``contains_many``,
    ``info`` and ``memory_usage_bytes``; with one shard it is that filter.
    """

    def __init__(self, client: redis.Redis, keys: CrawlKeys, shards: int, *, capacity: int = DEDUP_CAPACITY.default,
                 **sizing: object) -> None:
        self.shards = shards
        keys = layout_keys(client, keys) if shards > 1 else keys
        self.filters = [
            RedisBloomFilter(client, keys.shard(i), capacity=math.ceil(capacity / shards), **sizing)
            for i in range(shards)
        ]

    def _by_shard(self, fingerprints: Sequence[bytes]) -> dict[int, list[int]]:
        positions: dict[int, list[int]] = {}
        for i, fingerprint in enumerate(fingerprints):
            positions.setdefault(fingerprint_shard(fingerprint, self.shards), []).append(i)
        return positions

    def _each_shard(self, fingerprints: Sequence[bytes], call: str) -> list[bool]:
        result = [False] * len(fingerprints)
        for shard, positions in sorted(self._by_shard(fingerprints).items()):
            answers = getattr(self.filters[shard], call)([fingerprints[i] for i in positions])
            for i, answer in zip(positions, answers):
                result[i] = answer
        return result

    def add_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """As :meth:`RedisBloomFilter.add_many`, over the shards."""
        return self._each_shard(fingerprints, "add_many")

    def contains_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """As :meth:`RedisBloomFilter.contains_many`, over the shards."""
        return self._each_shard(fingerprints, "contains_many")

    def info(self) -> BloomInfo | None:
        """All shards' filters as one: their layers one after the other, items, capacity
        and bits summed; the estimated false-positive ratio is the shards' mean (a
        fresh fingerprint is looked up on one shard, each as likely)."""
        infos = [bloom.info() for bloom in self.filters]
        present = [info for info in infos if info is not None]
        if not present:
            return None
        if len(infos) == 1:
            return present[0]
        items = sum(info.items for info in present)
        capacity = sum(info.capacity for info in present)
        return BloomInfo(
            layers=sum(info.layers for info in present), items=items, capacity=capacity,
            bits=sum(info.bits for info in present), bytes=sum(info.bytes for info in present),
            fill_ratio=items / capacity if capacity else 0.0,
            estimated_false_positive_ratio=sum(info.estimated_false_positive_ratio for info in present) / len(infos),
            error_ratio=present[0].error_ratio,
            layer_details=tuple(layer for info in present for layer in info.layer_details),
            kind=present[0].kind, shards=len(infos),
        )

    def memory_usage_bytes(self) -> int:
        """What Redis reports for every shard's filter."""
        return sum(bloom.memory_usage_bytes() for bloom in self.filters)

