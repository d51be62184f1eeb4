"""The embedding model's distance scale on real ads and queries, and the σ that evidence suggests.

Reads the Webis ads data set (``--data DIR``; see benchmarks/relevance_webis.py for its layout):
1,000 advertisers in 10 topics, 7,679 queries, and query-advertiser pairs people judged relevant.
Prints JSON; with ``--figure PATH`` also draws the figure used in docs/markets.md.

Measured
--------
* ``‖x − c‖²`` between a query ``x`` and an advertiser's center ``c`` (the embedding of
  ``"name: qualities"``, as a description campaign would have), for three kinds of pairs: judged
  relevant; same topic but not judged; another topic. Quantiles (p10, median, p90).
* The σ that :func:`adspace.mechanisms.reach.fit_reach` proposes for each advertiser with at least
  ``--min-customers`` judged queries: customers = its judged queries; non-customers = ``--others``
  random queries not judged for it (any topic). Both rules: maximum likelihood, and the median rule
  (customers only). Quantiles over advertisers, and the share of the bid that a relevant, a
  same-topic and an other-topic conversation keeps at the median fitted σ.

It is a measurement, not a test threshold.

Usage::

    .venv/bin/python benchmarks/reach_webis.py --data DIR [--figure docs/img/reach-distance-scale.png]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relevance_webis import DEFAULT_DATA, load_webis  # noqa: E402


def _q(x: np.ndarray) -> dict[str, float]:
    p = np.quantile(x, [0.1, 0.5, 0.9])
    return {
        "n": int(x.size),
        "p10": round(float(p[0]), 4),
        "median": round(float(p[1]), 4),
        "p90": round(float(p[2]), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the Webis ads data folder")
    ap.add_argument("--min-customers", type=int, default=5)
    ap.add_argument("--others", type=int, default=200, help="non-customer queries per advertiser")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", default=None, help="write the figure (PNG) here")
    args = ap.parse_args(argv)

    from adspace.mechanisms.reach import fit_reach
    from adspace.models.embedder import get_embedder

    t0 = time.perf_counter()
    data = load_webis(args.data)
    emb = get_embedder()
    ads = data.ads
    first = {}
    for i, a in enumerate(ads):  # a brand listed in several topics: the entry of the pair's topic
        first.setdefault((a.topic, a.key), i)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    centers = emb.embed([a.text for a in ads])
    queries = emb.embed([t for _, t in data.queries])
    t_embed = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    q_topic = np.asarray([t for t, _ in data.queries])
    a_topic = np.asarray([a.topic for a in ads])
    customers: dict[int, list[int]] = {}
    for q, names in data.judged.items():
        for k in names:
            i = first.get((data.queries[q][0], k))
            if i is not None:
                customers.setdefault(i, []).append(q)
    rel_q = np.asarray([q for i, qs in customers.items() for q in qs])
    rel_a = np.asarray([i for i, qs in customers.items() for _ in qs])
    judged_pairs = {(int(q), int(i)) for q, i in zip(rel_q, rel_a, strict=True)}

    def d2(qs: np.ndarray, ais: np.ndarray) -> np.ndarray:
        diff = queries[qs] - centers[ais]
        return np.einsum("ij,ij->i", diff, diff)

    n = rel_q.size
    same_q, same_a, other_q, other_a = [], [], [], []
    while len(same_q) < n:
        q = int(rng.integers(len(data.queries)))
        cand = np.flatnonzero(a_topic == q_topic[q])
        i = int(rng.choice(cand))
        if (q, i) not in judged_pairs:
            same_q.append(q)
            same_a.append(i)
    while len(other_q) < n:
        q = int(rng.integers(len(data.queries)))
        cand = np.flatnonzero(a_topic != q_topic[q])
        other_q.append(q)
        other_a.append(int(rng.choice(cand)))
    d_rel = d2(rel_q, rel_a)
    d_same = d2(np.asarray(same_q), np.asarray(same_a))
    d_other = d2(np.asarray(other_q), np.asarray(other_a))

    t0 = time.perf_counter()
    s_ml, s_med = [], []
    for qs in customers.values():
        if len(qs) < args.min_customers:
            continue
        mine = set(qs)
        pool = np.asarray([q for q in range(len(data.queries)) if q not in mine])
        others = rng.choice(pool, size=min(args.others, pool.size), replace=False)
        s_ml.append(fit_reach(queries[qs], queries[others]).sigma)
        s_med.append(fit_reach(queries[qs]).sigma)
    t_fit = time.perf_counter() - t0
    s_ml_a, s_med_a = np.asarray(s_ml), np.asarray(s_med)
    sigma = float(np.median(s_ml_a))
    share = lambda d: round(float(np.exp(-np.median(d) / sigma**2)), 4)  # noqa: E731

    out = {
        "data": "the Webis ads data set",
        "advertisers": len(ads),
        "queries": len(data.queries),
        "sqdist_query_to_center": {
            "judged_relevant": _q(d_rel),
            "same_topic_not_judged": _q(d_same),
            "other_topic": _q(d_other),
        },
        "fitted_sigma": {
            "advertisers": len(s_ml),
            "min_customers": args.min_customers,
            "non_customers_each": args.others,
            "likelihood": _q(s_ml_a),
            "median_rule": _q(s_med_a),
        },
        "bid_share_at_median_fitted_sigma": {
            "sigma": round(sigma, 4),
            "judged_relevant": share(d_rel),
            "same_topic_not_judged": share(d_same),
            "other_topic": share(d_other),
        },
        "seconds": {"load": round(t_load, 2), "embed": round(t_embed, 2), "fit": round(t_fit, 2)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())},
    }
    if args.figure:
        _figure(Path(args.figure), d_rel, d_same, d_other, s_ml_a)
    print(json.dumps(out, indent=2))
    return out


def _figure(path: Path, d_rel, d_same, d_other, sigmas) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=130)
    bins = np.linspace(0, 2.2, 56)
    for d, label, color in (
        (d_rel, "judged relevant", "#12805c"),
        (d_same, "same topic, not judged", "#e0a100"),
        (d_other, "another topic", "#c4320a"),
    ):
        ax1.hist(d, bins=bins, density=True, alpha=0.55, color=color, label=f"{label} (median {np.median(d):.2f})")
    ax1.set_xlabel("‖x − c‖²  (query to advertiser's center)")
    ax1.set_ylabel("density")
    ax1.set_title("Distance scale of the embedding model")
    ax1.legend(fontsize=8, loc="upper left")
    t = np.linspace(0, 2.2, 200)
    s_med = float(np.median(sigmas))
    for s, style in ((0.5, ":"), (0.7, "--"), (0.9, "-."), (s_med, "-")):
        lab = f"σ = {s:.2f}" + (" (median fitted)" if s == s_med else "")
        ax2.plot(t, np.exp(-t / s**2), style, color="#1d2330" if s == s_med else "#667085", label=lab)
    for d, color in ((d_rel, "#12805c"), (d_same, "#e0a100"), (d_other, "#c4320a")):
        ax2.axvline(float(np.median(d)), color=color, lw=1)
    ax2.set_xlabel("‖x − c‖²")
    ax2.set_ylabel("share of the bid: exp(−‖x − c‖²/σ²)")
    ax2.set_title("What σ makes of those distances")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


if __name__ == "__main__":
    main()
