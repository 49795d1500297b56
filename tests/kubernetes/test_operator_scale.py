"""``kubectl scale`` on the crawler Deployment while hermit-operator recycles its pods.

Every worker starts over budget; the operator (as the chart's ServiceAccount, with the
chart's settings: at most 1 recycling at once) replaces them one by one while the test
scales the Deployment up and then down. Deleted crawler pods stay terminating for a few
seconds (kwok's pod-delete stage honours the pod annotation
``pod-delete.stage.kwok.x-k8s.io/delay``), as draining workers would under a kubelet, so
that "at once" and "terminating" mean something. A thread samples the pods all along.
"""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import pytest
from cluster import CHART, Cluster, wait_for
from operator_runner import USAGE, Operator

NAMESPACE = "hermit-scale"
RELEASE = "scale"
CRAWLER = f"{RELEASE}-hermit-crawler"
OPERATOR = f"{RELEASE}-hermit-operator"
TERMINATING_FOR = "6s"


def parse_time(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


class Sampler(threading.Thread):
    """Lists the crawler pods every few hundred milliseconds; remembers when each pod was
    first seen terminating, and every sample's set of terminating pods."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.first_terminating: dict[str, float] = {}
        self.samples: list[tuple[float, set[str]]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pods = self.cluster.get("pods", "-l", "app.kubernetes.io/component=crawler",
                                        namespace=NAMESPACE)["items"]
            except Exception as error:  # noqa: BLE001 - a missed sample is not a failure
                self.errors.append(str(error))
                continue
            now = time.time()
            terminating = {p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")}
            for name in terminating:
                self.first_terminating.setdefault(name, now)
            self.samples.append((now, terminating))
            self.stop.wait(0.3)


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory) -> dict:
    cluster.namespace(NAMESPACE)
    values = tmp_path_factory.mktemp("scale") / "values.yaml"
    # replicas null: the chart leaves them to `kubectl scale` (docs/kubernetes.md, Workers)
    values.write_text(
        "crawler:\n  replicas: null\n"
        f"  podAnnotations:\n    pod-delete.stage.kwok.x-k8s.io/delay: \"{TERMINATING_FOR}\"\n"
        "redis:\n  persistence:\n    enabled: false\n")
    cluster.helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values), "--wait",
                 "--timeout", "10m")
    return cluster.get("deployment", OPERATOR, namespace=NAMESPACE)


def live(cluster: Cluster) -> list[dict]:
    pods = cluster.get("pods", "-l", "app.kubernetes.io/component=crawler", namespace=NAMESPACE)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def scale(cluster: Cluster, replicas: int) -> None:
    cluster.kubectl("scale", "deployment", CRAWLER, "-n", NAMESPACE, f"--replicas={replicas}")


def test_scaling_up_and_down_while_the_operator_recycles(cluster: Cluster, release: dict, tmp_path: Path) -> None:
    crawler = cluster.get("deployment", CRAWLER, namespace=NAMESPACE)
    assert crawler["spec"]["replicas"] == 1  # the chart left the count out: the API's default
    scale(cluster, 4)
    wait_for("4 Ready workers", lambda: len([p for p in live(cluster) if ready(p)]) == 4)
    originals = {p["metadata"]["name"] for p in live(cluster)}
    for name in originals:
        cluster.kubectl("annotate", "pod", name, "-n", NAMESPACE, f"{USAGE}=900Mi", "--overwrite")
    wait_for("metrics.k8s.io to report every worker over budget", lambda: sum(
        line.split()[2] == "900Mi" for line in cluster.kubectl(
            "top", "pod", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=crawler", "--no-headers",
            check=False).splitlines() if len(line.split()) == 3) == 4)
    kubeconfig = cluster.token_kubeconfig(tmp_path / "kubeconfig", NAMESPACE, OPERATOR)

    sampler = Sampler(cluster)
    sampler.start()
    operator = Operator(release, kubeconfig, "scale-operator", tmp_path, HERMIT_OPERATOR_INTERVAL_SECONDS="1")
    try:
        max_at_once = int(operator.env["HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES"])
        assert max_at_once == 1  # the chart's default
        wait_for("the first recycle", lambda: operator.metric('hermit_operator_evictions_total{result="evicted"}'),
                 timeout=180)
        scale(cluster, 6)
        wait_for("6 live workers", lambda: len(live(cluster)) == 6)
        wait_for("another recycle", lambda: (operator.metric('hermit_operator_evictions_total{result="evicted"}')
                                             or 0) >= 2, timeout=180)
        scale(cluster, 3)

        def settled():
            pods = cluster.get("pods", "-l", "app.kubernetes.io/component=crawler", namespace=NAMESPACE)["items"]
            return (len(pods) == 3 and all(ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods)
                    and not {p["metadata"]["name"] for p in pods} & originals)
        wait_for("3 workers, none of the originals over budget", settled, timeout=300)
        time.sleep(3)  # a few more reconciles: nothing left to do
    finally:
        sampler.stop.set()
        sampler.join(timeout=30)
    evicted_total = operator.metric('hermit_operator_evictions_total{result="evicted"}')
    assert operator.stop() == 0, operator.output()[-3000:]

    # The operator never fought the scale: the count is the last one set, and it has no
    # right to change it anyway (see test_operator_rbac).
    assert cluster.get("deployment", CRAWLER, namespace=NAMESPACE)["spec"]["replicas"] == 3

    recycled = [e for e in cluster.get("events", "--field-selector", "reason=OverMemoryBudget",
                                       namespace=NAMESPACE)["items"] if e["involvedObject"]["kind"] == "Pod"]
    names = [e["involvedObject"]["name"] for e in recycled]
    assert len(names) == len(set(names)) == evicted_total, (names, evicted_total)  # each pod once
    assert set(names) <= originals  # only pods over budget (the replacements are not)
    assert 2 <= len(names) <= len(originals)

    # Never more than max-concurrent-recycles evicted pods terminating at once.
    for at, terminating in sampler.samples:
        assert len(terminating & set(names)) <= max_at_once, (at, terminating)
    assert any(terminating & set(names) for _, terminating in sampler.samples)  # the sampler saw them drain

    # Never a pod that was already terminating (deleted by the scale-down): each evicted pod
    # was first seen terminating after the operator's Event for it (give or take 3 s: the
    # Event is posted just after the eviction; a pod deleted by the scale-down stays
    # terminating for 6 s before it).
    for event in recycled:
        name = event["involvedObject"]["name"]
        stamp = event.get("eventTime") or event.get("firstTimestamp") or event["metadata"]["creationTimestamp"]
        seen = sampler.first_terminating.get(name)
        assert seen is None or seen >= parse_time(stamp) - 3.0, (name, stamp, seen)
    # The scale-down deleted some pods itself: the operator left those to the ReplicaSet.
    scaled_down = set(sampler.first_terminating) - set(names)
    assert scaled_down, sampler.first_terminating
