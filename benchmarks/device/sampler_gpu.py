"""Throughput of the local sampler on one device, on the LLM-Auction experiment's prompts; prints JSON.

Replies per second of :meth:`adspace.models.llm.LocalLLM.sample` with each decode loop (``synced`` and
``sync-free``, :mod:`adspace.models.local_decode`) and of the constrained ad-writer
(:func:`adspace.experiments.llm_auction.constrained.sample_constrained`), all on the same prompts and seed,
then of teacher-forced scoring of the synced replies by both paths (:mod:`adspace.models.local_scoring`).
Every prompt's ``n`` replies run in one decoding batch. ``same_tokens`` says whether the two loops drew
the same replies. A variant that fails is reported (``error``) and the others still run; the GPU driver
(``llm_auction_gpu.sh``) then falls back to the synced loop or the cached scoring path.

    python benchmarks/device/sampler_gpu.py --device cuda --prompts 100 --n 4 --tokens 64 --data DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--n", type=int, default=4, help="replies per prompt")
    ap.add_argument("--tokens", type=int, default=64, help="max new tokens")
    ap.add_argument("--data", default=None, help="the Webis ads data set's folder")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    from adspace.experiments.llm_auction.constrained import sample_constrained
    from adspace.experiments.llm_auction.data import load_queries
    from adspace.experiments.llm_auction.environment import draw_bids, prompts_for
    from adspace.models.llm import LocalLLM

    qs = load_queries(args.prompts, data=args.data, seed=1)
    msgs = prompts_for(qs, draw_bids(len(qs), 3, np.random.default_rng(1), 1, 100), short=True)
    llm = LocalLLM(device=args.device)
    kw = dict(max_new_tokens=args.tokens, temperature=0.7, top_p=0.8, seed=0)

    def sync() -> None:
        if torch.device(args.device).type == "cuda":
            torch.cuda.synchronize()

    out: dict = {
        "benchmark": "sampler_gpu",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if torch.device(args.device).type == "cuda" else "cpu",
        "torch": torch.__version__,
        "prompts": len(msgs),
        "replies_per_prompt": args.n,
        "rows": len(msgs) * args.n,
        "max_new_tokens": args.tokens,
        "load_avg_1m": os.getloadavg()[0],
        "runs": {},
        "scoring": {},
    }
    texts = {}
    replies = None
    for name in ("sync-free", "synced", "constrained"):
        try:
            if name != "constrained":
                llm.decode = name
                llm.sample(msgs[:2], 2, max_new_tokens=4, temperature=0.7, top_p=0.8, seed=0)  # warm-up
                sync()
                t = time.perf_counter()
                rep = llm.sample(msgs, args.n, **kw)
            else:
                cands = [q.candidates for q in qs]
                sample_constrained(llm, msgs[:2], cands[:2], 2, max_new_tokens=4, temperature=0.7, top_p=0.8, seed=0)
                sync()
                t = time.perf_counter()
                rep = sample_constrained(llm, msgs, cands, args.n, **kw)
            sync()
            dt = time.perf_counter() - t
            if name == "synced":
                replies = rep
            flat = [r for row in rep for r in row]
            toks = sum(len(r) for r in flat)
            texts[name] = [r.text for r in flat]
            out["runs"][name] = {
                "seconds": dt,
                "replies_per_s": len(flat) / dt,
                "tokens_per_s": toks / dt,
                "ms_per_step": 1000 * dt / max(len(r) for r in flat),
                "mean_reply_tokens": toks / len(flat),
            }
        except Exception as exc:  # noqa: BLE001 - reported, the other variants still run
            out["runs"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    # teacher-forced scoring of the synced loop's replies by both paths (local_scoring), same numbers expected
    scores = {}
    if replies is not None:
        pp = [m for m in msgs for _ in range(args.n)]
        rr = [r for row in replies for r in row]
        for path in ("padded", "cached"):
            try:
                llm.scoring = path
                llm.score(pp[:2], rr[:2])  # warm-up
                sync()
                t = time.perf_counter()
                scores[path] = llm.score(pp, rr)
                sync()
                dt = time.perf_counter() - t
                out["scoring"][path] = {"seconds": dt, "replies_per_s": len(rr) / dt}
            except Exception as exc:  # noqa: BLE001 - reported; the driver falls back to the cached path
                out["scoring"][path] = {"error": f"{type(exc).__name__}: {exc}"}
        if len(scores) == 2:
            out["scoring"]["max_abs_diff"] = float(np.max(np.abs(scores["padded"] - scores["cached"])))
        sampled = np.array([r.model_logprob for r in rr])
        for path, v in scores.items():
            out["scoring"][f"{path}_vs_sampled_max_abs_diff"] = float(np.max(np.abs(v - sampled)))
    out["padded_ok"] = "padded" in scores
    if "sync-free" in texts and "synced" in texts:
        out["same_tokens"] = texts["sync-free"] == texts["synced"]
    out["sync_free_ok"] = "error" not in out["runs"]["sync-free"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
