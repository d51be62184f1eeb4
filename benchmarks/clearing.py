"""Throughput of exact clearing against its float64 GEMM bound and a per-request linear scan.

For each market size N (d = 384, Q = 1,000 queries in one batch) this prints, as JSON:

* ``clear_qps``: queries per second of :func:`adspace.mechanisms.vcg.clear` end to end (it prepares
  the lifted market on every call), and ``market_clear_qps`` for a prepared :class:`Market`
  (what the exchange keeps in memory);
* ``gemm64_qps``: the float64 GEMM of the lifted problem alone (``[x, ‖x‖², 1] @ A.T``), the
  lower bound on the cost of exact float64 clearing through the lift (no argmax, no payments);
* ``scan_qps``: a per-request linear scan (how existing exchanges clear): for each request, the
  direct float64 score of every advertiser, vectorized over advertisers, then winner and runner-up.
  Measured on ``--scan-queries`` requests and reported per second;
* the ratios the goal is stated in, and whether ``clear`` agreed with the scan on the scanned queries.

Workload: unit-norm centers, queries drawn near random centers (so the top scores compete),
σ ~ U[0.2, 1.0], bids log-normal. Usage: ``python benchmarks/clearing.py [--sizes 1000 10000 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from adspace.mechanisms.geometry import lift_advertisers_inner_product, lift_query_inner_product
from adspace.mechanisms.vcg import Market, clear, score


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def make_workload(n: int, q: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = _unit(rng.standard_normal((n, d)))
    sigmas = rng.uniform(0.2, 1.0, n)
    bids = np.exp(rng.normal(0.0, 0.5, n))
    near = centers[rng.integers(0, n, q)]
    queries = _unit(near + 0.05 * rng.standard_normal((q, d)))
    return queries, centers, sigmas, bids


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def linear_scan(queries, centers, sigmas, bids):
    """Per-request clearing by a full scan of direct float64 scores (the incumbent approach)."""
    winners, payments = [], []
    for x in queries:
        s = score(x, centers, sigmas, bids)
        w = int(np.argmax(s))
        s[w] = -np.inf
        r = int(np.argmax(s))
        winners.append(w)
        payments.append(float(np.exp(s[r])) if len(s) > 1 else 0.0)
    return np.array(winners), np.array(payments)


def bench(n: int, q: int, d: int, repeat: int, scan_queries: int, seed: int) -> dict:
    queries, centers, sigmas, bids = make_workload(n, q, d, seed)
    market = Market(centers, sigmas, bids)
    t_clear = best_of(lambda: clear(queries, centers, sigmas, bids), repeat)
    t_market = best_of(lambda: market.clear(queries), repeat)
    t_prepare = best_of(lambda: Market(centers, sigmas, bids), repeat)

    lq = lift_query_inner_product(queries)
    la = lift_advertisers_inner_product(centers, sigmas, bids)
    t_gemm = best_of(lambda: lq @ la.T, repeat)

    k = min(scan_queries, q)
    t_scan = best_of(lambda: linear_scan(queries[:k], centers, sigmas, bids), 1)
    scan_w, _ = linear_scan(queries[:k], centers, sigmas, bids)
    out = market.clear(queries)
    agree = float(np.mean(out.winner[:k] == scan_w))

    clear_qps = q / t_clear
    market_qps = q / t_market
    gemm_qps = q / t_gemm
    scan_qps = k / t_scan
    return {
        "n": n,
        "d": d,
        "queries": q,
        "clear_qps": round(clear_qps, 1),
        "market_clear_qps": round(market_qps, 1),
        "market_prepare_s": round(t_prepare, 4),
        "gemm64_qps": round(gemm_qps, 1),
        "scan_qps": round(scan_qps, 2),
        "scan_queries_measured": k,
        "clear_time_over_gemm64_time": round(gemm_qps / clear_qps, 3),
        "market_clear_time_over_gemm64_time": round(gemm_qps / market_qps, 3),
        "clear_speedup_over_scan": round(clear_qps / scan_qps, 1),
        "market_clear_speedup_over_scan": round(market_qps / scan_qps, 1),
        "winners_agree_with_scan": agree,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scan-queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    results = [bench(n, args.queries, args.dim, args.repeat, args.scan_queries, args.seed) for n in args.sizes]
    goal = next((r for r in results if r["n"] == 100_000), None)
    report = {
        "benchmark": "clearing",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "results": results,
    }
    if goal is not None:
        report["goal_at_1e5"] = {
            "clear_within_2x_of_gemm64": goal["clear_time_over_gemm64_time"] <= 2.0,
            "clear_at_least_20x_scan": goal["clear_speedup_over_scan"] >= 20.0,
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
