"""The operator's settings: environment variables (what the Helm chart sets) and flags.

Each setting has one ``HERMIT_OPERATOR_*`` variable and one command-line flag; a flag
wins over the variable, the variable over the default. Everything is checked at
start-up and every problem is reported at once (:class:`SettingsError`), so a bad
value never surfaces as a crash in the middle of a reconcile.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity

#: The selector of the Helm chart's crawler pods, minus the release-specific labels.
DEFAULT_SELECTOR = "app.kubernetes.io/component=crawler"
MEMORY_SOURCES = ("metrics-api", "pod-metrics")
PREFERENCES = {"oldest": "oldest", "most-over-budget": "most_over_budget"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}"
_LABEL_VALUE = rf"({_LABEL_NAME})?"
_REQUIREMENT = re.compile(
    rf"\s*(!\s*{_LABEL_KEY}|{_LABEL_KEY}(\s*(==|=|!=)\s*{_LABEL_VALUE}"
    rf"|\s+(in|notin)\s*\(\s*{_LABEL_VALUE}(\s*,\s*{_LABEL_VALUE})*\s*\))?)\s*"
)


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` has one line per setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Settings:
    """Validated settings; see :data:`OPTIONS` for each one's variable, flag and default."""

    namespace: str | None = None  # None: the service account's, or the kubeconfig context's
    selector: str = DEFAULT_SELECTOR
    budget_bytes: int | None = None  # None: only Deployments annotated with a budget are recycled
    max_concurrent: int = 1
    min_age_seconds: float = 60.0
    min_serving: int = 1
    cooldown_seconds: float = 30.0
    prefer: str = "oldest"  # hermit_recycling's spelling: "oldest" or "most_over_budget"
    memory_source: str = "metrics-api"
    pod_metrics_port: int = 9410
    dry_run: bool = False
    interval_seconds: float = 15.0
    metrics_port: int = 9420
    health_port: int = 9421
    listen_address: str = "0.0.0.0"
    leader_election: bool = True
    lease_name: str = "hermit-operator"
    lease_duration_seconds: float = 15.0
    identity: str = ""
    kubeconfig: str | None = None
    context: str | None = None
    log_level: str = "INFO"


# ---- value parsers: text -> value, or ValueError("what is expected") ---------------------

def parse_bytes(text: str) -> int:
    """Bytes from a Kubernetes quantity (``400Mi``, ``1Gi``, ``500M``) or a plain number."""
    try:
        value = parse_quantity(text.strip())
    except (ValueError, InvalidOperation, TypeError):
        raise ValueError("a size in bytes or a Kubernetes quantity such as 400Mi or 1Gi") from None
    if value < 1:
        raise ValueError("a positive size, at least 1 byte")
    return int(value)


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _number(cast: Callable[[str], Any], low: float, high: float | None = None, what: str = "") -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = cast(text.strip())
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError
        except (ValueError, InvalidOperation):
            raise ValueError(what) from None
        if value < low or (high is not None and value > high):
            raise ValueError(what)
        return value

    return parse


def _choice(choices: Sequence[str], mapping: Mapping[str, str] | None = None) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return mapping[value] if mapping else value

    return parse


def parse_selector(text: str) -> str:
    """A label selector as the API server takes it (``a=b,c!=d,e in (f,g),!h``)."""
    value = text.strip()
    if not value:
        raise ValueError("a label selector; an empty one would select every pod in the namespace")
    for requirement in _split_selector(value):
        if not _REQUIREMENT.fullmatch(requirement):
            raise ValueError(f"a label selector such as app=crawler,tier!=test ({requirement.strip()!r} is not valid)")
    return value


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _dns(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if not pattern.fullmatch(value):
            raise ValueError(what)
        return value

    return parse


def _text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("a non-empty value")
    return value


def _optional_text(text: str) -> str | None:
    return text.strip() or None


_PORT = _number(int, 0, 65535, "a TCP port, 1-65535, or 0 to turn it off")


@dataclass(frozen=True)
class Option:
    field: str
    env: str
    flag: str
    parse: Callable[[str], Any]
    help: str
    boolean: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("namespace", "HERMIT_OPERATOR_NAMESPACE", "--namespace",
           _dns(_DNS_LABEL, "a namespace name (lowercase letters, digits and '-')"),
           "namespace of the crawler pods (default: the operator's own, or the kubeconfig context's)"),
    Option("selector", "HERMIT_OPERATOR_SELECTOR", "--selector", parse_selector,
           f"label selector of the crawler pods (default: {DEFAULT_SELECTOR})"),
    Option("budget_bytes", "HERMIT_OPERATOR_MEMORY_BUDGET_BYTES", "--memory-budget", parse_bytes,
           "memory budget per pod, bytes or a quantity such as 400Mi; Deployments may override it "
           "with the annotation hermit.dev/memory-budget (default: none, only annotated Deployments)"),
    Option("max_concurrent", "HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES", "--max-concurrent-recycles",
           _number(int, 1, None, "an integer, at least 1"),
           "pods of one Deployment recycling at once, at most; annotation "
           "hermit.dev/max-concurrent-recycles overrides it (default: 1)"),
    Option("min_age_seconds", "HERMIT_OPERATOR_MIN_AGE_SECONDS", "--min-age",
           _number(float, 0, None, "seconds, 0 or more"),
           "a pod younger than this is never recycled: its memory settles after start-up (default: 60)"),
    Option("min_serving", "HERMIT_OPERATOR_MIN_SERVING", "--min-serving",
           _number(int, 0, None, "an integer, 0 or more"),
           "never leave fewer than this many pods of a Deployment Running and Ready (default: 1)"),
    Option("cooldown_seconds", "HERMIT_OPERATOR_COOLDOWN_SECONDS", "--cooldown",
           _number(float, 0, None, "seconds, 0 or more"),
           "after a recycle, the next one in the same Deployment waits this long (default: 30)"),
    Option("prefer", "HERMIT_OPERATOR_PREFER", "--prefer", _choice(tuple(PREFERENCES), PREFERENCES),
           "which over-budget pods go first: oldest or most-over-budget (default: oldest)"),
    Option("memory_source", "HERMIT_OPERATOR_MEMORY_SOURCE", "--memory-source", _choice(MEMORY_SOURCES),
           "metrics-api (metrics.k8s.io working set; the pods' own /metrics when it is unavailable) "
           "or pod-metrics (process_resident_memory_bytes from each pod) (default: metrics-api)"),
    Option("pod_metrics_port", "HERMIT_OPERATOR_POD_METRICS_PORT", "--pod-metrics-port",
           _number(int, 1, 65535, "a TCP port, 1-65535"),
           "the pods' metrics port when a pod names none (a container port 'metrics' or "
           "HERMIT_METRICS_PORT in its env) (default: 9410)"),
    Option("dry_run", "HERMIT_OPERATOR_DRY_RUN", "--dry-run", parse_bool,
           "only report (log, Events, metrics) what would be recycled; evict nothing", boolean=True),
    Option("interval_seconds", "HERMIT_OPERATOR_INTERVAL_SECONDS", "--interval",
           _number(float, 0.01, None, "seconds, more than 0"),
           "seconds between two reconciles (default: 15)"),
    Option("metrics_port", "HERMIT_OPERATOR_METRICS_PORT", "--metrics-port", _PORT,
           "port of the operator's own /metrics, 0 = off (default: 9420)"),
    Option("health_port", "HERMIT_OPERATOR_HEALTH_PORT", "--health-port", _PORT,
           "port of /healthz and /readyz, 0 = off (default: 9421)"),
    Option("listen_address", "HERMIT_OPERATOR_LISTEN_ADDRESS", "--listen-address", _text,
           "address the metrics and health ports listen on (default: 0.0.0.0)"),
    Option("leader_election", "HERMIT_OPERATOR_LEADER_ELECTION", "--leader-election", parse_bool,
           "elect a leader through a coordination.k8s.io Lease; only the leader evicts (default: on)",
           boolean=True),
    Option("lease_name", "HERMIT_OPERATOR_LEASE_NAME", "--lease-name",
           _dns(_DNS_SUBDOMAIN, "a Kubernetes object name (lowercase letters, digits, '-' and '.')"),
           "name of the leader-election Lease; one per operator installation (default: hermit-operator)"),
    Option("lease_duration_seconds", "HERMIT_OPERATOR_LEASE_DURATION_SECONDS", "--lease-duration",
           _number(float, 1, None, "seconds, at least 1"),
           "a leader that has not renewed for this long is replaced; it renews every third of it (default: 15)"),
    Option("identity", "HERMIT_OPERATOR_IDENTITY", "--identity", _text,
           "this instance's name in the Lease and in Events (default: $POD_NAME, else host name and pid)"),
    Option("kubeconfig", "HERMIT_OPERATOR_KUBECONFIG", "--kubeconfig", _optional_text,
           "kubeconfig file to use instead of the in-cluster service account"),
    Option("context", "HERMIT_OPERATOR_CONTEXT", "--context", _optional_text,
           "kubeconfig context (default: the file's current context)"),
    Option("log_level", "HERMIT_OPERATOR_LOG_LEVEL", "--log-level",
           lambda text: _choice(tuple(level.lower() for level in LOG_LEVELS))(text).upper(),
           "DEBUG, INFO, WARNING or ERROR (default: INFO)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags stay ``None`` so the environment applies."""
    for option in OPTIONS:
        if option.boolean:
            parser.add_argument(option.flag, dest=option.field, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{option.help} [{option.env}]")
        else:
            parser.add_argument(option.flag, dest=option.field, metavar="VALUE", default=None,
                                help=f"{option.help} [{option.env}]")


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (``args``), then ``environ``, then defaults; raises SettingsError."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for option in OPTIONS:
        raw = getattr(args, option.field, None) if args is not None else None
        source = option.flag
        if isinstance(raw, bool):  # --flag / --no-flag
            values[option.field] = raw
            continue
        if raw is None:
            raw, source = environ.get(option.env), option.env
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(str(raw))
        except ValueError as exc:
            problems.append(f"{source}={raw!r}: expected {exc}")
    values.setdefault("identity", default_identity(environ))
    if not problems:
        problems.extend(_cross_checks(values))
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    defaults = {f.name: f.default for f in fields(Settings)}
    merged = {**defaults, **values}
    problems = []
    if merged["metrics_port"] and merged["metrics_port"] == merged["health_port"]:
        problems.append(
            f"HERMIT_OPERATOR_METRICS_PORT and HERMIT_OPERATOR_HEALTH_PORT are both {merged['metrics_port']}: "
            "they must differ"
        )
    return problems


def default_identity(environ: Mapping[str, str]) -> str:
    """``$POD_NAME`` (set by the chart from the downward API), else host name and pid."""
    pod = (environ.get("POD_NAME") or "").strip()
    return pod or f"{socket.gethostname()}-{os.getpid()}"


def describe(settings: Settings) -> str:
    """One log line with the settings that shape decisions."""
    budget = "none (annotated Deployments only)" if settings.budget_bytes is None else f"{settings.budget_bytes} B"
    return (
        f"namespace={settings.namespace or '(auto)'} selector={settings.selector!r} budget={budget} "
        f"max_concurrent={settings.max_concurrent} min_age={settings.min_age_seconds:g}s "
        f"min_serving={settings.min_serving} cooldown={settings.cooldown_seconds:g}s prefer={settings.prefer} "
        f"memory_source={settings.memory_source} interval={settings.interval_seconds:g}s "
        f"dry_run={settings.dry_run} leader_election={settings.leader_election} identity={settings.identity}"
    )


__all__ = [
    "DEFAULT_SELECTOR", "OPTIONS", "Settings", "SettingsError", "add_arguments", "describe", "load",
    "parse_bool", "parse_bytes", "parse_selector",
]
