"""Hermit: distributed, memory-safe Scrapy crawling on a shared Redis queue."""

from __future__ import annotations

__version__ = "0.1.0"
