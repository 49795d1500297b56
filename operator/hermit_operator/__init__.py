"""Hermit's Kubernetes operator: recycles crawler pods over their memory budget.

Every ``HERMIT_OPERATOR_INTERVAL_SECONDS`` it lists the crawler pods, reads their
memory, applies the shared recycling policy (``hermit_recycling``) per owner
Deployment and evicts the pods it picks through the Eviction API. See
``docs/operator.md``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hermit-operator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
