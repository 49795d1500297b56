"""The monitoring sources, the promtool and prometheus binaries, and a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermit.redis_server import free_loopback_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dashboard:
    """A Grafana dashboard of monitoring/ and the variables every one of its queries filters on."""

    path: Path
    #: Each variable's name and what it lists (``label_values(<metric>, <label>)``), in
    #: order: ``namespace`` first, the next one narrowed to the namespaces chosen.
    variables: tuple[tuple[str, str], ...]

    @property
    def model(self) -> dict:
        return json.loads(self.path.read_text())

    @property
    def queries(self) -> list[tuple[str, str]]:
        """(panel title, expression) of every query."""
        return [(panel["title"], target["expr"]) for panel in self.model["panels"] if panel["type"] != "row"
                for target in panel["targets"]]


_GRAFANA = ROOT / "monitoring" / "grafana"
CRAWL_DASHBOARD = Dashboard(_GRAFANA / "hermit-crawl.json", (
    ("namespace", "label_values(hermit_build_info, namespace)"),
    ("crawl", 'label_values(hermit_build_info{namespace=~"$namespace"}, crawl)'),
))
OPERATOR_DASHBOARD = Dashboard(_GRAFANA / "hermit-operator.json", (
    ("namespace", "label_values(hermit_operator_build_info, namespace)"),
    ("instance", 'label_values(hermit_operator_build_info{namespace=~"$namespace"}, instance)'),
))
DASHBOARDS = {"crawl": CRAWL_DASHBOARD, "operator": OPERATOR_DASHBOARD}


@dataclass(frozen=True)
class RuleFile:
    """A Prometheus rules file of monitoring/, its promtool unit tests, and the page holding its runbooks."""

    path: Path
    tests: Path
    runbooks: Path

    @property
    def alerts(self) -> list[dict]:
        groups = yaml.safe_load(self.path.read_text())["groups"]
        return [rule for group in groups for rule in group["rules"] if "alert" in rule]


_PROMETHEUS = ROOT / "monitoring" / "prometheus"
#: The base of every runbook_url in monitoring/prometheus/ (the docs folder of the
#: project's repository); the chart's prometheusRule.runbookBaseUrl defaults to it.
RUNBOOK_BASE_URL = "https://github.com/hermit-crawler/hermit/blob/main/docs"
#: The workers' rules and the operator's.
WORKER_RULES = RuleFile(_PROMETHEUS / "alerts.yaml", _PROMETHEUS / "alerts_test.yaml", ROOT / "docs" / "observability.md")
OPERATOR_RULES = RuleFile(_PROMETHEUS / "operator-alerts.yaml", _PROMETHEUS / "operator-alerts_test.yaml",
                          ROOT / "docs" / "operator.md")
RULE_FILES = {"workers": WORKER_RULES, "operator": OPERATOR_RULES}


def binary(name: str) -> str:
    """The path of *name*; fails (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: these tests need Debian's prometheus package "
            "(`make test` installs it as root: apt-get install prometheus)", pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return binary("promtool")


@pytest.fixture(scope="session", params=sorted(RULE_FILES))
def rule_file(request: pytest.FixtureRequest) -> RuleFile:
    """Each rules file in turn."""
    return RULE_FILES[request.param]


@pytest.fixture(scope="session")
def rule_files() -> dict[str, RuleFile]:
    return RULE_FILES


@pytest.fixture(scope="session")
def runbook_base_url() -> str:
    return RUNBOOK_BASE_URL


@pytest.fixture(scope="session")
def alert_rules() -> list[dict]:
    """The workers' alert rules."""
    return WORKER_RULES.alerts


@pytest.fixture(scope="session", params=sorted(DASHBOARDS))
def each_dashboard(request: pytest.FixtureRequest) -> Dashboard:
    """Each dashboard in turn."""
    return DASHBOARDS[request.param]


@pytest.fixture(scope="session")
def dashboards() -> dict[str, Dashboard]:
    return DASHBOARDS


@pytest.fixture(scope="session")
def dashboard() -> dict:
    """The crawl dashboard."""
    return CRAWL_DASHBOARD.model


@pytest.fixture(scope="session")
def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the crawl dashboard."""
    return CRAWL_DASHBOARD.queries


class Prometheus:
    """A real Prometheus server on loopback, scraping *targets* every second as *job*, with *rules* loaded.

    With *file_sd*, it finds its targets in that file instead (``file_sd_configs``), as
    a user points it at the local pool's targets file.
    """

    def __init__(self, workdir: Path, targets: list[str], file_sd: Path | None = None,
                 job: str = "hermit-worker", rules: RuleFile = WORKER_RULES,
                 namespaces: list[str] | None = None) -> None:
        self.workdir = workdir
        self.targets = targets
        #: The ``namespace`` label of each target, as the Prometheus Operator sets it.
        self.namespaces = namespaces
        self.file_sd = file_sd
        self.job = job
        self.rules = rules
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, attempts: int = 3) -> Prometheus:
        job = {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
        if self.namespaces is not None:
            assert len(self.namespaces) == len(self.targets), "one namespace per target"
            job["static_configs"] = [{"targets": [target], "labels": {"namespace": namespace}}
                                     for target, namespace in zip(self.targets, self.namespaces)]
        if self.file_sd is not None:
            job = {"job_name": self.job, "file_sd_configs": [{"files": [str(self.file_sd)], "refresh_interval": "1s"}]}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(self.rules.path)],
            "scrape_configs": [job],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        for attempt in range(attempts):
            port = free_loopback_port()  # Prometheus can't report a port it picked: pick one, retry on a clash
            self.url = f"http://127.0.0.1:{port}"
            log = (self.workdir / "prometheus.log").open("wb")
            self.process = subprocess.Popen(
                [binary("prometheus"), f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / f'data-{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()
            deadline = time.monotonic() + 60
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                        if response.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.2)
            self.stop()
        raise AssertionError(f"Prometheus did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422 carry the PromQL error
            return json.loads(error.read())

    def query(self, expr: str) -> list[dict]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        return answer["data"]["result"]

    def metrics_missing(self, alerts: list[dict], metric: re.Pattern[str]) -> set[tuple[str, str]]:
        """(alert, metric) for each metric an alert's expression names (per *metric*) that no
        scraped series has; every expression is also evaluated, so invalid PromQL fails."""
        missing = set()
        for rule in alerts:
            self.query(rule["expr"])
            for name in set(metric.findall(rule["expr"])):
                if not self.query(f'count({{__name__="{name}"}})'):
                    missing.add((rule["alert"], name))
        return missing

    def wait_for(self, expr: str, expected: float, at_least: bool = False, timeout: float = 60.0) -> None:
        """Until *expr* (one series) equals *expected* (or is at least that): Prometheus catches up."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            value = float(result[0]["value"][1]) if len(result) == 1 else None
            if value is not None and (value >= expected if at_least else value == expected):
                return
            assert time.monotonic() < deadline, f"{expr} = {value}, expected {expected}"
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator:
    """``prometheus(targets)`` starts a real Prometheus scraping ``host:port`` targets;
    ``prometheus([], file_sd=path)`` one that reads them from a targets file; ``job`` and
    ``rules`` name the scrape job and the rules file it loads (the workers' by default);
    ``namespaces`` gives each target a ``namespace`` label."""
    started: list[Prometheus] = []

    def start(targets: list[str], file_sd: Path | None = None, **options: Any) -> Prometheus:
        started.append(Prometheus(tmp_path, targets, file_sd, **options).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()
