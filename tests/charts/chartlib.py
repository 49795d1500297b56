"""What the chart tests share: paths, the ci/ values files, a rendered chart."""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hermit"
RELEASE = "crawl"
NAMESPACE = "crawl"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
#: Kubernetes versions the rendered manifests are validated against: the oldest the
#: chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")


@dataclass
class Rendered:
    returncode: int
    stdout: str
    stderr: str

    @property
    def docs(self) -> list[dict]:
        assert self.returncode == 0, self.stderr
        return [doc for doc in yaml.safe_load_all(self.stdout) if doc]

    def kind(self, kind: str) -> list[dict]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict:
        found = [doc for doc in self.kind(kind) if doc["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
        return found[0]


def pod_spec(doc: dict) -> dict:
    """The pod spec of a workload (Deployment, StatefulSet, Job) or of a Pod."""
    if doc["kind"] == "Pod":
        return doc["spec"]
    return doc["spec"]["template"]["spec"]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job", "Pod")]


def chart_readme() -> ModuleType:
    """tools/chart_readme.py, the README generator that also parses the `## @param` lines."""
    if "chart_readme" not in sys.modules:
        spec = importlib.util.spec_from_file_location("chart_readme", REPO / "tools" / "chart_readme.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["chart_readme"] = module
        spec.loader.exec_module(module)
    return sys.modules["chart_readme"]


def worker_health_path() -> str:
    """HEALTH_PATH of crawler/hermit/observability/metrics_app.py (what the probes ask), read without importing Hermit."""
    tree = ast.parse((REPO / "crawler" / "hermit" / "observability" / "metrics_app.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "HEALTH_PATH"):
            return ast.literal_eval(node.value)
    raise AssertionError("HEALTH_PATH not found in crawler/hermit/observability/metrics_app.py")


#: The modules that declare the worker's settings (``Setting("NAME", default, ...)``):
#: the table in settings.py, and the Bloom filter's sizing beside the filter.
SETTING_MODULES = ("crawler/hermit/settings.py", "crawler/hermit/dedup/sizing.py")


def default_settings() -> dict[str, object]:
    """Every worker setting's name -> its default (None when it is not a literal), read
    from the ``Setting(...)`` declarations without importing Hermit."""
    found: dict[str, object] = {}
    for module in SETTING_MODULES:
        for node in ast.walk(ast.parse((REPO / module).read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Setting"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                try:
                    default = ast.literal_eval(node.args[1]) if len(node.args) > 1 else None
                except ValueError:
                    default = None
                found[node.args[0].value] = default
    if "HERMIT_REDIS_URL" not in found or "HERMIT_DEDUP_CAPACITY" not in found:
        raise AssertionError(f"no Setting(...) declarations of the worker's settings found in {SETTING_MODULES}")
    return found
