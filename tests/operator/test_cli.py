"""``hermit-operator`` from the command line: exit statuses, --once, a real process
stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from hermit.redis_server import free_loopback_port
from hermit_operator.cli import main

from kubefake import LEASES, SELECTOR, MiB, seed_crawler
from operator_process import operator_env, start_operator


def run(args, env=None):
    return subprocess.run([sys.executable, "-m", "hermit_operator", *args], env=env or operator_env(),
                          capture_output=True, text=True, timeout=60)


def test_invalid_settings_exit_2_with_one_clear_message():
    result = run(["--memory-budget", "lots"], operator_env(HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES="0",
                                                        HERMIT_OPERATOR_MEMORY_SOURCE="prometheus"))
    assert result.returncode == 2
    assert result.stderr.startswith("hermit-operator: invalid settings:\n")
    assert "HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES='0': expected an integer, at least 1" in result.stderr
    assert "HERMIT_OPERATOR_MEMORY_SOURCE='prometheus'" in result.stderr
    assert "--memory-budget='lots'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unusable_kubeconfig_exits_2(tmp_path):
    missing = tmp_path / "nope"
    result = run(["--kubeconfig", str(missing), "--once"])
    assert result.returncode == 2
    assert f"cannot load the Kubernetes configuration from {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    garbage = tmp_path / "garbage"
    garbage.write_text("clusters: 5\n")
    assert run(["--kubeconfig", str(garbage), "--once"]).returncode == 2


def test_unknown_flags_exit_2():
    result = run(["--budget", "1Gi"])
    assert result.returncode == 2 and "unrecognized arguments: --budget" in result.stderr


def once(kubeconfig, *extra):
    return main(["--kubeconfig", str(kubeconfig), "--once", "--metrics-port", "0", "--health-port", "0",
                 "--selector", SELECTOR, "--memory-budget", "500Mi", "--min-age", "60", *extra])


def test_once_in_dry_run_says_what_it_would_do_and_evicts_nothing(cluster, kubeconfig, capsys):
    victim = seed_crawler(cluster)[0]
    assert once(kubeconfig, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "namespace crawl, memory from metrics-api (dry run: nothing evicted)" in out
    assert f"would evict: {victim}" in out
    assert "Deployment/crawler: 3 pod(s), budget 524288000 bytes, at most 1 at once" in out
    assert cluster.eviction_attempts() == []
    # It took the Lease for the pass and gave it back.
    assert not cluster.get(LEASES, "hermit-operator")["spec"].get("holderIdentity")


def test_once_evicts(cluster, kubeconfig, capsys):
    victim = seed_crawler(cluster)[0]
    assert once(kubeconfig, "--no-leader-election") == 0
    assert f"evicted: {victim}" in capsys.readouterr().out
    assert cluster.evicted() == [victim]
    assert cluster.get(LEASES, "hermit-operator") is None


def test_once_fails_with_1_when_the_pods_cannot_be_listed(cluster, kubeconfig):
    seed_crawler(cluster)
    cluster.fail("GET", r"/pods$", [403], message='pods is forbidden: User "system:serviceaccount:crawl:op" '
                                                  'cannot list resource "pods"')
    assert once(kubeconfig, "--no-leader-election") == 1
    assert cluster.eviction_attempts() == []


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except (urllib.error.URLError, ConnectionError) as error:
        return getattr(error, "code", None), ""


def test_a_real_process_recycles_then_stops_on_sigterm_releasing_its_lease(cluster, kubeconfig):
    victim = seed_crawler(cluster)[0]
    metrics_port, health_port = free_loopback_port(), free_loopback_port()
    process = start_operator(
        kubeconfig, HERMIT_OPERATOR_MEMORY_BUDGET_BYTES=str(500 * MiB), HERMIT_OPERATOR_SELECTOR=SELECTOR,
        HERMIT_OPERATOR_INTERVAL_SECONDS="0.2", HERMIT_OPERATOR_LISTEN_ADDRESS="127.0.0.1",
        HERMIT_OPERATOR_METRICS_PORT=str(metrics_port), HERMIT_OPERATOR_HEALTH_PORT=str(health_port),
        POD_NAME="hermit-operator-test-0")
    pause = threading.Event()
    try:
        metrics = ""
        for _ in range(300):  # a guard against hanging, not a measurement
            status, metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
            if status == 200 and 'hermit_operator_recycles_total{reason="memory_budget"} 1.0' in metrics:
                break
            assert process.poll() is None, process.stdout.read()
            pause.wait(0.1)
        assert 'hermit_operator_recycles_total{reason="memory_budget"} 1.0' in metrics
        assert "hermit_operator_build_info{" in metrics and "hermit_operator_leader 1.0" in metrics
        assert "process_resident_memory_bytes" in metrics
        assert get(f"http://127.0.0.1:{health_port}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{health_port}/readyz") == (200, "ok\n")
        assert cluster.get(LEASES, "hermit-operator")["spec"]["holderIdentity"] == "hermit-operator-test-0"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "SIGTERM: stopping" in output and "released the leader Lease" in output
    assert cluster.evicted() == [victim]
    assert not cluster.get(LEASES, "hermit-operator")["spec"].get("holderIdentity")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(flag):
    result = run([flag])
    assert result.returncode == 0 and "hermit-operator" in result.stdout
