"""What the crawls of the many-hosts site share (tests of politeness, of sharded and
Redis Cluster frontiers, of TLS): the project's spider and settings, Scrapy workers
started on it, and the pages the site saw fetched against those it has."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hermit.demo.many_hosts import ManyHostsProcess, RequestRecord
from tests.scrapy_project import ScrapyProject

# Scrapy lists only spiders defined in the project's own modules.
SPIDERS = {"spiders/hosts.py": "from hermit.demo.many_hosts import ManyHostsSpider\n\n\n"
                               "class HostsSpider(ManyHostsSpider):\n    pass\n"}
#: Leases outlast any stall of a live worker on a loaded machine (a heartbeat every third
#: of the timeout): one expires only when its worker is gone.
POLITE = """
CONCURRENT_REQUESTS = 16
DOWNLOAD_DELAY_JITTER = 0
RANDOMIZE_DOWNLOAD_DELAY = False
HERMIT_IDLE_CLOSE_SECONDS = 1.5
HERMIT_LEASE_TIMEOUT_SECONDS = 30
"""
#: For tests whose crawl waits for a killed worker's leases (or a disrupted server's) to
#: expire; what they assert holds whichever leases expired.
SHORT_LEASES = "HERMIT_LEASE_TIMEOUT_SECONDS = 3\n"


def fetched_pages(records: list[RequestRecord]) -> list[tuple[str, str]]:
    return [(r.host, r.path) for r in records if r.status == 200 and r.path.startswith("/p/")]


def expected_pages(site: ManyHostsProcess) -> set[tuple[str, str]]:
    return {(url.split("/")[2].split(":")[0], "/" + url.split("/", 3)[3]) for url in site.site.expected_urls(site.port)}


def run_workers(project: ScrapyProject, site: ManyHostsProcess, redis_url: str, tmp_path: Path, workers: int,
                settings: dict[str, str] | None = None, while_running=None) -> list[subprocess.Popen]:
    args = ["-a", f"url={site.url}", "-s", f"HERMIT_REDIS_URL={redis_url}", "-s", "HERMIT_CRAWL=hosts"]
    for name, value in (settings or {}).items():
        args += ["-s", f"{name}={value}"]
    procs = [project.start("many-hosts", *args, "-s", f"HERMIT_WORKER_ID=w{i}", log=tmp_path / f"worker{i}.log")
             for i in range(workers)]
    try:
        if while_running is not None:
            while_running(procs)
        for proc in procs:
            proc.wait(timeout=240)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return procs


def worker_logs(tmp_path: Path) -> str:
    return "\n".join(path.read_text()[-3000:] for path in sorted(tmp_path.glob("worker*.log")))
