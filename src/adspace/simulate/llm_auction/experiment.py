"""``adspace experiment llm-auction``: train LLM-Auction by IRPO and compare it with the other mechanisms.

On the same held-out queries, users and bids (bids drawn once from ``{1..100}``), every method writes
``eval_samples`` replies per query, the same simulated user clicks, and the same quantities are computed
(:func:`adspace.simulate.llm_auction.environment.summarize`): revenue per query (sum of the bids of the
clicked ads, first price per click), reward per query (revenue − λ·s_resp), ITCTR, ads per reply and the
format-error rate.

Methods
-------
``pretrained``
    The pre-trained LLM with the ad-writer prompt (the paper's first row).
``mosaic``
    MOSAIC (:mod:`adspace.mechanisms.mosaic`) over ``mosaic_candidates`` replies of the pre-trained
    ad-writer: advertiser ``i`` reports ``r_i(y) = b_i·pCTR_i(y)·1(a_i ∈ y)`` (the paper's MOSAIC baseline
    uses its reward model the same way), the user-experience term ``−λ·s_resp(y)`` enters the logits as a
    non-strategic part, candidates come from the generating model itself (``log π_ref = log π_gen``, the
    importance correction cancels), and one reply is drawn from the allocation. Rochet payments (with the
    offset) are reported as ``mosaic_payment_per_query``; revenue is the sum of the clicked bids as for all
    methods.
``vcg_slot``
    The embedding-space VCG (:func:`adspace.mechanisms.vcg.clear`) with the ad in a separate slot: the
    pre-trained LLM answers with a plain assistant prompt, the query embedding clears an auction among
    the candidates (centers = ad text embeddings, ``σ = vcg_sigma``, bid = the query's bid) and the winner
    is shown below the answer as ``Sponsored: @Title@[Ad-ID]``. Revenue counts the winner's bid when
    clicked (as for the other methods); the Clarke price per click is reported as ``vcg_payment_per_query``.
``llm_auction``, ``llm_auction_oracle``
    The IRPO-trained model with the pCTR reward, and with the simulator's clicks as reward.

A bid sweep (ad 0 of ``sweep_queries`` test queries, bids ``sweep_bids``, others fixed, ``sweep_samples``
replies per bid) measures whether the allocation is monotone in the bid for the pre-trained and the
trained model (:func:`adspace.mechanisms.generative.monotonicity`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from adspace.mechanisms import generative as gen
from adspace.simulate.llm_auction.data import load_queries, split
from adspace.simulate.llm_auction.environment import Rollout, draw_bids, prompts_for, score_texts, summarize
from adspace.simulate.llm_auction.training import IRPOConfig, run_irpo, sample_replies
from adspace.simulate.llm_auction.users import ClickModel
from adspace.simulate.llm_auction.warmstart import WarmStartConfig, warm_start, warm_start_examples, writer_figures

__all__ = ["ExperimentConfig", "PAPER_TABLE2", "run_experiment"]

PAPER_TABLE2 = {
    "pretrained": {"revenue": 46.88, "reward": -120.11},
    "mosaic": {"revenue": 73.29, "reward": 24.95},
    "llm_auction": {"revenue": 125.28, "reward": 54.13},
    "llm_auction_oracle": {"revenue": 174.64, "reward": 109.64},
}

PLAIN_SYSTEM = "You are a helpful AI assistant. Answer the user's question concisely."


@dataclass
class ExperimentConfig:
    """Scale of the experiment; the defaults fit 2 CPU cores in 30 minutes, :meth:`full` one GPU in 10."""

    n_train: int = 18
    n_test: int = 50
    n_candidates: int = 3
    eval_samples: int = 4
    mosaic_candidates: int = 4
    mosaic_tau: float = 5.0
    vcg_sigma: float = 1.0
    sweep_queries: int = 4
    sweep_bids: tuple[int, ...] = (1, 25, 50, 75, 100)
    sweep_samples: int = 8
    oracle: bool = True
    seed: int = 0
    data: str | None = None
    irpo: IRPOConfig = field(default_factory=lambda: IRPOConfig(max_new_tokens=40, max_pairs=24, constrained=True))
    # the supervised warm start (:mod:`.warmstart`, ``--warm-start``); off by default: measured, it did not
    # raise the insertion rate at this scale (docs/llm-auction.md), and its time goes to IRPO instead
    warm: WarmStartConfig | None = None
    n_warm: int = 48  # warm-start queries (disjoint from training and held-out queries)
    writer_check: int = 12  # held-out queries (x 2 replies) for the ad-writer stage's before/after figures

    @classmethod
    def full(cls, device: str = "cuda", **kw: Any) -> ExperimentConfig:
        """One GPU in about five minutes (at most ten): the default training recipe at a larger scale.

        256 training queries x 3 IRPO epochs x M = 4 replies of up to 64 tokens, as many DPO pairs per
        training query as the default (341 per epoch) in batches of 16; 100 held-out queries x 4 replies
        per method, MOSAIC over 8 candidates, a bid sweep of 10 queries x 5 bids x 32 replies.
        Everything runs on ``device`` (sampling, scoring, pCTR and DPO; the sentence embedder stays on
        the CPU), with bf16 mixed precision in DPO where the GPU supports it. The paper's scale (12,000 /
        3,000 queries, replies up to 2,048 tokens, full fine-tuning at lr 1e-6) is far beyond ten minutes
        on one GPU; its hyperparameters are
        :meth:`~adspace.simulate.llm_auction.training.IRPOConfig.paper`. ``kw`` overrides any field.
        """
        import torch

        dev = torch.device(device)
        bf16 = dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        recipe = cls()
        n_train = max(256, recipe.n_train)
        pairs = recipe.irpo.max_pairs
        irpo = replace(
            recipe.irpo,
            device=device,
            bf16=bf16,
            epochs=max(3, recipe.irpo.epochs),
            samples=max(4, recipe.irpo.samples),
            max_new_tokens=64,
            max_pairs=None if pairs is None else round(pairs * n_train / recipe.n_train),  # as many per query
            batch_size=16,
        )
        base: dict[str, Any] = dict(
            n_train=n_train,
            n_test=max(100, recipe.n_test),
            eval_samples=max(4, recipe.eval_samples),
            mosaic_candidates=8,
            sweep_queries=10,
            sweep_samples=32,
            writer_check=50,
            irpo=irpo,
        )
        base.update(kw)
        return cls(**base)


def _device_name(device: str) -> str:
    """``device`` and, for a GPU, its name (recorded with the results)."""
    import torch

    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _flat(rolls: list[list[Rollout]]) -> list[Rollout]:
    return [r for row in rolls for r in row]


def _sample_texts(backend, msgs, n, cfg: IRPOConfig, seed: int, queries=None) -> list[list[str]]:
    """Replies as text; constrained (``cfg.constrained``) when the queries' candidates are given."""
    if queries is not None and cfg.constrained:
        out = sample_replies(backend, msgs, queries, n, cfg, seed)
    else:
        out = sample_replies(backend, msgs, [], n, replace(cfg, constrained=False), seed)
    return [[r.text for r in row] for row in out]


def _evaluate_policy(
    backend, test, bids, user, cfg: ExperimentConfig, seed: int, *, constrained: bool = False
) -> tuple[dict, list[list[Rollout]]]:
    msgs = prompts_for(test, bids, short=cfg.irpo.short_prompt)
    texts = _sample_texts(backend, msgs, cfg.eval_samples, replace(cfg.irpo, constrained=constrained), seed, test)
    rolls = score_texts(test, bids, msgs, texts, user)
    return summarize(rolls, lam=cfg.irpo.lam, ad_cost=cfg.irpo.ad_cost, error_cost=cfg.irpo.error_cost), rolls


def _evaluate_mosaic(backend, test, bids, user, pctr, cfg: ExperimentConfig, seed: int) -> dict:
    from adspace.mechanisms import mosaic

    msgs = prompts_for(test, bids, short=cfg.irpo.short_prompt)
    texts = _sample_texts(backend, msgs, cfg.mosaic_candidates, cfg.irpo, seed)
    cands = score_texts(test, bids, msgs, texts, user)
    rng = np.random.default_rng(seed)
    chosen_rows, pays = [], []
    for row in cands:
        ctr = pctr.predict(row) if pctr is not None else [r.clicked.astype(float) for r in row]
        rewards = np.stack([r.bids * c * r.parsed.shown() for r, c in zip(row, ctr, strict=True)], axis=1)  # (n, M)
        ux = -cfg.irpo.lam * np.array(
            [r.parsed.s_resp(ad_cost=cfg.irpo.ad_cost, error_cost=cfg.irpo.error_cost) for r in row]
        )
        # the user-experience term is non-strategic: it enters the logits like log π_ref (a fixed prior)
        base = ux / cfg.mosaic_tau
        chosen = []
        for _ in range(cfg.eval_samples):
            out = mosaic.run(rewards, base - base.max(), np.zeros(len(row)), cfg.mosaic_tau, rng=rng)
            chosen.append(row[out.index])
            pays.append(float(np.sum(out.payments)))
        chosen_rows.append(chosen)
    res = summarize(chosen_rows, lam=cfg.irpo.lam, ad_cost=cfg.irpo.ad_cost, error_cost=cfg.irpo.error_cost)
    res["mosaic_payment_per_query"] = float(np.mean(pays))
    return res


def _evaluate_vcg(backend, test, bids, user, cfg: ExperimentConfig, seed: int) -> dict:
    from adspace.mechanisms.vcg import clear
    from adspace.models.embedder import get_embedder

    emb = get_embedder()
    plain = [[{"role": "system", "content": PLAIN_SYSTEM}, {"role": "user", "content": q.text}] for q in test]
    texts = _sample_texts(backend, plain, cfg.eval_samples, cfg.irpo, seed)
    q_emb = emb.embed([q.text for q in test])
    out_texts, pays = [], []
    for k, q in enumerate(test):
        centers = emb.embed([ClickModel.ad_text(a) for a in q.candidates])
        res = clear(q_emb[k : k + 1], centers, np.full(len(q.candidates), cfg.vcg_sigma), bids[k])
        w = int(res.winner[0])
        row = []
        for t in texts[k]:
            row.append(t if w < 0 else f"{t}\n\nSponsored: {q.candidates[w].markup()}")
        out_texts.append(row)
        pays.append((w, float(res.payment[0])))
    msgs = prompts_for(test, bids, short=cfg.irpo.short_prompt)
    rolls = score_texts(test, bids, msgs, out_texts, user)
    res = summarize(rolls, lam=cfg.irpo.lam, ad_cost=cfg.irpo.ad_cost, error_cost=cfg.irpo.error_cost)
    clarke = [p if w >= 0 and r.clicked[w] else 0.0 for row, (w, p) in zip(rolls, pays, strict=True) for r in row]
    res["vcg_payment_per_query"] = float(np.mean(clarke))
    return res


def _sweep(backend, test, bids, user, cfg: ExperimentConfig, seed: int) -> dict:
    qs = test[: cfg.sweep_queries]
    out = {"bids": list(cfg.sweep_bids), "queries": []}
    for j, q in enumerate(qs):
        rows = np.repeat(bids[j : j + 1], len(cfg.sweep_bids), axis=0)
        rows[:, 0] = cfg.sweep_bids
        msgs = prompts_for([q] * len(cfg.sweep_bids), rows, short=cfg.irpo.short_prompt)
        texts = _sample_texts(backend, msgs, cfg.sweep_samples, cfg.irpo, seed + j, [q] * len(cfg.sweep_bids))
        rolls = score_texts([q] * len(cfg.sweep_bids), rows, msgs, texts, user)
        itc, se, expo = [], [], []
        for row in rolls:
            est = gen.estimate_itctr(np.stack([r.clicked for r in row]), np.stack([r.parsed.shown() for r in row]))
            itc.append(float(est.itctr[0]))
            se.append(float(est.stderr[0]))
            expo.append(float(est.exposure[0]))
        m = gen.monotonicity(cfg.sweep_bids, itc, se)
        out["queries"].append({"query_id": q.query_id, "itctr": itc, "stderr": se, "exposure": expo, **asdict(m)})
    # pooled over queries: mean ITCTR and exposure of the swept ad per bid
    itc = np.mean([r["itctr"] for r in out["queries"]], axis=0)
    expo = np.mean([r["exposure"] for r in out["queries"]], axis=0)
    pooled = gen.monotonicity(cfg.sweep_bids, itc)
    out["pooled"] = {"itctr": itc.tolist(), "exposure": expo.tolist(), **asdict(pooled)}
    out["exposure_spearman"] = gen.monotonicity(cfg.sweep_bids, expo).spearman
    return out


def _copy_of(backend):
    """A second backend with the same weights (the ad-writer after its warm start)."""
    from adspace.models.llm import LocalLLM

    other = LocalLLM(backend.path, device=backend.device)
    other.model.load_state_dict(backend.model.state_dict())
    return other


def _writer_check(backend, test, bids, user, cfg: ExperimentConfig) -> dict:
    """Insertion and format-error rates of unconstrained replies on the first ``writer_check`` held-out queries."""
    qs, b = test[: cfg.writer_check], bids[: cfg.writer_check]
    msgs = prompts_for(qs, b, short=cfg.irpo.short_prompt)
    texts = _sample_texts(backend, msgs, 2, replace(cfg.irpo, constrained=False), cfg.seed + 5)
    return writer_figures(score_texts(qs, b, msgs, texts, user))


def _ad_writer_stage(backend, warm_q, test, bids, user, cfg: ExperimentConfig, rng) -> dict:
    """The warm start (:mod:`.warmstart`) on ``warm_q``, with its figures on held-out queries before and after."""
    before = _writer_check(backend, test, bids, user, cfg)
    warm_bids = draw_bids(len(warm_q), cfg.n_candidates, rng, cfg.irpo.bid_low, cfg.irpo.bid_high)
    examples = warm_start_examples(backend, warm_q, warm_bids, cfg.warm, short=cfg.irpo.short_prompt)
    stats = warm_start(backend, examples, cfg.warm)
    after = _writer_check(backend, test, bids, user, cfg)
    return {"before": before, "after": after, **stats, "example": examples[0]["reply"]}


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path, *, progress=None) -> dict:
    """Run everything; write ``results.json`` and ``llm_auction.png`` to ``out_dir``; return the results.

    Before each phase, what is done so far goes to ``results.partial.json`` (removed at the end), so a run
    cut short still leaves its finished phases."""
    from adspace.models.llm import LocalLLM

    say = progress or (lambda s: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    n_warm = cfg.n_warm if cfg.warm is not None else 0
    queries = load_queries(
        n_warm + cfg.n_train + cfg.n_test, data=cfg.data, n_candidates=cfg.n_candidates, seed=cfg.seed
    )
    train, test = split(queries, cfg.n_test)
    warm_q, train = train[:n_warm], train[n_warm:]
    user = ClickModel(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed + 10_000)
    test_bids = draw_bids(len(test), cfg.n_candidates, rng, cfg.irpo.bid_low, cfg.irpo.bid_high)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    results: dict[str, Any] = {"config": asdict(cfg), "methods": {}, "training": {}}

    def timed(name, fn):
        # what is done so far, in case the run is cut (a GPU lease, a time limit): results.partial.json
        results["timings_s"], results["cpu_s"] = timings, cpu
        results["total_s"] = time.perf_counter() - t_start
        (out / "results.partial.json").write_text(json.dumps(results, indent=1, default=str))
        say(name)
        t, c = time.perf_counter(), time.process_time()
        v = fn()
        timings[name] = time.perf_counter() - t
        cpu[name] = time.process_time() - c
        return v

    dev = cfg.irpo.device
    base = timed("load model", lambda: LocalLLM(device=dev))
    results["model"] = base.name
    results["device"] = _device_name(dev)
    # the embedding VCG's separate slot needs no ad-writer: the base model answers with a plain prompt
    results["methods"]["vcg_slot"] = timed(
        "vcg_slot", lambda: _evaluate_vcg(base, test, test_bids, user, cfg, cfg.seed + 2)
    )
    if cfg.warm is not None:
        results["ad_writer"] = timed(
            "ad-writer warm start", lambda: _ad_writer_stage(base, warm_q, test, test_bids, user, cfg, rng)
        )
    results["methods"]["pretrained"], pre_rolls = timed(
        "pretrained", lambda: _evaluate_policy(base, test, test_bids, user, cfg, cfg.seed + 1)
    )
    results["methods"]["pretrained_constrained"], pre_con_rolls = timed(
        "pretrained constrained",
        lambda: _evaluate_policy(base, test, test_bids, user, cfg, cfg.seed + 1, constrained=True),
    )
    # the ad-writer stage's figures on all held-out replies: the prompt alone, then with constrained decoding
    results.setdefault("ad_writer", {}).update(
        prompt_only=writer_figures(pre_rolls), constrained=writer_figures(pre_con_rolls)
    )
    sweep_pre = timed("sweep pretrained", lambda: _sweep(base, test, test_bids, user, cfg, cfg.seed + 3))
    results["bid_sweep"] = {"pretrained": sweep_pre}

    policy = _copy_of(base)
    trained = timed(
        "train llm_auction", lambda: run_irpo(policy, train, cfg.irpo, out / "irpo_pctr", user=user, progress=say)
    )
    results["training"]["llm_auction"] = trained["epochs"]
    pctr = trained["pctr"]
    results["methods"]["mosaic"] = timed(
        "mosaic", lambda: _evaluate_mosaic(base, test, test_bids, user, pctr, cfg, cfg.seed + 4)
    )
    results["methods"]["llm_auction"], _ = timed(
        "llm_auction", lambda: _evaluate_policy(policy, test, test_bids, user, cfg, cfg.seed + 1)
    )
    results["methods"]["llm_auction_constrained"], _ = timed(
        "llm_auction constrained",
        lambda: _evaluate_policy(policy, test, test_bids, user, cfg, cfg.seed + 1, constrained=True),
    )
    sweep_post = timed("sweep llm_auction", lambda: _sweep(policy, test, test_bids, user, cfg, cfg.seed + 3))
    results["bid_sweep"]["llm_auction"] = sweep_post
    if cfg.oracle:
        oracle = _copy_of(base)
        ocfg = IRPOConfig(**{**asdict(cfg.irpo), "reward": "oracle"})
        ot = timed(
            "train llm_auction_oracle",
            lambda: run_irpo(oracle, train, ocfg, out / "irpo_oracle", user=user, progress=say),
        )
        results["training"]["llm_auction_oracle"] = ot["epochs"]
        results["methods"]["llm_auction_oracle"], _ = timed(
            "llm_auction_oracle", lambda: _evaluate_policy(oracle, test, test_bids, user, cfg, cfg.seed + 1)
        )
        results["methods"]["llm_auction_oracle_constrained"], _ = timed(
            "llm_auction_oracle constrained",
            lambda: _evaluate_policy(oracle, test, test_bids, user, cfg, cfg.seed + 1, constrained=True),
        )
    results["timings_s"] = timings
    results["cpu_s"] = cpu  # process CPU time: on a shared machine the honest measure of the work done
    results["total_s"] = time.perf_counter() - t_start
    results["paper_table2"] = PAPER_TABLE2
    results["comparison"] = compare_with_paper(results["methods"])
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.partial.json").unlink(missing_ok=True)
    plot(results, out / "llm_auction.png")
    return results


def compare_with_paper(methods: dict) -> dict:
    """Orderings by revenue and by reward, ours against Table 2 (for the methods both have)."""
    common = [m for m in PAPER_TABLE2 if m in methods]
    ours_rev = sorted(common, key=lambda m: -methods[m]["revenue_per_query"])
    ours_rew = sorted(common, key=lambda m: -methods[m]["reward_per_query"])
    paper_rev = sorted(common, key=lambda m: -PAPER_TABLE2[m]["revenue"])
    paper_rew = sorted(common, key=lambda m: -PAPER_TABLE2[m]["reward"])
    return {
        "revenue_order_ours": ours_rev,
        "revenue_order_paper": paper_rev,
        "reward_order_ours": ours_rew,
        "reward_order_paper": paper_rew,
        "revenue_order_matches": ours_rev == paper_rev,
        "reward_order_matches": ours_rew == paper_rew,
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    names = list(methods)
    fig, ax = plt.subplots(1, 4, figsize=(17, 4))
    for a, key, title in (
        (ax[0], "revenue_per_query", "revenue / query"),
        (ax[1], "reward_per_query", "reward / query"),
        (ax[2], "ads_per_reply", "ads per reply (bars) / format-error rate (dots)"),
    ):
        a.bar(range(len(names)), [methods[m][key] for m in names], color="tab:blue")
        a.set_xticks(range(len(names)), names, rotation=30, ha="right")
        a.set_title(title)
        a.axhline(0, color="k", lw=0.5)
    ax[2].plot(range(len(names)), [methods[m]["format_error_rate"] for m in names], "o", color="tab:red")
    for name, sw in results.get("bid_sweep", {}).items():
        ax[3].plot(sw["bids"], sw["pooled"]["itctr"], "o-", label=f"{name} ITCTR (ρ={sw['pooled']['spearman']:.2f})")
        ax[3].plot(sw["bids"], sw["pooled"]["exposure"], "x--", label=f"{name} exposure")
    ax[3].set_xlabel("bid of the swept ad")
    ax[3].set_title("bid sweep")
    ax[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
