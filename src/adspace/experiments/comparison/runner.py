"""``adspace experiment compare``: the three mechanisms on the same held-out Webis queries.

:func:`run_comparison` loads the queries (:func:`adspace.experiments.llm_auction.data.load_queries`, the
held-out split of the LLM-Auction experiment with the same ``n_train``/``n_test``/``seed``), draws values,
loads the models (not timed), builds the mechanisms (:func:`build_mechanisms`), runs the harness
(:func:`adspace.experiments.comparison.harness.evaluate`) and writes ``compare.json``, ``compare.csv`` and
``compare.png``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adspace.experiments.comparison.adapters import CurrencyMosaic, LLMAuctionPolicy, PlainAnswers, SlotVCG
from adspace.experiments.comparison.harness import CURRENCY, SHADE, Judge, episodes_from, evaluate, summarize

__all__ = [
    "ALL_MECHANISMS",
    "CompareConfig",
    "PRETRAINED_LABEL",
    "build_mechanisms",
    "held_out_queries",
    "llm_auction_mechanism",
    "run_comparison",
]

ALL_MECHANISMS = ("embedding-vcg", "mosaic-baseline", "mosaic-context", "llm-auction")
PRETRAINED_LABEL = "llm-auction: pre-trained (no IRPO checkpoint)"


@dataclass
class CompareConfig:
    """The comparison's scale; the defaults run in well under 30 minutes on 2 CPU cores."""

    n_queries: int = 30
    n_train: int = 24  # queries before the held-out ones (the LLM-Auction experiment's training split)
    n_candidates: int = 3
    seed: int = 0
    data: str | None = None
    mechanisms: tuple[str, ...] = ALL_MECHANISMS
    checkpoint: str | None = None
    mosaic_m: int = 4
    mosaic_tau: float = 1.0
    vcg_sigma: float = 1.0
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.8
    shading: float = SHADE
    n_resamples: int = 2000
    threads: int | None = 1  # torch threads; more than the free cores of a shared machine slow decoding down
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n_queries", "n_candidates", "mosaic_m", "max_new_tokens", "n_resamples"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if int(self.n_train) != self.n_train or self.n_train < 1:
            raise ValueError(f"n_train: must be a positive integer, got {self.n_train!r}")
        if self.threads is not None and (int(self.threads) != self.threads or self.threads < 1):
            raise ValueError(f"threads: must be a positive integer, got {self.threads!r}")
        unknown = [m for m in self.mechanisms if m not in ALL_MECHANISMS]
        if unknown or not self.mechanisms:
            raise ValueError(f"mechanisms: choose from {', '.join(ALL_MECHANISMS)}; got {list(self.mechanisms)}")


def build_mechanisms(
    base, clicks, cfg: CompareConfig, *, policy=None, answers: PlainAnswers | None = None, embedder=None
) -> list:
    """The mechanisms named in ``cfg.mechanisms`` on the pre-trained backend ``base``; LLM-Auction on
    ``policy`` (a trained backend) or, when ``None``, on ``base``, labelled :data:`PRETRAINED_LABEL`.
    ``embedder``: the VCG's sentence embedder (default :func:`adspace.models.embedder.get_embedder`)."""
    sampling = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p}
    answers = answers if answers is not None else PlainAnswers(base, **sampling)
    out: list = []
    for name in cfg.mechanisms:
        if name == "embedding-vcg":
            out.append(SlotVCG(answers, embedder, sigma=cfg.vcg_sigma))
        elif name.startswith("mosaic-"):
            ctx = name == "mosaic-context"
            out.append(CurrencyMosaic(base, clicks, m=cfg.mosaic_m, context_aware=ctx, tau=cfg.mosaic_tau, **sampling))
        else:
            label = "llm-auction" if policy is not None else PRETRAINED_LABEL
            out.append(llm_auction_mechanism(policy if policy is not None else base, cfg, label=label))
    return out


def llm_auction_mechanism(
    llm, cfg: CompareConfig, *, label: str = "llm-auction", constrained: bool = False, short_prompt: bool = True
) -> LLMAuctionPolicy:
    """LLM-Auction on ``llm`` with ``cfg``'s sampling (``constrained``: under the markup constraint)."""
    return LLMAuctionPolicy(
        llm,
        label=label,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        short_prompt=short_prompt,
        constrained=constrained,
    )


def held_out_queries(cfg: CompareConfig) -> list:
    """The held-out queries of the Webis ads data set (:func:`adspace.experiments.datasets.require_webis_data`:
    ``cfg.data``, else ``$ADSPACE_WEBIS_DATA``); ``ValueError`` saying where to get it when there is none."""
    from adspace.experiments.datasets import require_webis_data
    from adspace.experiments.llm_auction.data import load_queries, split

    root = require_webis_data(cfg.data, needed_for="its relevance judgments")
    queries = load_queries(cfg.n_train + cfg.n_queries, data=root, n_candidates=cfg.n_candidates, seed=cfg.seed)
    _, test = split(queries, cfg.n_queries)
    return test


def run_comparison(cfg: CompareConfig, out_dir: str | Path, *, progress=None, say=None) -> dict:
    """Run the comparison; write ``compare.json``, ``compare.csv``, ``compare.png`` under ``out_dir``."""
    from adspace.experiments.comparison.report import write_csv, write_figure
    from adspace.experiments.llm_auction.checkpoint import load_policy
    from adspace.experiments.llm_auction.users import ClickModel
    from adspace.models.llm import LocalLLM

    tell = say or (lambda s: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    test = held_out_queries(cfg)
    episodes = episodes_from(test, seed=cfg.seed)
    tell(f"{len(episodes)} held-out queries; loading models")
    t0 = time.perf_counter()
    base = LocalLLM(threads=cfg.threads)
    policy = (
        load_policy(cfg.checkpoint, threads=cfg.threads) if cfg.checkpoint and "llm-auction" in cfg.mechanisms else None
    )
    clicks = ClickModel(seed=cfg.seed)
    sampling = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p}
    answers = PlainAnswers(base, **sampling)
    mechs = build_mechanisms(base, clicks, cfg, policy=policy, answers=answers)
    judge = Judge(clicks, plain=base, plain_answers=answers)
    judge.prepare()
    for m in mechs:
        m.prepare()
    load_s = time.perf_counter() - t0
    tell("running the mechanisms")
    rows = evaluate(mechs, episodes, judge, shading=cfg.shading, progress=progress)
    summary = summarize(rows, seed=cfg.seed, n_resamples=cfg.n_resamples)
    result = {
        "config": asdict(cfg),
        "currency": CURRENCY,
        "model": base.name,
        "llm_auction_model": policy.name if policy is not None else f"{base.name} (pre-trained, no IRPO checkpoint)",
        "checkpoint": policy.checkpoint.describe() if policy is not None else None,
        "mechanisms": {
            m.name: {"incentive": m.incentive, "payment_rule": m.payment_rule, **summary[m.name]} for m in mechs
        },
        "per_query": rows,
        "model_load_seconds": load_s,
        "total_seconds": time.perf_counter() - t_start,
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
    }
    (out / "compare.json").write_text(json.dumps(result, indent=1, default=str))
    write_csv(result, out / "compare.csv")
    write_figure(result, out / "compare.png")
    return result
