"""hermit-operator run on the host against the control plane, configured as the chart
configures it: the env of the operator Deployment the chart installed, with the fields
the downward API would fill (namespace, pod name) filled in, and 127.0.0.1 ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from cluster import free_port

#: kwok's emulated memory usage of a pod, which metrics-server then serves (kwok's default
#: ClusterResourceUsage reads it from this annotation; 1Mi without it).
USAGE = "kwok.x-k8s.io/usage-memory"


class Operator:
    """One ``hermit-operator`` process with the chart's settings, on 127.0.0.1 ports."""

    def __init__(self, deployment: dict, kubeconfig: Path, identity: str, logs: Path, **overrides: str) -> None:
        namespace = deployment["metadata"]["namespace"]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HERMIT_OPERATOR_") and k not in ("KUBERNETES_SERVICE_HOST", "POD_NAME")}
        for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                env[var["name"]] = namespace
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[var["name"]] = identity
            else:
                raise AssertionError(f"the chart sets {var} on the operator: teach this test about it")
        self.metrics_port = free_port()
        env.update({
            "HERMIT_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "HERMIT_OPERATOR_HEALTH_PORT": str(free_port()),
            "HERMIT_OPERATOR_LISTEN_ADDRESS": "127.0.0.1",
            "HERMIT_OPERATOR_INTERVAL_SECONDS": "2",
            "HERMIT_OPERATOR_MIN_AGE_SECONDS": "0",
            "HERMIT_OPERATOR_COOLDOWN_SECONDS": "0",
            "HERMIT_OPERATOR_LEASE_DURATION_SECONDS": "6",
            "HERMIT_OPERATOR_LOG_LEVEL": "DEBUG",
            **overrides,
        })
        self.identity = identity
        self.env = env
        self.log_path = logs / f"{identity}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "hermit_operator", "--kubeconfig", str(kubeconfig)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}

    def metric(self, name: str) -> float | None:
        try:
            return self.metrics().get(name)
        except OSError:
            return None

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()
