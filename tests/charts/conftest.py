"""Chart tests: a real helm renders charts/hermit; the output is parsed and checked.

They run in their own virtualenv (.venv-k8s, with PyYAML, kubernetes-validate and
checkov) through ``make test-chart``, which sets HERMIT_CHART_TESTS=1. Elsewhere (the
project's own .venv) this folder is not collected, and the report header says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

if os.environ.get("HERMIT_CHART_TESTS") != "1":
    collect_ignore_glob = ["*"]

    def pytest_report_header(config):
        return "tests/charts: not collected here; they run with `make test-chart` (HERMIT_CHART_TESTS=1)"

else:
    sys.path.insert(0, str(HERE))
    from chartlib import CHART, NAMESPACE, RELEASE, REPO, Rendered

    def _tool(env_name: str, default: Path, what: str) -> str:
        path = os.environ.get(env_name) or str(default)
        if not (Path(path).is_file() and os.access(path, os.X_OK)) and not shutil.which(path):
            pytest.fail(f"{what} not found at {path}: run `make k8s-tools` (or set {env_name})", pytrace=False)
        return path

    @pytest.fixture(scope="session")
    def helm() -> str:
        """The real helm binary (make k8s-tools fetches it); a clear failure if it is missing."""
        return _tool("HELM", REPO / ".venv-k8s" / "helm-v4.1.4" / "helm", "helm binary")

    @pytest.fixture(scope="session")
    def venv_tool():
        """venv_tool("checkov") -> path of a tool installed in the tests' own virtualenv."""
        def _find(name: str) -> str:
            return _tool(name.upper().replace("-", "_"), Path(sys.executable).parent / name, name)
        return _find

    @pytest.fixture(scope="session")
    def render(helm):
        """render(*values_files, set=[...], set_file=[...]) -> Rendered (cached per arguments)."""
        cache: dict[tuple, Rendered] = {}

        def _render(*values_files, set=(), set_file=(), extra=()) -> Rendered:
            key = (tuple(str(v) for v in values_files), tuple(set), tuple(set_file), tuple(extra))
            if key not in cache:
                command = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra]
                for values in values_files:
                    command += ["-f", str(values)]
                for item in set:
                    command += ["--set", item]
                for item in set_file:
                    command += ["--set-file", item]
                done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                cache[key] = Rendered(done.returncode, done.stdout, done.stderr)
            return cache[key]

        return _render
