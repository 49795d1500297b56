"""``hermit crawl`` interrupted every way a user interrupts it, then resumed: nothing lost.

Each test runs the real command (a pty where a terminal matters), with its embedded
Redis and demo site, interrupts it once it has written items, and counts the items
file against the demo site's ground truth after the same command ran again.
"""

from __future__ import annotations

import os
import shlex
import signal

import psutil
import pytest

PAGES = 800
WORKERS = 2
PREFETCH = 4
CONCURRENCY = 4
#: What killed workers can hold leased (prefetch + downloads): pages fetched twice at most.
IN_FLIGHT = WORKERS * (PREFETCH + CONCURRENCY)
#: Leases that outlast any stall of a live worker on a loaded machine (a heartbeat every
#: third of it): a lease expires only when its worker is gone.
LONG_LEASE_SECONDS = 30
#: Leases of killed workers that the resumed crawl waits for: still several heartbeats
#: of margin for the live ones.
KILLED_LEASE_SECONDS = 10


def crawl_args(*extra: str, lease_seconds: int = LONG_LEASE_SECONDS) -> list[str]:
    return [
        "crawl", "--workers", str(WORKERS), "--pages", str(PAGES), "--state-dir", "state",
        "-o", "items.jsonl", "--log-dir", "logs", "--idle-close-seconds", "2", "--drain-timeout", "20",
        "-s", f"CONCURRENT_REQUESTS={CONCURRENCY}", "-s", f"HERMIT_PREFETCH_REQUESTS={PREFETCH}",
        "-s", f"HERMIT_LEASE_TIMEOUT_SECONDS={lease_seconds}", *extra,
    ]


def typed(output: str) -> str:
    return output.replace("\r\n", "\n")


def test_ctrl_c_in_a_terminal_drains_and_the_same_command_resumes(
    tmp_path, hermit_terminal, demo_items, items_written, wait_for,
):
    args = crawl_args()
    first = hermit_terminal(*args, cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 100, "the first items in the file")
    first.ctrl_c()
    assert first.wait() == 128 + signal.SIGINT, first.output[-3000:]
    output = typed(first.output)
    assert "Traceback" not in output
    assert f"Resume with:\n  hermit {shlex.join(args)}\n" in output
    partial = demo_items(tmp_path / "items.jsonl", PAGES)
    # A drain writes every item of what was fetched, once; the crawl is not done.
    assert partial.duplicates == 0 and not partial.unexpected and partial.lost
    assert (tmp_path / "state" / "redis").is_dir()

    second = hermit_terminal(*args, cwd=tmp_path)
    assert second.wait() == 0, second.output[-3000:]
    assert "(resumed)" in second.output
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    # Nothing was in flight when the first run stopped: no page was fetched twice.
    assert items.duplicates == 0
    assert not (tmp_path / "state").exists()  # a finished crawl keeps no state


def test_a_second_ctrl_c_stops_at_once_and_leases_come_back_on_resume(
    tmp_path, hermit_terminal, demo_items, items_written, wait_for, record_property,
):
    # A download delay keeps requests in the workers while they drain, so the
    # second Ctrl-C finds them busy.
    args = crawl_args("-s", "DOWNLOAD_DELAY=0.2", lease_seconds=KILLED_LEASE_SECONDS)
    first = hermit_terminal(*args, cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 30, "the first items in the file")
    first.ctrl_c()
    wait_for(lambda: "press Ctrl-C again" in first.output, "the drain to start")
    first.ctrl_c()
    assert first.wait() == 128 + signal.SIGINT, first.output[-3000:]
    output = typed(first.output)
    assert "SIGINT again: stopping the workers at once" in output
    assert "Traceback" not in output
    partial = demo_items(tmp_path / "items.jsonl", PAGES)
    assert partial.duplicates == 0 and partial.lost

    second = hermit_terminal(*crawl_args(lease_seconds=KILLED_LEASE_SECONDS), cwd=tmp_path)
    assert second.wait() == 0, second.output[-3000:]
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    # Pages fetched twice: at most what the killed workers held.
    assert items.duplicates <= IN_FLIGHT
    record_property("duplicates_after_second_ctrl_c", items.duplicates)


def test_embedded_redis_killed_mid_crawl_is_restarted_from_its_data(
    tmp_path, hermit_process, demo_items, items_written, crawl_state, wait_for, record_property,
):
    proc = hermit_process(*crawl_args(lease_seconds=KILLED_LEASE_SECONDS), cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 150, "the first items in the file")
    first_redis = crawl_state(tmp_path / "state")["redis_pid"]
    os.kill(first_redis, signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, proc.output()[-3000:]
    output = proc.output()
    assert "embedded Redis died; starting it again" in output
    assert "restarted: embedded Redis 1" in output
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    # appendfsync everysec: up to a second of writes is gone with the crash, and the
    # pages whose results were in it are fetched again.
    record_property("duplicates_after_redis_sigkill", items.duplicates)


def test_sigkill_of_hermit_crawl_leaves_no_process_and_the_same_command_resumes(
    tmp_path, hermit_process, demo_items, items_written, wait_for, record_property,
):
    args = crawl_args(lease_seconds=KILLED_LEASE_SECONDS)
    proc = hermit_process(*args, cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 150, "the first items in the file")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= WORKERS + 2  # the workers, Redis, the demo site
    proc.kill()
    proc.wait()

    def gone() -> bool:
        return not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)

    wait_for(gone, "every child of the killed hermit crawl to end")
    resumed = hermit_process(*args, cwd=tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.output()[-3000:]
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    assert items.duplicates <= IN_FLIGHT
    record_property("duplicates_after_hermit_sigkill", items.duplicates)


@pytest.mark.parametrize("redis_state", ["starting", "running", "frozen"])
def test_sigterm_ends_the_crawl_whatever_redis_does_and_it_resumes(
    tmp_path, hermit_process, demo_items, items_written, crawl_state, wait_for, redis_state, record_property,
):
    # A frozen Redis keeps the drained workers' leases: the resumed crawl waits for them.
    args = crawl_args("--drain-timeout", "3",
                      lease_seconds=KILLED_LEASE_SECONDS if redis_state == "frozen" else LONG_LEASE_SECONDS)
    proc = hermit_process(*args, cwd=tmp_path)
    if redis_state == "starting":
        # Redis and the demo site up, the workers only being started.
        wait_for(lambda: crawl_state(tmp_path / "state").get("redis_pid"), "the crawl's state")
    else:
        wait_for(lambda: items_written(tmp_path / "state") >= 100, "the first items in the file")
    if redis_state == "frozen":
        # A Redis that answers nothing (SIGSTOP): the drain can't complete, the
        # supervisor must still end.
        os.kill(crawl_state(tmp_path / "state")["redis_pid"], signal.SIGSTOP)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, proc.output()[-3000:]
    assert f"Resume with:\n  hermit {shlex.join(args)}\n" in proc.output()
    assert "Traceback" not in proc.output()

    resumed = hermit_process(*args, cwd=tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.output()[-3000:]
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    if redis_state != "frozen":
        assert items.duplicates == 0  # a drain: nothing fetched twice
    record_property(f"duplicates_after_sigterm_redis_{redis_state}", items.duplicates)


def test_fresh_starts_over(tmp_path, hermit_process, hermit_cli, demo_items, items_written, wait_for):
    proc = hermit_process(*crawl_args(), cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 100, "the first items in the file")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    done = hermit_cli(*crawl_args("--fresh"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(resumed)" not in done.stdout
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    # A new crawl from the start: every page once, none kept from the first run.
    assert not items.lost and not items.unexpected and items.duplicates == 0


def test_demo_site_killed_mid_crawl_is_served_again_and_no_page_is_lost(
    tmp_path, hermit_process, demo_items, items_written, wait_for, record_property,
):
    proc = hermit_process(*crawl_args(), cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 150, "the first items in the file")
    [site] = [child for child in psutil.Process(proc.pid).children()
              if "hermit.demo.site" in " ".join(child.cmdline())]
    site.kill()
    assert proc.wait(timeout=300) == 0, proc.output()[-3000:]
    assert "demo site died; starting it again" in proc.output()
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    record_property("duplicates_after_demo_site_sigkill", items.duplicates)
