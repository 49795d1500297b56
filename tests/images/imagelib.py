"""What the image tests share: paths, image names, a podman runner."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hermit"


def app_version() -> str:
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', (CHART / "Chart.yaml").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


CRAWLER_IMAGE = f"localhost/hermit-crawler:{app_version()}"
OPERATOR_IMAGE = f"localhost/hermit-operator:{app_version()}"


def podman(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
