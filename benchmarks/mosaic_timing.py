"""Where a MOSAIC auction on text spends its time: generation, reward scoring, the mechanism.

For ``--instances`` queries (the shipped demo market by default, ``--data`` for webis-ads) and both
versions (baseline: candidates from π_ref; context-aware: from π_con), this samples M candidates, scores
them under π_ref and each advertiser's LLM, and runs the mechanism (allocation and Rochet payments with
and without offset for every M in ``--ms``), exactly as ``adspace experiment mosaic`` does. Prints JSON:

* per version, seconds per auction (wall and this process's CPU) in generation, scoring and mechanism,
  and ``overhead_ratio`` = (scoring + mechanism) / generation, against the issue's goal (<= 0.25);
* ``sampler_vs_generate``: the same generation through ``transformers``' ``generate`` (which copies each
  prompt M times before prefill and sorts the vocabulary for top-p), as the reference for the sampler.

Usage: ``python benchmarks/mosaic_timing.py [--instances 2] [--m 16] [--tokens 32] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _hf_generate_seconds(llm, prompts, m: int, tokens: int, temperature: float, top_p: float) -> float:
    import torch

    input_ids, attn = llm.left_padded(prompts)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        llm.model.generate(
            input_ids=input_ids.to(llm.device),
            attention_mask=attn.to(llm.device),
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            num_return_sequences=m,
            max_new_tokens=tokens,
            min_new_tokens=tokens,  # same token count as the sampler's run is not guaranteed; fix it here
            pad_token_id=llm.pad_id,
            eos_token_id=llm.eos_id,
        )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ms", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--data", default=None, help="webis-ads folder (default: the shipped demo market)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-reference", action="store_true", help="skip the transformers.generate reference")
    args = ap.parse_args()

    from adspace.models.llm import LocalLLM
    from adspace.simulate.mosaic import (
        METHODS,
        context_prompt,
        evaluate_instance,
        load_instances,
        reference_prompt,
        run_text_auction,
    )

    llm = LocalLLM(device=args.device, threads=args.threads)
    instances, source = load_instances(args.data, args.instances, 0)
    ms = [m for m in args.ms if m <= args.m]
    run_text_auction(llm, instances[:1], seed=99, m=2, max_new_tokens=4)  # warm-up
    per: dict[str, dict[str, list[float]]] = {meth: {} for meth in METHODS}
    for k, inst in enumerate(instances):
        auctions = run_text_auction(
            llm, [inst], seed=k, m=args.m, max_new_tokens=args.tokens, temperature=args.temperature, top_p=args.top_p
        )[0]
        rec = evaluate_instance(inst, auctions, ms, 1.0, np.random.default_rng(k))
        for meth in METHODS:
            for key, v in rec["methods"][meth]["timing"].items():
                per[meth].setdefault(key, []).append(float(v))
    out: dict = {
        "benchmark": "mosaic_timing",
        "model": llm.name,
        "device": args.device,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "source": source,
        "instances": len(instances),
        "m": args.m,
        "new_tokens": args.tokens,
        "goal_overhead_ratio": 0.25,
        "versions": {},
    }
    for meth, t in per.items():
        mean = {key: float(np.mean(v)) for key, v in t.items()}
        ratio = (mean["scoring"] + mean["mechanism"]) / mean["generation"]
        ratio_cpu = (mean["scoring_cpu"] + mean["mechanism_cpu"]) / mean["generation_cpu"]
        out["versions"][meth] = {
            "seconds_per_auction": mean,
            "scoring_llms": 2 if meth == "baseline" else 3,
            "overhead_ratio": ratio,
            "overhead_ratio_cpu": ratio_cpu,
            "goal_met": bool(ratio <= 0.25),
        }
    if not args.no_reference:
        prompts = []
        for inst in instances:
            prompts += [reference_prompt(inst.query), context_prompt(inst.query, inst.advertisers)]
        t_hf = _hf_generate_seconds(llm, prompts, args.m, args.tokens, args.temperature, args.top_p)
        t0 = time.perf_counter()
        reps = llm.sample(prompts, args.m, max_new_tokens=args.tokens, temperature=args.temperature, top_p=args.top_p)
        t_ours = time.perf_counter() - t0
        tokens_ours = sum(len(r) for row in reps for r in row)
        out["sampler_vs_generate"] = {
            "rows": len(prompts) * args.m,
            "transformers_generate_seconds": t_hf,
            "transformers_generate_tokens": len(prompts) * args.m * args.tokens,
            "sampler_seconds": t_ours,
            "sampler_tokens": tokens_ours,
            "speedup_per_token": (t_hf / (len(prompts) * args.m * args.tokens)) / (t_ours / max(tokens_ours, 1)),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
