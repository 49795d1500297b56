"""Live progress of a local crawl: rates, queue, leases, dedup, each worker's memory."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table

from hermit.crawl_status import CrawlStatus
from hermit.local.pool import WorkerPool


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


@dataclass
class Progress:
    """Counters between two readings, for rates."""

    started: float
    last_time: float = 0.0
    last_pages: int = 0
    pages_per_second: float = 0.0
    peak_rss: dict[int, int] | None = None

    def update(self, status: CrawlStatus, rss: dict[int, int]) -> None:
        now = time.monotonic()
        pages = status.queue.counters.get("acked", 0)
        if self.last_time:
            self.pages_per_second = (pages - self.last_pages) / max(1e-6, now - self.last_time)
        self.last_time, self.last_pages = now, pages
        peak = self.peak_rss if self.peak_rss is not None else {}
        for index, value in rss.items():
            peak[index] = max(peak.get(index, 0), value)
        self.peak_rss = peak


def render(status: CrawlStatus, pool: WorkerPool, progress: Progress, rss: dict[int, int]) -> Table:
    q, counters = status.queue, status.queue.counters
    table = Table(title=f"hermit crawl — {time.monotonic() - progress.started:.0f}s", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("pages", f"{counters.get('acked', 0)}  ({progress.pages_per_second:.0f}/s)")
    table.add_row("items", str(status.items))
    table.add_row("queued", str(q.queued))
    table.add_row("leased", f"{q.leased}  ({q.workers} workers registered)")
    table.add_row(
        "dedup",
        f"{counters.get('enqueued', 0)} new, {counters.get('duplicates', 0)} duplicates"
        + (f", filter {status.bloom.fill_ratio:.1%} full" if status.bloom else ""),
    )
    table.add_row("dead letters", str(q.dead_letters))
    for slot in pool.slots:
        state = "finished" if slot.finished else ("running" if slot.running else "restarting")
        if slot.running and slot.draining_since is not None:
            state = "draining"
        memory = _mib(rss[slot.index]) if slot.index in rss else "-"
        served = "".join(f", {name} {url}" for name, url in (("metrics", slot.endpoints.metrics),
                                                                ("diagnostics", slot.endpoints.diagnostics)) if url)
        table.add_row(f"worker {slot.index}",
                      f"{state}, RSS {memory}, pid {slot.pid or '-'}, restarts {slot.restarts}{served}")
    for old in pool.retiring:
        if old.running:
            table.add_row(f"worker {old.index}", f"replaced, draining {time.monotonic() - old.draining_since:.0f}s, "
                          f"pid {old.process.pid}")
    if pool.recycles:
        last = pool.recycles[-1]
        table.add_row("recycles", f"{len(pool.recycles)}; last: worker {last.index}, {last.reason}, "
                      f"{_mib(last.rss_bytes) if last.rss_bytes else 'RSS unknown'}, age {last.age_seconds:.0f}s")
    return table


def plain_line(status: CrawlStatus, pool: WorkerPool, progress: Progress, rss: dict[int, int]) -> str:
    """The same, on one line, for logs and terminals without a live display."""
    q, counters = status.queue, status.queue.counters
    memory = " ".join(f"w{i}={_mib(v)}" for i, v in sorted(rss.items()))
    return (
        f"[{time.monotonic() - progress.started:5.0f}s] pages {counters.get('acked', 0)}"
        f" ({progress.pages_per_second:.0f}/s) items {status.items} queued {q.queued}"
        f" leased {q.leased} dedup new {counters.get('enqueued', 0)} dup {counters.get('duplicates', 0)}"
        f" dead {q.dead_letters} recycles {len(pool.recycles)} rss {memory or '-'}"
    )
