"""Tests on a real Kubernetes control plane built from source (tools/kubernetes).

``make test-kubernetes`` builds what is missing, then runs this folder with
HERMIT_KUBERNETES_TESTS=1, HERMIT_KUBERNETES_BIN (the directory of the binaries) and
HELM set. One control plane serves the whole session (see cluster.py); each test module
works in namespaces of its own. Elsewhere (plain ``pytest`` in the project's .venv) this
folder is not collected, and the report header says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

if os.environ.get("HERMIT_KUBERNETES_TESTS") != "1":
    collect_ignore_glob = ["*"]

    def pytest_report_header(config):
        return "tests/kubernetes: not collected here; they run with `make test-kubernetes` (HERMIT_KUBERNETES_TESTS=1)"

else:
    sys.path.insert(0, str(HERE))
    from cluster import REPO, Cluster

    @pytest.fixture(scope="session")
    def cluster(tmp_path_factory) -> Iterator[Cluster]:
        bin_dir = os.environ.get("HERMIT_KUBERNETES_BIN")
        if not bin_dir or not Path(bin_dir).is_dir():
            pytest.fail("HERMIT_KUBERNETES_BIN is not a directory: run `make test-kubernetes` "
                        "(it builds the control plane with tools/kubernetes/build.sh)", pytrace=False)
        helm = os.environ.get("HELM") or str(REPO / ".venv-k8s" / "helm-v4.1.4" / "helm")
        if not os.access(helm, os.X_OK):
            pytest.fail(f"helm not found at {helm}: run `make k8s-tools` (or set HELM)", pytrace=False)
        workdir = tmp_path_factory.mktemp("cluster")
        control_plane = Cluster(Path(bin_dir), workdir, helm, name=f"hermit-{os.getpid()}")
        try:
            control_plane.start()
            yield control_plane
        finally:
            control_plane.stop()

    def pytest_report_header(config):
        return f"tests/kubernetes: binaries from {os.environ.get('HERMIT_KUBERNETES_BIN')}"
