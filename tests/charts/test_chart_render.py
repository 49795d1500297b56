"""helm lint, helm template of every ci/ values file, and kubernetes-validate on the output."""

from __future__ import annotations

import subprocess

import pytest
from chartlib import CHART, CI_VALUES, KUBERNETES_VERSIONS

#: Custom resources whose schemas kubernetes-validate does not ship (it warns about
#: them); their shape is asserted in test_chart_manifests.py instead.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"}


def test_every_values_file_is_covered():
    names = {path.name for path in CI_VALUES}
    assert names >= {
        "default-values.yaml", "minimal-values.yaml", "external-redis-values.yaml", "monitoring-values.yaml",
        "keda-values.yaml", "hpa-values.yaml", "networkpolicy-values.yaml", "podman-values.yaml",
    }


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "no-values")
def test_helm_lint_strict(helm, values):
    command = [helm, "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    # (helm lint turns the chart's `fail` into a log line: validateValues is checked by
    # the template tests and test_chart_invalid_values.py, not here.)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_rendered_manifests_validate_strictly(render, venv_tool, tmp_path, values, version):
    result = render(values)
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(result.stdout)
    done = subprocess.run(
        [venv_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifest)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            assert line.startswith("WARN") and any(f"kind {kind} " in line for kind in CUSTOM_KINDS), line


def test_seeds_from_a_file(render, tmp_path):
    seeds = tmp_path / "urls.txt"
    seeds.write_text("# start here\nhttps://example.com/\nhttps://example.com/a\n")
    result = render(set=["spider=books"], set_file=[f"seeds={seeds}"])
    config = result.one("ConfigMap", "-seed")
    assert config["data"]["seeds.txt"].splitlines() == seeds.read_text().splitlines()
    job = result.one("Job", "-seed")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["tini", "--", "hermit", "seed"]
    assert container["args"][-1] == "/seeds/seeds.txt"
    assert {"name": "HERMIT_CRAWL", "value": "books"} in container["env"]


def test_no_seed_job_without_seeds(render):
    result = render()
    assert not result.kind("Job")
    assert not [d for d in result.kind("ConfigMap") if d["metadata"]["name"].endswith("-seed")]
