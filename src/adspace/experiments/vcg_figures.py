"""Figures 1-3 of J. Kim, "Formally Verified VCG Mechanisms for Advertising in Embedding Spaces" (2026),
computed by adspace's own kernel, and the slice/projection views of a market.

Every number drawn here comes from :mod:`adspace.mechanisms.vcg` (``clear``, ``score``) or
:mod:`adspace.mechanisms.geometry` (the paraboloid lift); nothing re-implements scoring.

* **Figure 1** (:func:`figure1_data`): the allocation along a 1-D axis is the upper envelope of the
  score parabolas ``log b − (x − c)²/σ²``; the winning intervals (found by ``clear`` on a grid and
  refined by bisection on ``clear``) are the power-diagram cells.
* **Figure 2** (:func:`figure2_data`): a tight advertiser T and a wide one W (unequal σ). Downstairs
  (on the axis) T's cell is an interval with two boundary points; upstairs, after the paraboloid lift
  ``x ↦ (x, x²)`` with the lifted sites and weights of the paper's §5.2, the boundary is one straight
  radical axis, which cuts the parabola exactly at the two boundary points.
* **Figure 3** (:func:`figure3_data`): shrinking σ at a fixed center against a wide rival with an
  equal bid: the score at the center stays ``log b`` while the territory collapses to the point.

The same helpers give the dashboard its views of a live market: :func:`slice_scores` (every
campaign's score along the line through two points, the envelope and the winner of each point) and
:func:`pca_2d` (a 2-D projection of centers and queries).

Data functions are pure NumPy; :func:`write_figures` draws them with matplotlib's Agg canvas (no
display, no global pyplot state).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms import geometry
from adspace.mechanisms.vcg import clear, score

__all__ = [
    "Interval",
    "Figure1",
    "Figure2",
    "Figure3",
    "FIGURE_FILES",
    "winning_intervals",
    "slice_scores",
    "pca_2d",
    "figure1_data",
    "figure2_data",
    "figure3_data",
    "write_figures",
]

FIGURE_FILES = {
    "figure1": "figure1_envelope.png",
    "figure2": "figure2_lift.png",
    "figure3": "figure3_shrinking_sigma.png",
}

# Colours of advertisers, in order (colour-blind safe "tab10" subset).
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


# --------------------------------------------------------------------------------------------------
# Lines through the embedding space: scores, envelope, winning intervals
# --------------------------------------------------------------------------------------------------


def _line(a: NDArray[np.float64], b: NDArray[np.float64], t: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(t, dtype=np.float64)
    return a[None, :] + t[:, None] * (b - a)[None, :]


def slice_scores(
    centers: ArrayLike,
    sigmas: ArrayLike,
    bids: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    t: ArrayLike,
    *,
    eligible: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Scores of every advertiser along ``x(t) = a + t (b − a)``, the upper envelope and its argmax.

    Returns ``(scores, envelope, winner)``: ``scores`` ``(T, N)`` from :func:`adspace.mechanisms.vcg.score`
    (``-inf`` for ineligible advertisers), ``envelope`` ``(T,)`` the winner's score and ``winner``
    ``(T,)`` the index :func:`adspace.mechanisms.vcg.clear` allocates each point to (``-1`` for none).
    """
    c = np.asarray(centers, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    bb = np.asarray(bids, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    pts = _line(a, b, t)
    sc = np.asarray(score(pts[:, None, :], c[None, :, :], s[None, :], bb[None, :]), dtype=np.float64)
    if eligible is not None:
        sc = np.where(np.asarray(eligible, dtype=bool)[None, :], sc, -np.inf)
    out = clear(pts, c, s, bb, eligible=None if eligible is None else np.asarray(eligible, dtype=bool))
    return sc, out.score, out.winner


@dataclass(frozen=True)
class Interval:
    """A maximal interval ``[lo, hi]`` of the line parameter on which ``winner`` wins (``-1``: nobody)."""

    winner: int
    lo: float
    hi: float


def winning_intervals(
    centers: ArrayLike,
    sigmas: ArrayLike,
    bids: ArrayLike,
    lo: float,
    hi: float,
    *,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    n: int = 2001,
    eligible: ArrayLike | None = None,
    iterations: int = 60,
) -> list[Interval]:
    """Winning intervals of ``clear`` along a line, boundaries refined by bisection.

    With ``a``/``b`` omitted the advertisers live on a 1-D axis (``centers`` of shape ``(N,)`` or
    ``(N, 1)``) and the parameter is the coordinate itself. A grid of ``n`` points is cleared by
    :func:`adspace.mechanisms.vcg.clear`; between two grid points whose winners differ, the boundary
    is located by bisection, clearing the midpoint each time. Cells narrower than the grid step can
    be missed; choose ``n`` accordingly.
    """
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    s = np.asarray(sigmas, dtype=np.float64)
    bb = np.asarray(bids, dtype=np.float64)
    a = np.zeros(c.shape[1]) if a is None else np.asarray(a, dtype=np.float64)
    b = np.ones(c.shape[1]) if b is None else np.asarray(b, dtype=np.float64)
    elig = None if eligible is None else np.asarray(eligible, dtype=bool)

    def who(t: NDArray[np.float64]) -> NDArray[np.int64]:
        return clear(_line(a, b, t), c, s, bb, eligible=elig).winner

    grid = np.linspace(lo, hi, n)
    w = who(grid)
    out: list[Interval] = []
    start = float(lo)
    for i in np.flatnonzero(w[1:] != w[:-1]):
        left, right = float(grid[i]), float(grid[i + 1])
        wl = int(w[i])
        for _ in range(iterations):
            mid = 0.5 * (left + right)
            if mid in (left, right):
                break
            if int(who(np.array([mid]))[0]) == wl:
                left = mid
            else:
                right = mid
        boundary = 0.5 * (left + right)
        out.append(Interval(wl, start, boundary))
        start = boundary
    out.append(Interval(int(w[-1]), start, float(hi)))
    return out


def pca_2d(points: ArrayLike, extra: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64], dict]:
    """Project ``points`` ``(N, d)`` on their two principal axes; ``extra`` ``(M, d)`` on the same axes.

    Returns ``(xy_points, xy_extra, info)`` with ``info = {"explained": [r1, r2], "mean": m, "axes": A}``
    (``explained``: the share of the points' variance along each axis; a point ``p`` projects to
    ``(p − m) @ A.T``). With fewer than two distinct
    points the missing axes are zero. Signs are fixed so each axis' largest loading is positive
    (the picture does not flip between calls).
    """
    p = np.asarray(points, dtype=np.float64)
    e = np.zeros((0, p.shape[1] if p.ndim == 2 else 0)) if extra is None else np.asarray(extra, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        d = e.shape[1] if e.ndim == 2 else 0
        info = {"explained": [0.0, 0.0], "mean": np.zeros(d), "axes": np.zeros((2, d))}
        return np.zeros((0, 2)), np.zeros((e.shape[0], 2)), info
    mean = p.mean(axis=0)
    pc = p - mean
    _, sv, vt = np.linalg.svd(pc, full_matrices=False)
    axes = np.zeros((2, p.shape[1]))
    k = min(2, vt.shape[0])
    axes[:k] = vt[:k]
    for i in range(k):
        j = int(np.argmax(np.abs(axes[i])))
        if axes[i, j] < 0:
            axes[i] = -axes[i]
    total = float(np.sum(sv**2))
    explained = [float(sv[i] ** 2 / total) if i < len(sv) and total > 0 else 0.0 for i in range(2)]
    return (
        pc @ axes.T,
        (e - mean) @ axes.T if e.size else np.zeros((e.shape[0], 2)),
        {"explained": explained, "mean": mean, "axes": axes},
    )


# --------------------------------------------------------------------------------------------------
# Figure 1: the upper envelope of score parabolas
# --------------------------------------------------------------------------------------------------


@dataclass
class Figure1:
    names: list[str]
    centers: list[float]
    sigmas: list[float]
    bids: list[float]
    x: NDArray[np.float64] = field(repr=False)
    scores: NDArray[np.float64] = field(repr=False)  # (G, N)
    envelope: NDArray[np.float64] = field(repr=False)  # (G,)
    winner: NDArray[np.int64] = field(repr=False)  # (G,)
    intervals: list[Interval]


def figure1_data(n: int = 1201) -> Figure1:
    """Four advertisers on a line: a higher bid raises a parabola, a wider σ flattens it."""
    names = ["A", "B", "C", "D"]
    centers = [-1.8, -0.3, 0.9, 2.2]
    sigmas = [0.9, 0.6, 1.6, 0.8]
    bids = [math.exp(1.0), math.exp(1.6), math.exp(0.8), math.exp(1.2)]
    lo, hi = -3.5, 3.5
    x = np.linspace(lo, hi, n)
    c = np.asarray(centers)[:, None]
    sc, env, win = slice_scores(c, sigmas, bids, [0.0], [1.0], x)
    return Figure1(
        names=names,
        centers=centers,
        sigmas=sigmas,
        bids=bids,
        x=x,
        scores=sc,
        envelope=env,
        winner=win,
        intervals=winning_intervals(c, sigmas, bids, lo, hi),
    )


# --------------------------------------------------------------------------------------------------
# Figure 2: the paraboloid lift for unequal σ
# --------------------------------------------------------------------------------------------------


@dataclass
class Figure2:
    names: list[str]
    centers: list[float]
    sigmas: list[float]
    bids: list[float]
    sites: NDArray[np.float64] = field(repr=False)  # (2, 2) lifted sites (x, z)
    weights: NDArray[np.float64] = field(repr=False)  # (2,) lifted weights
    #: The radical axis {p : normal · p = offset} in the lifted plane (x, z).
    normal: NDArray[np.float64] = field(repr=False)
    offset: float = 0.0
    #: Where the radical axis cuts the parabola z = x² (ascending): the boundary points downstairs.
    lift_boundaries: list[float] = field(default_factory=list)
    #: The same boundaries found by clearing the axis (bisection on clear's winner).
    intervals: list[Interval] = field(default_factory=list)
    x: NDArray[np.float64] = field(default=None, repr=False)
    scores: NDArray[np.float64] = field(default=None, repr=False)  # (G, 2)
    winner: NDArray[np.int64] = field(default=None, repr=False)
    lifted_power: NDArray[np.float64] = field(default=None, repr=False)  # (G, 2) lifted power distances


def radical_axis(centers: ArrayLike, sigmas: ArrayLike, bids: ArrayLike) -> tuple[NDArray[np.float64], float]:
    """The radical axis of two advertisers' lifted sites and weights (the paper's §5.2).

    Points ``p`` of the lifted space with equal power distance to both:
    ``‖p − s₀‖² − w₀ = ‖p − s₁‖² − w₁``, i.e. ``2 (s₁ − s₀)·p = ‖s₁‖² − ‖s₀‖² − w₁ + w₀``,
    a hyperplane. Returns ``(normal, offset)`` with ``normal·p = offset``.
    """
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    sites = geometry.lifted_site(c, np.asarray(sigmas, dtype=np.float64))
    w = geometry.lifted_weight(c, np.asarray(sigmas, dtype=np.float64), np.asarray(bids, dtype=np.float64))
    normal = 2.0 * (sites[1] - sites[0])
    offset = float(sites[1] @ sites[1] - sites[0] @ sites[0] - w[1] + w[0])
    return normal, offset


def figure2_data(n: int = 1201) -> Figure2:
    """A tight advertiser T and a wide advertiser W with the same bid."""
    names = ["T", "W"]
    centers = [0.5, -0.3]
    sigmas = [0.45, 1.5]
    bids = [math.exp(1.0), math.exp(1.0)]
    c = np.asarray(centers)[:, None]
    sites = geometry.lifted_site(c, np.asarray(sigmas))
    weights = geometry.lifted_weight(c, np.asarray(sigmas), np.asarray(bids))
    normal, offset = radical_axis(centers, sigmas, bids)
    # normal = (n_x, n_z); on the parabola z = x²: n_z x² + n_x x − offset = 0.
    roots = np.roots([normal[1], normal[0], -offset])
    roots = sorted(float(r.real) for r in roots if abs(r.imag) < 1e-12)
    lo, hi = -1.6, 2.9
    x = np.linspace(lo, hi, n)
    sc, _, win = slice_scores(c, sigmas, bids, [0.0], [1.0], x)
    lp = geometry.lifted_power_distance(
        x[:, None, None], c[None, :, :], np.asarray(sigmas)[None, :], np.asarray(bids)[None, :]
    )
    return Figure2(
        names=names,
        centers=centers,
        sigmas=sigmas,
        bids=bids,
        sites=sites,
        weights=weights,
        normal=normal,
        offset=offset,
        lift_boundaries=roots,
        intervals=winning_intervals(c, sigmas, bids, lo, hi),
        x=x,
        scores=sc,
        winner=win,
        lifted_power=lp,
    )


# --------------------------------------------------------------------------------------------------
# Figure 3: shrinking σ at a fixed center
# --------------------------------------------------------------------------------------------------


@dataclass
class Figure3:
    center: float
    bid: float
    rival_center: float
    rival_sigma: float
    sigmas: list[float]  # the σ drawn as curves
    x: NDArray[np.float64] = field(repr=False)
    scores: NDArray[np.float64] = field(repr=False)  # (S, G): the shrinking advertiser's score for each σ
    rival_scores: NDArray[np.float64] = field(repr=False)  # (G,)
    score_at_center: list[float] = field(default_factory=list)  # for each σ
    territory: list[Interval] = field(default_factory=list)  # the shrinking advertiser's cell, for each σ
    sweep_sigmas: NDArray[np.float64] = field(default=None, repr=False)
    sweep_width: NDArray[np.float64] = field(default=None, repr=False)


def _territory(center, sigma, bid, rc, rs, lo, hi, n) -> Interval:
    ivs = winning_intervals([center, rc], [sigma, rs], [bid, bid], lo, hi, n=n)
    mine = [iv for iv in ivs if iv.winner == 0]
    assert len(mine) == 1, mine  # the advertiser wins at its center, and on one interval
    return mine[0]


def figure3_data(n: int = 1201) -> Figure3:
    """Advertiser at 0 with σ shrinking; rival at 0.8 with σ = 2.5; both bid e."""
    center, bid, rc, rs = 0.0, math.e, 0.8, 2.5
    sigmas = [1.2, 0.6, 0.3, 0.15, 0.05]
    lo, hi = -2.5, 2.5
    x = np.linspace(lo, hi, n)
    scores = np.stack([np.asarray(score(x[:, None], [center], s, bid)) for s in sigmas])
    rival = np.asarray(score(x[:, None], [rc], rs, bid))
    at_center = [float(clear([[center]], [[center]], [s], [bid]).score[0]) for s in sigmas]
    territory = [_territory(center, s, bid, rc, rs, lo, hi, 4001) for s in sigmas]
    sweep = np.geomspace(1e-3, 1.5, 25)
    width = np.array(
        [(lambda iv: iv.hi - iv.lo)(_territory(center, s, bid, rc, rs, -4 * s - 0.1, 4 * s + 0.1, 401)) for s in sweep]
    )
    return Figure3(
        center=center,
        bid=bid,
        rival_center=rc,
        rival_sigma=rs,
        sigmas=sigmas,
        x=x,
        scores=scores,
        rival_scores=rival,
        score_at_center=at_center,
        territory=territory,
        sweep_sigmas=sweep,
        sweep_width=width,
    )


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    return fig


def _draw_figure1(d: Figure1, path: Path) -> None:
    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    for i, name in enumerate(d.names):
        ax.plot(
            d.x,
            d.scores[:, i],
            color=COLORS[i],
            lw=1.2,
            alpha=0.55,
            label=f"{name}: c={d.centers[i]:g}, σ={d.sigmas[i]:g}, log b={math.log(d.bids[i]):.1f}",
        )
    ax.plot(d.x, d.envelope, color="black", lw=2.6, label="upper envelope (the allocation)")
    ymin = -3.0
    for iv in d.intervals:
        ax.axvspan(iv.lo, iv.hi, ymin=0, ymax=0.06, color=COLORS[iv.winner], alpha=0.9, lw=0)
        ax.text(
            0.5 * (iv.lo + iv.hi),
            ymin + 0.12,
            d.names[iv.winner],
            ha="center",
            va="bottom",
            fontsize=9,
            color="white",
            fontweight="bold",
        )
    for iv in d.intervals[1:]:
        ax.axvline(iv.lo, color="0.4", ls=":", lw=1)
    ax.set_ylim(ymin, 2.1)
    ax.set_xlim(d.x[0], d.x[-1])
    ax.set_xlabel("query position x (one axis of the embedding)")
    ax.set_ylabel("score  log b − (x − c)² / σ²")
    ax.set_title(
        "Figure 1: the allocation is the upper envelope of score parabolas\n"
        "winning intervals along the axis (coloured bar) are the power-diagram cells",
        fontsize=10,
    )
    ax.legend(loc="upper right", fontsize=7.5, framealpha=0.9)
    fig.savefig(path)


def _draw_figure2(d: Figure2, path: Path) -> None:
    fig = _figure(8.0, 7.0)
    up, down = fig.subplots(2, 1, sharex=True, height_ratios=[1.4, 1.0])
    x = d.x
    z = x * x
    # radical axis: n_x x + n_z z = offset  ->  z = (offset - n_x x) / n_z
    nx_, nz_ = d.normal
    up.plot(x, (d.offset - nx_ * x) / nz_, color="black", lw=1.2, label="radical axis (lifted power distances equal)")
    for k in (0, 1):
        m = d.winner == k
        up.scatter(
            x[m],
            z[m],
            s=5 if k == 0 else 3,
            color=COLORS[k],
            zorder=4,
            label=f"lifted queries (x, x²) won by {d.names[k]}",
        )
    for k in (0, 1):
        up.scatter(
            [d.sites[k, 0]],
            [d.sites[k, 1]],
            marker="X",
            s=80,
            color=COLORS[k],
            edgecolor="black",
            zorder=5,
            label=f"lifted site of {d.names[k]}: (σ⁻²c, −σ⁻²/2)",
        )
    for xb in d.lift_boundaries:
        up.scatter([xb], [xb * xb], s=60, facecolor="white", edgecolor="black", zorder=6)
        for ax in (up, down):
            ax.axvline(xb, color="0.35", ls="--", lw=1)
    up.set_ylim(-3.0, 6.0)
    up.set_ylabel("lifted coordinate z")
    up.set_title("upstairs (E × ℝ): one straight radical axis cuts the paraboloid z = ‖x‖²", fontsize=10)
    up.legend(loc="upper center", fontsize=7.5, framealpha=0.9)
    for k in (0, 1):
        down.plot(
            x,
            d.scores[:, k],
            color=COLORS[k],
            lw=1.8,
            label=f"{d.names[k]}: c={d.centers[k]:g}, σ={d.sigmas[k]:g}, log b={math.log(d.bids[k]):g}",
        )
    lo, hi = d.lift_boundaries
    down.axvspan(lo, hi, color=COLORS[0], alpha=0.12, lw=0, label=f"{d.names[0]}'s cell [{lo:.3f}, {hi:.3f}]")
    for xb in d.lift_boundaries:
        down.scatter(
            [xb], [float(np.interp(xb, x, d.scores[:, 0]))], s=50, facecolor="white", edgecolor="black", zorder=5
        )
    down.set_ylim(-3.5, 1.6)
    down.set_xlim(x[0], x[-1])
    down.set_xlabel("query position x (E, one-dimensional)")
    down.set_ylabel("score")
    down.set_title("downstairs (E): two boundary points, T's cell is the interval between them", fontsize=10)
    down.legend(loc="lower center", fontsize=7.5, framealpha=0.9)
    fig.suptitle("Figure 2: the paraboloid lift for unequal σ", fontsize=11)
    fig.savefig(path)


def _draw_figure3(d: Figure3, path: Path) -> None:
    import matplotlib as mpl

    fig = _figure(10.0, 4.8)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
    cmap = mpl.colormaps["viridis"]
    ns = len(d.sigmas)
    left.plot(
        d.x, d.rival_scores, color="black", lw=2.2, label=f"wide rival: c={d.rival_center:g}, σ={d.rival_sigma:g}"
    )
    for i, (s, iv) in enumerate(zip(d.sigmas, d.territory, strict=True)):
        col = cmap(i / max(1, ns - 1) * 0.9)
        left.plot(d.x, d.scores[i], color=col, lw=1.5, label=f"σ = {s:g}: wins [{iv.lo:+.3f}, {iv.hi:+.3f}]")
        y = -3.0 + 0.22 * i
        left.plot([iv.lo, iv.hi], [y, y], color=col, lw=5, solid_capstyle="butt")
    left.scatter(
        [d.center],
        [math.log(d.bid)],
        color="red",
        zorder=5,
        s=40,
        label=f"score at the center = log b = {math.log(d.bid):g}",
    )
    left.set_ylim(-3.2, 1.5)
    left.set_xlim(d.x[0], d.x[-1])
    left.set_xlabel("query position x")
    left.set_ylabel("score")
    left.set_title("equal bids; the advertiser's territory (bars) collapses to its center", fontsize=10)
    left.legend(loc="upper left", fontsize=7, framealpha=0.9)
    right.loglog(d.sweep_sigmas, d.sweep_width, "o-", ms=3, color="#1f77b4", label="territory width (from clear)")
    slope = 2.0 * abs(d.rival_center - d.center) / d.rival_sigma
    right.loglog(d.sweep_sigmas, slope * d.sweep_sigmas, "--", color="0.4", label="2σ·|c − c_rival|/σ_rival")
    right.set_xlabel("σ of the shrinking advertiser")
    right.set_ylabel("width of its winning interval")
    right.set_title("σ → 0: it competes at one point, on bid alone", fontsize=10)
    right.legend(fontsize=7.5)
    fig.suptitle("Figure 3: shrinking σ at a fixed center against a wide rival with equal bid", fontsize=11)
    fig.savefig(path)


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Interval):
        return asdict(obj)
    if isinstance(obj, list):
        return [_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


def summary(f1: Figure1, f2: Figure2, f3: Figure3) -> dict:
    """The figures' key numbers (intervals, boundary points) as plain JSON."""
    return _jsonable(
        {
            "figure1": {
                "advertisers": [
                    {"name": n, "center": c, "sigma": s, "bid": b}
                    for n, c, s, b in zip(f1.names, f1.centers, f1.sigmas, f1.bids, strict=True)
                ],
                "intervals": [{"winner": f1.names[iv.winner], "lo": iv.lo, "hi": iv.hi} for iv in f1.intervals],
            },
            "figure2": {
                "advertisers": [
                    {"name": n, "center": c, "sigma": s, "bid": b}
                    for n, c, s, b in zip(f2.names, f2.centers, f2.sigmas, f2.bids, strict=True)
                ],
                "lifted_sites": f2.sites,
                "lifted_weights": f2.weights,
                "radical_axis": {"normal": f2.normal, "offset": f2.offset},
                "boundaries_from_lift": f2.lift_boundaries,
                "boundaries_from_clear": [iv.lo for iv in f2.intervals[1:]],
            },
            "figure3": {
                "sigmas": f3.sigmas,
                "score_at_center": f3.score_at_center,
                "territory": [
                    {"sigma": s, "lo": iv.lo, "hi": iv.hi} for s, iv in zip(f3.sigmas, f3.territory, strict=True)
                ],
            },
        }
    )


def write_figures(out: str | Path) -> dict[str, Path]:
    """Compute and draw Figures 1-3 as PNG files in ``out`` (created), plus ``figures.json``.

    Returns ``{"figure1": path, "figure2": path, "figure3": path, "json": path}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f1, f2, f3 = figure1_data(), figure2_data(), figure3_data()
    paths = {k: out / v for k, v in FIGURE_FILES.items()}
    _draw_figure1(f1, paths["figure1"])
    _draw_figure2(f2, paths["figure2"])
    _draw_figure3(f3, paths["figure3"])
    paths["json"] = out / "figures.json"
    paths["json"].write_text(json.dumps(summary(f1, f2, f3), indent=2) + "\n")
    return paths
