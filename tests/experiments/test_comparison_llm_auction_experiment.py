"""``adspace experiment llm-auction`` end to end, at a tiny scale: it trains, evaluates every row through
the comparison harness, tests the bid sweep, prints the table with intervals and writes results.json."""

from __future__ import annotations

import json

from typer.testing import CliRunner


def test_the_command_prints_and_writes_the_table_with_intervals(tmp_path):
    from adspace.cli import app

    out = tmp_path / "run"
    args = ["experiment", "llm-auction", "--out", str(out), "--n-train", "2", "--n-test", "2", "--epochs", "1"]
    args += ["--samples", "2", "--max-new-tokens", "6", "--sweep-samples", "2", "--no-oracle"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "250"})  # a wide console: the names are not cut
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "pretrained_constrained" in flat and "llm_auction_constrained" in flat and "vcg_slot" in flat
    assert "one-sided permutation p =" in flat
    results = json.loads((out / "results.json").read_text())
    rows = ("vcg_slot", "pretrained", "pretrained_constrained", "mosaic", "llm_auction", "llm_auction_constrained")
    assert tuple(results["methods"]) == rows
    for m in results["methods"].values():
        assert m["queries"] == 2 and m["replies"] == 8  # 2 held-out queries x 4 replies each
        lo, hi = m["ci95"]["revenue_per_query"]
        assert lo <= m["revenue_per_query"] <= hi
    for name in ("llm_auction_constrained", "pretrained_constrained"):
        assert results["methods"][name]["format_error_rate"] == 0.0  # valid markup by construction
    for sweep in results["bid_sweep"].values():
        for test in (sweep["exposure_test"], sweep["click_test"]):
            assert test["n"] == 2 * 5 * 2  # the 2 held-out queries x 5 bids x 2 replies
            assert 0 < test["p_increasing"] <= 1 and 0 < test["p_decreasing"] <= 1
    assert (out / "llm_auction.png").stat().st_size > 0
