"""Finding a worker's endpoints in its log."""

from __future__ import annotations

from hermit.observability.endpoint_log import DIAGNOSTICS_LOG, METRICS_LOG, WorkerEndpoints, endpoints_in_log


def line(template: str, *args: str) -> str:
    return "2026-11-23 10:00:00 [hermit.observability] INFO: " + template % args + "\n"


def test_the_last_start_wins_and_wildcard_addresses_become_loopback():
    log = (
        line(METRICS_LOG, "http://0.0.0.0:41000/metrics")
        + line(DIAGNOSTICS_LOG, "http://127.0.0.1:41001/", "no token: loopback only")
        + "... the worker was restarted, appending to its log ...\n"
        + line(METRICS_LOG, "http://[::]:42000/metrics")
        + line(DIAGNOSTICS_LOG, "http://10.0.0.5:42001/", "bearer token required")
    )
    assert endpoints_in_log(log) == WorkerEndpoints("http://[::1]:42000/metrics", "http://10.0.0.5:42001/")


def test_nothing_logged_yet():
    assert endpoints_in_log("Scrapy 2.19.0 started\n") == WorkerEndpoints(None, None)
    assert endpoints_in_log(line(METRICS_LOG, "http://0.0.0.0:41000/metrics")) == WorkerEndpoints(
        "http://127.0.0.1:41000/metrics", None)
