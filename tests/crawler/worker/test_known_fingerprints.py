"""The worker's bounded set of fingerprints already confirmed in the crawl's filter."""

from __future__ import annotations

import pytest

from hermit.worker.known_fingerprints import KnownFingerprints


def fp(i: int) -> bytes:
    return i.to_bytes(20, "big")


def test_remembers_what_it_was_told():
    known = KnownFingerprints(100)
    known.add(fp(1))
    known.add(fp(1))
    assert fp(1) in known and fp(2) not in known and len(known) == 1


def test_stays_within_its_size_and_keeps_the_most_recent():
    known = KnownFingerprints(100)
    for i in range(10_000):
        known.add(fp(i))
        assert len(known) <= 100
    assert len(known) >= 50
    assert all(fp(i) in known for i in range(9_950, 10_000))  # the latest half at least
    assert not any(fp(i) in known for i in range(9_000))


def test_size_zero_remembers_nothing():
    known = KnownFingerprints(0)
    known.add(fp(1))
    assert fp(1) not in known and len(known) == 0


def test_size_one_still_works():
    known = KnownFingerprints(1)
    known.add(fp(1))
    assert fp(1) in known
    known.add(fp(2))
    assert fp(2) in known and len(known) <= 2


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="can't be negative"):
        KnownFingerprints(-1)
