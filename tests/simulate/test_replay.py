"""``adspace replay`` on a local Ray (2 CPUs, a few hundred queries) equals single-process ``clear``.

Counterfactuals ("campaign k at bid b'") equal clearing the whole market again with ``bids[k] = b'``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adspace.cli import app
from adspace.mechanisms.vcg import clear
from adspace.simulate.replay import (
    Counterfactual,
    Snapshot,
    read_queries,
    read_snapshot,
    replay,
    write_queries,
    write_snapshot,
)

N, D, Q = 60, 8, 300


def workload(seed: int = 0, n: int = N, q: int = Q):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n, D))
    s = rng.uniform(0.5, 2.0, n)
    b = np.exp(rng.normal(0.0, 0.5, n))
    x = c[rng.integers(0, n, q)] + 0.5 * rng.standard_normal((q, D))
    b[7] = b[3]  # a twin: ties between campaigns 3 and 7 at their common center
    c[7], s[7] = c[3], s[3]
    x[:5] = c[3]
    return Snapshot(tuple(f"c{i}" for i in range(n)), c, s, b), x


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def expected_totals(snap, x, reserve, bids=None):
    b = snap.bids if bids is None else bids
    out = clear(x, snap.centers, snap.sigmas, b, reserve=reserve)
    f = out.winner >= 0
    n = len(snap)
    return (
        out,
        np.bincount(out.winner[f], minlength=n),
        np.bincount(out.winner[f], weights=out.payment[f], minlength=n),
        np.bincount(out.winner[f], weights=out.value[f], minlength=n),
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_replay_equals_single_process_clear(ray_local, workers):
    snap, x = workload()
    reserve = 0.05
    cfs = [Counterfactual(3, (0.1, float(snap.bids[3]), 5.0)), Counterfactual(11, (2.0,))]
    got = replay(snap, x, reserve=reserve, counterfactuals=cfs, workers=workers, chunk=37)
    out, wins, spend, value = expected_totals(snap, x, reserve)
    np.testing.assert_array_equal(got.winner, out.winner)
    np.testing.assert_array_equal(got.runner_up, out.runner_up)
    np.testing.assert_array_equal(got.payment, out.payment)
    np.testing.assert_array_equal(got.value, out.value)
    np.testing.assert_array_equal(got.wins, wins)
    np.testing.assert_array_equal(got.spend, spend)
    np.testing.assert_array_equal(got.won_value, value)
    assert got.wins.sum() == (out.winner >= 0).sum() > 0
    # Counterfactuals: the whole market cleared again with campaign k's bid replaced.
    for cf, res in zip(cfs, got.counterfactuals, strict=True):
        k = cf.campaign
        assert res["actual"]["wins"] == wins[k]
        for b, row in zip(cf.bids, res["at"], strict=True):
            bids = snap.bids.copy()
            bids[k] = b
            o2, w2, s2, v2 = expected_totals(snap, x, reserve, bids)
            assert row["wins"] == w2[k]
            assert row["spend"] == pytest.approx(s2[k], rel=1e-12, abs=0)
            assert row["value"] == pytest.approx(v2[k], rel=1e-12, abs=0)


def test_counterfactual_is_exact_per_query_without_ray():
    from adspace.mechanisms.vcg import Market
    from adspace.simulate.replay import clear_chunk

    snap, x = workload(seed=5)
    market = Market(snap.centers, snap.sigmas, snap.bids)
    for k in (3, 7, 20):
        bids = (0.01, float(snap.bids[k]), float(snap.bids[k]) * 1.5, 50.0)
        part = clear_chunk(market, x, 0.1, [Counterfactual(k, bids)])["counterfactuals"][0]
        for i, b in enumerate(bids):
            bb = snap.bids.copy()
            bb[k] = b
            o = clear(x, snap.centers, snap.sigmas, bb, reserve=0.1)
            np.testing.assert_array_equal(part["won"][i], o.winner == k)
            np.testing.assert_array_equal(part["payment"][i], np.where(o.winner == k, o.payment, 0.0))


def test_files_round_trip(tmp_path):
    snap, x = workload()
    write_queries(tmp_path / "q.parquet", x, ids=[f"q{i}" for i in range(len(x))])
    xr, ids = read_queries(tmp_path / "q.parquet")
    np.testing.assert_array_equal(xr, x.astype(np.float32).astype(np.float64))
    assert ids[:2] == ["q0", "q1"]
    for name in ("m.parquet", "m.json"):
        write_snapshot(tmp_path / name, snap)
        back = read_snapshot(tmp_path / name)
        assert back.names == snap.names
        np.testing.assert_array_equal(back.centers, snap.centers)
        np.testing.assert_array_equal(back.bids, snap.bids)
    assert back.index_of("c5") == 5 and back.index_of("7") == 7
    with pytest.raises(ValueError, match="campaign"):
        back.index_of("nobody")


def test_cli_replay(tmp_path, ray_local):
    snap, x = workload(q=200)
    write_queries(tmp_path / "q.parquet", x)
    write_snapshot(tmp_path / "m.parquet", snap)
    res = CliRunner().invoke(
        app,
        [
            "replay",
            "--log",
            str(tmp_path / "q.parquet"),
            "--market",
            str(tmp_path / "m.parquet"),
            "--workers",
            "2",
            "--chunk",
            "50",
            "-c",
            "c3:0.5,2",
            "--json",
            "--out",
            str(tmp_path / "r.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    xs = x.astype(np.float32).astype(np.float64)  # the log stores float32
    out, wins, spend, _ = expected_totals(snap, xs, 0.0)
    assert doc["queries"] == 200 and doc["filled"] == int((out.winner >= 0).sum())
    by = {r["campaign"]: r for r in doc["campaigns"]}
    for k in np.flatnonzero(wins):
        assert by[int(k)]["wins"] == wins[k]
        assert by[int(k)]["spend"] == pytest.approx(spend[k], rel=1e-12)
    assert doc["counterfactuals"][0]["name"] == "c3" and len(doc["counterfactuals"][0]["at"]) == 2
    # Tables and a progress bar without --json.
    res = CliRunner().invoke(
        app, ["replay", "--log", str(tmp_path / "q.parquet"), "--market", str(tmp_path / "m.parquet"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "Campaigns" in res.output
    bad = CliRunner().invoke(
        app, ["replay", "--log", str(tmp_path / "q.parquet"), "--market", str(tmp_path / "m.parquet"), "-c", "zz:1"]
    )
    assert bad.exit_code == 1 and "campaign" in bad.output
