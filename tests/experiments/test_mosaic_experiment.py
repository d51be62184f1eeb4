"""The MOSAIC study on text: prompts, data, the batched auction, the metrics, the command.

Most tests use a small deterministic backend (a toy LM whose log-probabilities are known) so the
pipeline logic is checked exactly and fast; one test runs the real command on SmolLM2 with a tiny
configuration, on the shipped demo market.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from adspace.experiments.datasets import WEBIS_ENV
from adspace.experiments.mosaic import study
from adspace.experiments.mosaic.study import Advertiser, Instance
from adspace.mechanisms import mosaic
from adspace.models.llm import LLMBackend, Reply

ADVS = (Advertiser("KitchenFix", "producing kitchen appliances"), Advertiser("EasyBake", "selling baking ingredients"))
INST = Instance("t:cookies", "How do I bake cookies?", ADVS)
WORDS = ["Mix", " flour", " KitchenFix", " EasyBake", " bake", " sugar"]


class ToyLLM(LLMBackend):
    """Replies are 3 words; each prompt gives its own known distribution over words (i.i.d. per token)."""

    name = "toy"

    def render(self, prompt):
        return json.dumps(prompt)

    def _dist(self, prompt, temperature=1.0):
        rng = np.random.default_rng(zlib.crc32(self.render(prompt).encode()))
        z = rng.normal(0, 1, len(WORDS)) / temperature
        return z - np.logaddexp.reduce(z)

    def sample(self, prompts, n, *, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=None):
        rng = np.random.default_rng(seed)
        out = []
        for p in prompts:
            d, d1 = self._dist(p, temperature), self._dist(p)
            row = []
            for _ in range(n):
                idx = rng.choice(len(WORDS), size=3, p=np.exp(d))
                row.append(Reply("".join(WORDS[i] for i in idx), d[idx], False, tuple(int(i) for i in idx), d1[idx]))
            out.append(row)
        return out

    def score(self, prompts, replies, *, temperature=1.0, top_p=1.0):
        return np.array(
            [self._dist(p, temperature)[list(r.token_ids)].sum() for p, r in zip(prompts, replies, strict=True)]
        )


def test_prompts_follow_the_paper():
    assert (
        study.advertiser_prompt("Q?", ADVS[0])[0]["content"]
        == "Answer the question advertising KitchenFix, producing kitchen appliances."
    )
    assert study.context_prompt("Q?", ADVS)[0]["content"] == (
        "Answer the query. Try to mention KitchenFix, who producing kitchen appliances and EasyBake, who selling baking ingredients."
    )
    assert study.reference_prompt("Q?") == [{"role": "user", "content": "Q?"}]


def test_text_auction_rewards_and_importance_weights():
    llm = ToyLLM()
    (auc,) = study.run_text_auction(llm, [INST], seed=3, m=6, max_new_tokens=3, temperature=0.8, top_p=1.0)
    assert set(auc) == {"baseline", "context"}
    for meth, a in auc.items():
        gen_prompt = (
            study.reference_prompt(INST.query) if meth == "baseline" else study.context_prompt(INST.query, ADVS)
        )
        replies = llm.sample([gen_prompt], 6, temperature=0.8, seed=3)[0] if meth == "baseline" else None
        ref = np.array(
            [llm._dist(study.reference_prompt(INST.query))[[WORDS.index(w) for w in _split(t)]].sum() for t in a.texts]
        )
        assert np.allclose(a.log_ref, ref)
        for i, adv in enumerate(ADVS):
            lp_i = np.array(
                [
                    llm._dist(study.advertiser_prompt(INST.query, adv))[[WORDS.index(w) for w in _split(t)]].sum()
                    for t in a.texts
                ]
            )
            assert np.allclose(a.rewards[i], lp_i - ref)  # r_i = log π_i − log π_ref
        tempered = np.array([llm._dist(gen_prompt, 0.8)[[WORDS.index(w) for w in _split(t)]].sum() for t in a.texts])
        assert np.allclose(a.log_gen, tempered)  # the distribution actually sampled from
        if replies is not None:
            assert [r.text for r in replies] == a.texts
        assert set(a.timing) == {"generation", "scoring", "generation_cpu", "scoring_cpu"}


def _split(text):
    out, rest = [], text
    while rest:
        w = next(w for w in WORDS if rest.startswith(w))
        out.append(w)
        rest = rest[len(w) :]
    return out


def test_metrics_are_the_papers():
    llm = ToyLLM()
    (auc,) = study.run_text_auction(llm, [INST], seed=1, m=8, max_new_tokens=3)
    rec = study.evaluate_instance(INST, auc, (1, 4, 8), 1.0, np.random.default_rng(0))
    a = auc["context"]
    cell = rec["methods"]["context"]["per_m"]["4"]
    r, ref, gen = a.rewards[:, :4], a.log_ref[:4], a.log_gen[:4]
    pi = mosaic.allocate(r, ref, gen, 1.0)
    assert np.isclose(cell["logprob_pi_r"], pi @ (ref + r.sum(axis=0)))
    assert np.allclose(cell["payment"], mosaic.payments(r, ref, gen, 1.0))
    assert np.allclose(cell["payment_no_offset"], mosaic.payments(r, ref, gen, 1.0, offset=False))
    # footnote 5: not participating = mean reward over candidates (both versions) not naming her
    for i, adv in enumerate(ADVS):
        vals = [x.rewards[i, j] for x in auc.values() for j, t in enumerate(x.texts) if adv.name not in t]
        assert np.isclose(rec["non_participation_reward"][i], np.mean(vals))
        assert np.isclose(cell["norm_reward"][i], r[i] @ pi - np.mean(vals))
        assert np.isclose(cell["norm_utility"][i], cell["norm_reward"][i] - cell["payment"][i])
    assert rec["methods"]["context"]["per_m"]["1"]["payment"] == [0.0, 0.0]  # one candidate: nothing to pay


def test_run_experiment_writes_results_and_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(
        study, "load_instances", lambda data, n, seed: ([INST, Instance("t:2", "Best oven?", ADVS)], "test")
    )
    cfg = study.MosaicConfig(n_queries=2, seeds=(0, 1), ms=(1, 2, 4), max_new_tokens=3)
    seen = []
    res = study.run_experiment(cfg, tmp_path, llm=ToyLLM(), progress=lambda d, t, q: seen.append((d, t)))
    assert seen[-1] == (4, 4)
    assert res["n_instances"] == 4
    on_disk = json.loads((tmp_path / "results.json").read_text())
    s = on_disk["summary"]
    assert set(s) == {"baseline", "context"}
    assert set(s["context"]["per_m"]) == {"1", "2", "4"}
    t = s["context"]["timing_seconds_per_auction"]
    assert abs(t["share_generation"] + t["share_scoring"] + t["share_mechanism"] - 1) < 1e-9
    for name in (
        "fig1_logprob_reward",
        "fig2_revenue_utility",
        "fig3_pearson",
        "figEC1_utility_offset",
        "figEC2_3_scatter",
    ):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_batches_follow_the_device_and_cover_every_instance(tmp_path, monkeypatch):
    """One ``sample`` call per batch of instances (both versions' prompts in it); the batch defaults to
    1 on a CPU and 25 on CUDA; the paper config is 50 queries x 25 seeds at 128 tokens on CUDA."""
    monkeypatch.setattr(
        study, "load_instances", lambda data, n, seed: ([INST, Instance("t:2", "Best oven?", ADVS)], "test")
    )
    calls = []

    class Counting(ToyLLM):
        def sample(self, prompts, n, **kw):
            calls.append(len(prompts))
            return super().sample(prompts, n, **kw)

    cfg = study.MosaicConfig(n_queries=2, seeds=(0, 1, 2), ms=(1, 2), max_new_tokens=3, batch_instances=4)
    res = study.run_experiment(cfg, tmp_path, llm=Counting(), figures=False)
    assert calls == [8, 4] and res["n_instances"] == 6 and res["batch_instances"] == 4
    assert study.MosaicConfig().batch == 1 and study.MosaicConfig(device="cuda:0").batch == 25
    assert study.MosaicConfig(device="cuda", batch_instances=3).batch == 3
    paper = study.MosaicConfig.paper()
    assert (paper.n_queries, len(paper.seeds), paper.max_new_tokens, paper.device, paper.batch) == (
        50,
        25,
        128,
        "cuda",
        25,
    )
    with pytest.raises(ValueError, match="batch_instances: must be >= 1"):
        study.MosaicConfig(batch_instances=0)


def test_paper_without_a_gpu_says_so(tmp_path):
    import torch
    from typer.testing import CliRunner

    from adspace.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the error is for machines without one")
    result = CliRunner().invoke(app, ["experiment", "mosaic", "--paper", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "no CUDA device" in result.output and "--device cpu" in result.output
    assert not (tmp_path / "results.json").exists()


def test_webis_instances_have_two_judged_relevant_advertisers(webis_root):
    insts, source = study.load_instances(None, n_queries=5, seed=0)
    assert source == "webis-ads" and len(insts) == 5
    import csv

    topic, q = insts[0].query_id.split(":", 1)
    with (webis_root / "advertisements" / f"{topic}_query_pairs.csv").open() as fh:
        relevant = {row["advertisement"] for row in csv.DictReader(fh) if row["query"] == q}
    assert len(insts[0].advertisers) == 2 and {a.name for a in insts[0].advertisers} <= relevant


def test_bad_data_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="data: no such folder"):
        study.load_instances(tmp_path / "missing")
    with pytest.raises(ValueError, match="ms: must be candidate counts"):
        study.MosaicConfig(ms=(0, 2))


@pytest.mark.slow
def test_command_runs_on_smollm2_with_the_demo_market(tmp_path, monkeypatch):
    """The real command, end to end, on the shipped demo market (the Webis data set hidden), tiny settings."""
    import torch
    from typer.testing import CliRunner

    from adspace.cli import app

    torch.set_num_threads(1)
    monkeypatch.delenv(WEBIS_ENV, raising=False)
    result = CliRunner().invoke(
        app,
        [
            "experiment",
            "mosaic",
            "--out",
            str(tmp_path / "out"),
            "--queries",
            "1",
            "--seeds",
            "1",
            "--ms",
            "1,2",
            "--max-new-tokens",
            "4",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["source"] == "demo" and res["n_instances"] == 1
    assert (tmp_path / "out" / "fig1_logprob_reward.png").is_file()
