"""Image tests: the crawler (and operator) images, built and run for real with podman.

They need root, podman with runc, and the images built by `make image-crawler`
(`make test-images` does all of it and sets HERMIT_IMAGE_TESTS=1). Elsewhere this
folder is not collected, and the report header says so. Networking: the containers
use the host's network and reach Redis and the demo site on loopback only.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

if os.environ.get("HERMIT_IMAGE_TESTS") != "1":
    collect_ignore_glob = ["*"]

    def pytest_report_header(config):
        return "tests/images: not collected here; they run with `make test-images` (HERMIT_IMAGE_TESTS=1, root, podman)"

sys.path.insert(0, str(HERE))  # for imagelib (standard library only)
from imagelib import CRAWLER_IMAGE, podman  # noqa: E402


@pytest.fixture(scope="session")
def crawler_image() -> str:
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: run `make test-images` (it installs podman, runc, debootstrap)", pytrace=False)
    if not os.environ.get("CONTAINERS_CONF"):
        pytest.fail("CONTAINERS_CONF is not set (runc and the ulimits this kernel needs): run `make test-images`",
                    pytrace=False)
    if podman("image", "exists", CRAWLER_IMAGE, check=False).returncode != 0:
        pytest.fail(f"{CRAWLER_IMAGE} is not built: run `make image-crawler`", pytrace=False)
    return CRAWLER_IMAGE


@pytest.fixture
def container_names(request):
    """Names to give containers; every one is removed after the test."""
    names: list[str] = []

    def make(suffix: str) -> str:
        name = f"hermit-test-{re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())[:40]}-{suffix}"
        podman("rm", "-f", "-t", "0", name, check=False)
        names.append(name)
        return name

    yield make
    for name in names:
        podman("rm", "-f", "-t", "0", name, check=False)
