"""The command line of a local pool's workers, and the checks it passes before any starts."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from hermit.local.crawl_options import CrawlFailed
from hermit.settings import InvalidSetting
from hermit.worker.preflight import UnknownSpider, preflight
from hermit.worker.exit_codes import EXIT_CONFIG
from hermit.worker.run import WorkerOptions

if TYPE_CHECKING:
    from hermit.local.crawl_options import LocalCrawlOptions

logger = logging.getLogger(__name__)

#: Each worker's own soft budget and hard limit, above the pool's budget: the safety
#: net while the pool holds a recycle back.
WORKER_SOFT_BUDGET_RATIO = 1.25
WORKER_HARD_LIMIT_RATIO = 1.5


def worker_options(
    options: LocalCrawlOptions, crawl: str, redis_url: str | None, spider_args: dict[str, str],
) -> WorkerOptions:
    """What every worker of the pool runs with; the user's ``-s`` settings win."""
    settings = {
        "HERMIT_IDLE_CLOSE_SECONDS": str(options.idle_close_seconds),
        "HERMIT_LEASE_TIMEOUT_SECONDS": str(options.lease_timeout_seconds),
        "LOG_LEVEL": "INFO",
        # Several workers on one host: each serves metrics/diagnostics on a free port (logged).
        "HERMIT_METRICS_PORT": "0", "HERMIT_DIAGNOSTICS_PORT": "0",
        "HERMIT_DRAIN_TIMEOUT_SECONDS": str(options.drain_timeout_seconds),
    }
    if options.memory_budget_bytes:
        budget = options.memory_budget_bytes
        settings["HERMIT_MEMORY_BUDGET_BYTES"] = str(int(budget * WORKER_SOFT_BUDGET_RATIO))
        settings["HERMIT_MEMORY_HARD_LIMIT_BYTES"] = str(int(budget * WORKER_HARD_LIMIT_RATIO))
    settings.update(options.settings)
    return WorkerOptions(spider=options.spider, redis_url=redis_url, crawl=crawl,
                         spider_args=spider_args, settings=settings)


def worker_command(worker: WorkerOptions) -> list[str]:
    """``python -m hermit.cli worker ...`` for *worker*."""
    command = [sys.executable, "-m", "hermit.cli", "worker", worker.spider,
               "--redis", worker.redis_url or "", "--crawl", worker.crawl or ""]
    for name, value in worker.spider_args.items():
        command += ["-a", f"{name}={value}"]
    for name, value in worker.settings.items():
        command += ["-s", f"{name}={value}"]
    return command


def check_workers_can_run(worker: WorkerOptions) -> None:
    """Raise CrawlFailed (configuration status) if a worker would refuse to start.

    Checked in the supervisor before anything starts: a typo is one line, not a
    crash loop of workers that each say it in their log.
    """
    try:
        preflight(worker)
    except UnknownSpider as exc:
        raise CrawlFailed(str(exc), EXIT_CONFIG) from None
    except InvalidSetting as exc:
        raise CrawlFailed(f"invalid setting: {exc}", EXIT_CONFIG) from None
