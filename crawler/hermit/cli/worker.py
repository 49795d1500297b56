"""``hermit worker``: run one worker in this process."""

from __future__ import annotations

import sys

import click

from hermit.cli.options import crawl_option, parse_assignments, redis_option
from hermit.worker.run import DEMO_SPIDER, WorkerOptions, run_worker


@click.command("worker")
@click.argument("spider", default=DEMO_SPIDER)
@redis_option()
@crawl_option(required=False)
@click.option("-a", "spider_args", multiple=True, metavar="NAME=VALUE", help="Spider argument.")
@click.option("-s", "settings", multiple=True, metavar="NAME=VALUE", help="Scrapy/Hermit setting.")
def worker_command(
    spider: str, redis_url: str, crawl: str | None, spider_args: tuple[str, ...], settings: tuple[str, ...]
) -> None:
    """Run SPIDER (a spider of the current Scrapy project, or 'demo') as one Hermit worker.

    The worker takes requests from the crawl's shared queue until the spider closes
    (see HERMIT_IDLE_CLOSE_SECONDS); SIGTERM drains it gracefully.
    """
    options = WorkerOptions(
        spider=spider,
        redis_url=redis_url,
        crawl=crawl,
        spider_args=parse_assignments(spider_args, "-a"),
        settings=parse_assignments(settings, "-s"),
    )
    sys.exit(run_worker(options))
