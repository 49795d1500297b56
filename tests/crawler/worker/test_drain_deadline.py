"""A drain that can't finish (a download that hangs) ends at its deadline, leases returned."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import redis

from hermit.crawl_status import read_crawl_status
from hermit.demo.process import DemoSiteProcess
from hermit.keys import CrawlKeys
from hermit.worker.exit_codes import EXIT_DRAIN_TIMEOUT


def test_sigterm_during_a_hung_download_ends_at_the_drain_deadline(redis_url):
    keys = CrawlKeys("d")
    with DemoSiteProcess(pages=30, slow_seconds=600) as site:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", "d",
             "-a", f"url={site.url}", "-s", "LOG_LEVEL=INFO", "-s", "HERMIT_DRAIN_TIMEOUT_SECONDS=2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        client = redis.Redis.from_url(redis_url)
        try:
            # Wait until every page but /slow.html is done: that one stays in flight.
            expected_items = len(site.site.expected_urls(site.url)) - 1
            deadline = time.monotonic() + 120
            while client.xlen(keys.items) < expected_items:
                assert time.monotonic() < deadline, "the crawl did not get to the slow page"
                assert worker.poll() is None, worker.stderr.read()
                time.sleep(0.2)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == EXIT_DRAIN_TIMEOUT
        finally:
            worker.kill()
            stderr = worker.stderr.read()
            worker.stderr.close()
        assert "The drain did not end within 2s" in stderr
        status = read_crawl_status(client, keys)
        # The hung request is back in the queue for another worker; nothing is leased.
        assert (status.queue.leased, status.queue.queued, status.queue.workers) == (0, 1, 0)
        client.close()
