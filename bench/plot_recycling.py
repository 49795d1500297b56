"""Draw ``docs/images/recycling-rss.png`` from ``bench/results/recycling.json``.

Worker RSS over time in the leaky crawl without a memory budget and with one: the
total of the 3 workers (top) and each worker (bottom), with the budget line.
matplotlib is not one of Hermit's dependencies: install it somewhere throwaway and
put that on the path, e.g.

    .venv/bin/python -m pip install --target /tmp/plotlib matplotlib
    PYTHONPATH=/tmp/plotlib .venv/bin/python bench/plot_recycling.py

(``bench/bench_recycling.py --plotlib /tmp/plotlib`` runs this at its end.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).parent
RESULTS = BENCH / "results" / "recycling.json"
PLOT = BENCH.parent / "docs" / "images" / "recycling-rss.png"
COLORS = {"no_budget": "tab:red", "budget": "tab:blue"}


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else RESULTS
    out = Path(argv[1]) if len(argv) > 1 else PLOT
    report = json.loads(results.read_text())
    params, runs = report["params"], report["rss_with_and_without_recycling"]
    budget = params["budget_mib"]
    labels = {
        "no_budget": "no budget",
        "budget": f"budget {budget} MiB ({runs['budget']['summary']['recycles']} recycles)",
    }
    fig, (total_ax, worker_ax) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, constrained_layout=True)
    for key in ("no_budget", "budget"):
        series, summary = runs[key]["series"], runs[key]["summary"]
        t = series["t_seconds"]
        label = f"{labels[key]}: {summary['pages_per_second']:.0f} pages/s"
        total_ax.plot(t, series["rss_mib_total"], color=COLORS[key], label=label)
        for index, (slot, values) in enumerate(sorted(series["rss_mib_by_worker"].items())):
            worker_ax.plot(t, [float("nan") if v is None else v for v in values], color=COLORS[key],
                           linewidth=1, alpha=0.8, label=labels[key] if index == 0 else None)
    worker_ax.axhline(budget, color="black", linestyle="--", linewidth=1, label=f"pool budget {budget} MiB")
    total_ax.set_ylabel(f"RSS of the {params['workers']} workers (MiB)")
    worker_ax.set_ylabel("RSS per worker (MiB)")
    worker_ax.set_xlabel("seconds since the crawl started")
    total_ax.set_title(f"Leaky spider, {params['leaky_pages']:,} demo-site pages, {params['workers']} local workers"
                       f" ({report['machine']['cpus']} CPUs)")
    for ax in (total_ax, worker_ax):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
