"""The comparison table as terminal text, CSV rows and a figure (from ``compare.json``'s structure)."""

from __future__ import annotations

import csv
from pathlib import Path

from adspace.experiments.comparison.harness import METRICS

__all__ = ["ALL_COLUMNS", "COLUMNS", "fmt", "markdown_table", "table_rows", "write_csv", "write_figure"]

#: every metric: (key, header); the CSV and JSON hold them all
ALL_COLUMNS = [(k, label) for k, (label, _how) in METRICS.items()]
#: the terminal and docs table's columns (the reward and the sampled-click figures are in the CSV and JSON)
COLUMNS = [
    (k, label) for k, label in ALL_COLUMNS if k not in ("reward", "sampled_revenue", "sampled_reward", "ctr_per_ad")
]


def fmt(iv: dict | None, digits: int = 3) -> str:
    """``estimate [low, high]``; ``n/a`` when there is no estimate."""
    if not iv or iv.get("estimate") is None:
        return "n/a"
    est, lo, hi = iv["estimate"], iv.get("low"), iv.get("high")
    if lo is None or hi is None:
        return f"{est:.{digits}g}"
    return f"{est:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def table_rows(result: dict) -> list[list[str]]:
    """One row per mechanism: name, then each metric with its interval, then the incentive property."""
    rows = []
    for name, m in result["mechanisms"].items():
        rows.append([name] + [fmt(m.get(k)) for k, _ in COLUMNS] + [m["incentive"]])
    return rows


def write_csv(result: dict, path: Path) -> None:
    """One row per (mechanism, metric): estimate, low, high, n."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mechanism", "metric", "label", "estimate", "low", "high", "n", "incentive", "payment_rule"])
        for name, m in result["mechanisms"].items():
            for key, label in ALL_COLUMNS + [("chance_relevant_share", "chance share of relevant ads")]:
                iv = m.get(key) or {}
                w.writerow(
                    [name, key, label, iv.get("estimate"), iv.get("low"), iv.get("high"), iv.get("n")]
                    + [m["incentive"], m["payment_rule"]]
                )


def write_figure(result: dict, path: Path) -> None:
    """Six panels (value, revenue, relevance, Δ NLL, seconds, shading gain), bars with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(result["mechanisms"])
    panels = ["value", "revenue", "relevant_share", "delta_nll", "seconds", "shading_gain"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    labels = dict(COLUMNS)
    for ax, key in zip(axes, panels, strict=True):
        est, err = [], [[], []]
        for n in names:
            iv = result["mechanisms"][n].get(key) or {}
            e = iv.get("estimate")
            e = float("nan") if e is None else e
            lo = iv.get("low") if iv.get("low") is not None else e
            hi = iv.get("high") if iv.get("high") is not None else e
            est.append(e)
            err[0].append(max(0.0, e - lo) if np.isfinite(e) else 0.0)
            err[1].append(max(0.0, hi - e) if np.isfinite(e) else 0.0)
        ax.bar(range(len(names)), est, yerr=err, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), [n.replace(": ", ":\n") for n in names], rotation=30, ha="right", fontsize=7)
        ax.set_title(labels[key], fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
    fig.suptitle(
        f"Same {result['mechanisms'][names[0]]['queries']} held-out Webis queries; money in {result['currency']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(result: dict, keys: list[str] | None = None) -> str:
    """The table as Markdown (the one in docs/compare.md is this function's output on a measured run)."""
    cols = [(k, lab) for k, lab in COLUMNS if keys is None or k in keys]
    head = "| mechanism | " + " | ".join(lab for _, lab in cols) + " | incentive property |"
    sep = "|" + "---|" * (len(cols) + 2)
    lines = [head, sep]
    for name, m in result["mechanisms"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(m.get(k)) for k, _ in cols) + f" | {m['incentive']} |")
    return "\n".join(lines)
