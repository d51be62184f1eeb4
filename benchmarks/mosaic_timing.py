"""Where a MOSAIC auction on text spends its time: generation, reward scoring, the mechanism.

Runs the experiment's own loop (:func:`adspace.experiments.mosaic.study.run_experiment`, figures off) on
``--instances`` queries x ``--seeds`` seeds (the Webis ads data set from ``--data DIR`` or
``$ADSPACE_WEBIS_DATA``, else the shipped demo market), ``--batch`` instances per batched call: both versions (baseline: candidates from π_ref;
context-aware: from π_con) sample M candidates in one call, score them under π_ref and each advertiser's
LLM in one call per version, and run the mechanism (allocation and Rochet payments with and without
offset for every M in ``--ms``), exactly as ``adspace experiment mosaic --batch K`` does. Prints JSON:

* per version, seconds per auction (wall and this process's CPU) in generation, scoring and mechanism,
  and ``overhead_ratio`` = (scoring + mechanism) / generation, against the issue's goal (<= 0.25);
* ``sampler_vs_generate``: one batch of generation (both prompts of every query, M rows each: 128
  rows for 4 queries at M = 16) through our sampler and through ``transformers``' ``generate`` (which copies each prompt M
  times before prefill and sorts the vocabulary for top-p), as the reference for the sampler;
* the load average before and after (the machine may be shared).

``--scoring`` and ``--decode`` force a path of the local backend (default: the device's); timing both
scoring paths on a CPU is how the device default was chosen.

Usage: ``python benchmarks/mosaic_timing.py [--instances 2] [--batch 1] [--m 16] [--tokens 32] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time


def _hf_generate_seconds(llm, prompts, m: int, tokens: int, temperature: float, top_p: float) -> tuple[float, float]:
    """Wall and CPU seconds of ``generate`` on the same batch."""
    import torch

    input_ids, attn = llm.left_padded(prompts)
    torch.manual_seed(0)
    _sync(llm.device)
    t0, c0 = time.perf_counter(), time.process_time()
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
    _sync(llm.device)
    return time.perf_counter() - t0, time.process_time() - c0


def _sync(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2, help="queries")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per query")
    ap.add_argument("--batch", type=int, default=1, help="instances per batched call, as the experiment's --batch")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ms", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--data", default=None, help="Webis ads data folder (default: $ADSPACE_WEBIS_DATA, else the demo)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scoring", default="auto", choices=["auto", "cached", "padded"])
    ap.add_argument("--decode", default="auto", choices=["auto", "synced", "sync-free"])
    ap.add_argument("--no-reference", action="store_true", help="skip the transformers.generate reference")
    args = ap.parse_args()
    if args.batch < 1 or args.instances < 1 or args.seeds < 1:
        ap.error("--batch, --instances and --seeds must be >= 1")

    from adspace.experiments.mosaic import study
    from adspace.models.llm import LocalLLM

    load_before = os.getloadavg()
    llm = LocalLLM(device=args.device, threads=args.threads, scoring=args.scoring, decode=args.decode)
    instances, source = study.load_instances(args.data, args.instances, 0)  # the instances run_experiment draws
    ms = tuple(m for m in args.ms if m <= args.m)
    study.run_text_auction(llm, instances[:1], seed=99, m=2, max_new_tokens=4)  # warm-up
    cfg = study.MosaicConfig(
        n_queries=args.instances,
        seeds=tuple(range(args.seeds)),
        ms=ms if args.m in ms else (*ms, args.m),
        max_new_tokens=args.tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        data=args.data,
        device=args.device,
        threads=args.threads,
        batch_instances=args.batch,
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = study.run_experiment(cfg, tmp, llm=llm, figures=False)
    out: dict = {
        "benchmark": "mosaic_timing",
        "model": llm.name,
        "device": args.device,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "source": source,
        "instances": res["n_instances"],
        "batch": args.batch,
        "scoring": llm.scoring,
        "decode": llm.decode,
        "score_tokens": llm.score_tokens,
        "m": args.m,
        "new_tokens": args.tokens,
        "wall_seconds": res["wall_seconds"],
        "goal_overhead_ratio": 0.25,
        "versions": {},
    }
    for meth, s in res["summary"].items():
        wall, cpu = s["timing_seconds_per_auction"], s["timing_cpu_seconds_per_auction"]
        mean = {k: wall[k] for k in ("generation", "scoring", "mechanism")}
        mean |= {f"{k}_cpu": cpu[k] for k in ("generation", "scoring", "mechanism")}
        ratio = wall["overhead_over_generation"]
        out["versions"][meth] = {
            "seconds_per_auction": mean,
            "scoring_llms": 2 if meth == "baseline" else 3,
            "overhead_ratio": ratio,
            "overhead_ratio_cpu": cpu["overhead_over_generation"],
            "goal_met": bool(ratio <= 0.25),
        }
    if not args.no_reference:
        prompts = []
        for inst in instances:
            prompts += [study.reference_prompt(inst.query), study.context_prompt(inst.query, inst.advertisers)]
        t_hf, c_hf = _hf_generate_seconds(llm, prompts, args.m, args.tokens, args.temperature, args.top_p)
        _sync(args.device)
        t0, c0 = time.perf_counter(), time.process_time()
        reps = llm.sample(prompts, args.m, max_new_tokens=args.tokens, temperature=args.temperature, top_p=args.top_p)
        t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
        tokens_ours = sum(len(r) for row in reps for r in row)
        tokens_hf = len(prompts) * args.m * args.tokens
        out["sampler_vs_generate"] = {
            "rows": len(prompts) * args.m,
            "transformers_generate_seconds": t_hf,
            "transformers_generate_cpu_seconds": c_hf,
            "transformers_generate_tokens": tokens_hf,
            "sampler_seconds": t_ours,
            "sampler_cpu_seconds": c_ours,
            "sampler_tokens": tokens_ours,
            "speedup_per_token": (t_hf / tokens_hf) / (t_ours / max(tokens_ours, 1)),
            "speedup_per_token_cpu": (c_hf / tokens_hf) / (c_ours / max(tokens_ours, 1)),
        }
    out["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
