"""values.yaml documents every key, and values.schema.json types every key."""

from __future__ import annotations

import json
import re

import yaml
from chartlib import CHART, chart_readme

#: Values whose content is free-form (maps users fill, Kubernetes objects): documented
#: and typed as a whole.
OPAQUE = re.compile(r"(^|\.)(resources|settings|spiderArguments|extraEnv|commonLabels|commonAnnotations|"
                    r"podAnnotations|podLabels|nodeSelector|tolerations|affinity|topologySpreadConstraints|"
                    r"labels|metricsFrom|imagePullSecrets|accessModes|annotations|podSecurityContext|"
                    r"containerSecurityContext|relabelings|metricRelabelings)$")


#: Removed values the schema still accepts, only so that hermit.validateValues refuses
#: them with a message saying what replaced them (test_chart_invalid_values.py).
REMOVED = {"autoscaling.keda.redis"}


def leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not OPAQUE.search(path):
            yield from leaves(value, path + ".")
        else:
            yield path


def test_every_value_has_a_param_line():
    text = (CHART / "values.yaml").read_text()
    documented = {param.key for param in chart_readme().params(text)}
    values = yaml.safe_load(text)
    missing = [path for path in leaves(values) if path not in documented]
    assert not missing, f"values without a `## @param` line: {missing}"
    stale = documented - set(leaves(values))
    assert not stale, f"`## @param` lines for keys that don't exist: {sorted(stale)}"


def test_schema_types_every_value_and_allows_nothing_else():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node, schema_node, path):
        assert "type" in schema_node or "anyOf" in schema_node, path
        if isinstance(node, dict) and schema_node.get("properties") is not None and not OPAQUE.search(path.rstrip(".")):
            assert schema_node.get("additionalProperties") is False, f"{path or 'root'} accepts unknown keys"
            for key, value in node.items():
                assert key in schema_node["properties"], f"{path}{key} is not in values.schema.json"
                walk(value, schema_node["properties"][key], f"{path}{key}.")
            removed = {key for key in schema_node["properties"] if f"{path}{key}" in REMOVED}
            for key in removed:
                assert schema_node["properties"][key]["description"].startswith("Removed"), f"{path}{key}"
            assert set(schema_node["properties"]) - set(node) - removed <= {"global"}, \
                f"schema keys missing from values.yaml under {path or 'root'}: {set(schema_node['properties']) - set(node)}"

    walk(values, schema, "")
