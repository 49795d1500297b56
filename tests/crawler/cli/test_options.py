"""Sizes on the command line: Kubernetes' spellings and the usual ones; clear errors otherwise."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hermit.cli import main
from hermit.cli.options import parse_size


@pytest.mark.parametrize("text, size", [
    ("123", 123), ("500Mi", 500 * 2**20), ("500MiB", 500 * 2**20), ("1.5Gi", int(1.5 * 2**30)),
    ("800M", 800 * 10**6), ("2G", 2 * 10**9), ("64ki", 64 * 1024), (" 10 mb ", 10 * 10**6),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "Mi", "5 parsecs", "-1Mi", "1e9", "12 34"])
def test_not_sizes(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_crawl_rejects_a_bad_budget_before_starting_anything():
    result = CliRunner().invoke(main, ["crawl", "--memory-budget", "lots"])
    assert result.exit_code == 2
    assert "Invalid value for '--memory-budget': not a size: 'lots'" in result.output
    zero = CliRunner().invoke(main, ["crawl", "--memory-budget", "0"])
    assert zero.exit_code == 2 and "must be positive" in zero.output
