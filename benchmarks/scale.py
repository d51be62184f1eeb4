"""Scale: exact and approximate clearing at N = 1e5 and 1e6 (d = 384), and replay on 1 and 2 Ray workers.

Prints one JSON document (progress goes to stderr):

* ``exact[N]``: :class:`adspace.mechanisms.vcg.Market` build time, memory (tracemalloc peak of the
  build, the prepared market's arrays, process RSS after the build and its high-water mark), batched
  throughput (``--batch`` queries in one call) and single-query latency p50 / p99 (``--single``
  queries, one call each).
* ``approx[N][kind]``: :class:`adspace.index.approx.ApproxMarket` (FAISS IVF over the lift; HNSW at
  ``--hnsw-max-n`` and below) build time and memory, throughput and latency of the *uncertified*
  answer, its quality against exact clearing on the same queries (share with the exact winner, with
  the exact price, welfare loss, revenue change), and the certified mode (share certified, share that
  fell back to the exact kernel, throughput).
* ``replay``: ``adspace replay``'s engine on ``--replay-n`` campaigns and ``--replay-queries`` queries
  with 1 and 2 Ray actors (clearing time after the market is prepared on every worker, and setup).

Workload (embedding-like, clustered): ``N/1000`` random unit "topics"; every center is a unit vector
at cosine ~0.85 from its topic; queries are drawn the same way around random topics; σ ~ U[0.3, 1.0],
bids log-normal(0, 0.5). Broad-reach advertisers from other topics do compete for a query (a σ = 1
advertiser at distance √2 scores log b − 2), so the winner is not simply the nearest center.

Usage: ``python benchmarks/scale.py [--sizes 100000 1000000] [--out results.json]``. The 1e6 run
needs about 13 GiB at its peak (the float64 centers alone are 2.9 GiB) and several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

from adspace.index.approx import ApproxMarket
from adspace.mechanisms.vcg import Market

GiB = float(1 << 30)


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_status(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in GiB (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / GiB
    except OSError:
        pass
    return float("nan")


def workload(n: int, q: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(10, n // 1000), d), dtype=np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    centers = np.empty((n, d), dtype=np.float64)
    step = 1 << 16
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        c = topics[rng.integers(0, len(topics), hi - lo)] + (0.6 / np.sqrt(d)) * rng.standard_normal(
            (hi - lo, d), dtype=np.float32
        )
        centers[lo:hi] = c / np.linalg.norm(c, axis=1, keepdims=True)
    sigmas = rng.uniform(0.3, 1.0, n)
    bids = np.exp(rng.normal(0.0, 0.5, n))
    x = topics[rng.integers(0, len(topics), q)].astype(np.float64)
    x += (0.6 / np.sqrt(d)) * rng.standard_normal((q, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, centers, sigmas, bids


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(samples)}


def single_latency(fn, x: np.ndarray) -> dict[str, float]:
    fn(x[0])  # warm-up
    lat = []
    for row in x:
        t0 = time.perf_counter()
        fn(row)
        lat.append(time.perf_counter() - t0)
    return percentiles(lat)


def quality(approx, exact) -> dict[str, float]:
    fe = exact.winner >= 0
    same_w = approx.winner == exact.winner
    same_p = same_w & (approx.payment == exact.payment)
    close_p = same_w & np.isclose(approx.payment, exact.payment, rtol=1e-9, atol=0.0)
    welfare_exact = float(exact.value.sum())  # the winner's reported value, summed
    welfare_approx = float(approx.value.sum())
    return {
        "queries": int(len(exact)),
        "share_exact_winner": float(same_w.mean()),
        "share_exact_price": float(same_p.mean()),
        "share_price_within_1e-9": float(close_p.mean()),
        "share_price_too_low": float((same_w & (approx.payment < exact.payment)).mean()),
        "welfare_loss": 1.0 - welfare_approx / welfare_exact if welfare_exact > 0 else 0.0,
        "revenue_change": float(approx.payment.sum() / exact.payment.sum() - 1.0) if exact.payment.sum() > 0 else 0.0,
        "exact_filled": float(fe.mean()),
    }


def bench_size(n: int, args) -> dict:
    d = args.dim
    log(f"N={n}: generating the workload")
    x, centers, sigmas, bids = workload(n, max(args.batch, args.single), d, args.seed)
    res: dict = {"n": n, "d": d, "centers_gib": centers.nbytes / GiB}

    # ---- exact --------------------------------------------------------------------------------
    log(f"N={n}: building the exact Market")
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    market = Market(centers, sigmas, bids)
    build = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    xb = x[: args.batch]
    log(f"N={n}: exact batched clearing of {len(xb)} queries")
    t0 = time.perf_counter()
    exact = market.clear(xb)
    t_batch = time.perf_counter() - t0
    log(f"N={n}: exact single-query latency over {args.single} queries")
    lat = single_latency(market.clear, x[: args.single])
    res["exact"] = {
        "build_s": build,
        "build_peak_traced_gib": peak / GiB,
        "market_arrays_gib": (market.centers.nbytes + market._lift32.nbytes) / GiB,
        "rss_gib": proc_status("VmRSS"),
        "rss_high_water_gib": proc_status("VmHWM"),
        "batch": len(xb),
        "batch_qps": len(xb) / t_batch,
        "single": lat,
    }
    log(f"N={n}: exact {json.dumps(res['exact'])}")

    # ---- approximate --------------------------------------------------------------------------
    res["approx"] = {}
    kinds = ["ivf"] + (["hnsw"] if n <= args.hnsw_max_n else [])
    for kind in kinds:
        log(f"N={n}: building the {kind} index")
        rss0 = proc_status("VmRSS")
        t0 = time.perf_counter()
        am = ApproxMarket(centers, sigmas, bids, kind=kind, k=args.k, nprobe=args.nprobe, market=market)
        a_build = time.perf_counter() - t0
        rss1 = proc_status("VmRSS")
        t0 = time.perf_counter()
        approx = am.clear(xb, certify=False)
        t_a = time.perf_counter() - t0
        lat_a = single_latency(lambda r, am=am: am.clear(r, certify=False), x[: args.single])
        xc = xb[: args.certify_queries]
        t0 = time.perf_counter()
        cert = am.clear(xc, certify=True)
        t_c = time.perf_counter() - t0
        st = am.stats
        agree = all(np.array_equal(getattr(cert, f), getattr(exact, f)[: len(xc)]) for f in ("winner", "payment"))
        res["approx"][kind] = {
            "params": {
                "k": am.k,
                "nprobe": args.nprobe if kind == "ivf" else None,
                "cells": len(am._radius),
                "max_scan": am.max_scan,
            },
            "build_s": a_build,
            "index_rss_gib": rss1 - rss0,
            "batch_qps": len(xb) / t_a,
            "single": lat_a,
            "quality": quality(approx, exact),
            "certified_mode": {
                "queries": len(xc),
                "share_certified": float(st.certified.mean()),
                "share_fallback": float(st.fallback.mean()),
                "median_rows_rescored": float(np.median(st.scanned[st.certified])) if st.certified.any() else None,
                "qps": len(xc) / t_c,
                "equals_exact": bool(agree),
            },
        }
        log(f"N={n}: {kind} {json.dumps(res['approx'][kind])}")
        del am
        gc.collect()
    del market, centers
    gc.collect()
    return res


def bench_replay(args) -> dict:
    from adspace.experiments.replay import Snapshot, replay

    n, q = args.replay_n, args.replay_queries
    x, centers, sigmas, bids = workload(n, q, args.dim, args.seed + 1)
    snap = Snapshot(tuple(str(i) for i in range(n)), centers, sigmas, bids)
    import ray

    log("replay: starting Ray locally")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    out = {"n": n, "queries": q, "ray_init_s": time.perf_counter() - t0, "runs": []}
    first = None
    for workers in (1, 2):
        log(f"replay: {workers} worker(s)")
        r = replay(snap, x, workers=workers, chunk=args.replay_chunk)
        if first is None:
            first = r
        out["runs"].append(
            {
                "workers": workers,
                "clear_s": r.seconds,
                "setup_s": r.setup_seconds,
                "queries_per_s": q / r.seconds,
                "same_as_1_worker": bool(
                    np.array_equal(r.winner, first.winner) and np.array_equal(r.payment, first.payment)
                ),
            }
        )
        log(f"replay: {json.dumps(out['runs'][-1])}")
    ray.shutdown()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--batch", type=int, default=512, help="queries in the batched measurement")
    p.add_argument("--single", type=int, default=50, help="queries in the single-query latency measurement")
    p.add_argument("--certify-queries", type=int, default=64)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--hnsw-max-n", type=int, default=100_000)
    p.add_argument("--replay-n", type=int, default=100_000)
    p.add_argument("--replay-queries", type=int, default=4096)
    p.add_argument("--replay-chunk", type=int, default=256)
    p.add_argument("--no-replay", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_avg_at_start": os.getloadavg(),
        },
        "sizes": {},
    }
    for n in args.sizes:
        doc["sizes"][str(n)] = bench_size(n, args)
    if not args.no_replay:
        doc["replay"] = bench_replay(args)
    doc["machine"]["load_avg_at_end"] = os.getloadavg()
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
