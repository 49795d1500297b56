"""``hermit-operator`` run as a real process (``python -m hermit_operator``) against the fake cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def operator_env(**extra: str) -> dict[str, str]:
    """This environment without any operator setting or in-cluster marker, plus *extra*."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("HERMIT_OPERATOR_") and name not in ("KUBERNETES_SERVICE_HOST", "POD_NAME")}
    env.update(extra)
    return env


def start_operator(kubeconfig: Path, **env: str) -> subprocess.Popen[str]:
    """``hermit-operator --kubeconfig KUBECONFIG`` with settings *env*; its output is piped, as text."""
    return subprocess.Popen([sys.executable, "-m", "hermit_operator", "--kubeconfig", str(kubeconfig)],
                            env=operator_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
