"""IRPO on the real local LLM: a short run where the DPO loss falls and the reward on the training queries rises."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adspace.experiments.llm_auction.data import AuctionQuery, load_queries
from adspace.experiments.llm_auction.format import Ad
from adspace.experiments.llm_auction.training import IRPOConfig, PCTRData, PCTRModel, preference_pairs, run_irpo
from adspace.experiments.llm_auction.users import ClickModel


def test_preference_pairs_best_against_clearly_worse():
    assert preference_pairs([0.0, 30.0, 25.0, -100.0], 10.0) == [(1, 0), (1, 3)]
    assert preference_pairs([3.0], 0.0) == []
    with pytest.raises(ValueError, match="rewards"):
        preference_pairs([], 1.0)


def test_config_validation_and_paper_config():
    with pytest.raises(ValueError, match="reward: must be"):
        IRPOConfig(reward="clicks")
    with pytest.raises(ValueError, match="samples: need at least 2"):
        IRPOConfig(samples=1)
    p = IRPOConfig.paper()
    assert (p.samples, p.delta_th, p.dpo_beta, p.learning_rate, p.lam) == (5, 10.0, 0.1, 1e-6, 1.0)
    assert p.batch_size * p.grad_accum == 64 and p.bf16 and not p.use_lora
    assert p.pctr_hidden == (128, 64, 32) and p.pctr_batch == 256 and p.pctr_lr == 1e-3


# Short queries and ads keep the prompts near 150 tokens: on 2 CPU cores prompt length dominates the cost.
SHOES = Ad("Ad-0001", "Trail Runner 5", "running shoe, cushioned")
BANK = Ad("Ad-0002", "City Bank Card", "credit card, cash back")
SOUP = Ad("Ad-0003", "Soup Kit", "soup ingredients delivered")
TRAIN_QUERIES = [
    AuctionQuery(
        "Q-1", "best shoes for a first marathon?", "workout", "U-1", "Age 30, nurse; likes running.", (SHOES, BANK)
    ),
    AuctionQuery(
        "Q-2", "a quick dinner idea for tonight?", "restaurant", "U-2", "Age 45, teacher; likes cooking.", (SOUP, SHOES)
    ),
    AuctionQuery(
        "Q-3",
        "how do I earn cash back on groceries?",
        "banking",
        "U-3",
        "Age 52, chef; budget-conscious.",
        (BANK, SOUP),
    ),
]


@pytest.mark.slow
def test_irpo_short_run_dpo_loss_falls_and_reward_rises(tmp_path):
    from adspace.models.llm import LocalLLM

    queries = TRAIN_QUERIES
    cfg = IRPOConfig(
        epochs=1,
        samples=4,
        max_new_tokens=16,
        delta_th=1.0,
        learning_rate=5e-3,
        lora_r=4,
        batch_size=2,
        dpo_epochs=3,
        max_pairs=2,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        pctr_steps=30,
        seed=0,
    )
    backend = LocalLLM()
    res = run_irpo(backend, queries, cfg, tmp_path, user=ClickModel(seed=0))
    (m,) = res["epochs"]
    assert m["pairs"] > 0, m
    losses = m["dpo_losses"]
    assert len(losses) >= 3
    # DPO starts at log 2 (policy = reference) and falls
    assert losses[0] == pytest.approx(np.log(2), abs=0.05)
    assert np.mean(losses[-2:]) < losses[0] - 0.05
    # the trained model puts more weight on the better of its sampled replies: expected reward rises
    assert m["candidate_reward_after"] > m["candidate_reward_before"]
    # checkpoints and metrics per epoch
    assert (tmp_path / "epoch_1" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "epoch_1" / "pctr.pt").is_file()
    assert json.loads((tmp_path / "epoch_1" / "metrics.json").read_text())["epoch"] == 1
    assert m["pctr"]["rows"] >= 0
    # one device for the whole pipeline: the sampler's model after DPO, and the pCTR model
    from adspace.experiments.llm_auction.training import off_device

    assert off_device(backend.model, cfg.device) == [] and off_device(res["pctr"].modules, cfg.device) == []


@pytest.mark.slow
def test_constrained_irpo_end_to_end_aligns_the_constrained_distribution(tmp_path):
    """Constrained sampling, exploration, DPO over the constrained distribution: every pair reaches DPO
    (the exploration replies, tokenized afresh by TRL, are writable), and the loss is finite and starts
    at log 2."""
    from adspace.models.llm import LocalLLM

    cfg = IRPOConfig(
        epochs=1,
        samples=3,
        max_new_tokens=6,
        candidate_reward=False,
        delta_th=0.0,
        reward="oracle",
        explore=0.7,
        constrained=True,
        lora_r=4,
        batch_size=1,
        dpo_epochs=1,
        max_pairs=1,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        seed=1,
    )
    backend = LocalLLM()
    res = run_irpo(backend, TRAIN_QUERIES[:2], cfg, tmp_path, user=ClickModel(seed=0))
    (m,) = res["epochs"]
    assert m["format_errors_per_reply"] == 0.0
    assert m["pairs"] > 0 and m["pairs_unwritable"] == 0, m
    assert m["dpo_steps"] >= 1 and all(np.isfinite(m["dpo_losses"]))
    assert m["dpo_losses"][0] == pytest.approx(np.log(2), abs=0.05)


@pytest.mark.slow
def test_pctr_model_learns_the_click_model():
    """The pCTR MLP, trained with BCE on clicks of the click model, ranks clicked above unclicked."""
    from adspace.experiments.llm_auction.environment import draw_bids, prompts_for, score_texts
    from adspace.experiments.llm_auction.format import insert_markup

    qs = load_queries(40, demo=True, n_candidates=3, seed=2)
    rng = np.random.default_rng(0)
    bids = draw_bids(len(qs), 3, rng)
    texts = []
    for q in qs:
        row = []
        for a in q.candidates:
            row.append(insert_markup(f"About your question: {a.description}", a))
            row.append(insert_markup("Unrelated note on the weather and the tides.", a))
        texts.append(row)
    rolls = score_texts(qs, bids, prompts_for(qs, bids), texts, ClickModel(seed=1))
    data = PCTRData()
    for row in rolls:
        data.add(row)
    model = PCTRModel(IRPOConfig(pctr_steps=150, seed=0))
    stats = model.fit(data)
    assert stats["rows"] == 40 * 6 and stats["bce_after"] < stats["bce_before"]
    pred = np.array([p.max() for row in rolls for p in model.predict(row)])
    truth = np.array(
        [
            np.concatenate([ClickModel(seed=1).probabilities([(r.query, r.parsed)])[0] for r in row]).max()
            for row in rolls
        ]
    )
    assert truth.size == 40 and pred.size == 240
    lab = np.array(data.label)
    assert pred[lab == 1].mean() > pred[lab == 0].mean()
