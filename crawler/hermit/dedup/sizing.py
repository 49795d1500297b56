"""The Bloom filter's sizing settings, declared once: read by the worker's settings
(:mod:`hermit.settings` lists them in its table) and the defaults of the filter
(:class:`~hermit.dedup.bloom.RedisBloomFilter`) and of the queue's ``BloomSettings``.

Standard library only (and :mod:`hermit.setting_spec`), so both the queue and the
settings import it without a cycle.
"""

from __future__ import annotations

from hermit.setting_spec import Number, Setting

#: Redis strings stop at 512 MB.
MAX_STRING_BITS = 2**32

DEDUP_CAPACITY = Setting(
    "HERMIT_DEDUP_CAPACITY", 1_000_000,
    "fingerprints the first Bloom layer holds; the filter adds layers beyond (sizing is read when the "
    "crawl's filter is first created)",
    parser=Number(int, minimum=1),
)
DEDUP_ERROR_RATIO = Setting(
    "HERMIT_DEDUP_ERROR_RATIO", 1e-4, "target false-positive ratio of the whole filter", "1e-4",
    parser=Number(float, minimum=0, maximum=1, exclusive=True),
)
DEDUP_GROWTH = Setting(
    "HERMIT_DEDUP_GROWTH", 2, "each new layer holds this many times more",
    parser=Number(int, minimum=2),
)
DEDUP_MAX_CHUNK_BITS = Setting(
    "HERMIT_DEDUP_MAX_CHUNK_BITS", MAX_STRING_BITS,
    "largest bitmap key (Redis strings stop at 512 MB = 2**32 bits)", "2**32",
    parser=Number(int, minimum=8, maximum=MAX_STRING_BITS, note="2**32 is Redis' 512 MB string limit"),
)

#: In the order docs/settings.md lists them.
SIZING_SETTINGS = (DEDUP_CAPACITY, DEDUP_ERROR_RATIO, DEDUP_GROWTH, DEDUP_MAX_CHUNK_BITS)
