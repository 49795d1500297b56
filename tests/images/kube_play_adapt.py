"""Adapt `helm template` output to what `podman kube play` 4.3 runs (used by the image tests).

Run with a Python that has PyYAML (the chart tests' .venv-k8s):

    python kube_play_adapt.py OUT_DIR VOLUME_PREFIX < rendered.yaml

writes OUT_DIR/kube.yaml (the Deployments) and OUT_DIR/secrets/<name>.json (each Secret's
``data``, the form `podman secret create` must be given for kube play's secretKeyRef).
Services and PodDisruptionBudgets mean nothing without Kubernetes, a ServiceAccount is
ignored, and podman 4.3 refuses container ports together with host networking, which
the test uses to keep every connection on loopback. Two things Kubernetes does that
podman 4.3 does not are emulated:

- ``$(VAR)`` in command/args (the worker id ``$(POD_NAME)``) is expanded from the
  container's environment: the container runs under ``sh -c 'exec ...'`` with the
  variable quoted for the shell, everything else quoted literally;
- an emptyDir is private to its pod: podman makes it a named volume shared by every pod
  of the Deployment, so the volumes get a unique prefix (removed by the test).

Prints the kinds it was given.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import yaml


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def shell_word(text: str, variables: set[str]) -> str:
    """*text* as one shell word, with $(VAR) for a defined VAR expanded as Kubernetes does."""
    parts, last = [], 0
    for match in _REFERENCE.finditer(text):
        if match.group(1) in variables:
            parts += [shlex.quote(text[last:match.start()]) if match.start() > last else "", f'"${{{match.group(1)}}}"']
            last = match.end()
    if last < len(text) or not parts:
        parts.append(shlex.quote(text[last:]))
    return "".join(parts)


def expand_references(container: dict) -> None:
    variables = {item["name"] for item in container.get("env", [])}
    words = container.get("command", []) + container.get("args", [])
    if not any(_REFERENCE.search(word) for word in words):
        return
    container["command"] = ["sh", "-c", "exec " + " ".join(shell_word(word, variables) for word in words)]
    container.pop("args", None)


def main() -> None:
    out, prefix = Path(sys.argv[1]), sys.argv[2]
    (out / "secrets").mkdir(parents=True, exist_ok=True)
    docs = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    for secret in (doc for doc in docs if doc["kind"] == "Secret"):
        (out / "secrets" / f"{secret['metadata']['name']}.json").write_text(json.dumps(secret["data"]))
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        renamed = {volume["name"]: f"{prefix}-{volume['name']}" for volume in spec.get("volumes", [])}
        for volume in spec.get("volumes", []):
            volume["name"] = renamed[volume["name"]]
        for container in spec["containers"]:
            container.pop("ports", None)
            expand_references(container)
            for mount in container.get("volumeMounts", []):
                mount["name"] = renamed[mount["name"]]
        (out / "volumes.txt").write_text("\n".join(renamed.values()))
    (out / "kube.yaml").write_text(yaml.safe_dump_all(deployments))
    print(" ".join(sorted({doc["kind"] for doc in docs})))


if __name__ == "__main__":
    main()
