"""charts/hermit/README.md is what tools/chart_readme.py makes of values.yaml's `## @param` lines."""

from __future__ import annotations

import shutil

import pytest
import yaml
from chartlib import CHART, chart_readme


def test_the_readme_is_up_to_date():
    readme = chart_readme()
    assert (CHART / "README.md").read_text() == readme.render(), "charts/hermit/README.md is stale: run `make chart-readme`"


def test_every_param_is_in_the_readme_with_its_default():
    readme = chart_readme()
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = [line for line in readme.render().splitlines() if line.startswith("| `")]
    params = readme.params(text)
    assert len(rows) == len(params) > 100
    by_key = {row.split("`")[1]: row for row in rows}
    assert "`10001`" not in by_key["crawler.podSecurityContext"]  # a map is shown whole, as JSON
    assert '"runAsUser": 10001' in by_key["crawler.podSecurityContext"]
    assert by_key["crawler.replicas"].endswith("| `2` |") and by_key["crawl"].endswith('| `""` |')
    assert by_key["crawler.terminationGracePeriodSeconds"].endswith("| `null` |")
    for param in params:
        assert readme.default_of(values, param.key) is not None or "`null`" in by_key[param.key]
    # Sections become headings, in the order of values.yaml.
    headings = [line[4:] for line in readme.render().splitlines() if line.startswith("### ")]
    assert headings[:3] == ["Common", "Crawl", "Images"] and "Network policy" in headings


def test_a_changed_description_makes_the_readme_stale(tmp_path):
    chart = tmp_path / "hermit"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("templates", "files", "ci"))
    readme = chart_readme()
    before = readme.render(chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("## @param spider The spider", "## @param spider Which spider"))
    after = readme.render(chart)
    assert after != before and "| `spider` | Which spider" in after


def test_bad_param_lines_are_named(tmp_path):
    readme = chart_readme()
    with pytest.raises(ValueError, match="line 2: expected `## @section TITLE` or `## @param KEY DESCRIPTION`"):
        readme.params("## @section Common\n## @parm spider The spider\nspider: demo\n")
    with pytest.raises(KeyError, match="`## @param spyder` documents a key that values.yaml does not have"):
        readme.default_of({"spider": "demo"}, "spyder")
