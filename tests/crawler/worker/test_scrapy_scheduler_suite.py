"""Scrapy's own scheduler tests, run against HermitScheduler on a real Redis.

The tests come from the source distribution of the installed Scrapy version
(``tests/test_scheduler.py`` and ``tests/test_scheduler_base.py``), downloaded once
into ``~/.cache/hermit/scrapy-sdist`` (or ``$HERMIT_CACHE_DIR/scrapy-sdist``) and
unpacked at test time, never copied into this repository. If the archive can't be
had, collecting this module fails: the suite is never skipped silently.

Each applicable Scrapy test class is subclassed with Scrapy's own extension point,
``create_scheduler(jobdir)``, returning a HermitScheduler built on Scrapy's mock
crawler plus the least Hermit needs that the mock lacks (its settings, a request
fingerprinter, the engine slot its hooks attach to, the downloader's ``active``
set). Tests that can't apply are skipped, each with its reason;
docs/scrapy-compatibility.md lists them.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import scrapy
from scrapy.core.engine import _Slot
from scrapy.http import Request
from scrapy.spiders import Spider
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy.utils.reactor import CallLaterOnce

from hermit.worker.scheduler import HermitScheduler

# Scrapy's tests -----------------------------------------------------------------

CACHE_DIR = Path(os.environ.get("HERMIT_CACHE_DIR") or Path.home() / ".cache" / "hermit") / "scrapy-sdist"


def scrapy_sdist(version: str = scrapy.__version__) -> Path:
    """The sdist of Scrapy *version*, downloaded from the package index on first use."""
    archive = CACHE_DIR / f"scrapy-{version}.tar.gz"
    if archive.is_file():
        return archive
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as download:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"scrapy=={version}", "--dest", download],
            capture_output=True, text=True, timeout=300,
        )
        got = Path(download, archive.name)
        if proc.returncode != 0 or not got.is_file():
            raise RuntimeError(
                f"can't download the Scrapy {version} sdist (its tests/ hold the scheduler tests "
                f"run here); put {archive.name} in {CACHE_DIR}:\n{proc.stdout}{proc.stderr}"
            )
        os.replace(got, archive)  # whole or not at all, for concurrent runs
    return archive


def load_scrapy_tests(*names: str) -> list[ModuleType]:
    """Import Scrapy's ``tests.<name>`` modules from its unpacked sdist.

    They import ``tests.utils...`` by that name, so Scrapy's ``tests`` package is in
    ``sys.modules`` only while they import; this project's own entries (if any)
    are put back afterwards, and so are the proxy variables Scrapy's
    ``tests/__init__.py`` clears.
    """
    archive = scrapy_sdist()
    root = Path(tempfile.mkdtemp(prefix="scrapy-tests-"))
    atexit.register(shutil.rmtree, root, True)  # kept for the session: tracebacks show Scrapy's lines
    with tarfile.open(archive) as tar:
        top = f"scrapy-{scrapy.__version__}/tests/"
        members = [m for m in tar.getmembers() if m.name.startswith(top)]
        tar.extractall(root, members=members, filter="data")
    source = root / f"scrapy-{scrapy.__version__}"
    saved_modules = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "tests" or k.startswith("tests.")}
    saved_env = {k: os.environ.get(k) for k in ("http_proxy", "https_proxy", "ftp_proxy")}
    sys.path.insert(0, str(source))
    try:
        decorators = importlib.import_module("tests.utils.decorators")
        # Scrapy's test decorators choose pytest-twisted or pytest-asyncio by whether
        # a reactor is installed at import; this project runs them on pytest-asyncio.
        decorators.is_reactor_installed = lambda: False
        return [importlib.import_module(f"tests.{name}") for name in names]
    finally:
        sys.path.remove(str(source))
        for key in [k for k in sys.modules if k == "tests" or k.startswith("tests.")]:
            del sys.modules[key]
        sys.modules.update(saved_modules)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pinned_scrapy() -> str:
    for line in (Path(__file__).parents[3] / "constraints.txt").read_text().splitlines():
        if line.lower().startswith("scrapy=="):
            return line.split("==", 1)[1].strip()
    raise RuntimeError("constraints.txt pins no Scrapy version")


if scrapy.__version__ != pinned_scrapy():
    # make test-oldest: Scrapy 2.13's scheduler tests are unittest-style classes
    # without the create_scheduler(jobdir) hook these subclasses use.
    pytest.skip(f"Scrapy's scheduler tests run on the pinned Scrapy {pinned_scrapy()}, this is "
                f"{scrapy.__version__}", allow_module_level=True)

ts, tsb = load_scrapy_tests("test_scheduler", "test_scheduler_base")

# The least HermitScheduler needs beside Scrapy's mock crawler ------------------------

IDLE_CLOSE_SECONDS = 0.05


class ActiveMockDownloader(ts.MockDownloader):
    """Scrapy's mock downloader with the real one's ``active`` (what Hermit sizes leases by)."""

    @property
    def active(self) -> list:
        return [one for slot in self.slots.values() for one in slot.active]


class HermitMockCrawler(ts.MockCrawler):
    """Scrapy's mock crawler, with Hermit's settings on the test Redis, a request
    fingerprinter, and an engine holding a real engine slot (Hermit acks a lease when
    the slot's ``remove_request`` is called, as the engine does when it is done)."""

    def __init__(self, redis_url: str, crawl: str, jobdir: Path | None, **settings) -> None:
        super().__init__("scrapy.pqueues.ScrapyPriorityQueue", jobdir)
        self.settings.setdict({
            "SCHEDULER": "hermit.worker.scheduler.HermitScheduler",
            "HERMIT_REDIS_URL": redis_url,
            "HERMIT_CRAWL": crawl,
            "HERMIT_IDLE_CLOSE_SECONDS": IDLE_CLOSE_SECONDS,
            "HERMIT_IDLE_POLL_SECONDS": 0.01,
            "HERMIT_LEASE_TIMEOUT_SECONDS": 30,
            **settings,
        }, priority="cmdline")
        self.request_fingerprinter = build_from_crawler(
            load_object(self.settings["REQUEST_FINGERPRINTER_CLASS"]), self
        )
        self.engine = SimpleNamespace(downloader=ActiveMockDownloader(), running=True, _slot=None)


@asynccontextmanager
async def open_hermit_scheduler(redis_url: str, crawl: str, jobdir: Path | None = None, **settings):
    crawler = HermitMockCrawler(redis_url, crawl, jobdir, **settings)
    crawler.spider = Spider.from_crawler(crawler, name="spider")
    scheduler = build_from_crawler(HermitScheduler, crawler)
    crawler.engine._slot = _Slot(close_if_idle=True, nextcall=CallLaterOnce(lambda: None), scheduler=scheduler)
    scheduler.open(crawler.spider)
    try:
        yield scheduler
    finally:
        scheduler.close("finished")


class OnHermit:
    """Builds the scheduler of Scrapy's tests as a HermitScheduler; with ``reopen``,
    the second scheduler is a new worker on the same crawl (Hermit's persistence is
    the crawl's queue in Redis, not ``JOBDIR``)."""

    @pytest.fixture(autouse=True)
    def _hermit_crawl(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.crawl = f"scrapy-suite-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def jobdir(self) -> None:
        return None

    def create_scheduler(self, jobdir):
        return open_hermit_scheduler(self.redis_url, self.crawl, jobdir)


@pytest.mark.asyncio
class TestSchedulerInMemory(OnHermit, ts.TestSchedulerInMemoryBase):
    priority_queue_cls = "hermit.worker.scheduler.HermitScheduler"


@pytest.mark.asyncio
class TestSchedulerReopened(OnHermit, ts.TestSchedulerInMemoryBase):
    """Scrapy's on-disk variant (``reopen``): the requests outlive the scheduler that queued them."""

    priority_queue_cls = "hermit.worker.scheduler.HermitScheduler"
    reopen = True


@pytest.mark.asyncio
class TestSchedulerWithDownloaderAwareInMemory(
    OnHermit, ts.DownloaderAwareSchedulerTestMixin, ts.TestSchedulerInMemoryBase
):
    pass


@pytest.mark.asyncio
class TestSchedulerWithDownloaderAwareReopened(
    OnHermit, ts.DownloaderAwareSchedulerTestMixin, ts.TestSchedulerInMemoryBase
):
    reopen = True


class TestHermitSchedulerInterface(tsb.InterfaceCheckMixin):
    def setup_method(self):
        crawler = HermitMockCrawler("redis://127.0.0.1:1/0", "interface", None)
        crawler.spider = Spider.from_crawler(crawler, name="spider")
        self.scheduler = build_from_crawler(HermitScheduler, crawler)


# Scrapy's assertions on Hermit, the engine's part played ---------------------------
# The same data and checks as the tests above (Scrapy's _URLS, _PRIORITIES,
# _URLS_WITH_SLOTS and _is_scheduling_fair), dequeuing as many requests as were
# queued instead of until has_pending_requests() is False; then the requests are
# finished through the engine slot, as Scrapy's engine does, and the scheduler must
# report nothing pending once the crawl has been empty for HERMIT_IDLE_CLOSE_SECONDS.


def finish(scheduler: HermitScheduler, requests: list[Request]) -> None:
    slot = scheduler.crawler.engine._slot
    for request in requests:
        slot.remove_request(request)


async def wait_not_pending(scheduler: HermitScheduler) -> None:
    for _ in range(200):  # as the engine polls: next_request() while has_pending_requests()
        if not scheduler.has_pending_requests():
            return
        assert scheduler.next_request() is None
        await asyncio.sleep(0.01)
    raise AssertionError("has_pending_requests() still True after the crawl was finished and empty")


def take(scheduler: HermitScheduler, count: int) -> list[Request]:
    requests = []
    for _ in range(count):
        assert scheduler.has_pending_requests()
        request = scheduler.next_request()
        assert request is not None
        scheduler.crawler.engine._slot.add_request(request)
        requests.append(request)
    return requests


@pytest.mark.asyncio
@pytest.mark.parametrize("reopen", [False, True], ids=["one-worker", "reopened"])
class TestScrapyAssertionsOnHermit:
    @pytest.fixture(autouse=True)
    def _hermit_crawl(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.crawl = f"scrapy-suite-{uuid.uuid4().hex[:12]}"

    @asynccontextmanager
    async def queued(self, reopen: bool, requests: list[Request], **settings):
        async with open_hermit_scheduler(self.redis_url, self.crawl, **settings) as scheduler:
            for request in requests:
                assert scheduler.enqueue_request(request)
            if not reopen:
                yield scheduler
                return
        async with open_hermit_scheduler(self.redis_url, self.crawl, **settings) as scheduler:
            yield scheduler

    async def test_dequeue(self, reopen):
        async with self.queued(reopen, [Request(url) for url in ts._URLS]) as scheduler:
            requests = take(scheduler, len(ts._URLS))
            assert scheduler.next_request() is None
            assert {r.url for r in requests} == ts._URLS
            finish(scheduler, requests)
            await wait_not_pending(scheduler)

    async def test_dequeue_priorities(self, reopen):
        queued = [Request(url, priority=priority) for url, priority in ts._PRIORITIES]
        async with self.queued(reopen, queued) as scheduler:
            requests = take(scheduler, len(queued))
            assert scheduler.next_request() is None
            assert [r.priority for r in requests] == sorted((p for _, p in ts._PRIORITIES), reverse=True)
            finish(scheduler, requests)
            await wait_not_pending(scheduler)

    async def test_duplicates_dropped(self, reopen):
        queued = [Request(url) for url in sorted(ts._URLS)] * 2
        async with self.queued(reopen, queued) as scheduler:
            requests = take(scheduler, len(ts._URLS))
            assert scheduler.next_request() is None
            assert sorted(r.url for r in requests) == sorted(ts._URLS)
            assert (scheduler.stats.get_value("dupefilter/filtered") or 0) == (0 if reopen else len(ts._URLS))
            finish(scheduler, requests)
            await wait_not_pending(scheduler)

    async def test_downloader_aware_fairness(self, reopen):
        queued = []
        for url, slot in ts._URLS_WITH_SLOTS:
            request = Request(url)
            request.meta[ts.Downloader.DOWNLOAD_SLOT] = slot
            queued.append(request)
        async with self.queued(reopen, queued, HERMIT_PREFETCH_REQUESTS=1) as scheduler:
            downloader = scheduler.crawler.engine.downloader
            requests = []
            for _ in queued:  # one at a time, as a downloader with one free slot asks
                requests += take(scheduler, 1)
                downloader.increment(downloader.get_slot_key(requests[-1]))
            assert scheduler.next_request() is None
            dequeued_slots = [downloader.get_slot_key(r) for r in requests]
            assert ts._is_scheduling_fair([s for _, s in ts._URLS_WITH_SLOTS], dequeued_slots), dequeued_slots
            for request in requests:
                downloader.decrement(downloader.get_slot_key(request))
            finish(scheduler, requests)
            await wait_not_pending(scheduler)


# Scrapy tests that can't apply to HermitScheduler ------------------------------------

NOT_APPLICABLE = {
    "test_scheduler.py::TestSchedulerOnDisk": "JOBDIR disk queues of Scrapy's Scheduler; Hermit's queue "
    "is the crawl's Redis, reopened above (TestSchedulerReopened)",
    "test_scheduler.py::TestSchedulerWithDownloaderAwareOnDisk": "the same with JOBDIR; reopened above",
    "test_scheduler.py::TestMigration": "moving a JOBDIR between Scrapy's priority queue classes",
    "test_scheduler.py::TestIncompatibility": "DownloaderAwarePriorityQueue's refusal of "
    "CONCURRENT_REQUESTS_PER_IP; Hermit has no priority-queue classes",
    "test_scheduler.py::test_scheduler_without_crawler": "Scheduler(dupefilter) constructor of Scrapy's Scheduler",
    "test_scheduler.py::test_unserializable_requests": "Scrapy's fallback of unserializable requests to "
    "its memory queue; Hermit has no local queue to fall back to and drops them, counted as "
    "hermit/requests/unserializable with the value's path (worker/test_request_payloads.py)",
    "test_scheduler.py::TestIntegrationWithDownloaderAwareInMemory": "crawls one URL 6 times with "
    "BaseDupeFilter and expects 6 fetches; Hermit deduplicates in the crawl's Bloom filter whatever "
    "DUPEFILTER_CLASS says (dont_filter=True requests are fetched again)",
    "test_scheduler_base.py::TestBaseScheduler, TestMinimalScheduler, TestSimpleScheduler": "test "
    "BaseScheduler itself and the sample schedulers of that module",
    "test_scheduler_base.py::TestMinimalSchedulerCrawl, TestSimpleSchedulerCrawl": "their crawler's "
    "settings are only SCHEDULER; HermitScheduler needs its Redis and HERMIT_IDLE_CLOSE_SECONDS to end "
    "a crawl (real crawls on Hermit: worker/test_scrapy_compatibility.py)",
}


@pytest.mark.parametrize("test", list(NOT_APPLICABLE))
def test_not_applicable(test: str) -> None:
    pytest.skip(NOT_APPLICABLE[test])


def test_every_scrapy_scheduler_test_is_run_or_listed() -> None:
    """A test class or function that a new Scrapy version adds must be placed here."""
    run = {"test_scheduler.py::" + name for name in (
        "TestSchedulerInMemory", "TestSchedulerWithDownloaderAwareInMemory")}
    run.add("test_scheduler_base.py::InterfaceCheckMixin")
    listed = set(run)
    for entry in NOT_APPLICABLE:
        module, names = entry.split("::")
        listed |= {f"{module}::{name.strip()}" for name in names.split(",")}
    found = set()
    for module in (ts, tsb):
        filename = module.__name__.rsplit(".", 1)[1] + ".py"
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if (name.startswith("Test") and isinstance(value, type) and not name.endswith("Base")) \
                    or (name.startswith("test_") and callable(value)) or name == "InterfaceCheckMixin":
                found.add(f"{filename}::{name}")
    assert found - listed == set(), "Scrapy tests neither run nor listed as not applicable"
