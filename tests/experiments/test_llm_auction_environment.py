"""The LLM-Auction environment's bookkeeping: rollouts, per-query summaries, exploration, the paper comparison."""

from __future__ import annotations

import numpy as np
import pytest

from adspace.experiments.comparison.llm_auction_experiment import PAPER_TABLE2, compare_with_paper
from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.environment import draw_bids, prompts_for, score_texts
from adspace.experiments.llm_auction.format import Ad, parse_reply
from adspace.experiments.llm_auction.training import explore_replies
from adspace.experiments.llm_auction.users import Click
from adspace.mechanisms import llm_auction as gen

ADS = (Ad("Ad-0001", "Trail Runner 5", "running shoe"), Ad("Ad-0002", "City Bank Card", "credit card"))
Q = AuctionQuery("Q-1", "best marathon shoes?", "workout", "U-1", "Age 30, runner.", ADS)


class ScriptedUser:
    """Clicks every inserted ad whose id is in ``clicks`` (a user simulator with known behaviour)."""

    def __init__(self, clicks: set[str]):
        self.clicks = clicks

    def feedback(self, items):
        return [[Click(i.ad_id, i.ad_id in self.clicks) for i in p.insertions] for _, p in items]


def test_rollout_revenue_and_reward_are_table2_arithmetic():
    bids = np.array([[40.0, 7.0]])
    texts = [
        [
            "Try @Trail Runner 5@[Ad-0001].",  # 1 ad, clicked: revenue 40, reward 40 - 10
            "Try @Trail Runner 5@[Ad-0001] or @City Bank Card@[Ad-0002].",  # 2 ads, one clicked: 40 - 20
            "Try @Trail Runner@[Ad-0001].",  # 1 error, no ad: 0 - 100
            "No ads.",  # 0
        ]
    ]
    rolls = score_texts([Q], bids, prompts_for([Q], bids), texts, ScriptedUser({"Ad-0001"}))[0]
    assert [r.revenue() for r in rolls] == [40.0, 40.0, 0.0, 0.0]
    assert [r.reward(lam=1.0, ad_cost=10, error_cost=100) for r in rolls] == [30.0, 20.0, -100.0, 0.0]
    assert [r.parsed.n_ads for r in rolls] == [1, 2, 0, 0]
    assert rolls[0].bid_micros.tolist() == [40_000_000, 7_000_000]
    assert rolls[1].revenue() == gen.revenue_micros([40_000_000, 7_000_000], [True, False]) / 1e6


def test_draw_bids_range_and_reproducibility():
    b = draw_bids(50, 3, np.random.default_rng(0))
    assert b.shape == (50, 3) and b.min() >= 1 and b.max() <= 100 and np.all(b == np.round(b))
    assert np.array_equal(b, draw_bids(50, 3, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="low/high"):
        draw_bids(1, 1, np.random.default_rng(0), low=5, high=4)


def test_explore_replies_inserts_valid_markup_in_the_given_share():
    rng = np.random.default_rng(0)
    texts = [["First sentence. Second sentence."] * 200]
    out = explore_replies(texts, [Q], 0.5, rng)[0]
    parsed = [parse_reply(t, ADS) for t in out]
    edited = [p for p in parsed if p.n_ads]
    assert all(p.n_errors == 0 and p.n_ads == 1 for p in parsed if p.text != texts[0][0])
    assert 70 < len(edited) < 130
    assert explore_replies(texts, [Q], 0.0, rng) == texts
    with pytest.raises(ValueError, match="explore"):
        explore_replies(texts, [Q], 1.5, rng)


def test_compare_with_paper_orderings():
    ours = {m: {"revenue_per_query": v["revenue"], "reward_per_query": v["reward"]} for m, v in PAPER_TABLE2.items()}
    c = compare_with_paper(ours)
    assert c["revenue_order_matches"] and c["reward_order_matches"]
    assert c["revenue_order_paper"] == ["llm_auction_oracle", "llm_auction", "mosaic", "pretrained"]
    ours["pretrained"]["revenue_per_query"] = 1e9
    assert not compare_with_paper(ours)["revenue_order_matches"]


def test_explore_replies_stratifies_candidates_within_a_query():
    # with every reply edited, the M replies of one query carry distinct candidates until all are used
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = len(ADS) + 1
        out = explore_replies([["Plain answer. More text."] * m], [Q], 1.0, rng)[0]
        shown = [parse_reply(t, ADS).indices for t in out]
        assert all(len(s) == 1 for s in shown)
        firsts = [s[0] for s in shown[: len(ADS)]]
        assert sorted(firsts) == list(range(len(ADS)))
