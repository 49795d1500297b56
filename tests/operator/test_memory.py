"""Memory readings: metrics.k8s.io's working set, a pod's own /metrics (a real
prometheus-client endpoint), and the fallback from one to the other."""

from __future__ import annotations

import http.server
import threading

import pytest

from hermit_operator.memory import MemoryReader, PodMetricsReader, rss_from_exposition, working_set_bytes
from hermit_operator.pods import Pod, parse_pod

from kubefake import DEPLOYMENTS, NAMESPACE, POD_METRICS, PODS, REPLICASETS, SELECTOR, MiB, deployment, pod, pod_metrics


def test_working_set_is_the_sum_of_the_containers():
    obj = pod_metrics(pod(None, name="a"), 400 * MiB, sidecar_bytes=30 * MiB)
    assert working_set_bytes(obj) == 430 * MiB


@pytest.mark.parametrize("containers", [None, [], "x", [{"name": "c"}], [{"usage": {"memory": "lots"}}],
                                        [{"usage": {"memory": "-5Mi"}}], [{"usage": {"memory": None}}],
                                        [{"usage": {"memory": "1Gi"}}, 7]])
def test_unreadable_pod_metrics_are_unknown(containers):
    assert working_set_bytes({"containers": containers}) is None


def test_rss_from_a_real_endpoint(metrics_endpoint):
    port = metrics_endpoint(733 * MiB)
    reader = PodMetricsReader()
    assert reader.read_one(Pod("crawler-a", ip="127.0.0.1", metrics_port=port, running_ready=True)) == 733 * MiB


@pytest.mark.parametrize("text", ["", "garbage {{{", "process_resident_memory_bytes NaN\n",
                                  "# TYPE x gauge\nx 1\n", "process_resident_memory_bytes -1\n"])
def test_expositions_without_a_usable_rss(text):
    assert rss_from_exposition(text) is None


def test_a_broken_or_silent_endpoint_is_unknown(metrics_endpoint):
    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status = 500 if self.path == "/metrics" and self.server.server_port % 2 else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"<html>not metrics</html>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = http.server.HTTPServer(("127.0.0.1", 0), Garbage)
    closed_port = closed.server_port
    closed.server_close()  # nobody listens there any more
    try:
        reader = PodMetricsReader(timeout_seconds=2)
        assert reader.read_one(Pod("a", ip="127.0.0.1", metrics_port=server.server_port)) is None
        assert reader.read_one(Pod("b", ip="127.0.0.1", metrics_port=closed_port)) is None
    finally:
        server.shutdown()
        server.server_close()


def test_the_url_uses_the_pods_port_or_the_default():
    reader = PodMetricsReader(default_port=9410)
    assert reader.url(Pod("a", ip="10.1.2.3", metrics_port=9999)) == "http://10.1.2.3:9999/metrics"
    assert reader.url(Pod("a", ip="10.1.2.3")) == "http://10.1.2.3:9410/metrics"
    assert reader.url(Pod("a", ip="fd00::17")) == "http://[fd00::17]:9410/metrics"


def seed(cluster, metrics_endpoint, memory_mib):
    """Pods whose containers name a metrics port served by a real prometheus-client."""
    dep, rs = deployment("crawler")
    cluster.put(DEPLOYMENTS, dep)
    cluster.put(REPLICASETS, rs)
    names = []
    for mib in memory_mib:
        obj = cluster.put(PODS, pod(rs, ip="127.0.0.1", metrics_port=metrics_endpoint(mib * MiB)))
        cluster.put(POD_METRICS, pod_metrics(obj, 1 * MiB))  # metrics.k8s.io says otherwise
        names.append(obj["metadata"]["name"])
    return names


def test_pod_metrics_source_reads_the_pods_own_endpoints(cluster, operator, metrics_endpoint):
    names = seed(cluster, metrics_endpoint, [900, 300, 200])
    op = operator(memory_source="pod-metrics", max_concurrent=1)
    report = op.reconcile()
    assert report.memory_source == "pod-metrics"
    assert report.evicted == [names[0]]
    assert not [r for r in cluster.requests() if r.url.path.startswith("/apis/metrics.k8s.io")]
    assert op.sample("hermit_operator_pods_without_memory") == 0


@pytest.mark.parametrize("state", ["down", "absent"])
def test_falls_back_to_pod_metrics_when_the_metrics_api_is_unavailable(cluster, operator, metrics_endpoint, state):
    names = seed(cluster, metrics_endpoint, [300, 950, 200])
    cluster.metrics_api = state
    op = operator(max_concurrent=1)
    report = op.reconcile()
    assert report.memory_source == "pod-metrics"
    assert report.evicted == [names[1]]
    assert op.sample("hermit_operator_memory_source_fallback") == 1

    cluster.metrics_api = "up"  # back: its (tiny) working sets are used again
    report = op.reconcile()
    assert report.memory_source == "metrics-api" and report.evicted == []
    assert op.sample("hermit_operator_memory_source_fallback") == 0


def test_metrics_api_readings_by_pod(cluster, kube):
    a = cluster.put(PODS, pod(None, name="a"))
    b = cluster.put(PODS, pod(None, name="b"))
    cluster.put(POD_METRICS, pod_metrics(a, 100 * MiB, sidecar_bytes=MiB))
    cluster.put(POD_METRICS, pod_metrics(pod(None, name="gone"), 100 * MiB))  # metrics of a deleted pod
    reader = MemoryReader(kube, "metrics-api", PodMetricsReader())
    reading = reader.read(NAMESPACE, SELECTOR, [parse_pod(a), parse_pod(b)])
    assert reading.source == "metrics-api"
    assert reading.bytes_by_pod == {"a": 101 * MiB, "b": None}


def test_unknown_source_is_refused(kube):
    with pytest.raises(ValueError):
        MemoryReader(kube, "cadvisor", PodMetricsReader())
