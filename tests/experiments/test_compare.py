"""The common mechanism interface: the embedding-VCG adapter and the MOSAIC adapter on the same inputs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from adspace.experiments.compare import (
    AdvertiserSpec,
    AuctionInput,
    EmbeddingVCG,
    Mechanism,
    MosaicMechanism,
    compare,
)
from adspace.mechanisms import mosaic, vcg

ADVS = (
    AdvertiserSpec("KitchenFix", "producing kitchen appliances", bid=2.0, sigma=0.8),
    AdvertiserSpec("EasyBake", "selling baking ingredients", bid=1.5, sigma=0.6),
    AdvertiserSpec("RunFast", "running shoes", bid=3.0, sigma=0.3),
)
AUCTION = AuctionInput("How do I bake cookies?", ADVS, seed=4)


def fake_embed(texts):
    out = []
    for t in texts:
        rng = np.random.default_rng(zlib.crc32(t.split(":")[0].encode()))
        v = rng.normal(size=8)
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def test_vcg_adapter_is_the_kernel_with_a_separate_slot():
    mech = EmbeddingVCG(fake_embed)
    assert isinstance(mech, Mechanism)
    out = mech.run(AUCTION)
    vecs = fake_embed([AUCTION.query] + [f"{a.name}: {a.description}" for a in ADVS])
    res = vcg.clear(vecs[:1], vecs[1:], [a.sigma for a in ADVS], [a.bid for a in ADVS])
    w = int(res.winner[0])
    assert out.ad_slot == ADVS[w].name and out.reply is None
    assert out.payments[ADVS[w].name] == pytest.approx(float(res.payment[0]))
    assert sum(v for k, v in out.payments.items() if k != ADVS[w].name) == 0.0
    assert out.revenue == pytest.approx(float(res.payment[0]))


def _toy():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("toy", Path(__file__).with_name("test_mosaic_experiment.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ToyLLM()


def test_mosaic_adapter_matches_the_kernel():
    llm = _toy()
    mech = MosaicMechanism(llm, m=6, max_new_tokens=3)
    assert isinstance(mech, Mechanism) and mech.name == "mosaic-context"
    auction = AuctionInput("How do I bake cookies?", ADVS[:2], seed=2)
    out = mech.run(auction)
    from adspace.experiments.mosaic.study import Advertiser, Instance, run_text_auction

    inst = Instance(auction.query, auction.query, tuple(Advertiser(a.name, a.description) for a in ADVS[:2]))
    (auc,) = run_text_auction(llm, [inst], seed=2, m=6, methods=("context",), max_new_tokens=3)
    a = auc["context"]
    want = mosaic.payments(a.rewards, a.log_ref, a.log_gen, 1.0)
    assert [out.payments[x.name] for x in ADVS[:2]] == pytest.approx(want.tolist())
    assert out.reply in a.texts and out.ad_slot is None
    assert {"generation", "scoring", "mechanism"} <= set(out.metrics["timing"])


def test_compare_runs_every_mechanism_on_the_same_inputs():
    llm = _toy()
    mechs = [EmbeddingVCG(fake_embed), MosaicMechanism(llm, m=4, max_new_tokens=3, context_aware=False)]
    auctions = [AUCTION, AuctionInput("Best oven for bread?", ADVS[:2], seed=1)]
    outs = compare(mechs, auctions)
    assert [o.mechanism for o in outs] == ["embedding-vcg", "mosaic-baseline"] * 2
    assert [o.query for o in outs] == [AUCTION.query] * 2 + ["Best oven for bread?"] * 2
    with pytest.raises(ValueError, match="does not implement"):
        compare([object()], auctions)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="bid: must be a positive"):
        AdvertiserSpec("x", "y", bid=0.0)
    with pytest.raises(ValueError, match="advertisers: names must be distinct"):
        AuctionInput("q", (ADVS[0], ADVS[0]))
    with pytest.raises(ValueError, match="query: must be a non-empty"):
        AuctionInput(" ", ADVS)
