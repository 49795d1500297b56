"""Fingerprints a worker knows are already in the crawl's Bloom filter.

Dedup happens in Redis, so without this set every link a page yields would be
encoded and sent there, only to be found a duplicate. Most links on real sites are
the same navigation links again and again. A fingerprint that Redis has confirmed
(the push said new or duplicate) is in the filter for good, because a Bloom filter
never forgets, so the worker can drop the next request with that fingerprint
itself, exactly as the filter would.

The set is bounded: two generations of ``size / 2`` fingerprints; when the newer
one fills up it becomes the older and the older one is dropped. So it holds the
``size / 2`` to ``size`` most recently confirmed fingerprints, at about 100 bytes
each, and lookups and inserts stay O(1).
"""

from __future__ import annotations


class KnownFingerprints:
    """The fingerprints most recently confirmed to be in the crawl's filter (``size`` at most; 0: none)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"the known-fingerprints size can't be negative, not {size}")
        self.size = size
        self._generation = max(1, size // 2) if size else 0
        self._newer: set[bytes] = set()
        self._older: set[bytes] = set()

    def __contains__(self, fingerprint: bytes) -> bool:
        return fingerprint in self._newer or fingerprint in self._older

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)

    def clear(self) -> None:
        self._newer, self._older = set(), set()

    def add(self, fingerprint: bytes) -> None:
        if not self._generation or fingerprint in self._newer:
            return
        self._newer.add(fingerprint)
        if len(self._newer) >= self._generation:
            self._older, self._newer = self._newer, set()
