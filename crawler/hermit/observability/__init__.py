"""Observability of a worker: Prometheus metrics and a leak-diagnostics endpoint.

Two Scrapy extensions, both turned on by the add-on:

- :class:`hermit.observability.metrics.MetricsExtension` serves ``/metrics``
  (``HERMIT_METRICS_*``);
- :class:`hermit.observability.diagnostics.DiagnosticsExtension` serves what Scrapy's
  telnet console gave for leak hunting — ``prefs()``, ``get_oldest()``,
  ``iter_all()`` — plus tracemalloc, over HTTP (``HERMIT_DIAGNOSTICS_*``).

See ``docs/observability.md`` for the endpoints and ``docs/metrics.md`` for every metric
(generated from :func:`hermit.observability.metrics.register_worker_metrics`).
"""
