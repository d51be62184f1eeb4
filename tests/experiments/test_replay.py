"""``adspace replay`` on a local Ray (2 CPUs, a few hundred queries) equals single-process ``clear``.

Counterfactuals ("campaign k at bid b'") equal clearing the whole market again with ``bids[k] = b'``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adspace.cli import app
from adspace.experiments.replay import (
    Counterfactual,
    Snapshot,
    read_queries,
    read_snapshot,
    replay,
    write_queries,
    write_snapshot,
)
from adspace.mechanisms.vcg import clear

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
    from adspace.experiments.replay import clear_chunk
    from adspace.mechanisms.vcg import Market

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


# --------------------------------------------------------------------------------------------------
# Usability: worker cap, clean errors, Ray's warnings outside the bar, zero-win campaigns
# --------------------------------------------------------------------------------------------------


def test_workers_are_capped_by_rays_cpus_with_a_message(ray_local):
    snap, x = workload(q=120)
    said: list[str] = []
    got = replay(snap, x, workers=4, chunk=30, notify=said.append)  # Ray has 2 CPUs: 4 actors would hang
    assert got.workers == 2 and got.requested_workers == 4
    assert any("--workers 4: Ray has 2 CPUs available; using 2 workers" in s for s in said)
    out, *_ = expected_totals(snap, x, 0.0)
    np.testing.assert_array_equal(got.payment, out.payment)


def test_address_auto_without_a_cluster_is_one_clean_line(monkeypatch, tmp_path):
    ray = pytest.importorskip("ray")

    def no_cluster(address=None, **kw):  # what ray.init(address="auto") raises when no cluster runs
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by setting "
            "`--address` flag or `RAY_ADDRESS` environment variable.\n(more detail on further lines)"
        )

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    snap, x = workload(q=20)
    write_queries(tmp_path / "q.parquet", x)
    write_snapshot(tmp_path / "m.parquet", snap)
    args = ["replay", "--log", str(tmp_path / "q.parquet"), "--market", str(tmp_path / "m.parquet")]
    res = CliRunner().invoke(app, [*args, "--address", "auto"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [
        "error: --address auto: Could not find any running Ray instance. Please specify the one to connect to "
        "by setting `--address` flag or `RAY_ADDRESS` environment variable."
    ]


def test_missing_or_unreadable_files_name_the_option_and_path(tmp_path):
    snap, x = workload(q=20)
    write_queries(tmp_path / "q.parquet", x)
    write_snapshot(tmp_path / "m.parquet", snap)
    (tmp_path / "bad.parquet").write_text("not parquet")
    q, m = str(tmp_path / "q.parquet"), str(tmp_path / "m.parquet")
    cases = [
        (
            ["--log", str(tmp_path / "nope.parquet"), "--market", m],
            f"error: --log: no such file: {tmp_path}/nope.parquet",
        ),
        (["--log", q, "--market", str(tmp_path / "gone.json")], f"error: --market: no such file: {tmp_path}/gone.json"),
        (["--log", str(tmp_path / "bad.parquet"), "--market", m], "error: --log: "),
    ]
    for args, want in cases:
        res = CliRunner().invoke(app, ["replay", *args, "--workers", "0"])
        assert res.exit_code == 1 and res.output.startswith(want), res.output
        assert "Traceback" not in res.output
    with pytest.raises(FileNotFoundError, match="nope.parquet: no such file"):
        read_queries(tmp_path / "nope.parquet")


def test_rays_startup_warnings_print_before_the_bar(monkeypatch, tmp_path, capsys):
    import logging

    ray = pytest.importorskip("ray")
    from adspace.experiments import replay as replay_mod

    started = []

    def fake_init(**kw):  # Ray logs a warning while it starts (as its token-authentication notice does)
        logging.getLogger("ray._private.authentication").warning("Token authentication is enabled")
        started.append(kw)

    monkeypatch.setattr(ray, "is_initialized", lambda: bool(started))
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0})
    said: list[str] = []
    assert replay_mod.connect(3, notify=said.append) == 1
    assert said == [
        "ray warning: Token authentication is enabled",
        "--workers 3: Ray has 1 CPU available; using 1 workers",
    ]
    assert "Token" not in capsys.readouterr().err  # captured, not printed by Ray's own handler
    # In the CLI those lines come before the progress bar (the replay itself runs in-process here).
    started.clear()
    in_process = replay_mod.replay
    monkeypatch.setattr(replay_mod, "replay", lambda *a, **kw: in_process(*a, **{**kw, "workers": 0}))
    snap, x = workload(q=30)
    write_queries(tmp_path / "q.parquet", x)
    write_snapshot(tmp_path / "m.parquet", snap)
    res = CliRunner().invoke(
        app, ["replay", "--log", str(tmp_path / "q.parquet"), "--market", str(tmp_path / "m.parquet"), "--workers", "3"]
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.index("ray warning: Token authentication") < out.index("--workers 3") < out.index("chunks")


def test_zero_win_campaigns_are_counted_and_named(tmp_path):
    snap, x = workload(q=200)
    write_queries(tmp_path / "q.parquet", x)
    write_snapshot(tmp_path / "m.parquet", snap)
    xs = x.astype(np.float32).astype(np.float64)
    _, wins, _, _ = expected_totals(snap, xs, 0.0)
    zero = [snap.names[i] for i in np.flatnonzero(wins == 0)]
    assert zero  # the workload leaves some campaigns without a win
    args = ["replay", "--log", str(tmp_path / "q.parquet"), "--market", str(tmp_path / "m.parquet"), "--workers", "0"]
    doc = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert doc["zero_win_campaigns"] == zero and doc["campaigns_without_wins"] == len(zero)
    assert doc["campaigns_with_wins"] + len(zero) == doc["campaigns_total"] == N
    res = CliRunner().invoke(app, args)
    flat = " ".join(res.output.split())
    assert f"{N - len(zero)} of {N} campaigns won at least once; {len(zero)} won nothing: {zero[0]}" in flat
