"""PNG figures of the MOSAIC study in the manner of the paper's Figures 1, 2, 3 and EC.1-EC.3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABEL = {"baseline": "baseline (π_ref)", "context": "context-aware (π_con)"}
COLOR = {"baseline": "tab:blue", "context": "tab:orange"}


def _series(summary: dict[str, Any], meth: str, key: str, ms: list[int]):
    mean = np.array([summary[meth]["per_m"][str(m)][key][0] for m in ms], dtype=float)
    ci = np.array([summary[meth]["per_m"][str(m)][key][1] for m in ms], dtype=float)
    return mean, ci


def _line(ax, ms, mean, ci, label, color, style="-"):
    ax.plot(ms, mean, style, marker="o", color=color, label=label)
    ax.fill_between(ms, mean - ci, mean + ci, color=color, alpha=0.15)


def write_figures(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write fig1, fig2, fig3, figEC1 and figEC2_3 PNGs under ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    summary = results["summary"]
    ms = [int(m) for m in results["config"]["ms"]]
    methods = [m for m in ("baseline", "context") if m in summary]
    n = results["n_instances"]
    sub = f"{results['model']}, {n} instances, mean and 95% CI"
    paths: dict[str, Path] = {}

    # Figure 1: log-prob under π_r (up to a constant) and total normalized reward
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
    fig.tight_layout()
    paths["fig1"] = out / "fig1_logprob_reward.png"
    fig.savefig(paths["fig1"], dpi=110)
    plt.close(fig)

    # Figure 2: revenue and total normalized utility (with the offset)
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
    fig.tight_layout()
    paths["fig2"] = out / "fig2_revenue_utility.png"
    fig.savefig(paths["fig2"], dpi=110)
    plt.close(fig)

    # Figure 3: Pearson correlation of normalized reward and utility, with / without offset
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
    fig.tight_layout()
    paths["fig3"] = out / "fig3_pearson.png"
    fig.savefig(paths["fig3"], dpi=110)
    plt.close(fig)

    # Figure EC.1: utility gain with and without the offset, per version
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 4), squeeze=False)
    for ax, meth in zip(axes[0], methods, strict=True):
        _line(ax, ms, *_series(summary, meth, "total_norm_utility", ms), "with offset", "tab:green")
        _line(ax, ms, *_series(summary, meth, "total_norm_utility_no_offset", ms), "without offset", "tab:red", "--")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xscale="log", xlabel="candidates M", ylabel="Σ_i utility gain", title=LABEL[meth])
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure EC.1: utility gain from participation — {sub}", fontsize=10)
    fig.tight_layout()
    paths["figEC1"] = out / "figEC1_utility_offset.png"
    fig.savefig(paths["figEC1"], dpi=110)
    plt.close(fig)

    # Figures EC.2 / EC.3: scatter of normalized reward vs utility at the largest M, with linear fits
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
            ax.scatter(x, y, s=10, alpha=0.6, color=COLOR[meth])
            if x.size >= 2 and np.ptp(x) > 0:
                slope, icpt = np.polyfit(x, y, 1)
                pred = slope * x + icpt
                ss = float(((y - y.mean()) ** 2).sum())
                r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
                xs = np.linspace(x.min(), x.max(), 2)
                ax.plot(xs, slope * xs + icpt, "k-", lw=1, label=f"slope {slope:.2f}, R² {r2:.2f}")
                ax.legend(fontsize=8)
            ax.set(xlabel="normalized reward", ylabel="utility gain", title=f"{LABEL[meth]}, {title}, M = {m}")
    fig.tight_layout()
    paths["figEC2_3"] = out / "figEC2_3_scatter.png"
    fig.savefig(paths["figEC2_3"], dpi=110)
    plt.close(fig)
    return paths
