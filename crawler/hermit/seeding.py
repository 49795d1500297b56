"""Seed URLs: validate them, then push them through dedup into a crawl's queue."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.utils.misc import load_object
from scrapy.utils.request import RequestFingerprinter, RequestFingerprinterProtocol

from hermit.queue.codec import encode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import QueuedRequest

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")


class InvalidSeed(ValueError):
    """A seed URL that can't be crawled (the message says why)."""


def check_seed_url(url: str) -> str:
    """Return *url* if it is an absolute http(s) URL with a host, else raise InvalidSeed."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidSeed(f"malformed URL: {exc}") from None
    if any(c.isspace() for c in url):
        raise InvalidSeed("URL contains whitespace")
    if not parts.scheme:
        raise InvalidSeed("no scheme (expected http:// or https://)")
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise InvalidSeed(f"unsupported scheme {parts.scheme!r} (expected http or https)")
    if not parts.hostname:
        raise InvalidSeed("no host")
    if port == 0:
        raise InvalidSeed("port 0")
    return url


@dataclass
class SeedReport:
    """What happened to a batch of seed lines."""

    queued: int = 0
    duplicates: int = 0
    blocked: int = 0  # their host is blocked (``hermit hosts block``): not queued
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, text, reason

    @property
    def read(self) -> int:
        return self.queued + self.duplicates + self.blocked + len(self.rejected)


def read_seed_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank, non-comment line."""
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text


def load_fingerprinter(path: str | None) -> RequestFingerprinterProtocol:
    """The fingerprinter class at dotted *path* (Scrapy's default if None), built without a crawler.

    It must match the workers' ``REQUEST_FINGERPRINTER_CLASS``, or seeds and the
    requests workers find are deduplicated against different fingerprints.
    """
    if not path:
        return RequestFingerprinter()
    try:
        cls = load_object(path)
    except (ImportError, NameError, ValueError) as exc:
        raise ValueError(f"cannot load fingerprinter {path!r}: {exc}") from None
    if not callable(getattr(cls, "fingerprint", None)):
        raise ValueError(f"{path!r} has no fingerprint() method")
    return cls()


def push_seeds(
    queue: Frontier,
    lines: Iterable[tuple[int, str]],
    *,
    priority: int = 0,
    batch_size: int = 1000,
    fingerprinter: RequestFingerprinterProtocol | None = None,
) -> SeedReport:
    """Validate and push seed URLs in batches; invalid ones are reported, never pushed."""
    fingerprinter = fingerprinter or RequestFingerprinter()
    report = SeedReport()
    batch: list[QueuedRequest] = []

    def flush() -> None:
        for result in queue.push_many(batch):
            if result == 1:
                report.queued += 1
            elif result == 0:
                report.duplicates += 1
            else:
                report.blocked += 1
        batch.clear()

    for number, text in lines:
        try:
            request = Request(check_seed_url(text), priority=priority)
        except (InvalidSeed, ValueError) as exc:
            report.rejected.append((number, text, str(exc)))
            logger.warning("Rejected seed on line %d %r: %s", number, text, exc)
            continue
        batch.append(
            QueuedRequest(
                encode_request(request, None), priority, fingerprinter.fingerprint(request), politeness_key(request)
            )
        )
        if len(batch) >= batch_size:
            flush()
    flush()
    return report
