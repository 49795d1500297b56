"""A worker's memory does not grow with the crawl frontier: new requests live in Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import redis

from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import read_status

FANOUT_SPIDER = '''
import itertools
import scrapy

counter = itertools.count()


class FanoutSpider(scrapy.Spider):
    """Every page yields 2,000 new unique requests: the frontier explodes."""

    name = "fanout"

    async def start(self):
        yield scrapy.Request(self.url + "p/0.html")

    def parse(self, response):
        yield {"url": response.url}
        for _ in range(2000):
            n = next(counter)
            yield scrapy.Request(f"{self.url}p/{n % 200}.html?frontier={n}", priority=-1)
'''


def test_rss_stays_flat_while_the_queue_grows_by_hundreds_of_thousands(tmp_path, redis_url, demo_site):
    spider = tmp_path / "fanout.py"
    spider.write_text(FANOUT_SPIDER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"url={demo_site.url}",
         "-s", 'ADDONS={"hermit.addon.Addon": 0}', "-s", f"REDIS_URL={redis_url}",
         "-s", "CONCURRENT_REQUESTS=4", "-s", "HERMIT_PREFETCH_REQUESTS=4",
         "-s", "CLOSESPIDER_ITEMCOUNT=200", "-s", "LOG_LEVEL=WARNING",
         "-s", "HERMIT_DEDUP_CAPACITY=2000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    client = redis.Redis.from_url(redis_url)
    keys = CrawlKeys("fanout")
    samples: list[tuple[int, int]] = []  # (queued, rss bytes)
    try:
        while proc.poll() is None:
            try:
                rss = psutil.Process(proc.pid).memory_info().rss
            except psutil.NoSuchProcess:
                break
            samples.append((read_status(client, keys).queued, rss))
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read().decode()
    assert proc.returncode == 0, stderr[-3000:]
    warm = [rss for queued, rss in samples if queued >= 60_000]
    final_queue = max(queued for queued, _ in samples)
    assert final_queue >= 300_000, f"frontier only reached {final_queue}"
    assert len(warm) >= 3
    growth = max(warm) - warm[0]
    queue_growth = final_queue - 60_000
    # Plain Scrapy keeps ~1.7 KB per pending request in memory: 240k requests would
    # cost ~400 MB. Hermit's worker must stay within a small constant.
    assert growth < 30 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB while the queue grew by {queue_growth}"
