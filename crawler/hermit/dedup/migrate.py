"""Move a scrapy-redis dupefilter SET into a crawl's Bloom filter.

scrapy-redis keeps every request fingerprint as a 40-character hex SHA1 in one SET
(``<spider>:dupefilter``). The migration walks it with SSCAN, one page at a time,
so neither this process nor Redis ever holds a second full copy; with
``delete_source`` each page is removed from the SET once it is in the filter, so
Redis' memory goes down while the filter fills up. A crash midway loses nothing:
every fingerprint is in the SET, in the filter, or both, and running the migration
again is harmless (fingerprints already in the filter count as duplicates).

Migrated fingerprints only help if the crawl computes the same ones. scrapy-redis
(0.9) hashes requests its own way, not with Scrapy's request fingerprinter, so a
crawl continuing from a migrated SET should set
``REQUEST_FINGERPRINTER_CLASS = "hermit.dedup.migrate.ScrapyRedisRequestFingerprinter"``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import redis
from w3lib.url import canonicalize_url

from hermit.dedup.bloom import RedisBloomFilter, ShardedBloomFilter

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

_HEX_FINGERPRINT_CHARS = 40  # SHA1, as scrapy-redis' RFPDupeFilter stores it
_LOGGED_INVALID = 5  # invalid members quoted in the log; the rest are only counted


class SourceKeyError(ValueError):
    """The source key is missing or is not a SET (the message says which)."""


@dataclass(frozen=True)
class MigrationResult:
    """Counts so far: ``scanned`` members read (SSCAN may return a member twice if
    the SET is resized meanwhile; the repeat counts as a duplicate), ``added`` new to
    the filter, ``duplicates`` already in it (or false positives), ``skipped_invalid``
    members that are not 40-character hex (left in the SET)."""

    scanned: int = 0
    added: int = 0
    duplicates: int = 0
    skipped_invalid: int = 0


class ScrapyRedisRequestFingerprinter:
    """A Scrapy request fingerprinter giving scrapy-redis' dupefilter fingerprints.

    scrapy-redis' ``RFPDupeFilter`` stores the SHA1 of the JSON object
    ``{"body": hex, "method": ..., "url": canonical URL}`` (sorted keys); Scrapy's
    default fingerprinter also hashes the (empty) headers, so its fingerprints differ.
    Set ``REQUEST_FINGERPRINTER_CLASS`` to this class to keep recognising the URLs a
    scrapy-redis crawl had seen. Headers and URL fragments are ignored, as there.
    """

    def __init__(self) -> None:
        # Scrapy asks for the same request's fingerprint several times.
        self._cache: WeakKeyDictionary[Request, bytes] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ScrapyRedisRequestFingerprinter:
        return cls()

    def fingerprint(self, request: Request) -> bytes:
        cached = self._cache.get(request)
        if cached is None:
            data = {
                "method": request.method,
                "url": canonicalize_url(request.url),
                "body": (request.body or b"").hex(),
            }
            cached = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).digest()
            self._cache[request] = cached
        return cached


def _parse_fingerprint(member: bytes) -> bytes | None:
    if len(member) != _HEX_FINGERPRINT_CHARS:
        return None
    try:
        return bytes.fromhex(member.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def migrate_fingerprint_set(
    client: redis.Redis,
    source_key: str,
    bloom: RedisBloomFilter | ShardedBloomFilter,
    *,
    batch_size: int = 10_000,
    delete_source: bool = False,
    on_progress: Callable[[MigrationResult], None] | None = None,
) -> MigrationResult:
    """Add every hex fingerprint of the SET *source_key* to *bloom*.

    ``batch_size``: members per SSCAN page (a hint to Redis: small SETs come in one
    page) and per SREM. ``delete_source``: remove each page's valid members from the
    SET once they are in the filter. ``on_progress`` is called with the counts after
    every page. Raises :class:`SourceKeyError` if *source_key* is missing or not a SET.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    key_type = client.type(source_key)
    key_type = key_type.decode() if isinstance(key_type, bytes) else str(key_type)
    if key_type == "none":
        raise SourceKeyError(f"no key {source_key!r} in Redis")
    if key_type != "set":
        raise SourceKeyError(f"{source_key!r} is a {key_type}, not a SET")

    scanned = added = duplicates = invalid = 0
    cursor = 0
    while True:
        cursor, members = client.sscan(source_key, cursor, count=batch_size)
        fingerprints: list[bytes] = []
        valid_members: list[bytes] = []
        for member in members:
            fingerprint = _parse_fingerprint(member)
            if fingerprint is None:
                invalid += 1
                if invalid <= _LOGGED_INVALID:
                    logger.warning("Skipping %r in %s: not a 40-character hex fingerprint",
                                   member[:80], source_key)
                continue
            fingerprints.append(fingerprint)
            valid_members.append(member)
        if fingerprints:
            new = sum(bloom.add_many(fingerprints))
            added += new
            duplicates += len(fingerprints) - new
            if delete_source:
                # Only after the filter has them: a crash in between leaves them in both.
                client.srem(source_key, *valid_members)
        scanned += len(members)
        if on_progress is not None:
            on_progress(MigrationResult(scanned, added, duplicates, invalid))
        if int(cursor) == 0:
            break
    if invalid > _LOGGED_INVALID:
        logger.warning("Skipped %d invalid members of %s in all (left in the SET)", invalid, source_key)
    result = MigrationResult(scanned, added, duplicates, invalid)
    logger.info("Migrated %s: %s", source_key, result)
    return result
