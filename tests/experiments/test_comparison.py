"""The comparison harness on a model-free backend: one currency, one click model, seeds, timing, incentives."""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.experiments.comparison.adapters import CurrencyMosaic, LLMAuctionPolicy, PlainAnswers, SlotVCG
from adspace.experiments.comparison.harness import (
    PLAIN_SYSTEM,
    Episode,
    ForwardCounter,
    Judge,
    Mechanism,
    Shown,
    episodes_from,
    evaluate,
    summarize,
)
from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.format import Ad, parse_reply
from adspace.experiments.llm_auction.users import ClickModel
from adspace.mechanisms import llm_auction as gen
from adspace.mechanisms import mosaic, vcg
from adspace.models.llm import LLMBackend, Reply

ADS = (
    Ad("Ad-0001", "TrailRunner", "brand: running shoes for rocky trails"),
    Ad("Ad-0002", "CityBank", "brand: checking accounts and cards"),
    Ad("Ad-0003", "OvenPro", "product: ovens for baking bread"),
)
WORDS = "the a shoes run trail bank card bake bread oven good best try for you".split()
VOCAB = WORDS + [a.markup() for a in ADS]


def _vec(text: str) -> np.ndarray:
    v = np.zeros(64)
    for w in text.lower().replace("@", " ").replace(":", " ").split():
        v[zlib.crc32(w.encode()) % 64] += 1.0
    return v / (np.linalg.norm(v) or 1.0)


class BagEmbedder:
    """Hashed bag of words: texts sharing words are similar (deterministic, no model)."""

    dim = 64

    def embed(self, texts):
        return np.stack([_vec(t) for t in texts])


class Tok:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [VOCAB.index(w) for w in text.split()]}


class WordLLM(LLMBackend):
    """Replies of 6 words i.i.d. from a prompt-specific distribution; ad markups are likely only when the
    prompt lists candidate ads (the ad-writer), and the bids in the prompt change the distribution."""

    name = "words"
    tokenizer = Tok()

    def render(self, prompt):
        return json.dumps(prompt)

    def _dist(self, prompt, temperature=1.0):
        text = self.render(prompt)
        z = np.random.default_rng(zlib.crc32(text.encode())).normal(0, 1, len(VOCAB))
        z[len(WORDS) :] += 1.5 if "Candidate ads" in text else -6.0
        z = z / temperature
        return z - np.logaddexp.reduce(z)

    def sample(self, prompts, n, *, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=None):
        rng = np.random.default_rng(seed)
        out = []
        for p in prompts:
            d, d1 = self._dist(p, temperature), self._dist(p)
            row = []
            for _ in range(n):
                idx = rng.choice(len(VOCAB), size=6, p=np.exp(d))
                row.append(Reply(" ".join(VOCAB[i] for i in idx), d[idx], False, tuple(int(i) for i in idx), d1[idx]))
            out.append(row)
        return out

    def score(self, prompts, replies, *, temperature=1.0, top_p=1.0):
        out = []
        for p, r in zip(prompts, replies, strict=True):
            ids = list(r.token_ids) if isinstance(r, Reply) else self.tokenizer(r)["input_ids"]
            out.append(self._dist(p, temperature)[ids].sum())
        return np.array(out)


def queries(n: int = 6) -> list[AuctionQuery]:
    texts = ["best trail shoes", "which bank card", "bake bread at home", "run a trail", "oven for bread", "card"]
    rel = [{"Ad-0001"}, {"Ad-0002"}, {"Ad-0003"}, {"Ad-0001"}, {"Ad-0003"}, {"Ad-0002"}]
    return [
        AuctionQuery(f"Q-{j}", texts[j % 6], "t", "p", "likes running and baking", ADS, frozenset(rel[j % 6]))
        for j in range(n)
    ]


def setup(seed: int = 0):
    llm = WordLLM()
    clicks = ClickModel(seed=seed, embedder=BagEmbedder())
    answers = PlainAnswers(llm)
    mechs = [
        SlotVCG(answers, BagEmbedder()),
        CurrencyMosaic(llm, clicks, m=5, context_aware=False),
        CurrencyMosaic(llm, clicks, m=5, context_aware=True),
        LLMAuctionPolicy(llm),
    ]
    return llm, clicks, answers, mechs, Judge(clicks, plain=llm, plain_answers=answers)


# ---------------------------------------------------------------------------------------------- units


def test_every_payment_is_currency_under_the_one_click_model():
    llm, clicks, answers, (vcg_m, mb, mc, la), judge = setup()
    ep = episodes_from(queries(), seed=3)[2]
    v = ep.values
    # VCG: the winner's price per click is its critical bid, in integer micros, at most its bid.
    s = vcg_m.run(ep, v)
    assert s.price_per_click.dtype == np.int64 and s.slot is not None
    w = s.slot
    crit = s.price_per_click[w] / gen.MICROS
    assert 0 < crit <= v[w]
    emb = BagEmbedder().embed([ep.query.text] + [ClickModel.ad_text(a) for a in ADS])
    sig = np.ones(3)
    above, below = v.copy(), v.copy()
    above[w], below[w] = crit * (1 + 1e-9), crit * (1 - 1e-6)
    assert vcg.clear(emb[:1], emb[1:], sig, above).winner[0] == w
    assert vcg.clear(emb[:1], emb[1:], sig, below).winner[0] != w
    m = judge.measure(ep, s)
    parsed = parse_reply(judge.displayed(ep, s), ADS)
    ctr = clicks.probabilities([(ep.query, parsed)])[0]
    assert parsed.indices == (w,) and m["ads"] == 1
    assert m["revenue"] == pytest.approx(crit * ctr[w]) and m["value"] == pytest.approx(v[w] * ctr[w])
    # MOSAIC: rewards are bid x click probability (currency); its payment is per auction, in currency.
    s = mc.run(ep, v)
    texts, _, ctr_m, log_ref, log_gen = mc.candidates(ep)
    want = mosaic.payments(v[:, None] * ctr_m, log_ref, log_gen, 1.0)
    np.testing.assert_allclose(s.fixed, want)
    assert not s.price_per_click.any()
    assert judge.measure(ep, s)["revenue"] == pytest.approx(float(np.sum(want)))
    # Doubling every bid doubles rewards, so with τ doubled too the payments double: a currency, not nats.
    mc2 = CurrencyMosaic(llm, clicks, m=5, context_aware=True, tau=2.0)
    np.testing.assert_allclose(mc2.run(ep, 2 * v).fixed, 2 * want, rtol=1e-9)
    # The baseline samples from the plain assistant, which writes no markup here: no ad, no payment.
    sb = mb.run(ep, v)
    assert parse_reply(sb.reply, ADS).n_ads == 0 and not sb.fixed.any()
    # LLM-Auction: a clicked ad pays its bid.
    s = la.run(ep, v)
    parsed = parse_reply(s.reply, ADS)
    ctr = clicks.probabilities([(ep.query, parsed)])[0]
    assert judge.measure(ep, s)["revenue"] == pytest.approx(float(v @ ctr))


def test_relevance_is_read_from_the_judgments():
    _, _, _, (vcg_m, *_), judge = setup()
    for ep in episodes_from(queries(), seed=1):
        s = vcg_m.run(ep, ep.values)
        m = judge.measure(ep, s)
        ad = ADS[s.slot]
        assert m["relevant_ads"] == int(ad.ad_id in ep.query.relevant)
        assert m["candidates_relevant"] == 1 and m["candidates"] == 3


# ------------------------------------------------------------------------- each adapter is its kernel


def test_vcg_adapter_is_the_kernel_with_a_separate_slot():
    """The slot VCG shows :func:`vcg.clear`'s winner on the kernel's own inputs in a separate slot below the
    untouched plain answer; only the winner pays, and what it pays comes from the kernel's Clarke payment."""
    _, clicks, answers, (mech, *_), judge = setup()
    assert isinstance(mech, Mechanism)
    ep = episodes_from(queries(), seed=4)[0]
    shown = mech.run(ep, ep.values)
    vecs = BagEmbedder().embed([ep.query.text] + [ClickModel.ad_text(a) for a in ADS])
    res = vcg.clear(vecs[:1], vecs[1:], np.ones(3), ep.values)
    w = int(res.winner[0])
    assert shown.slot == w and shown.reply == answers.get(ep).text
    want = gen.to_micros(ep.values[w] * float(res.payment[0]) / float(res.value[0]))
    assert shown.price_per_click[w] == int(want)
    assert not np.delete(shown.price_per_click, w).any() and not shown.fixed.any()
    ctr = clicks.probabilities([(ep.query, parse_reply(judge.displayed(ep, shown), ADS))])[0]
    assert judge.measure(ep, shown)["revenue"] == pytest.approx(shown.price_per_click[w] / gen.MICROS * ctr[w])


def test_mosaic_adapter_matches_the_kernel():
    """MOSAIC's shown reply is one of its candidates and its payments are the kernel's Rochet payments on
    candidates sampled and scored independently here; the harness times and counts its work."""
    llm, clicks, _, _, judge = setup()
    mech = CurrencyMosaic(llm, clicks, m=6, max_new_tokens=3)
    assert isinstance(mech, Mechanism) and mech.name == "mosaic-context"
    ep = episodes_from(queries(2), seed=2)[1]
    shown = mech.run(ep, ep.values)
    q = ep.query
    from adspace.experiments.llm_auction.prompts import ad_writer_messages

    prompt = ad_writer_messages(q.text, q.profile, q.candidates, None, short=True)
    (row,) = llm.sample([prompt], 6, seed=ep.seed, max_new_tokens=3, temperature=0.7, top_p=0.8)
    texts = [r.text for r in row]
    log_ref = llm.score([[{"role": "system", "content": PLAIN_SYSTEM}, {"role": "user", "content": q.text}]] * 6, row)
    ctr = np.stack(clicks.probabilities([(q, parse_reply(t, ADS)) for t in texts]), axis=1)
    want = mosaic.payments(ep.values[:, None] * ctr, log_ref, np.array([r.logprob for r in row]), 1.0)
    np.testing.assert_allclose(shown.fixed, want)
    assert shown.reply in texts and shown.slot is None and not shown.price_per_click.any()
    (got,) = evaluate([mech], [ep], judge)["mosaic-context"]
    assert {"seconds", "cpu_seconds", "llm_passes", "embedder_texts"} <= set(got)


def test_evaluate_runs_every_mechanism_on_the_same_inputs():
    _, _, _, (vcg_m, mb, *_), judge = setup()
    eps = episodes_from(queries(2), seed=1)
    rows = evaluate([vcg_m, mb], eps, judge)
    assert list(rows) == ["embedding-vcg", "mosaic-baseline"]
    for rs in rows.values():
        assert [r["query_id"] for r in rs] == [e.query.query_id for e in eps]
    with pytest.raises(ValueError, match="lacks name"):
        evaluate([object()], eps, judge)


def test_episode_inputs_are_validated():
    q = queries()[0]
    with pytest.raises(ValueError, match="values: need one positive value per candidate"):
        Episode(q, np.array([1.0, 0.0, 2.0]), 0, 0)
    with pytest.raises(ValueError, match=r"query\.candidates\[1\]\.ad_id: duplicate"):
        Episode(replace(q, candidates=(ADS[0], ADS[0], ADS[2])), np.array([1.0, 2.0, 3.0]), 0, 0)
    with pytest.raises(ValueError, match="query.text: must be a non-empty"):
        Episode(replace(q, text=" "), np.array([1.0, 2.0, 3.0]), 0, 0)


# ---------------------------------------------------------------------------------- seeds and timing


def _strip(rows):
    return {
        k: [{f: v for f, v in r.items() if f not in ("seconds", "cpu_seconds")} for r in rs] for k, rs in rows.items()
    }


def test_same_seeds_give_the_same_outcome():
    eps = episodes_from(queries(), seed=5)
    a = evaluate(setup()[3], eps, setup()[4])
    _, _, _, mechs, judge = setup()
    b = evaluate(mechs, episodes_from(queries(), seed=5), judge)
    assert _strip(a) == _strip(b)
    assert summarize(a, seed=2)["llm-auction"]["value"] == summarize(b, seed=2)["llm-auction"]["value"]
    c = evaluate(setup()[3], episodes_from(queries(), seed=6), setup()[4])
    assert _strip(c) != _strip(a)


class LazyMechanism:
    """Loads a 'model' for 0.3 s in prepare(), then runs in microseconds."""

    name = "lazy"
    incentive = "n/a"
    payment_rule = "nothing"

    def __init__(self):
        self.loaded = False

    def prepare(self):
        time.sleep(0.3)
        self.loaded = True

    def run(self, ep, bids):
        assert self.loaded, "run before prepare"
        return Shown("the best shoes", None, np.zeros(3, dtype=np.int64), np.zeros(3))


def test_model_loading_is_excluded_from_seconds_per_query():
    _, clicks, answers, _, judge = setup()
    t0 = time.perf_counter()
    rows = evaluate([LazyMechanism()], episodes_from(queries(2)), judge)
    assert time.perf_counter() - t0 >= 0.3  # the load happened ...
    assert all(r["seconds"] < 0.05 for r in rows["lazy"])  # ... and is in no query's seconds


def test_forward_passes_are_counted_per_call_of_the_transformer():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).eval()
    ids = torch.tensor([[1, 2, 3]])
    with ForwardCounter() as c, torch.no_grad():
        model(input_ids=ids)  # causal LM -> its decoder: one pass
        model.model(input_ids=ids)  # the decoder directly: one pass
        model(input_ids=torch.tensor([[1, 2], [3, 4]]))  # a batch is one pass
    assert c.split() == (3, 0)
    with torch.no_grad():
        model(input_ids=ids)
    assert c.split() == (3, 0)  # not counting once the block is left


# ------------------------------------------------------------------------------------------ incentives


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=3, max_size=3), st.integers(0, 5))
def test_vcg_critical_price_per_click_shading_never_gains(values, j):
    """Dominant-strategy truthfulness of the slot VCG: shading by 20% never raises the shader's utility."""
    _, _, _, (vcg_m, *_), judge = setup()
    q = queries()[j]
    v = np.array(values, dtype=np.float64)
    ep = Episode(q, v, seed=j, shader=int(np.argmax(v)))
    u = judge.measure(ep, vcg_m.run(ep, v), nll=False)["utility"][ep.shader]
    u_shaded = judge.measure(ep, vcg_m.run(ep, ep.shaded_bids()), nll=False)["utility"][ep.shader]
    assert u_shaded <= u + 1e-9


def test_mosaic_shading_gain_is_not_positive_in_expectation_and_first_price_gains():
    _, clicks, _, (_, _, mc, la), judge = setup()
    eps = episodes_from(queries(), seed=2)
    for ep in eps:
        _, _, ctr, log_ref, log_gen = mc.candidates(ep)
        true = ep.values[:, None] * ctr
        k = ep.shader
        truthful = mosaic.utility_of_report(k, true[k], true, log_ref, log_gen, 1.0)
        shaded = mosaic.utility_of_report(k, 0.8 * true[k], true, log_ref, log_gen, 1.0)
        assert shaded <= truthful + 1e-9  # Theorem 1, on the currency rewards the adapter reports
    rows = evaluate([la], eps, judge)["llm-auction"]
    # first price per click: the shader pays 20% less per click on the reply it gets
    assert any(r["shading_gain"] > 0 for r in rows)


def test_summary_has_intervals_for_every_metric():
    _, _, _, mechs, judge = setup()
    rows = evaluate(mechs, episodes_from(queries(), seed=0), judge)
    s = summarize(rows, n_resamples=200)
    for name in ("embedding-vcg", "mosaic-baseline", "mosaic-context", "llm-auction"):
        for key in ("value", "revenue", "ads", "any_format_error", "seconds", "shading_gain", "delta_nll"):
            iv = s[name][key]
            assert iv["low"] <= iv["estimate"] <= iv["high"] and iv["n"] == 6
    assert s["embedding-vcg"]["ads"]["estimate"] == 1.0
    assert s["embedding-vcg"]["delta_nll"]["estimate"] == 0.0  # the plain answer, untouched
    assert s["mosaic-baseline"]["relevant_share"]["estimate"] is None  # showed no ad: no share


def test_reward_and_sampled_clicks_come_from_the_same_reply():
    _, clicks, _, (vcg_m, _mb, _mc, la), judge = setup()
    for ep in episodes_from(queries(), seed=4):
        for m in (vcg_m, la):
            shown = m.run(ep, ep.values)
            row = judge.measure(ep, shown)
            parsed = parse_reply(judge.displayed(ep, shown), ADS)
            clicked = np.zeros(3)
            for c in clicks.feedback([(ep.query, parsed)])[0]:
                clicked[[a.ad_id for a in ADS].index(c.ad_id)] = float(c.clicked)
            price = shown.price_per_click / gen.MICROS
            assert row["sampled_revenue"] == pytest.approx(float(price @ clicked))
            penalty = parsed.s_resp()  # λ = 1 and the paper's costs by default
            assert row["reward"] == pytest.approx(row["revenue"] - penalty)
            assert row["sampled_reward"] == pytest.approx(row["sampled_revenue"] - penalty)


def test_replicates_are_one_query_in_the_intervals_and_shading_can_be_skipped():
    _, _, _, (vcg_m, *_rest, la), judge = setup()
    one = episodes_from(queries(4), seed=1)
    three = episodes_from(queries(4), seed=1, replicates=3)
    assert [(e.query, e.seed) for e in three[:4]] == [(e.query, e.seed) for e in one]
    assert len({e.seed for e in three}) == 12
    assert all(np.array_equal(e.values, three[j % 4].values) for j, e in enumerate(three))
    rows = evaluate([vcg_m, la], three, judge, shading=None)
    assert all(r["shading_gain"] is None for rs in rows.values() for r in rs)
    s = summarize(rows, n_resamples=100)
    assert s["llm-auction"]["queries"] == 4 and s["llm-auction"]["replies"] == 12
    assert s["llm-auction"]["revenue"]["n"] == 4 and s["llm-auction"]["shading_gain"]["estimate"] is None
    want = np.mean([np.mean([r["revenue"] for r in rows["llm-auction"][j::4]]) for j in range(4)])
    assert s["llm-auction"]["revenue"]["estimate"] == pytest.approx(want)
    with pytest.raises(ValueError, match="replicates"):
        episodes_from(queries(), replicates=0)


def test_bad_inputs_name_the_field():
    q = queries()[0]
    with pytest.raises(ValueError, match="values: need one positive value per candidate"):
        Episode(q, np.array([1.0, 2.0]), 0, 0)
    with pytest.raises(ValueError, match="shader"):
        Episode(q, np.array([1.0, 2.0, 3.0]), 0, 5)
    with pytest.raises(ValueError, match="tau"):
        CurrencyMosaic(WordLLM(), None, tau=0.0)
    with pytest.raises(ValueError, match="mechanisms: names must be distinct"):
        evaluate([LazyMechanism(), LazyMechanism()], [], setup()[4])


def test_report_writes_csv_markdown_and_figure(tmp_path):
    import csv

    from adspace.experiments.comparison.report import markdown_table, table_rows, write_csv, write_figure

    _, _, _, mechs, judge = setup()
    rows = evaluate(mechs, episodes_from(queries(3), seed=0), judge)
    summary = summarize(rows, n_resamples=100)
    result = {
        "currency": "currency units per query",
        "mechanisms": {
            m.name: {"incentive": m.incentive, "payment_rule": m.payment_rule, **summary[m.name]} for m in mechs
        },
    }
    write_csv(result, tmp_path / "c.csv")
    got = list(csv.DictReader((tmp_path / "c.csv").open()))
    vcg_value = next(r for r in got if r["mechanism"] == "embedding-vcg" and r["metric"] == "value")
    assert float(vcg_value["estimate"]) == pytest.approx(summary["embedding-vcg"]["value"]["estimate"])
    md = markdown_table(result).splitlines()
    assert len(md) == 2 + len(mechs) and md[2].startswith("| embedding-vcg | ")
    assert len(table_rows(result)) == len(mechs)
    write_figure(result, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5_000


# ------------------------------------------------------------------- one evaluation path (llm-auction)


class TrainedWordLLM(WordLLM):
    """Another model: the same vocabulary, other distributions."""

    name = "trained-words"

    def render(self, prompt):
        return "trained" + json.dumps(prompt)


def test_llm_auction_experiment_rows_are_the_compare_commands_rows():
    """``adspace experiment llm-auction`` evaluates through the harness: its VCG, MOSAIC and LLM-Auction
    rows are, to the number, the rows ``adspace experiment compare`` gets on the same queries and seeds."""
    from adspace.experiments.comparison.llm_auction_experiment import ExperimentConfig
    from adspace.experiments.comparison.llm_auction_methods import evaluate_methods
    from adspace.experiments.comparison.runner import CompareConfig, build_mechanisms
    from adspace.experiments.llm_auction.environment import draw_bids

    llm, clicks, trained = WordLLM(), ClickModel(seed=5, embedder=BagEmbedder()), TrainedWordLLM()
    qs = queries()
    cfg = ExperimentConfig(n_test=len(qs), seed=5, warm=None, mosaic_candidates=5, mosaic_tau=1.0, eval_samples=1)
    drawn = draw_bids(len(qs), 3, np.random.default_rng(5 + 10_000))  # how run_experiment draws its test bids
    methods, rows = evaluate_methods(
        llm, llm, {"llm_auction": trained}, clicks, qs, cfg, constrained=False, values=drawn, embedder=BagEmbedder()
    )
    assert list(rows) == ["vcg_slot", "pretrained", "mosaic", "llm_auction"]
    # the compare command's path, with the options that match the experiment's sampling
    ccfg = CompareConfig(n_queries=len(qs), seed=5, mosaic_m=5, max_new_tokens=cfg.irpo.max_new_tokens)
    answers = PlainAnswers(llm, max_new_tokens=ccfg.max_new_tokens)
    mechs = build_mechanisms(llm, clicks, ccfg, policy=trained, answers=answers, embedder=BagEmbedder())
    ref = evaluate(mechs, episodes_from(qs, seed=5), Judge(clicks, plain=llm, plain_answers=answers), shading=None)
    for ours, theirs in (("vcg_slot", "embedding-vcg"), ("mosaic", "mosaic-context"), ("llm_auction", "llm-auction")):
        compute = ("seconds", "cpu_seconds", "embedder_texts")  # the embedder's cache is warm the second time
        assert [{f: v for f, v in r.items() if f not in compute} for r in rows[ours]] == [
            {f: v for f, v in r.items() if f not in compute} for r in ref[theirs]
        ], ours
        s = summarize({theirs: ref[theirs]}, seed=5)[theirs]  # both commands seed the bootstrap with --seed
        assert methods[ours]["revenue_per_query"] == s["revenue"]["estimate"]
        assert methods[ours]["ci95"]["revenue_per_query"] == [s["revenue"]["low"], s["revenue"]["high"]]
        assert methods[ours]["reward_per_query"] == s["reward"]["estimate"]
    # the pre-trained and the trained model wrote different replies; the VCG's slot ad is always there
    assert [r["reply"] for r in rows["pretrained"]] != [r["reply"] for r in rows["llm_auction"]]
    assert methods["vcg_slot"]["ads_per_reply"] == 1.0 and methods["vcg_slot"]["delta_nll"] == 0.0
    assert all(r["shading_gain"] is None for r in rows["llm_auction"])  # shading off by default here
    with pytest.raises(ValueError, match="values: not the harness's draw"):
        evaluate_methods(llm, llm, {}, clicks, qs, cfg, constrained=False, values=drawn + 1, embedder=BagEmbedder())
