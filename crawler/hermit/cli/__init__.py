"""The ``hermit`` command line."""

from __future__ import annotations

import click

from hermit import __version__
from hermit.cli.crawl import crawl_command
from hermit.cli.dedup import dedup_group
from hermit.cli.demo_site import demo_site_command
from hermit.cli.hosts import hosts_group
from hermit.cli.items import items_group
from hermit.cli.queue import queue_group
from hermit.cli.seed import seed_command
from hermit.cli.status import status_command
from hermit.cli.worker import worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hermit")
def main() -> None:
    """Hermit: distributed, memory-safe Scrapy crawling on a shared Redis queue."""


main.add_command(crawl_command)
main.add_command(worker_command)
main.add_command(seed_command)
main.add_command(status_command)
main.add_command(hosts_group)
main.add_command(queue_group)
main.add_command(items_group)
main.add_command(dedup_group)
main.add_command(demo_site_command)
