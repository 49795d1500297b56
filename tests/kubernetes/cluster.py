"""A real Kubernetes control plane on 127.0.0.1 for the tests, and small helpers over it.

``Cluster.start`` runs ``kwokctl create cluster --runtime binary`` with the binaries
``tools/kubernetes/build.sh`` built from source: etcd, kube-apiserver (secure port, RBAC,
the default admission plugins, service-account token signing), kube-controller-manager,
kube-scheduler, the kwok controller (emulated nodes: scheduled pods become Running and
Ready without containers) and metrics-server (serving kwok's emulated pod usage as
metrics.k8s.io). Every component listens on 127.0.0.1 on ports chosen free, and keeps
its data and PKI in a temporary directory. ``Cluster.stop`` deletes it all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hermit"
TOOLS = REPO / "tools" / "kubernetes"

#: Poll intervals and the default patience: generous, a loaded 2-core machine is slow.
POLL = 1.0
PATIENCE = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def module_dir(wrapper: str, path: str) -> Path:
    """The folder of a module pinned in tools/kubernetes/<wrapper>/go.mod, in Go's module
    cache (downloaded and checked against go.sum if missing)."""
    env = dict(os.environ, GOFLAGS="-mod=readonly", GOTOOLCHAIN="local")
    out = subprocess.run(["go", "mod", "download", "-json", path], cwd=TOOLS / wrapper, env=env,
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return Path(json.loads(out)["Dir"])


def wait_for(what: str, check: Callable[[], Any], timeout: float = PATIENCE, interval: float = POLL) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except subprocess.CalledProcessError as error:
            last = f"{error}: {error.stderr or ''}".strip()
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Cluster:
    """One control plane. ``kubectl``, ``get`` and ``helm`` run against it as cluster admin."""

    def __init__(self, bin_dir: Path, workdir: Path, helm: str, name: str = "hermit") -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.helm_binary = helm
        self.name = name
        self.kubeconfig = workdir / "kubeconfig.yaml"
        self.env = {
            **os.environ,
            "KWOK_WORKDIR": str(workdir / "kwok"),
            "KUBECONFIG": str(self.kubeconfig),
            # helm keeps its caches and config away from the user's
            "HELM_CACHE_HOME": str(workdir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(workdir / "helm" / "config"),
            "HELM_DATA_HOME": str(workdir / "helm" / "data"),
            # kubectl keeps its discovery cache with the cluster, not in ~/.kube
            "KUBECACHEDIR": str(workdir / "kube-cache"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self.env.pop(proxy, None)
        self.started = False

    # ---- processes -------------------------------------------------------------------

    def binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} is missing: run tools/kubernetes/build.sh (make kubernetes-binaries)")
        return str(path.resolve())

    def kube_version(self) -> str:
        out = subprocess.run([self.binary("kube-apiserver"), "--version"], capture_output=True, text=True,
                             check=True).stdout
        return out.split()[-1]  # "Kubernetes v1.37.2"

    def etcd_version(self) -> str:
        out = subprocess.run([self.binary("etcd"), "--version"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":")[1].strip() for line in out.splitlines() if line.startswith("etcd Version"))

    def config(self) -> dict:
        ports = {key: free_port() for key in (
            "kubeApiserverPort", "etcdPort", "etcdPeerPort", "kubeControllerManagerPort", "kubeSchedulerPort",
            "kwokControllerPort", "metricsServerPort")}
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": self.kube_version(),
                "etcdVersion": self.etcd_version(),
                "bindAddress": "127.0.0.1",
                "securePort": True,
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "enableMetricsServer": True,
                "cacheDir": str(self.workdir / "kwok-cache"),
                "quietPull": True,
                "kubeApiserverBinary": self.binary("kube-apiserver"),
                "kubeControllerManagerBinary": self.binary("kube-controller-manager"),
                "kubeSchedulerBinary": self.binary("kube-scheduler"),
                "kubectlBinary": self.binary("kubectl"),
                "etcdBinary": self.binary("etcd"),
                "kwokControllerBinary": self.binary("kwok"),
                "metricsServerBinary": self.binary("metrics-server"),
                # metrics-server's own manifests (RBAC, Service, APIService), from its module:
                # kwokctl builds them with kubectl kustomize and points the APIService at the
                # metrics-server process on 127.0.0.1
                "metricsServerManifests": [
                    str(module_dir("metrics-server", "sigs.k8s.io/metrics-server") / "manifests/overlays/release")],
                **ports,
            },
        }

    def stages(self) -> list[dict]:
        """kwok's default behaviours (its "fast" stages, from its module), except that a pod
        deleted gracefully stays terminating for the duration its annotation
        ``pod-delete.stage.kwok.x-k8s.io/delay`` says (e.g. "5s"; at once without it), as a
        worker draining under a kubelet would."""
        root = module_dir("kwok", "sigs.k8s.io/kwok") / "kustomize" / "stage"
        stages = [yaml.safe_load((root / path).read_text()) for path in (
            "node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
            "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml")]
        delete = yaml.safe_load((root / "pod/fast/pod-delete.yaml").read_text())
        delete["spec"]["delay"] = {"durationMilliseconds": 0, "durationFrom": {
            "expressionFrom": '.metadata.annotations["pod-delete.stage.kwok.x-k8s.io/delay"]'}}
        return [*stages, delete]

    def kwokctl(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary("kwokctl"), "--name", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def start(self, nodes: int = 2) -> Cluster:
        config = self.workdir / "kwokctl.yaml"
        config.write_text(yaml.safe_dump_all([self.config(), *self.stages()]))
        self.started = True
        try:
            # --kubeconfig: kwokctl would otherwise add the cluster to ~/.kube/config
            self.kwokctl("create", "cluster", "--config", str(config), "--kubeconfig", str(self.kubeconfig),
                         "--wait", "5m", timeout=900)
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"kwokctl create cluster failed:\n{error.stdout}\n{error.stderr}\n{self.logs()}") from None
        for index in range(nodes):
            self.add_node(f"kwok-node-{index}", index)
        wait_for("the API server to be ready", lambda: self.kubectl("get", "--raw", "/readyz").strip() == "ok")
        wait_for(f"{nodes} Ready nodes", lambda: len([
            n for n in self.get("nodes")["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        ]) == nodes)
        # The default ServiceAccount (namespaced pods need one) comes from the controller manager.
        wait_for("the default ServiceAccount", lambda: self.kubectl("get", "serviceaccount", "default",
                                                                     "-n", "default", check=False).strip())
        return self

    def add_node(self, name: str, index: int) -> None:
        """A Node that kwok manages (its annotation). Its address is 127.0.0.1, where the kwok
        controller serves every node's kubelet endpoints (each under its own path), so that
        metrics-server scrapes the emulated usage over loopback."""
        self.kubectl("create", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0",
                                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource"},
                "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
                           "type": "kwok"},
            },
            "spec": {"podCIDR": f"10.0.{index}.0/24", "podCIDRs": [f"10.0.{index}.0/24"]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
            },
        }))

    def logs(self) -> str:
        logs = self.workdir / "kwok" / "clusters" / self.name / "logs"
        if not logs.is_dir():
            return "(no component logs)"
        return "\n".join(f"== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                         for log in sorted(logs.glob("*.log")))

    def stop(self) -> None:
        if self.started:
            self.kwokctl("delete", "cluster", timeout=300, check=False)
            self.started = False

    # ---- clients ---------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300,
                kubeconfig: Path | None = None) -> str:
        env = dict(self.env, KUBECONFIG=str(kubeconfig or self.kubeconfig))
        result = subprocess.run([self.binary("kubectl"), *args], env=env, input=input, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode:
            raise subprocess.CalledProcessError(result.returncode, ["kubectl", *args], result.stdout, result.stderr)
        return result.stdout if check else result.stdout + result.stderr

    def run_kubectl(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, KUBECONFIG=str(kubeconfig or self.kubeconfig))
        return subprocess.run([self.binary("kubectl"), *args], env=env, capture_output=True, text=True, timeout=120)

    def get(self, *args: str, namespace: str | None = None) -> dict:
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *ns, "-o", "json"))

    def apply(self, manifest: dict | str | Sequence[dict], namespace: str | None = None) -> str:
        if isinstance(manifest, dict):
            text = yaml.safe_dump(manifest)
        elif isinstance(manifest, str):
            text = manifest
        else:
            text = yaml.safe_dump_all(list(manifest))
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", "--server-side", "-f", "-", *ns, input=text)

    def helm(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([self.helm_binary, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        self.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels or {}}})
        wait_for(f"the default ServiceAccount in {name}",
                 lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).startswith("NAME"))
        return name

    def server(self) -> tuple[str, str]:
        """(API server URL, its CA certificate as PEM) from the admin kubeconfig."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        if "certificate-authority-data" in cluster:
            import base64
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        else:
            ca = Path(cluster["certificate-authority"]).read_text()
        return cluster["server"], ca

    def token_kubeconfig(self, path: Path, namespace: str, service_account: str, duration: str = "2h") -> Path:
        """A kubeconfig authenticating as a ServiceAccount with a token from the TokenRequest API."""
        token = self.kubectl("create", "token", service_account, "-n", namespace, "--duration", duration).strip()
        server, ca = self.server()
        ca_file = path.with_suffix(".ca.crt")
        ca_file.write_text(ca)
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "hermit", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "hermit", "user": service_account,
                                                    "namespace": namespace}}],
            "current-context": "sa",
        }))
        return path


def storage_for_redis(cluster: Cluster, name: str, namespace: str, claim: str) -> None:
    """A PersistentVolume for the Redis claim, as an administrator would provide (no
    provisioner runs here), reserved for that claim; the controller manager's binder
    binds them. Nothing is ever written to it: kwok runs no containers."""
    cluster.apply({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": "8Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                 "claimRef": {"namespace": namespace, "name": claim},
                 "hostPath": {"path": f"/var/tmp/{name}"}},
    })


def conditions(obj: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
