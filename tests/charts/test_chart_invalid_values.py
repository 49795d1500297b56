"""Values the chart must refuse, each with a message that says what to fix."""

from __future__ import annotations

import pytest

CASES = {
    # name: (--set arguments, text the error must contain)
    "negative replicas": (["crawler.replicas=-1"], "at '/crawler/replicas': minimum: got -1, want 0"),
    "budget above the container limit": (
        ["crawler.memoryBudget.softBytes=900000000", "crawler.memoryBudget.hardBytes=2000000000"],
        "the hard limit (2000000000 bytes) must be below the container memory limit",
    ),
    "soft budget not below the hard limit": (
        ["crawler.memoryBudget.softBytes=800000000", "crawler.memoryBudget.hardBytes=700000000"],
        "the soft budget (800000000 bytes) must be below the hard limit (700000000 bytes)",
    ),
    "budget without a memory limit": (["crawler.resources.limits=null"], "needs crawler.resources.limits.memory"),
    "unknown top-level key": (["replicaCount=3"], "additional properties 'replicaCount' not allowed"),
    "unknown nested key": (["crawler.memoryBudget.soft=1"], "additional properties 'soft' not allowed"),
    "missing external Redis URL": (["redis.enabled=false"], "set externalRedis.url or externalRedis.existingSecret"),
    "a CA for the bundled Redis": (["externalRedis.caSecret=redis-ca"], "externalRedis.caSecret: set only when"),
    "external URL that is not a Redis URL": (
        ["redis.enabled=false", "externalRedis.url=http://redis:6379"], "externalRedis"),
    "both autoscalers": (["autoscaling.keda.enabled=true", "autoscaling.hpa.enabled=true"], "not both"),
    "grace period shorter than the drain": (
        ["crawler.terminationGracePeriodSeconds=60"], "must be above crawler.drainTimeoutSeconds"),
    "crawl name that breaks the Redis hash tag": (["crawl=my{crawl}"], "crawl"),
    "unreadable memory quantity": (["crawler.resources.limits.memory=lots"], "at '/crawler/resources/limits/memory'"),
    "password that does not fit in a URL": (["redis.auth.password=p@ss/word"], "redis.auth.password"),
    "operator without a budget": (["crawler.memoryBudget.enabled=false"], "operator.memoryBudgetBytes"),
    "keda without a Prometheus to read": (
        ["autoscaling.keda.enabled=true"], "autoscaling.keda.prometheus.serverAddress: KEDA reads hermit_crawl_schedulable_requests"),
    # The redis trigger watched the one-queue layout's lists, which no longer exist.
    "keda redis trigger": (
        ["autoscaling.keda.enabled=true", "autoscaling.keda.trigger=redis",
         "autoscaling.keda.prometheus.serverAddress=http://prometheus:9090"],
        "at '/autoscaling/keda/trigger': value must be 'prometheus'"),
    "keda redis trigger values": (
        ["autoscaling.keda.enabled=true", "autoscaling.keda.redis.priorities={0,1}",
         "autoscaling.keda.prometheus.serverAddress=http://prometheus:9090"],
        "autoscaling.keda.redis: removed in chart 0.2.0 with the redis trigger"),
    "keda redis values with KEDA off": (
        ["autoscaling.keda.redis.requestsPerReplica=1000"], "Delete autoscaling.keda.redis from your values"),
    "keda scaling to zero": (
        ["autoscaling.keda.enabled=true", "autoscaling.keda.minReplicas=0",
         "autoscaling.keda.prometheus.serverAddress=http://prometheus:9090"],
        "at '/autoscaling/keda/minReplicas': minimum: got 0, want 1"),
    "keda threshold of zero": (
        ["autoscaling.keda.prometheus.threshold=0"], "at '/autoscaling/keda/prometheus/threshold'"),
    "both monitors": (["metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"], "not both"),
    "scrape timeout that is no duration": (
        ["metrics.serviceMonitor.scrapeTimeout=10"], "at '/metrics/serviceMonitor/scrapeTimeout'"),
    "relative runbook base": (["prometheusRule.runbookBaseUrl=docs"], "at '/prometheusRule/runbookBaseUrl'"),
    "UID below zero": (["crawler.podSecurityContext.runAsUser=-1"], "at '/crawler/podSecurityContext/runAsUser'"),
    # The operator's Role would be bound to the namespace's default ServiceAccount.
    "operator ServiceAccount neither created nor named": (
        ["operator.serviceAccount.create=false"], "operator.serviceAccount.name: set it to an existing ServiceAccount"),
    "ServiceAccount name that is no Kubernetes name": (
        ["crawler.serviceAccount.name=Crawler_SA"], "at '/crawler/serviceAccount/name'"),
    "string where a number goes": (["crawler.leaseTimeoutSeconds=soon"], "at '/crawler/leaseTimeoutSeconds': got string, want number"),
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.replace(" ", "-"))
def test_invalid_values_are_refused(render, case):
    arguments, message = CASES[case]
    result = render(set=arguments)
    assert result.returncode != 0, f"{case}: rendered without complaint"
    assert message in result.stderr, result.stderr


def test_all_messages_at_once(render):
    result = render(set=["redis.enabled=false", "crawler.terminationGracePeriodSeconds=10"])
    assert result.returncode != 0
    assert "externalRedis" in result.stderr and "terminationGracePeriodSeconds" in result.stderr
