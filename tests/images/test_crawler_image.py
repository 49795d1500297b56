"""The crawler image, run for real: non-root, read-only, tini, SIGTERM drains, the
two-line user Dockerfile, and the chart itself under `podman kube play`."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from imagelib import CHART, OPERATOR_IMAGE, REPO, podman

from hermit.crawl_status import read_crawl_status
from hermit.items.export import export_items
from hermit.keys import CrawlKeys
from tests.scrapy_project import write_scrapy_project

#: How Kubernetes runs the container with the chart's security context.
LOCKED_DOWN = [
    "--network", "host", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/home/hermit",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
]
EXIT_STOPPED = 5  # hermit.worker.exit_codes.EXIT_STOPPED: drained after SIGTERM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def items_in(client: redis.Redis, keys: CrawlKeys) -> list[dict]:
    out = io.BytesIO()
    export_items(client, keys, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_runs_as_non_root(crawler_image):
    config = json.loads(podman("image", "inspect", crawler_image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tini", "--"]
    done = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, crawler_image, "sh", "-c", "id -u; id -g; cat /proc/1/cmdline | tr '\\0' ' '")
    uid, gid, pid1 = done.stdout.splitlines()
    assert (uid, gid) == ("10001", "10001")
    assert pid1.startswith("tini -- ")  # tini is PID 1 and forwards signals


def test_hermit_help_on_a_read_only_root(crawler_image):
    done = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, crawler_image, "hermit", "--help")
    assert "worker" in done.stdout and "seed" in done.stdout
    version = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, crawler_image, "hermit", "--version").stdout
    assert "0.1.0" in version


def test_healthcheck_is_declared(crawler_image):
    config = json.loads(podman("image", "inspect", crawler_image).stdout)[0]
    check = config.get("Healthcheck") or config["Config"].get("Healthcheck")
    assert check and "/healthz" in " ".join(check["Test"])


# Large enough that the worker is still crawling when it is stopped.
@pytest.mark.parametrize("demo_site", [2000], indirect=True)
def test_sigterm_drains_and_nothing_is_lost(crawler_image, container_names, redis_url, demo_site):
    """A crawling container gets SIGTERM: it returns its leases and exits 5 within the
    grace period; a second container then finishes the crawl with no page lost."""
    crawl, worker = "img", "img-worker-1"
    keys = CrawlKeys(crawl)
    client = redis.Redis.from_url(redis_url)
    metrics_port = free_port()
    name = container_names("worker")
    podman(
        "run", "-d", "--name", name, *LOCKED_DOWN, "-e", f"HERMIT_METRICS_PORT={metrics_port}",
        crawler_image, "hermit", "worker", "demo", "--redis", redis_url, "--crawl", crawl, "-a", f"url={demo_site.url}",
        "-s", f"HERMIT_WORKER_ID={worker}", "-s", "CONCURRENT_REQUESTS=4",
        "-s", f"HERMIT_METRICS_PORT={metrics_port}", "-s", "HERMIT_METRICS_HOST=127.0.0.1",
        "-s", "HERMIT_DIAGNOSTICS_PORT=0", "-s", "HERMIT_DRAIN_TIMEOUT_SECONDS=30",
    )
    wait_for(lambda: int(client.hget(keys.stats, "acked") or 0) >= 20, 120, "the worker to crawl 20 pages")
    # The image's HEALTHCHECK (the worker's /healthz) passes while it crawls.
    health = wait_for(lambda: podman("healthcheck", "run", name, check=False).returncode == 0, 60,
                      "the HEALTHCHECK to pass")
    assert health
    # It holds work when it is told to stop (4 requests in flight, no delay: always, all but briefly).
    assert wait_for(lambda: client.hlen(keys.leases(worker)) > 0, 30, "the worker to hold leases")

    # `podman stop -t 60` = SIGTERM, then SIGKILL after 60 s, like a 60 s grace period.
    podman("stop", "-t", "60", name, timeout=120)
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == EXIT_STOPPED, podman("logs", "--tail", "30", name).stderr
    assert client.hlen(keys.leases(worker)) == 0  # every lease returned at once, none left to expire
    assert client.zscore(keys.workers, worker) is None
    status = read_crawl_status(client, keys)
    assert status.queue.queued > 0 and status.queue.counters.get("expired", 0) == 0

    # A fresh container finishes the crawl: every page of the site, none lost.
    finisher = container_names("finisher")
    done = podman(
        "run", "--name", finisher, "--no-healthcheck", *LOCKED_DOWN, crawler_image,
        "hermit", "worker", "demo", "--redis", redis_url, "--crawl", crawl, "-a", f"url={demo_site.url}",
        "-s", "HERMIT_IDLE_CLOSE_SECONDS=2", "-s", "HERMIT_METRICS_ENABLED=false", "-s", "HERMIT_DIAGNOSTICS_ENABLED=false",
        check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    urls = [item["url"] for item in items_in(client, keys)]
    assert set(urls) == demo_site.site.expected_urls(demo_site.url)
    # A page whose items were written but whose ack was not may come twice; SIGTERM
    # drained cleanly, so none did.
    assert len(urls) == len(set(urls))


USER_SPIDER = '''import scrapy


class TitlesSpider(scrapy.Spider):
    """A user's spider: the title of each seed page (seeds come from `hermit seed`)."""

    name = "titles"

    def parse(self, response):
        yield {"url": response.url, "title": response.css("title::text").get()}
'''


def test_two_line_user_dockerfile(crawler_image, container_names, redis_url, demo_site, tmp_path):
    """`FROM hermit-crawler` + `COPY myproject /app` is a working image of the user's spiders."""
    # The user's own project: nothing of Hermit in it.
    write_scrapy_project(tmp_path / "context" / "myproject", "books", {"spiders/titles.py": USER_SPIDER}, addon=False)
    dockerfile = tmp_path / "context" / "Dockerfile"
    dockerfile.write_text(f"FROM {crawler_image}\nCOPY myproject /app\n")
    image = "localhost/hermit-test-user-project:latest"
    podman("build", "--format", "docker", "-t", image, str(tmp_path / "context"))
    try:
        listed = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, image, "scrapy", "list").stdout.split()
        assert listed == ["titles"]
        seeds = [f"{demo_site.url}p/{n}.html" for n in range(1, 6)]
        podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, image, "hermit", "seed", "--redis", redis_url,
               "--crawl", "books", *[arg for url in seeds for arg in ("--url", url)])
        done = podman(
            "run", "--rm", "--no-healthcheck", *LOCKED_DOWN, image, "hermit", "worker", "titles",
            "--redis", redis_url, "--crawl", "books", "-s", "HERMIT_IDLE_CLOSE_SECONDS=2",
            "-s", "HERMIT_METRICS_ENABLED=false", "-s", "HERMIT_DIAGNOSTICS_ENABLED=false", check=False, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        items = items_in(redis.Redis.from_url(redis_url), CrawlKeys("books"))
        assert sorted(item["url"] for item in items) == sorted(seeds)
        assert all(item["title"] for item in items)
    finally:
        podman("rmi", "-f", image, check=False)


def test_operator_image():
    """The real hermit-operator package in its image: non-root, tini, a healthcheck, and no Scrapy."""
    done = subprocess.run(["make", "image-operator"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    config = json.loads(podman("image", "inspect", OPERATOR_IMAGE).stdout)[0]
    assert config["Config"]["User"] == "10001:10001" and config["Config"]["Entrypoint"] == ["tini", "--"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    shown = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, OPERATOR_IMAGE, "hermit-operator", "--help")
    assert "--dry-run" in shown.stdout
    no_scrapy = podman("run", "--rm", "--no-healthcheck", *LOCKED_DOWN, OPERATOR_IMAGE, "python3", "-c", "import scrapy",
                       check=False)
    assert no_scrapy.returncode != 0 and "No module named 'scrapy'" in no_scrapy.stderr


def _kube_play_manifests(redis_url: str, site_url: str, tmp_path: Path) -> Path:
    """helm template with ci/podman-values.yaml, adapted by kube_play_adapt.py; its Secrets
    are created as podman secrets."""
    helm = os.environ.get("HELM") or str(REPO / ".venv-k8s" / "helm-v4.1.4" / "helm")
    yaml_python = os.environ.get("K8S_PYTHON") or str(REPO / ".venv-k8s" / "bin" / "python")
    rendered = subprocess.run(
        [helm, "template", "crawl", str(CHART), "--namespace", "crawl", "-f", str(CHART / "ci" / "podman-values.yaml"),
         "--set", f"externalRedis.url={redis_url}", "--set", f"crawler.spiderArguments.url={site_url}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    adapted = subprocess.run(
        [yaml_python, str(Path(__file__).parent / "kube_play_adapt.py"), str(tmp_path), f"hermit-test-{os.getpid()}"],
        input=rendered, capture_output=True, text=True, timeout=120, check=True,
    )
    assert adapted.stdout.split() == ["Deployment", "Secret", "ServiceAccount"]
    for data in sorted((tmp_path / "secrets").glob("*.json")):
        podman("secret", "rm", data.stem, check=False)
        podman("secret", "create", data.stem, str(data))
    return tmp_path / "kube.yaml"


@pytest.mark.parametrize("demo_site", [400], indirect=True)
def test_chart_under_podman_kube_play_crawls_to_the_end(crawler_image, redis_url, demo_site, tmp_path):
    """The chart's crawler Deployment (2 replicas, its security context, env, args and
    Secret wiring) run by `podman kube play`, against Redis and the demo site on loopback."""
    manifest = _kube_play_manifests(redis_url, demo_site.url, tmp_path)
    keys = CrawlKeys("demo")
    client = redis.Redis.from_url(redis_url)
    expected = demo_site.site.expected_urls(demo_site.url)
    try:
        podman("kube", "play", "--network", "host", str(manifest), timeout=300)
        pods = json.loads(podman("pod", "ps", "--format", "json").stdout)
        assert sorted(p["Name"] for p in pods if p["Name"].startswith("crawl-hermit-crawler")) == [
            "crawl-hermit-crawler-pod-0", "crawl-hermit-crawler-pod-1"]
        # Each worker's id is its pod's name (downward API + $(POD_NAME) in the args).
        def registered():
            names = {w.decode() for w in client.zrange(keys.workers, 0, -1)}
            return names if len(names) >= 2 else None

        workers = wait_for(registered, 120, "both workers to register")
        assert all(w.startswith("crawl-hermit-crawler-pod-") for w in workers), workers

        def finished():
            status = read_crawl_status(client, keys)
            return status.queue.done and status.items >= len(expected)

        wait_for(finished, 600, "the crawl to finish", interval=1)
    except AssertionError:
        for pod in (0, 1):
            print(podman("logs", "--tail", "40", f"crawl-hermit-crawler-pod-{pod}-crawler", check=False).stderr)
        raise
    finally:
        # SIGTERM to both workers (they drain and exit 5), then the pods go.
        podman("kube", "down", str(manifest), check=False, timeout=300)
        for volume in (tmp_path / "volumes.txt").read_text().split():
            podman("volume", "rm", "-f", volume, check=False)
        for secret in (tmp_path / "secrets").glob("*.json"):
            podman("secret", "rm", secret.stem, check=False)
    assert not [p for p in json.loads(podman("pod", "ps", "--format", "json").stdout)
                if p["Name"].startswith("crawl-hermit-crawler")]
    urls = [item["url"] for item in items_in(client, keys)]
    assert set(urls) == expected
    expired = read_crawl_status(client, keys).queue.counters.get("expired", 0)
    assert len(urls) - len(set(urls)) <= expired
