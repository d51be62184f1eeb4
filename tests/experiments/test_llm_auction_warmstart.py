"""The ad-writer stage (adspace.experiments.llm_auction.warmstart): replies the project writes, and the warm start."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.format import Ad, parse_reply
from adspace.experiments.llm_auction.warmstart import WarmStartConfig, ad_integrated_reply, pick_ad, writer_figures

ADS = (Ad("Ad-0001", "Trail Runner 5", "running shoe"), Ad("Ad-0002", "Soup Kit", "soup delivered"))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(answer=st.text(max_size=200), k=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_theorem_every_project_written_reply_carries_exactly_one_valid_insertion(answer, k, seed):
    """Whatever the model answered (stray ``@``, brackets, markup of its own included), the warm-start target
    parses with one insertion, of the chosen ad, and no format error."""
    reply = ad_integrated_reply(answer, ADS[k], np.random.default_rng(seed))
    parsed = parse_reply(reply, ADS)
    assert parsed.n_errors == 0, (reply, parsed.errors)
    assert parsed.ad_ids == (ADS[k].ad_id,)


def test_pick_ad_takes_the_most_relevant_then_the_higher_bid():
    q = AuctionQuery("Q-1", "shoes?", "workout", "U-1", "runner", ADS)

    def embed(texts):  # the query and ad 1 point the same way
        return [[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]][: len(texts)]

    assert pick_ad(q, [90, 10], embed) == 1

    def tie(texts):
        return [[1.0, 0.0]] * len(texts)

    assert pick_ad(q, [10, 90], tie) == 1 and pick_ad(q, [90, 10], tie) == 0


def test_writer_figures_and_config_validation():
    from types import SimpleNamespace

    texts = ["Try @Trail Runner 5@[Ad-0001].", "No ad.", "Bad @Soup Kit@[Ad-0009]."]
    f = writer_figures([[SimpleNamespace(parsed=parse_reply(t, ADS)) for t in texts]])
    assert f == pytest.approx(
        {"insertion_rate": 1 / 3, "format_error_rate": 1 / 3, "ads_per_reply": 1 / 3, "replies": 3}
    )
    with pytest.raises(ValueError, match="rollouts"):
        writer_figures([])
    with pytest.raises(ValueError, match="no_ad"):
        WarmStartConfig(no_ad=1.0)
    with pytest.raises(ValueError, match="steps"):
        WarmStartConfig(steps=0)


@pytest.mark.slow
def test_warm_start_makes_the_written_reply_more_likely():
    """A few LoRA steps on one project-written reply raise its teacher-forced log-probability (merged weights)."""
    from adspace.experiments.llm_auction.warmstart import warm_start
    from adspace.models.llm import LocalLLM

    llm = LocalLLM()
    prompt = [{"role": "user", "content": "Shoes? Ads: @Trail Runner 5@[Ad-0001]"}]
    ex = [{"prompt": prompt, "reply": "Consider @Trail Runner 5@[Ad-0001]. It is light."}]
    before = llm.score([prompt], [ex[0]["reply"]])[0]
    stats = warm_start(llm, ex, WarmStartConfig(steps=3, batch_size=1, learning_rate=5e-3))
    after = llm.score([prompt], [ex[0]["reply"]])[0]
    assert stats["steps"] == 3 and len(stats["losses"]) == 3
    assert after > before + 1.0
    assert type(llm.model).__name__ == "LlamaForCausalLM"  # the adapter is merged, no PEFT wrapper left
