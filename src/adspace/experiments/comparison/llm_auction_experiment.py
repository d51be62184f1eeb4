"""``adspace experiment llm-auction``: train LLM-Auction by IRPO and compare it with the other mechanisms.

Every method is evaluated by the comparison harness (:mod:`.llm_auction_methods` over
:mod:`adspace.experiments.comparison.harness`, the one evaluation path that ``adspace experiment compare``
uses too): on the same held-out queries, users and values (drawn once from ``{1..100}``; every advertiser bids its value), each method shows one reply
per episode (``eval_samples`` episodes per query, other seeds), and the harness's judge measures it
under the one click model (:class:`adspace.experiments.llm_auction.users.ClickModel`):

* ``revenue_per_query``: the **expected** platform revenue given the reply, under each mechanism's own
  payment rule, in currency units per query (first price per click for LLM-Auction, the critical price
  per click for the VCG, Rochet payments for MOSAIC); ``reward_per_query`` = revenue − λ·s_resp (the
  paper's reward). Expected revenue has less variance than one sampled click per shown ad, so methods
  are compared on fewer queries; ``sampled_revenue_per_query`` and ``sampled_reward_per_query`` are the
  same with the click model's sampled clicks (the quantity of the paper's Table 2), from the same replies;
* ``itctr``: expected clicks per inserted ad; ``ads_per_reply``; ``format_error_rate``; the share of
  shown ads judged relevant by the Webis judgments; ``Δ NLL`` against the plain assistant.

Intervals (``ci95``) are bootstrap 95% intervals over queries (:func:`adspace.experiments.comparison.harness.summarize`).

Methods
-------
``pretrained``, ``pretrained_constrained``
    The pre-trained LLM (after the ad-writer warm start, when on) with the ad-writer prompt, sampled
    freely and under the markup constraint (the paper's first row).
``mosaic``
    MOSAIC, context-aware, as in the comparison (:class:`adspace.experiments.comparison.adapters.CurrencyMosaic`):
    ``mosaic_candidates`` replies of the ad-writer without bids, advertiser ``i`` reports
    ``r_i(y) = b_i·pCTR_i(y)`` in currency (pCTR: the click model), importance weights against the plain
    prompt, ``τ = mosaic_tau``, Rochet payments with the offset, charged per auction.
``vcg_slot``
    The embedding-space VCG with the ad in a separate slot below the plain assistant's answer
    (:class:`adspace.experiments.comparison.adapters.SlotVCG`, ``σ = vcg_sigma``): critical price per click.
``llm_auction``, ``llm_auction_constrained``, ``llm_auction_oracle``, ``llm_auction_oracle_constrained``
    The IRPO-trained model with the pCTR reward, and with the simulator's clicks as reward.

The plain assistant (the VCG's answers and the ``Δ NLL`` reference) is the pre-trained model, loaded
apart and never trained. The ad-writer warm start is saved as ``epoch_0/adapter`` of each IRPO run
(:func:`adspace.experiments.llm_auction.checkpoint.save_delta_adapter`), so that the run folder rebuilds
the trained model (``adspace experiment compare --llm-auction-checkpoint DIR/irpo_pctr``).

A bid sweep (ad 0 of ``sweep_queries`` test queries, bids ``sweep_bids``, others fixed, ``sweep_samples``
replies per bid) measures whether the allocation is monotone in the bid for the pre-trained and the
trained model (:func:`adspace.mechanisms.llm_auction.monotonicity`), and tests whether the swept ad's
exposure and clicks rise with its bid within queries (:func:`adspace.experiments.stats.slope_permutation_test`,
one-sided permutation p-values over replies: ``exposure_test``, ``click_test``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from adspace.experiments.comparison.llm_auction_methods import evaluate_methods
from adspace.experiments.llm_auction.data import load_queries, split
from adspace.experiments.llm_auction.environment import draw_bids, prompts_for, score_texts
from adspace.experiments.llm_auction.training import IRPOConfig, run_irpo, sample_replies
from adspace.experiments.llm_auction.users import ClickModel
from adspace.experiments.llm_auction.warmstart import WarmStartConfig, warm_start, warm_start_examples, writer_figures
from adspace.experiments.stats import slope_permutation_test
from adspace.mechanisms import llm_auction as gen

__all__ = ["ExperimentConfig", "PAPER_TABLE2", "run_experiment"]

PAPER_TABLE2 = {
    "pretrained": {"revenue": 46.88, "reward": -120.11},
    "mosaic": {"revenue": 73.29, "reward": 24.95},
    "llm_auction": {"revenue": 125.28, "reward": 54.13},
    "llm_auction_oracle": {"revenue": 174.64, "reward": 109.64},
}


@dataclass
class ExperimentConfig:
    """Scale of the experiment; the defaults fit 2 CPU cores in 30 minutes, :meth:`full` one GPU in 10."""

    n_train: int = 24
    n_test: int = 50
    n_candidates: int = 3
    eval_samples: int = 4  # episodes (replies, other seeds) per held-out query and method
    shading: float | None = None  # also run each method with the top advertiser's bid shaded (doubles the cost)
    mosaic_candidates: int = 4
    mosaic_tau: float = 5.0
    vcg_sigma: float = 1.0
    sweep_queries: int = 4
    sweep_bids: tuple[int, ...] = (1, 25, 50, 75, 100)
    sweep_samples: int = 8
    oracle: bool = True
    seed: int = 0
    data: str | None = None
    # 3 IRPO epochs of at most 32 pairs, one DPO pass each in batches of 8: few, large DPO steps per epoch,
    # so that the policy does not flood its replies with ads after the first epoch (docs/llm-auction.md)
    irpo: IRPOConfig = field(
        default_factory=lambda: IRPOConfig(
            max_new_tokens=40, max_pairs=32, constrained=True, epochs=3, batch_size=8, dpo_epochs=1
        )
    )
    # the supervised warm start (:mod:`adspace.experiments.llm_auction.warmstart`, ``--warm-start``); off by
    # default: it does not raise the insertion rate at this scale (docs/llm-auction.md), so its time goes to IRPO
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
        :meth:`~adspace.experiments.llm_auction.training.IRPOConfig.paper`. ``kw`` overrides any field.
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
            dpo_epochs=2,  # two passes over each epoch's pairs (the GPU recipe, docs/llm-auction.md)
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


def _sample_texts(backend, msgs, n, cfg: IRPOConfig, seed: int, queries=None) -> list[list[str]]:
    """Replies as text; constrained (``cfg.constrained``) when the queries' candidates are given."""
    if queries is not None and cfg.constrained:
        out = sample_replies(backend, msgs, queries, n, cfg, seed)
    else:
        out = sample_replies(backend, msgs, [], n, replace(cfg, constrained=False), seed)
    return [[r.text for r in row] for row in out]


def _sweep(backend, test, bids, user, cfg: ExperimentConfig, seed: int) -> dict:
    qs = test[: cfg.sweep_queries]
    out: dict = {"bids": list(cfg.sweep_bids), "queries": []}
    replies: list[tuple[int, float, float, float]] = []
    for j, q in enumerate(qs):
        rows = np.repeat(bids[j : j + 1], len(cfg.sweep_bids), axis=0)
        rows[:, 0] = cfg.sweep_bids
        msgs = prompts_for([q] * len(cfg.sweep_bids), rows, short=cfg.irpo.short_prompt)
        texts = _sample_texts(backend, msgs, cfg.sweep_samples, cfg.irpo, seed + j, [q] * len(cfg.sweep_bids))
        rolls = score_texts([q] * len(cfg.sweep_bids), rows, msgs, texts, user)
        itc, se, expo = [], [], []
        for bid, row in zip(cfg.sweep_bids, rolls, strict=True):
            est = gen.estimate_itctr(np.stack([r.clicked for r in row]), np.stack([r.parsed.shown() for r in row]))
            itc.append(float(est.itctr[0]))
            se.append(float(est.stderr[0]))
            expo.append(float(est.exposure[0]))
            for r in row:  # per reply: the swept ad's bid, whether it was shown, whether it was clicked
                replies.append((j, float(bid), float(r.parsed.shown()[0]), float(r.clicked[0])))
        m = gen.monotonicity(cfg.sweep_bids, itc, se)
        out["queries"].append({"query_id": q.query_id, "itctr": itc, "stderr": se, "exposure": expo, **asdict(m)})
    # pooled over queries: mean ITCTR and exposure of the swept ad per bid
    itc = np.mean([r["itctr"] for r in out["queries"]], axis=0)
    expo = np.mean([r["exposure"] for r in out["queries"]], axis=0)
    pooled = gen.monotonicity(cfg.sweep_bids, itc)
    out["pooled"] = {"itctr": itc.tolist(), "exposure": expo.tolist(), **asdict(pooled)}
    out["exposure_spearman"] = gen.monotonicity(cfg.sweep_bids, expo).spearman
    # the call: do exposure and clicks rise with the bid within queries? (permutation test over replies)
    rep = np.array(replies, dtype=np.float64).reshape(-1, 4)
    for key, col in (("exposure_test", 2), ("click_test", 3)):
        out[key] = asdict(slope_permutation_test(rep[:, 1], rep[:, col], rep[:, 0], seed=seed))
    return out


def _writer_figures(rows: list[dict]) -> dict:
    """Insertion rate, format-error rate (shares of replies) and ads per reply of one method's harness rows."""
    return {
        "insertion_rate": float(np.mean([r["ads"] > 0 for r in rows])),
        "format_error_rate": float(np.mean([r["any_format_error"] for r in rows])),
        "ads_per_reply": float(np.mean([r["ads"] for r in rows])),
        "replies": len(rows),
    }


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
    """The warm start (:mod:`adspace.experiments.llm_auction.warmstart`) on ``warm_q``, with its figures on held-out queries before and after."""
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
    from adspace.experiments.llm_auction.checkpoint import save_delta_adapter
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
    plain = timed("load plain model", lambda: LocalLLM(device=dev))  # never trained: the plain assistant
    results["model"] = base.name
    results["device"] = _device_name(dev)
    if cfg.warm is not None:
        results["ad_writer"] = timed(
            "ad-writer warm start", lambda: _ad_writer_stage(base, warm_q, test, test_bids, user, cfg, rng)
        )
        # the warm start merges its adapter in place: keep it as epoch 0 of each run, so a run folder
        # rebuilds the model IRPO started from (adspace experiment compare --llm-auction-checkpoint)
        adapter = out / "irpo_pctr" / "epoch_0" / "adapter"
        results["ad_writer"]["adapter_error"] = save_delta_adapter(
            plain.model, base.model, adapter, rank=cfg.warm.lora_r, targets=cfg.warm.lora_targets
        )
        if cfg.oracle:
            shutil.copytree(adapter, out / "irpo_oracle" / "epoch_0" / "adapter", dirs_exist_ok=True)
    sweep_pre = timed("sweep pretrained", lambda: _sweep(base, test, test_bids, user, cfg, cfg.seed + 3))
    results["bid_sweep"] = {"pretrained": sweep_pre}

    policy = _copy_of(base)
    trained = timed(
        "train llm_auction", lambda: run_irpo(policy, train, cfg.irpo, out / "irpo_pctr", user=user, progress=say)
    )
    results["training"]["llm_auction"] = trained["epochs"]
    sweep_post = timed("sweep llm_auction", lambda: _sweep(policy, test, test_bids, user, cfg, cfg.seed + 3))
    results["bid_sweep"]["llm_auction"] = sweep_post
    policies = {"llm_auction": policy}
    if cfg.oracle:
        oracle = _copy_of(base)
        ocfg = IRPOConfig(**{**asdict(cfg.irpo), "reward": "oracle"})
        ot = timed(
            "train llm_auction_oracle",
            lambda: run_irpo(oracle, train, ocfg, out / "irpo_oracle", user=user, progress=say),
        )
        results["training"]["llm_auction_oracle"] = ot["epochs"]
        policies["llm_auction_oracle"] = oracle
    methods, rows = timed(
        "evaluate",
        lambda: evaluate_methods(
            plain,
            base,
            policies,
            user,
            test,
            cfg,
            values=test_bids,
            progress=lambda done, total: say(f"evaluate: {done}/{total} methods sampled"),
        ),
    )
    order = ("vcg_slot", "pretrained", "pretrained_constrained", "mosaic")
    results["methods"] = {k: methods[k] for k in order} | {k: v for k, v in methods.items() if k not in order}
    results["per_query"] = rows
    # the ad-writer's figures on every held-out reply: the prompt alone, then with constrained decoding
    results.setdefault("ad_writer", {}).update(
        prompt_only=_writer_figures(rows["pretrained"]), constrained=_writer_figures(rows["pretrained_constrained"])
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
