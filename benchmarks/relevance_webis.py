"""How often is the embedding-space VCG winner an ad that people judged relevant? (Webis ads data)

Reads the Webis "ads in generative IR" advertisers and queries (``--data``, default
``../shared/data/webis-ads`` relative to the repository root; see its README.md): 1,000 advertisers in
10 topics, 7,679 queries, and query-advertiser pairs that people judged relevant. Prints JSON.

Setup
-----
* Each advertiser's center is the embedding of ``"name: qualities"``; every advertiser gets the same
  bid and the same reach σ ("equal bids and reach"), so the winner is simply the advertiser whose
  center is nearest the query (σ and the bid only scale prices, which are not measured here).
* Each query is embedded as a one-turn conversation (:func:`adspace.marketfiles.conversation_text`, which
  for a single user turn is the query itself), in batches.
* All queries are cleared with :func:`adspace.mechanisms.vcg.clear` twice: against all 1,000
  advertisers, and restricted (``eligible``) to the 100 advertisers of the query's own topic.
* **Relevance**: the winner counts as relevant when its name is among the names judged relevant for
  the query. Names are compared after normalization (Unicode NFKC, curly quotes made straight, case
  folded, whitespace collapsed), so a judged "Arby's" matches the advertiser "Arby’s", and a brand
  listed in several topics (e.g. Nike in shopping, vacation and workout) is relevant under any of its
  entries. Rates are over the queries that have at least one judged pair, each query weighing the same.

Baselines
---------
* **Random winner**: the expected rate of a uniformly random advertiser from the same pool,
  computed exactly: the mean over queries of (relevant advertisers in the pool) / (pool size).
* **Keyword**: the advertisers whose normalized name appears in the normalized query as whole words
  (not inside a longer word). Ties (several names match) are broken uniformly at random, reported as
  the exact expectation (the share of matching advertisers that are relevant). A query with no match
  gets no keyword ad: we report the coverage (share of queries with a match), the rate on covered
  queries, the rate over all queries counting no-match as a miss, and the rate when no-match falls
  back to a random winner; and the VCG rate on the same covered / uncovered queries, for comparison.

It is a measurement, not a test threshold.

Usage::

    .venv/bin/python benchmarks/relevance_webis.py [--data PATH] [--sigma 1.0] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "webis-ads"

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'"})


def normalize_name(text: str) -> str:
    """Normalize a name or query for matching: NFKC, straight quotes, case folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold().split())


@dataclass(frozen=True)
class Ad:
    topic: str
    name: str
    type: str
    qualities: str

    @property
    def key(self) -> str:
        return normalize_name(self.name)

    @property
    def text(self) -> str:
        """The text embedded as the advertiser's center."""
        return f"{self.name}: {self.qualities}"


@dataclass
class WebisData:
    """The parsed data set. ``judged[q]`` is the set of normalized relevant names of query ``q``."""

    topics: list[str]
    ads: list[Ad]
    queries: list[tuple[str, str]]  # (topic, text)
    judged: dict[int, frozenset[str]]
    pairs: int = 0
    duplicate_pairs: int = 0
    pairs_unknown_query: list[tuple[str, str]] = field(default_factory=list)  # (topic, query)
    pairs_advertiser_not_found: list[tuple[str, str]] = field(default_factory=list)  # (topic, name)
    pairs_advertiser_other_topic: list[tuple[str, str]] = field(default_factory=list)


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column {missing[0]!r} (has {reader.fieldnames})")
        return list(reader)


def load_webis(data_dir: str | Path) -> WebisData:
    """Parse ``advertisements/{topic}_qualities.csv``, ``{topic}_query_pairs.csv`` and
    ``queries/{topic}_queries.txt`` for every topic that has a qualities file."""
    root = Path(data_dir)
    ads_dir, q_dir = root / "advertisements", root / "queries"
    topics = sorted(p.name[: -len("_qualities.csv")] for p in ads_dir.glob("*_qualities.csv"))
    if not topics:
        raise FileNotFoundError(f"{ads_dir}: no *_qualities.csv files (is --data the webis-ads folder?)")
    ads: list[Ad] = []
    for t in topics:
        for row in _read_csv(ads_dir / f"{t}_qualities.csv", ("advertisement", "type", "qualities")):
            name = (row["advertisement"] or "").strip()
            if name:
                ads.append(Ad(t, name, (row["type"] or "").strip(), (row["qualities"] or "").strip()))
    all_keys = {a.key for a in ads}
    topic_keys = {t: {a.key for a in ads if a.topic == t} for t in topics}

    queries: list[tuple[str, str]] = []
    index: dict[tuple[str, str], int] = {}
    for t in topics:
        path = q_dir / f"{t}_queries.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing")
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text and (t, text) not in index:
                index[(t, text)] = len(queries)
                queries.append((t, text))

    data = WebisData(topics, ads, queries, {})
    judged: dict[int, set[str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for t in topics:
        for row in _read_csv(ads_dir / f"{t}_query_pairs.csv", ("query", "advertisement")):
            query, name = (row["query"] or "").strip(), (row["advertisement"] or "").strip()
            if not query or not name:
                continue
            data.pairs += 1
            key = normalize_name(name)
            if (t, query, key) in seen:
                data.duplicate_pairs += 1
                continue
            seen.add((t, query, key))
            q = index.get((t, query))
            if q is None:
                data.pairs_unknown_query.append((t, query))
                continue
            if key not in all_keys:
                data.pairs_advertiser_not_found.append((t, name))
            elif key not in topic_keys[t]:
                data.pairs_advertiser_other_topic.append((t, name))
            judged.setdefault(q, set()).add(key)
    data.judged = {q: frozenset(v) for q, v in sorted(judged.items())}
    return data


def keyword_matrix(query_texts: Sequence[str], ad_keys: Sequence[str]) -> NDArray[np.bool_]:
    """``M[q, i]``: advertiser ``i``'s normalized name appears in query ``q`` as whole words."""
    uniq = sorted(set(ad_keys))
    pattern = {k: re.compile(r"(?<!\w)" + re.escape(k) + r"(?!\w)") for k in uniq}
    cols = {k: [i for i, a in enumerate(ad_keys) if a == k] for k in uniq}
    m = np.zeros((len(query_texts), len(ad_keys)), dtype=bool)
    for q, text in enumerate(query_texts):
        norm = normalize_name(text)
        for k in uniq:
            if k in norm and pattern[k].search(norm):
                m[q, cols[k]] = True
    return m


def _rate(x: NDArray[np.float64]) -> float | None:
    return round(float(x.mean()), 4) if x.size else None


def _pool_metrics(
    relevant: NDArray[np.bool_],
    pool: NDArray[np.bool_],
    winner: NDArray[np.int64],
    runner_up: NDArray[np.int64],
    keyword: NDArray[np.bool_],
) -> dict[str, object]:
    """Rates for queries (rows) given their relevant advertisers, pool, VCG outcome and keyword matches."""
    rows = np.arange(relevant.shape[0])
    won = winner >= 0
    hit = np.zeros(len(rows), dtype=bool)
    hit[won] = relevant[rows[won], winner[won]]
    has2 = runner_up >= 0
    top2 = hit.copy()
    top2[has2] |= relevant[rows[has2], runner_up[has2]]
    pool_size = pool.sum(axis=1)
    rand = (relevant & pool).sum(axis=1) / np.maximum(pool_size, 1)
    kw = keyword & pool
    n_kw = kw.sum(axis=1)
    covered = n_kw > 0
    kw_rate = np.where(covered, (kw & relevant).sum(axis=1) / np.maximum(n_kw, 1), 0.0)
    out: dict[str, object] = {
        "queries": int(len(rows)),
        "vcg_winner_relevant": _rate(hit.astype(float)),
        "vcg_winner_or_runner_up_relevant": _rate(top2.astype(float)),
        "random_winner_expected": _rate(rand),
        "keyword": {
            "coverage": _rate(covered.astype(float)),
            "rate_on_covered": _rate(kw_rate[covered]),
            "rate_no_match_counts_as_miss": _rate(kw_rate),
            "rate_random_fallback_on_no_match": _rate(np.where(covered, kw_rate, rand)),
            "vcg_rate_on_covered": _rate(hit[covered].astype(float)),
            "vcg_rate_on_uncovered": _rate(hit[~covered].astype(float)),
        },
        "relevant_in_pool_mean": round(float((relevant & pool).sum(axis=1).mean()), 3) if len(rows) else None,
        "queries_with_no_relevant_in_pool": int(((relevant & pool).sum(axis=1) == 0).sum()),
    }
    return out


def evaluate(
    data: WebisData,
    query_emb: NDArray[np.float64],
    ad_emb: NDArray[np.float64],
    *,
    sigma: float = 1.0,
    bid: float = 1.0,
) -> dict[str, object]:
    """Clear every query against all advertisers and against its own topic; score the judged queries."""
    from adspace.mechanisms.vcg import clear

    n = len(data.ads)
    sigmas, bids = np.full(n, sigma), np.full(n, bid)
    ad_topic = np.array([data.topics.index(a.topic) for a in data.ads])
    q_topic = np.array([data.topics.index(t) for t, _ in data.queries])
    own = q_topic[:, None] == ad_topic[None, :]

    t0 = time.perf_counter()
    out_all = clear(query_emb, ad_emb, sigmas, bids)
    t1 = time.perf_counter()
    out_own = clear(query_emb, ad_emb, sigmas, bids, eligible=own)
    t2 = time.perf_counter()

    jq = np.array(sorted(data.judged), dtype=np.int64)
    keys = [a.key for a in data.ads]
    relevant = np.array([[k in data.judged[q] for k in keys] for q in jq], dtype=bool).reshape(len(jq), n)
    kw = keyword_matrix([data.queries[q][1] for q in jq], keys)
    everyone = np.ones((len(jq), n), dtype=bool)
    own_j = own[jq]

    def pools(sel: NDArray[np.bool_]) -> dict[str, object]:
        return {
            "all_1000": _pool_metrics(
                relevant[sel], everyone[sel], out_all.winner[jq][sel], out_all.runner_up[jq][sel], kw[sel]
            ),
            "own_topic": _pool_metrics(
                relevant[sel], own_j[sel], out_own.winner[jq][sel], out_own.runner_up[jq][sel], kw[sel]
            ),
        }

    overall = pools(np.ones(len(jq), dtype=bool))
    per_topic = {t: pools(q_topic[jq] == k) for k, t in enumerate(data.topics)}
    winner_topic_ok = float((ad_topic[out_all.winner] == q_topic).mean()) if len(q_topic) else None
    return {
        "overall": overall,
        "per_topic": per_topic,
        "all_queries": {
            "queries": len(data.queries),
            "winner_in_query_topic_share": round(winner_topic_ok, 4) if winner_topic_ok is not None else None,
        },
        "clear_seconds": {"all_1000": round(t1 - t0, 3), "own_topic": round(t2 - t1, 3)},
    }


def _summary(data: WebisData) -> dict[str, object]:
    return {
        "advertisers": len(data.ads),
        "distinct_advertiser_names": len({a.key for a in data.ads}),
        "topics": data.topics,
        "queries": len(data.queries),
        "judged_queries": len(data.judged),
        "judged_pairs": data.pairs,
        "duplicate_pairs": data.duplicate_pairs,
        "pairs_with_unknown_query": len(data.pairs_unknown_query),
        "pairs_advertiser_not_in_market": len(data.pairs_advertiser_not_found),
        "pairs_advertiser_not_in_market_names": sorted({f"{t}: {n}" for t, n in data.pairs_advertiser_not_found}),
        "pairs_advertiser_only_in_other_topic": len(data.pairs_advertiser_other_topic),
        "pairs_advertiser_only_in_other_topic_names": sorted(
            {f"{t}: {n}" for t, n in data.pairs_advertiser_other_topic}
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"webis-ads folder (default: {DEFAULT_DATA})")
    parser.add_argument(
        "--sigma", type=float, default=1.0, help="every advertiser's reach (winners do not depend on it)"
    )
    parser.add_argument("--bid", type=float, default=1.0, help="every advertiser's bid (winners do not depend on it)")
    parser.add_argument("--batch-size", type=int, default=512, help="texts per embedding call")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from rich.console import Console
    from rich.progress import Progress

    from adspace.marketfiles import conversation_text
    from adspace.models.embedder import MODEL_NAME, get_embedder

    err = Console(stderr=True)
    data = load_webis(args.data)
    err.print(f"webis-ads: {len(data.ads)} advertisers, {len(data.queries)} queries, {len(data.judged)} judged")

    timing: dict[str, float] = {}
    t = time.perf_counter()
    embedder = get_embedder()
    embedder._load()
    timing["load_model"] = time.perf_counter() - t

    def embed(texts: list[str], label: str) -> NDArray[np.float64]:
        out = np.empty((len(texts), embedder.dim))
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(label, total=len(texts))
            for lo in range(0, len(texts), args.batch_size):
                out[lo : lo + args.batch_size] = embedder.embed(texts[lo : lo + args.batch_size])
                progress.advance(task, min(args.batch_size, len(texts) - lo))
        return out

    t = time.perf_counter()
    ad_emb = embed([a.text for a in data.ads], "embedding advertisers")
    timing["embed_advertisers"] = time.perf_counter() - t
    t = time.perf_counter()
    query_texts = [conversation_text([{"role": "user", "content": q}]) for _, q in data.queries]
    q_emb = embed(query_texts, "embedding queries")
    timing["embed_queries"] = time.perf_counter() - t

    result = evaluate(data, q_emb, ad_emb, sigma=args.sigma, bid=args.bid)
    timing.update({f"clear_{k}": v for k, v in result.pop("clear_seconds").items()})
    report = {
        "benchmark": "relevance_webis",
        "data": str(args.data),
        "model": MODEL_NAME,
        "setup": {
            "center_text": "name: qualities",
            "query_text": "the query as a one-turn user conversation (adspace.marketfiles.conversation_text)",
            "sigma": args.sigma,
            "bid": args.bid,
            "winner": "adspace.mechanisms.vcg.clear; with equal bids and reach the nearest center wins",
            "relevant": "winner's normalized name is among the query's judged advertiser names",
            "random": "exact expectation of a uniform winner from the same pool",
            "keyword": "advertisers whose normalized name appears as whole words in the query; ties uniform "
            "(exact expectation); no match = no keyword ad (coverage reported)",
        },
        "dataset": _summary(data),
        **result,
        "seconds": {k: round(v, 3) for k, v in timing.items()},
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
