"""Moving a scrapy-redis dupefilter SET into the Bloom filter, against a real Redis."""

from __future__ import annotations

import hashlib
import logging

import pytest
from scrapy import Request
from scrapy.utils.request import RequestFingerprinter
from scrapy_redis.dupefilter import RFPDupeFilter

from hermit.dedup.bloom import RedisBloomFilter
from hermit.dedup.migrate import (
    MigrationResult,
    ScrapyRedisRequestFingerprinter,
    SourceKeyError,
    migrate_fingerprint_set,
)
from hermit.keys import CrawlKeys

KEYS = CrawlKeys("migrated")
SOURCE = "myspider:dupefilter"


def hex_fingerprints(prefix: str, count: int) -> list[str]:
    return [hashlib.sha1(f"{prefix}-{i}".encode()).hexdigest() for i in range(count)]


def fill_set(client, members, key: str = SOURCE) -> None:
    for start in range(0, len(members), 5000):
        client.sadd(key, *members[start:start + 5000])


def test_a_real_scrapy_redis_dupefilter_migrates(redis_client):
    dupefilter = RFPDupeFilter(redis_client, SOURCE)
    requests = [Request(f"https://example.com/page/{i % 1500}?b=2&a=1") for i in range(2000)]
    seen_by_scrapy_redis = [dupefilter.request_seen(r) for r in requests]
    assert sum(not s for s in seen_by_scrapy_redis) == redis_client.scard(SOURCE) == 1500

    bloom = RedisBloomFilter(redis_client, KEYS, capacity=10_000)
    result = migrate_fingerprint_set(redis_client, SOURCE, bloom, batch_size=300)
    assert result == MigrationResult(scanned=1500, added=1500, duplicates=0, skipped_invalid=0)
    assert redis_client.scard(SOURCE) == 1500  # kept without delete_source

    # The crawl recognises what scrapy-redis had seen when it fingerprints the same way.
    fingerprinter = ScrapyRedisRequestFingerprinter()
    assert all(bloom.contains_many([fingerprinter.fingerprint(r) for r in requests]))
    fresh = [Request(f"https://example.com/other/{i}") for i in range(500)]
    assert not any(bloom.contains_many([fingerprinter.fingerprint(r) for r in fresh]))
    # Scrapy's own fingerprinter also hashes headers: its fingerprints differ.
    default = RequestFingerprinter()
    assert not any(bloom.contains_many([default.fingerprint(r) for r in requests[:200]]))


def test_scrapy_redis_fingerprinter_matches_scrapy_redis():
    dupefilter = RFPDupeFilter(None, SOURCE)
    fingerprinter = ScrapyRedisRequestFingerprinter()
    for request in (
        Request("https://example.com/a?b=2&a=1#frag"),
        Request("https://bücher.example/ä ö"),
        Request("https://example.com/form", method="POST", body=b"q=1"),
    ):
        assert fingerprinter.fingerprint(request).hex() == dupefilter.request_fingerprint(request)


def test_pages_through_the_set_without_loading_it_whole(redis_client, monkeypatch):
    members = hex_fingerprints("page", 20_000)
    fill_set(redis_client, members)
    page_sizes: list[int] = []
    real_sscan = redis_client.sscan

    def recording_sscan(*args, **kwargs):
        cursor, page = real_sscan(*args, **kwargs)
        page_sizes.append(len(page))
        return cursor, page

    def forbidden(*args, **kwargs):
        raise AssertionError("the whole SET must not be read at once")

    monkeypatch.setattr(redis_client, "sscan", recording_sscan)
    monkeypatch.setattr(redis_client, "smembers", forbidden)
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=50_000)
    progress: list[MigrationResult] = []
    result = migrate_fingerprint_set(redis_client, SOURCE, bloom, batch_size=1000, on_progress=progress.append)
    assert len(page_sizes) >= 10 and max(page_sizes) < 5000
    # SSCAN may repeat a member if the SET is resized meanwhile; each repeat is a duplicate.
    assert result.scanned == result.added + result.duplicates >= 20_000
    assert result.added >= 19_998  # all but the odd false positive
    assert progress[-1] == result
    assert [p.scanned for p in progress] == sorted(p.scanned for p in progress)
    assert sum(bloom.contains_many([bytes.fromhex(m) for m in members])) == 20_000


def test_delete_source_shrinks_the_set_batch_by_batch(redis_client):
    members = hex_fingerprints("del", 12_000)
    fill_set(redis_client, members)
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=50_000)
    remaining: list[int] = []
    result = migrate_fingerprint_set(
        redis_client, SOURCE, bloom, batch_size=1000, delete_source=True,
        on_progress=lambda counts: remaining.append(redis_client.scard(SOURCE)),
    )
    assert result.added + result.duplicates == result.scanned >= 12_000
    assert not redis_client.exists(SOURCE)
    # Redis never held the whole SET next to a full filter: it shrank page by page.
    assert len(remaining) >= 6 and remaining[0] < 12_000 and remaining == sorted(remaining, reverse=True)
    assert all(bloom.contains_many([bytes.fromhex(m) for m in members]))


def test_invalid_members_are_counted_logged_and_left(redis_client, caplog):
    valid = hex_fingerprints("ok", 100)
    invalid = [b"not-a-fingerprint", b"z" * 40, b"a" * 41, b"\xff\xfe" * 20, b"", b"g" + b"0" * 39, b"a" * 39]
    fill_set(redis_client, [*valid, valid[0].upper(), *invalid])
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=1000)
    with caplog.at_level(logging.WARNING, logger="hermit.dedup.migrate"):
        result = migrate_fingerprint_set(redis_client, SOURCE, bloom, delete_source=True)
    assert result == MigrationResult(scanned=108, added=100, duplicates=1, skipped_invalid=7)
    # The invalid ones stay where they were; the valid ones are in the filter.
    assert redis_client.smembers(SOURCE) == set(invalid)
    quoted = [r for r in caplog.records if "not a 40-character hex fingerprint" in r.getMessage()]
    assert len(quoted) == 5
    assert any("Skipped 7 invalid" in r.getMessage() for r in caplog.records)


def test_running_twice_adds_nothing_new(redis_client):
    members = hex_fingerprints("twice", 3000)
    fill_set(redis_client, members)
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=10_000)
    first = migrate_fingerprint_set(redis_client, SOURCE, bloom)
    second = migrate_fingerprint_set(redis_client, SOURCE, bloom)
    assert first.added == 3000
    assert second == MigrationResult(scanned=3000, added=0, duplicates=3000, skipped_invalid=0)


def test_an_interrupted_migration_loses_nothing_and_resumes(redis_client):
    members = hex_fingerprints("crash", 8000)
    fill_set(redis_client, members)
    bloom = RedisBloomFilter(redis_client, KEYS, capacity=10_000)

    def crash_after_two_pages(counts: MigrationResult) -> None:
        if counts.scanned >= 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate_fingerprint_set(redis_client, SOURCE, bloom, batch_size=1000, delete_source=True,
                                on_progress=crash_after_two_pages)
    left = {m.decode() for m in redis_client.smembers(SOURCE)}
    assert 0 < len(left) < 8000
    in_filter = bloom.contains_many([bytes.fromhex(m) for m in members])
    assert all(flag or m in left for m, flag in zip(members, in_filter))
    migrate_fingerprint_set(redis_client, SOURCE, bloom, batch_size=1000, delete_source=True)
    assert not redis_client.exists(SOURCE)
    assert all(bloom.contains_many([bytes.fromhex(m) for m in members]))


def test_missing_or_wrong_type_source_is_a_clear_error(redis_client):
    bloom = RedisBloomFilter(redis_client, KEYS)
    with pytest.raises(SourceKeyError, match="no key"):
        migrate_fingerprint_set(redis_client, SOURCE, bloom)
    redis_client.rpush(SOURCE, "x")
    with pytest.raises(SourceKeyError, match="is a list, not a SET"):
        migrate_fingerprint_set(redis_client, SOURCE, bloom)
    with pytest.raises(ValueError):
        migrate_fingerprint_set(redis_client, SOURCE, bloom, batch_size=0)
    assert bloom.info() is None
