"""PNG figures of the MOSAIC study in the manner of the paper's Figures 1, 2, 3 and EC.1-EC.3.

One function per figure, each drawing from the study's ``results`` (as written to ``results.json``) into
one PNG file; :func:`write_figures` draws them all under a folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FIGURES",
    "figure1_logprob_reward",
    "figure2_revenue_utility",
    "figure3_pearson",
    "figure_ec1_utility_offset",
    "figure_ec2_3_scatter",
    "write_figures",
]

LABEL = {"baseline": "baseline (π_ref)", "context": "context-aware (π_con)"}
COLOR = {"baseline": "tab:blue", "context": "tab:orange"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _view(results: dict[str, Any]) -> tuple[dict[str, Any], list[int], list[str], str]:
    """``(summary, ms, methods, subtitle)`` of a study's results."""
    summary = results["summary"]
    ms = [int(m) for m in results["config"]["ms"]]
    methods = [m for m in ("baseline", "context") if m in summary]
    sub = f"{results['model']}, {results['n_instances']} instances, mean and 95% CI"
    return summary, ms, methods, sub


def _series(summary: dict[str, Any], meth: str, key: str, ms: list[int]):
    mean = np.array([summary[meth]["per_m"][str(m)][key][0] for m in ms], dtype=float)
    ci = np.array([summary[meth]["per_m"][str(m)][key][1] for m in ms], dtype=float)
    return mean, ci


def _line(ax, ms, mean, ci, label, color, style="-"):
    ax.plot(ms, mean, style, marker="o", color=color, label=label)
    ax.fill_between(ms, mean - ci, mean + ci, color=color, alpha=0.15)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure1_logprob_reward(results: dict[str, Any], path: Path) -> Path:
    """Figure 1: log-probability of the returned reply under π_r (up to a constant) and total normalized reward."""
    plt = _pyplot()
    summary, ms, methods, sub = _view(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for meth in methods:
        _line(axes[0], ms, *_series(summary, meth, "logprob_pi_r", ms), LABEL[meth], COLOR[meth])
        _line(axes[1], ms, *_series(summary, meth, "total_norm_reward", ms), LABEL[meth], COLOR[meth])
    if "baseline" in summary and summary["baseline"].get("proxy_logprob_ref"):
        axes[0].axhline(
            summary["baseline"]["proxy_logprob_ref"][0], color="gray", ls="--", label="proxy: one draw from the optimum"
        )
    axes[0].set(
        xscale="log", xlabel="candidates M", ylabel="log π_r(y|x) + log Z(x)", title="(a) returned reply under π_r"
    )
    axes[1].set(
        xscale="log", xlabel="candidates M", ylabel="Σ_i normalized reward", title="(b) advertiser normalized reward"
    )
    axes[1].axhline(0, color="k", lw=0.5)
    for ax in axes:
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure 1 (MOSAIC) — {sub}", fontsize=10)
    return _save(plt, fig, path)


def figure2_revenue_utility(results: dict[str, Any], path: Path) -> Path:
    """Figure 2: revenue and total normalized utility (with the offset)."""
    plt = _pyplot()
    summary, ms, methods, sub = _view(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for meth in methods:
        _line(axes[0], ms, *_series(summary, meth, "revenue", ms), LABEL[meth], COLOR[meth])
        _line(axes[1], ms, *_series(summary, meth, "total_norm_utility", ms), LABEL[meth], COLOR[meth])
    axes[0].set(xscale="log", xlabel="candidates M", ylabel="Σ_i payment", title="(a) revenue")
    axes[1].set(
        xscale="log", xlabel="candidates M", ylabel="Σ_i normalized utility", title="(b) advertiser normalized utility"
    )
    for ax in axes:
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure 2 (MOSAIC, offset payments) — {sub}", fontsize=10)
    return _save(plt, fig, path)


def figure3_pearson(results: dict[str, Any], path: Path) -> Path:
    """Figure 3: Pearson correlation of normalized reward and utility, with and without the offset."""
    plt = _pyplot()
    summary, ms, methods, _ = _view(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    for meth in methods:
        w = [summary[meth]["per_m"][str(m)]["pearson_reward_utility"] for m in ms]
        wo = [summary[meth]["per_m"][str(m)]["pearson_reward_utility_no_offset"] for m in ms]
        ax.plot(ms, w, "-o", color=COLOR[meth], label=f"{LABEL[meth]}, with offset")
        ax.plot(ms, wo, "--s", color=COLOR[meth], label=f"{LABEL[meth]}, without offset")
    ax.set(
        xscale="log",
        xlabel="candidates M",
        ylabel="Pearson r",
        title="Figure 3: reward–utility correlation",
        ylim=(-1.05, 1.05),
    )
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def figure_ec1_utility_offset(results: dict[str, Any], path: Path) -> Path:
    """Figure EC.1: utility gain from participation with and without the offset, one panel per version."""
    plt = _pyplot()
    summary, ms, methods, sub = _view(results)
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 4), squeeze=False)
    for ax, meth in zip(axes[0], methods, strict=True):
        _line(ax, ms, *_series(summary, meth, "total_norm_utility", ms), "with offset", "tab:green")
        _line(ax, ms, *_series(summary, meth, "total_norm_utility_no_offset", ms), "without offset", "tab:red", "--")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xscale="log", xlabel="candidates M", ylabel="Σ_i utility gain", title=LABEL[meth])
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure EC.1: utility gain from participation — {sub}", fontsize=10)
    return _save(plt, fig, path)


def _scatter_with_fit(ax, x: np.ndarray, y: np.ndarray, color: str) -> None:
    """Points and, when ``x`` varies, their least-squares line with its slope and R² in the legend."""
    ax.scatter(x, y, s=10, alpha=0.6, color=color)
    if x.size >= 2 and np.ptp(x) > 0:
        slope, icpt = np.polyfit(x, y, 1)
        pred = slope * x + icpt
        ss = float(((y - y.mean()) ** 2).sum())
        r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, slope * xs + icpt, "k-", lw=1, label=f"slope {slope:.2f}, R² {r2:.2f}")
        ax.legend(fontsize=8)


def figure_ec2_3_scatter(results: dict[str, Any], path: Path) -> Path:
    """Figures EC.2 and EC.3: advertisers' normalized reward against utility at the largest M, with and
    without the offset, with linear fits."""
    plt = _pyplot()
    _, ms, methods, _ = _view(results)
    m = str(max(ms))
    fig, axes = plt.subplots(len(methods), 2, figsize=(10, 4 * len(methods)), squeeze=False)
    for r, meth in enumerate(methods):
        cells = [rec["methods"][meth]["per_m"][m] for rec in results["instances"] if meth in rec["methods"]]
        x = np.array([v for c in cells for v in c["norm_reward"]])
        for col, (key, title) in enumerate(
            (("norm_utility", "with offset"), ("norm_utility_no_offset", "without offset"))
        ):
            y = np.array([v for c in cells for v in c[key]])
            ax = axes[r][col]
            _scatter_with_fit(ax, x, y, COLOR[meth])
            ax.set(xlabel="normalized reward", ylabel="utility gain", title=f"{LABEL[meth]}, {title}, M = {m}")
    return _save(plt, fig, path)


#: key -> (file name, the function drawing it)
FIGURES: dict[str, tuple[str, Callable[[dict[str, Any], Path], Path]]] = {
    "fig1": ("fig1_logprob_reward.png", figure1_logprob_reward),
    "fig2": ("fig2_revenue_utility.png", figure2_revenue_utility),
    "fig3": ("fig3_pearson.png", figure3_pearson),
    "figEC1": ("figEC1_utility_offset.png", figure_ec1_utility_offset),
    "figEC2_3": ("figEC2_3_scatter.png", figure_ec2_3_scatter),
}


def write_figures(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write fig1, fig2, fig3, figEC1 and figEC2_3 PNGs under ``out``; returns their paths."""
    out = Path(out)
    return {key: draw(results, out / name) for key, (name, draw) in FIGURES.items()}
