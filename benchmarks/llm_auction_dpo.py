"""One IRPO DPO epoch with and without TRL's ``precompute_ref_log_probs``, on the same pairs and machine.

The pairs are what IRPO builds: ad-writer prompts of held-out-sized queries of the Webis ads data set
(found through ``$ADSPACE_WEBIS_DATA``; without it, the shipped demo market), a chosen reply carrying a candidate's markup and a rejected reply without. Each variant trains a
fresh copy of SmolLM2-135M (LoRA, the default :class:`IRPOConfig` otherwise) and prints JSON: wall and
process-CPU seconds of ``_dpo_epoch``, the DPO losses (the same pairs and seed give the same losses up to
float noise) and the load average. ``--profile`` adds the top cProfile entries of the last variant.

Usage: ``python benchmarks/llm_auction_dpo.py [--pairs 8] [--repeats 1] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from adspace.experiments.llm_auction.data import load_queries
from adspace.experiments.llm_auction.environment import draw_bids, prompts_for
from adspace.experiments.llm_auction.training import IRPOConfig, _dpo_epoch
from adspace.models.llm import LocalLLM


def make_pairs(backend: LocalLLM, n: int, cfg: IRPOConfig) -> list[dict]:
    qs = load_queries(n, n_candidates=3, seed=5)
    bids = draw_bids(len(qs), 3, np.random.default_rng(0))
    out = []
    for q, m in zip(qs, prompts_for(qs, bids, short=cfg.short_prompt), strict=True):
        ad = q.candidates[0]
        body = f"Here is a short answer to your question about {q.topic}."
        out.append(
            {
                "prompt": backend.render(m),
                "chosen": f"{body} You could try {ad.markup()} for this.",
                "rejected": f"{body} Ask again if you need more.",
            }
        )
    return out


def run(n_pairs: int, precompute: bool, profile: bool) -> dict:
    cfg = replace(IRPOConfig(), precompute_ref=precompute, max_pairs=None)
    backend = LocalLLM()
    pairs = make_pairs(backend, n_pairs, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile() if profile else None
        t, c = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        res = _dpo_epoch(backend, pairs, cfg, Path(tmp), 1)
        if prof:
            prof.disable()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    out = {"precompute_ref": precompute, "pairs": n_pairs, "wall_s": wall, "cpu_s": cpu, "losses": res["dpo_losses"]}
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
        out["profile"] = s.getvalue().splitlines()[:60]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = []
    for _ in range(a.repeats):
        for pre in (False, True):
            rows.append(run(a.pairs, pre, a.profile and pre))
    base = np.median([r["wall_s"] for r in rows if not r["precompute_ref"]])
    new = np.median([r["wall_s"] for r in rows if r["precompute_ref"]])
    print(
        json.dumps(
            {
                "runs": rows,
                "median_wall_s": {"recompute": base, "precompute": new},
                "speedup": base / new,
                "loadavg": os.getloadavg(),
                "cpus": os.cpu_count(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
