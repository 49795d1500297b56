"""Real worker processes whose metrics and diagnostics endpoints the tests reach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hermit.observability.endpoint_log import WorkerEndpoints, endpoints_in_log


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def endpoints(self, diagnostics: bool = True, timeout: float = 120.0) -> WorkerEndpoints:
        """The endpoints the worker logged once it opened its spider."""
        deadline = time.monotonic() + timeout
        while True:
            found = endpoints_in_log(self.log())
            if found.metrics and (found.diagnostics or not diagnostics):
                return found
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker never logged its endpoints:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def wait(self, timeout: float = 240.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker did not exit:\n{self.log()[-3000:]}") from None

    def stop(self) -> int:
        """SIGTERM (graceful drain), SIGKILL if that takes too long."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """``start_worker(*args)`` runs ``python *args`` with its output in a log file."""
    workers: list[Worker] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Worker:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})})
        workers.append(Worker(process, log_path))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


Samples = dict[tuple[str, frozenset], float]


class Client:
    """HTTP and exposition-format helpers (a fixture: test modules can't import conftest)."""

    @staticmethod
    def fetch(url: str, method: str = "GET", token: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    @classmethod
    def fetch_json(cls, url: str, method: str = "GET", token: str | None = None) -> tuple[int, dict]:
        status, body = cls.fetch(url, method, token)
        return status, json.loads(body)

    @classmethod
    def scrape(cls, url: str) -> Samples:
        status, body = cls.fetch(url)
        assert status == 200, body[:500]
        return cls.parse(body.decode())

    @staticmethod
    def parse(text: str) -> Samples:
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    @staticmethod
    def value(samples: Samples, name: str, **labels: str) -> float:
        """The value of one series; fails naming the series if it is missing."""
        key = (name, frozenset(labels.items()))
        assert key in samples, f"no series {name}{labels}"
        return samples[key]


@pytest.fixture
def client() -> type[Client]:
    return Client
