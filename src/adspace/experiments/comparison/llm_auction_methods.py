"""The evaluation of ``adspace experiment llm-auction``: every method through the comparison harness.

One evaluation path: the rows of the LLM-Auction experiment (pre-trained and trained ad-writers, with
and without constrained decoding, MOSAIC, the separate-slot VCG) are built from the comparison's
mechanism adapters (:mod:`adspace.experiments.comparison.adapters`) and measured by its judge
(:func:`adspace.experiments.comparison.harness.evaluate`), so that a row here equals the row
``adspace experiment compare`` gets for the same queries, seeds and sampling. :func:`method_summary`
names the harness's figures as ``results.json`` does (``revenue_per_query``, ``reward_per_query``,
``itctr``, ... with ``ci95``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from adspace.experiments.comparison.adapters import PlainAnswers
from adspace.experiments.comparison.harness import Judge, episodes_from, evaluate
from adspace.experiments.comparison.harness import summarize as summarize_rows
from adspace.experiments.comparison.runner import CompareConfig, build_mechanisms, llm_auction_mechanism

__all__ = ["TABLE2_KEYS", "compare_config", "evaluate_methods", "method_summary"]


def compare_config(cfg: Any) -> CompareConfig:
    """The comparison's configuration for the experiment's ``cfg`` (an
    :class:`~adspace.experiments.comparison.llm_auction_experiment.ExperimentConfig`, which imports this
    module): its held-out queries (after the warm-start and training queries), its sampling
    (``cfg.irpo``), MOSAIC's ``M`` and ``τ`` and the VCG's ``σ``."""
    n_warm = cfg.n_warm if cfg.warm is not None else 0
    return CompareConfig(
        n_queries=cfg.n_test,
        n_train=n_warm + cfg.n_train,
        n_candidates=cfg.n_candidates,
        seed=cfg.seed,
        data=cfg.data,
        mosaic_m=cfg.mosaic_candidates,
        mosaic_tau=cfg.mosaic_tau,
        vcg_sigma=cfg.vcg_sigma,
        max_new_tokens=cfg.irpo.max_new_tokens,
        temperature=cfg.irpo.temperature,
        top_p=cfg.irpo.top_p,
        shading=cfg.shading if cfg.shading is not None else CompareConfig.shading,
    )


#: results.json's per-method keys -> the harness's metrics
TABLE2_KEYS = {
    "revenue_per_query": "revenue",
    "reward_per_query": "reward",
    "sampled_revenue_per_query": "sampled_revenue",
    "sampled_reward_per_query": "sampled_reward",
    "value_per_query": "value",
    "itctr": "ctr_per_ad",
    "ads_per_reply": "ads",
    "format_error_rate": "any_format_error",
    "relevant_share": "relevant_share",
    "delta_nll": "delta_nll",
    "seconds_per_query": "seconds",
    "shading_gain": "shading_gain",
}


def method_summary(s: dict) -> dict:
    """One method's harness summary in the experiment's keys, with ``ci95 = {key: [low, high]}``."""
    out: dict[str, Any] = {k: s[h]["estimate"] for k, h in TABLE2_KEYS.items()}
    out["ci95"] = {k: [s[h]["low"], s[h]["high"]] for k, h in TABLE2_KEYS.items()}
    out["replies"], out["queries"] = s["replies"], s["queries"]
    out["harness"] = s
    return out


def evaluate_methods(
    plain,
    base,
    policies: dict,
    user,
    test,
    cfg: Any,
    *,
    constrained: bool = True,
    values=None,
    embedder=None,
    progress=None,
) -> tuple[dict, dict]:
    """Every method on the held-out ``test`` queries through the comparison harness: ``(summaries, rows)``.

    ``plain``: the untrained model (the VCG's answers, the ``Δ NLL`` reference); ``base``: the ad-writer
    (``pretrained`` rows and MOSAIC's candidates); ``policies``: name -> trained backend (``llm_auction``,
    ``llm_auction_oracle``); ``constrained``: also the rows decoded under the markup constraint (needs
    :class:`adspace.models.llm.LocalLLM` backends). ``values``: the test bids, when drawn already (they
    must be :func:`adspace.experiments.comparison.harness.episodes_from`'s draw). ``embedder``: the VCG's
    (default: the project's sentence embedder).
    """
    ccfg = compare_config(cfg)
    episodes = episodes_from(
        test, seed=cfg.seed, low=cfg.irpo.bid_low, high=cfg.irpo.bid_high, replicates=cfg.eval_samples
    )
    if values is not None and not np.array_equal(np.stack([e.values for e in episodes[: len(test)]]), values):
        raise ValueError("values: not the harness's draw for these queries and seed")
    sampling = {"max_new_tokens": ccfg.max_new_tokens, "temperature": ccfg.temperature, "top_p": ccfg.top_p}
    answers = PlainAnswers(plain, **sampling)
    judge = Judge(
        user,
        plain=plain,
        plain_answers=answers,
        lam=cfg.irpo.lam,
        ad_cost=cfg.irpo.ad_cost,
        error_cost=cfg.irpo.error_cost,
    )
    (vcg,) = build_mechanisms(
        plain, user, replace(ccfg, mechanisms=("embedding-vcg",)), answers=answers, embedder=embedder
    )
    (mos,) = build_mechanisms(base, user, replace(ccfg, mechanisms=("mosaic-context",)))  # on the ad-writer
    mechs: list = [vcg]
    short = cfg.irpo.short_prompt
    for name, llm in (("pretrained", base), *policies.items()):
        mechs.append(llm_auction_mechanism(llm, ccfg, label=name, short_prompt=short))
        if constrained:
            mechs.append(
                llm_auction_mechanism(llm, ccfg, label=f"{name}_constrained", constrained=True, short_prompt=short)
            )
        if name == "pretrained":
            mechs.append(mos)
    keys = {m.name: m.name for m in mechs} | {vcg.name: "vcg_slot", mos.name: "mosaic"}
    tell = progress or (lambda done, total: None)
    rows = evaluate(mechs, episodes, judge, shading=cfg.shading, progress=tell)
    rows = {keys[k]: v for k, v in rows.items()}
    summary = summarize_rows(rows, seed=cfg.seed)
    return {k: method_summary(v) for k, v in summary.items()}, rows
