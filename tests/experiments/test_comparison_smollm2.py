"""``adspace experiment compare`` end to end on SmolLM2 and the Webis data (one query, short replies)."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from adspace.cli import app

pytestmark = pytest.mark.slow


def test_compare_command_writes_table_json_csv_and_figure(tmp_path, webis_root):
    args = ["experiment", "compare", "--out", str(tmp_path), "--queries", "1", "--max-new-tokens", "6"]
    res = CliRunner().invoke(app, [*args, "--mosaic-m", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "compare.json").read_text())
    names = list(doc["mechanisms"])
    assert names == [
        "embedding-vcg",
        "mosaic-baseline",
        "mosaic-context",
        "llm-auction: pre-trained (no IRPO checkpoint)",
    ]
    for name in names:
        m = doc["mechanisms"][name]
        assert m["queries"] == 1 and m["incentive"] and m["payment_rule"]
        row = doc["per_query"][name][0]
        assert row["llm_passes"] >= 1 or name == "embedding-vcg"
        assert row["seconds"] < doc["total_seconds"] - doc["model_load_seconds"]
    assert (
        doc["per_query"]["embedding-vcg"][0]["ads"] == 1 and doc["per_query"]["embedding-vcg"][0]["embedder_texts"] >= 1
    )
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert {r["mechanism"] for r in rows} == set(names)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    flat = " ".join(res.output.split())
    assert "(pre-trained, no IRPO checkpoint)" in flat and "currency units per query" in flat
    assert "gain from 20% shading / query" in flat and "incentive property" in flat


def test_constrained_llm_auction_row_writes_only_valid_markup():
    """The harness's LLM-Auction adapter under the markup constraint (the llm-auction experiment's
    ``*_constrained`` rows) is the constrained sampler with the episode's seed: no format error."""
    import numpy as np

    from adspace.experiments.comparison.adapters import LLMAuctionPolicy
    from adspace.experiments.comparison.harness import Episode
    from adspace.experiments.llm_auction.constrained import sample_constrained
    from adspace.experiments.llm_auction.data import AuctionQuery
    from adspace.experiments.llm_auction.format import Ad, parse_reply
    from adspace.experiments.llm_auction.prompts import ad_writer_messages
    from adspace.models.llm import LocalLLM

    ads = (
        Ad("Ad-0001", "TrailRunner", "running shoes for rocky trails"),
        Ad("Ad-0002", "CityBank", "checking accounts"),
    )
    q = AuctionQuery("Q-1", "which shoes for trail running?", "t", "p", "likes running", ads, frozenset({"Ad-0001"}))
    llm = LocalLLM(threads=1)
    mech = LLMAuctionPolicy(llm, max_new_tokens=8, constrained=True)
    for seed in (0, 1):
        ep = Episode(q, np.array([60.0, 20.0]), seed, 0)
        shown = mech.run(ep, ep.values)
        assert parse_reply(shown.reply, ads).n_errors == 0
        msgs = ad_writer_messages(q.text, q.profile, ads, [60.0, 20.0], short=True)
        (row,) = sample_constrained(llm, [msgs], [ads], 1, max_new_tokens=8, temperature=0.7, top_p=0.8, seed=seed)
        assert shown.reply == row[0].text


def test_llm_auction_adapter_charges_first_price_per_click():
    """LLM-Auction on SmolLM2 through the harness: the reply holds the ads (no slot), and a clicked ad pays
    exactly its bid per click, an unclicked one nothing, under the click model's sampled clicks."""
    import numpy as np

    from adspace.experiments.comparison.adapters import LLMAuctionPolicy
    from adspace.experiments.comparison.harness import Episode, Judge, Mechanism, evaluate
    from adspace.experiments.llm_auction.data import AuctionQuery
    from adspace.experiments.llm_auction.format import Ad, parse_reply
    from adspace.experiments.llm_auction.users import ClickModel, clicked_vector
    from adspace.models.llm import get_local_llm

    mech = LLMAuctionPolicy(get_local_llm(), max_new_tokens=8)
    assert isinstance(mech, Mechanism)
    ads = (Ad("Ad-0000", "Trail Runner 5", "running shoe"), Ad("Ad-0001", "City Bank Card", "credit card"))
    q = AuctionQuery("Q", "best marathon shoes?", "", "", "No profile given.", ads)
    ep = Episode(q, np.array([12.5, 3.0]), 1, 0)
    clicks = ClickModel()
    judge = Judge(clicks)
    (row,) = evaluate([mech], [ep], judge, shading=None)["llm-auction"]
    shown = mech.run(ep, ep.values)
    assert shown.slot is None and isinstance(shown.reply, str)
    assert (shown.price_per_click / 1e6).tolist() == [12.5, 3.0]  # first price: the bid, per click
    parsed = parse_reply(judge.displayed(ep, shown), ads)
    clicked = clicked_vector(clicks.feedback([(ep.query, parsed)])[0], ep.query)
    assert set(np.flatnonzero(clicked)) <= set(parsed.indices)  # only a shown ad is clicked
    m = judge.measure(ep, shown)
    assert m["sampled_revenue"] == sum(b for b, c in zip((12.5, 3.0), clicked, strict=True) if c)
    assert row["shown_ads"] == m["shown_ads"] and row["sampled_revenue"] == m["sampled_revenue"]
