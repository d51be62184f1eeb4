"""``adspace figures``: the PNG files exist, and the data they plot are the kernel's own answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from adspace.cli import app
from adspace.experiments import vcg_figures as F
from adspace.mechanisms.geometry import lifted_power_distance
from adspace.mechanisms.vcg import Market, clear


@pytest.fixture(scope="module")
def f1():
    return F.figure1_data()


@pytest.fixture(scope="module")
def f2():
    return F.figure2_data()


@pytest.fixture(scope="module")
def f3():
    return F.figure3_data()


def test_cli_writes_pngs_and_json(tmp_path):
    out = tmp_path / "figs"
    res = CliRunner().invoke(app, ["figures", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in F.FIGURE_FILES.values():
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
        from PIL import Image

        with Image.open(out / name) as im:
            assert im.size[0] >= 600 and im.size[1] >= 400
    summary = json.loads((out / "figures.json").read_text())
    assert [iv["winner"] for iv in summary["figure1"]["intervals"]] == ["A", "B", "C", "D"]
    lift, cleared = summary["figure2"]["boundaries_from_lift"], summary["figure2"]["boundaries_from_clear"]
    assert lift == pytest.approx(cleared, abs=1e-9)


def test_figure1_envelope_argmax_is_clear_winner(f1):
    centers = np.asarray(f1.centers)[:, None]
    # The plotted envelope is the max of the plotted parabolas, and its argmax is clear's winner.
    np.testing.assert_array_equal(f1.envelope, f1.scores.max(axis=1))
    np.testing.assert_array_equal(np.argmax(f1.scores, axis=1), f1.winner)
    out = clear(f1.x[:, None], centers, f1.sigmas, f1.bids)
    np.testing.assert_array_equal(out.winner, f1.winner)
    # Each parabola is the kernel's exact score (Market.scores).
    m = Market(centers, f1.sigmas, f1.bids)
    for i in range(0, len(f1.x), 97):
        np.testing.assert_array_equal(f1.scores[i], m.scores([f1.x[i]]))
    # Winning intervals tile the axis and agree with clear on the grid.
    ivs = f1.intervals
    assert ivs[0].lo == f1.x[0] and ivs[-1].hi == f1.x[-1]
    for a, b in zip(ivs, ivs[1:], strict=False):
        assert a.hi == b.lo and a.winner != b.winner
    for x, w in zip(f1.x, f1.winner, strict=True):
        inside = [iv for iv in ivs if iv.lo < x < iv.hi]
        if inside:  # not exactly on a boundary
            assert inside[0].winner == w


def test_figure1_boundaries_are_score_ties(f1):
    m = Market(np.asarray(f1.centers)[:, None], f1.sigmas, f1.bids)
    for a, b in zip(f1.intervals, f1.intervals[1:], strict=False):
        s = m.scores([a.hi])
        assert s[a.winner] == pytest.approx(s[b.winner], abs=1e-9)
        assert s.max() == pytest.approx(s[a.winner], abs=1e-9)


def test_figure1_bid_raises_and_sigma_flattens(f1):
    # B has the highest bid: its parabola peaks highest; C has the widest σ: its curvature is the smallest.
    peaks = np.log(f1.bids)
    assert int(np.argmax(peaks)) == f1.names.index("B") == int(np.argmax(f1.scores.max(axis=0)))
    assert f1.names[int(np.argmax(f1.sigmas))] == "C"


def test_figure2_lift_boundaries_are_where_scores_tie(f2):
    lo, hi = f2.lift_boundaries
    assert lo < f2.centers[0] < hi  # T's cell contains its center
    m = Market(np.asarray(f2.centers)[:, None], f2.sigmas, f2.bids)
    for xb in (lo, hi):
        s = m.scores([xb])
        assert s[0] == pytest.approx(s[1], abs=1e-12)
        # The lifted point (x, x²) lies on the radical axis: equal lifted power distances.
        p = np.array([xb, xb * xb])
        assert float(f2.normal @ p) == pytest.approx(f2.offset, abs=1e-9)
        lp = lifted_power_distance([[xb]], np.asarray(f2.centers)[:, None], f2.sigmas, f2.bids)
        assert lp[0] == pytest.approx(lp[1], abs=1e-9)
    # ...and they are where clear's winner changes: T wins exactly between them.
    ivs = f2.intervals
    assert [iv.winner for iv in ivs] == [1, 0, 1]
    assert ivs[1].lo == pytest.approx(lo, abs=1e-9) and ivs[1].hi == pytest.approx(hi, abs=1e-9)
    inside = (f2.x > lo) & (f2.x < hi)
    np.testing.assert_array_equal(f2.winner[inside], 0)
    np.testing.assert_array_equal(f2.winner[~inside & (np.abs(f2.x - lo) > 1e-9) & (np.abs(f2.x - hi) > 1e-9)], 1)


def test_figure2_winner_minimizes_lifted_power_distance(f2):
    # liftedPowerDist((x, x²)) = x² + x⁴ − score(x): the winner has the smaller lifted power distance.
    np.testing.assert_array_equal(np.argmin(f2.lifted_power, axis=1), f2.winner)
    x = f2.x
    np.testing.assert_allclose(f2.lifted_power, (x * x + x**4)[:, None] - f2.scores, atol=1e-9)
    assert f2.sigmas[0] < f2.sigmas[1] and f2.bids[0] == f2.bids[1]


def test_figure3_center_score_is_log_bid_and_territory_collapses(f3):
    for s, at_center in zip(f3.sigmas, f3.score_at_center, strict=True):
        assert at_center == pytest.approx(math.log(f3.bid), abs=1e-15)
        m = Market([[f3.center], [f3.rival_center]], [s, f3.rival_sigma], [f3.bid, f3.bid])
        assert m.scores([f3.center])[0] == pytest.approx(math.log(f3.bid), abs=1e-15)
        assert int(m.clear([f3.center]).winner[0]) == 0  # at its center it wins on bid alone
    widths = [iv.hi - iv.lo for iv in f3.territory]
    assert all(iv.lo < f3.center < iv.hi for iv in f3.territory)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    w = f3.sweep_width
    assert np.all(np.diff(w) > 0)
    # Width ~ 2σ·|c − c_rival|/σ_rival as σ → 0: territory off-center collapses to the point.
    slope = 2 * abs(f3.rival_center - f3.center) / f3.rival_sigma
    assert w[0] / f3.sweep_sigmas[0] == pytest.approx(slope, rel=1e-3)
    # Off-center, the shrinking advertiser's score diverges to -inf.
    assert f3.scores[-1][np.argmin(np.abs(f3.x - 0.5))] < -90


def test_slice_and_pca_helpers():
    rng = np.random.default_rng(3)
    c = rng.normal(size=(6, 5))
    s = rng.uniform(0.5, 2.0, size=6)
    b = rng.uniform(1.0, 3.0, size=6)
    t = np.linspace(-0.5, 1.5, 301)
    sc, env, win = F.slice_scores(c, s, b, c[0], c[1], t)
    np.testing.assert_array_equal(win, np.argmax(sc, axis=1))
    np.testing.assert_array_equal(env, sc.max(axis=1))
    elig = np.array([False, True, True, False, True, True])
    sc, env, win = F.slice_scores(c, s, b, c[0], c[1], t, eligible=elig)
    assert not np.isin(win, [0, 3]).any() and np.all(np.isinf(sc[:, 0]))
    xy, q, info = F.pca_2d(c, c[:2] * 0.5)
    assert xy.shape == (6, 2) and q.shape == (2, 2) and 0 < info["explained"][0] <= 1
    # Distances in the plane never exceed distances in the space (orthogonal projection).
    assert np.linalg.norm(xy[0] - xy[1]) <= np.linalg.norm(c[0] - c[1]) + 1e-12
    xy, q, info = F.pca_2d(c[:1])
    assert xy.shape == (1, 2) and np.allclose(xy, 0)
