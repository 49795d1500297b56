"""Starting the embedded parts of a local crawl: a Redis on the state directory, the demo site.

Each is yielded running and registered as a :class:`SupervisedService`, so the
supervisor restarts it if it dies; each is stopped when the crawl ends. A start that
fails is a :class:`CrawlFailed` with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from hermit.local.crawl_options import CrawlFailed
from hermit.local.services import SupervisedService
from hermit.local.state import SavedCrawl
from hermit.redis_server import EmbeddedRedis, RedisServerError
from hermit.worker.exit_codes import EXIT_REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)

#: A long crawl's append-only file takes a while to load.
REDIS_START_TIMEOUT_SECONDS = 60.0
#: How long Redis may take to write its AOF and exit before it is killed.
REDIS_STOP_TIMEOUT_SECONDS = 3.0


@contextlib.contextmanager
def embedded_redis(
    data_dir: Path | None, saved: SavedCrawl | None, services: list[SupervisedService],
    on_event: Callable[[str], None],
) -> Iterator[EmbeddedRedis]:
    """A Redis with append-only persistence in *data_dir* (None: a throwaway one, removed at the end)."""
    if saved is not None:
        stop_leftover_redis(saved)
    server = EmbeddedRedis(data_dir=data_dir, appendonly=data_dir is not None)
    try:
        server.start(timeout=REDIS_START_TIMEOUT_SECONDS)
    except RedisServerError as exc:
        server.cleanup()
        raise CrawlFailed(f"embedded Redis did not start: {exc}", EXIT_REDIS_UNAVAILABLE) from None
    services.append(SupervisedService("embedded Redis", server, on_event))
    logger.info("Embedded Redis (%s) at %s%s", Path(server.binary).name, server.url,
                f", data in {data_dir}" if data_dir else "")
    try:
        yield server
    finally:
        server.stop(timeout=REDIS_STOP_TIMEOUT_SECONDS)
        if data_dir is None:
            server.cleanup()


@contextlib.contextmanager
def demo_site(
    pages: int, port: int, services: list[SupervisedService], on_event: Callable[[str], None],
) -> Iterator[str]:
    """The demo site's URL; *port* 0 picks a free port (a resumed crawl passes the one its requests name)."""
    from hermit.demo.process import DemoSiteProcess

    site = DemoSiteProcess(pages=pages, port=port)
    try:
        site.start()
    except RuntimeError as exc:
        raise CrawlFailed(f"the demo site did not start{f' on port {port}' if port else ''}: {exc}") from None
    services.append(SupervisedService("demo site", site, on_event))
    logger.info("Demo site (%d pages) at %s", pages, site.url)
    try:
        yield site.url
    finally:
        site.stop()


def stop_leftover_redis(saved: SavedCrawl) -> None:
    """Stop an embedded Redis an earlier run left running on this state (two servers must never share an AOF).

    On Linux the server stops itself when its supervisor dies; elsewhere a SIGKILLed
    ``hermit crawl`` leaves it running, and this finds it by pid and start time.
    """
    if not saved.redis_pid or saved.redis_started is None:
        return
    try:
        process = psutil.Process(saved.redis_pid)
        if abs(process.create_time() - saved.redis_started) > 0.5:
            return  # the pid was reused by another process
        logger.warning("Stopping the embedded Redis an earlier run left (pid %d)", saved.redis_pid)
        process.terminate()
        try:
            process.wait(30)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(10)
    except psutil.Error:
        return
