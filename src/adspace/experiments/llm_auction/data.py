"""Queries, candidate ads and users for the LLM-Auction simulation.

Two sources, the same shape (:class:`AuctionQuery`):

* **the Webis ads data set** (``--data DIR`` or ``$ADSPACE_WEBIS_DATA``, found by
  :func:`adspace.experiments.datasets.webis_data`): 1,000 real
  advertisers in 10 topics with quality descriptions, real search queries and judged-relevant
  query-advertiser pairs. An ad is ``Ad-NNNN`` (its row over all topics, topics in alphabetical order),
  titled with the advertiser's name and described as "<type>: <qualities>". A query's candidates are up to
  ``n_relevant`` of its judged-relevant advertisers plus advertisers of the same topic drawn at random
  (distractors) up to ``n_candidates``; the relevant ones are remembered for evaluation.
* **the shipped demo** (``adspace/data/demo_market.json`` and ``demo_conversations.json``) when neither
  names a folder: the user turns of each demo conversation, joined, are a query, the 16 fictional
  advertisers are the ads (title = creative title, description = advertiser description); candidates are
  drawn at random from all ads (the demo has no relevance judgments).

Every query gets a synthetic user profile (:mod:`.profiles`), drawn by the same seed. Everything is
reproducible from ``seed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from adspace.experiments.datasets import webis_data, webis_rows, webis_topics
from adspace.experiments.llm_auction.format import Ad, check_candidates
from adspace.experiments.llm_auction.profiles import load_profiles, profile_text

__all__ = ["AuctionQuery", "load_queries", "split"]


@dataclass(frozen=True)
class AuctionQuery:
    """One auction: a query, its user, its candidate ads (and which of them are judged relevant)."""

    query_id: str
    text: str
    topic: str
    profile_id: str
    profile: str
    candidates: tuple[Ad, ...]
    relevant: frozenset[str] = field(default_factory=frozenset)


def _webis_ads(root: Path) -> tuple[list[Ad], dict[str, list[int]], dict[tuple[str, str], int]]:
    ads: list[Ad] = []
    by_topic: dict[str, list[int]] = {}
    by_name: dict[tuple[str, str], int] = {}
    for topic in webis_topics(root):
        for row in webis_rows(root, topic, "qualities"):
            name = (row.get("advertisement") or "").strip()
            if not name or (topic, name) in by_name:
                continue
            k = len(ads)
            qual = ", ".join(q.strip() for q in (row.get("qualities") or "").split(",") if q.strip())
            ads.append(Ad(f"Ad-{k:04d}", name, f"{row.get('type', '').strip()}: {qual}", advertiser=name))
            by_topic.setdefault(topic, []).append(k)
            by_name[(topic, name)] = k
    return ads, by_topic, by_name


def _load_webis(root: Path, n: int, n_candidates: int, n_relevant: int, rng: np.random.Generator) -> list[AuctionQuery]:
    ads, by_topic, by_name = _webis_ads(root)
    pairs: list[tuple[str, str, list[int]]] = []
    for topic in sorted(by_topic):
        rel: dict[str, list[int]] = {}
        for row in webis_rows(root, topic, "query_pairs"):
            k = by_name.get((topic, (row.get("advertisement") or "").strip()))
            q = (row.get("query") or "").strip()
            if k is not None and q:
                rel.setdefault(q, [])
                if k not in rel[q]:
                    rel[q].append(k)
        pairs.extend((topic, q, ks) for q, ks in sorted(rel.items()))
    order = rng.permutation(len(pairs))[:n]
    profiles = load_profiles()
    out = []
    for j, idx in enumerate(order):
        topic, q, rel_ks = pairs[int(idx)]
        chosen = [int(k) for k in rng.permutation(rel_ks)[:n_relevant]]
        pool = [k for k in by_topic[topic] if k not in rel_ks]
        extra = rng.choice(pool, size=max(0, n_candidates - len(chosen)), replace=False).tolist()
        cand = [ads[k] for k in rng.permutation(chosen + [int(k) for k in extra])]
        prof = profiles[int(rng.integers(len(profiles)))]
        out.append(
            AuctionQuery(
                query_id=f"Q-{j:05d}",
                text=q,
                topic=topic,
                profile_id=prof["profile_id"],
                profile=profile_text(prof),
                candidates=check_candidates(cand),
                relevant=frozenset(ads[k].ad_id for k in chosen),
            )
        )
    return out


def _load_demo(n: int, n_candidates: int, rng: np.random.Generator) -> list[AuctionQuery]:
    def data(name: str):
        return json.loads(resources.files("adspace").joinpath("data", name).read_text(encoding="utf-8"))

    market = data("demo_market.json")["advertisers"]
    ads = [
        Ad(
            f"Ad-{k:04d}",
            (a.get("creative") or {}).get("title") or a["name"],
            f"{a['name']}: {a.get('description', '')}",
            advertiser=a["name"],
        )
        for k, a in enumerate(market)
    ]
    convs = data("demo_conversations.json")["conversations"]
    texts = [" ".join(m["content"] for m in c["messages"] if m["role"] == "user") for c in convs]
    profiles = load_profiles()
    out = []
    for j in range(n):
        t = texts[j % len(texts)]
        cand = [ads[int(k)] for k in rng.choice(len(ads), size=min(n_candidates, len(ads)), replace=False)]
        prof = profiles[int(rng.integers(len(profiles)))]
        out.append(
            AuctionQuery(f"Q-{j:05d}", t, "demo", prof["profile_id"], profile_text(prof), check_candidates(cand))
        )
    return out


def load_queries(
    n: int,
    *,
    data: str | Path | None = None,
    n_candidates: int = 3,
    n_relevant: int = 2,
    seed: int = 0,
    demo: bool = False,
) -> list[AuctionQuery]:
    """``n`` auctions from the Webis ads data set at ``data`` (else ``$ADSPACE_WEBIS_DATA``, see
    :func:`adspace.experiments.datasets.webis_data`) or, when neither names a folder, the shipped demo.

    ``demo=True`` uses the shipped demo market even when the data set is found.

    Raises ``ValueError`` naming ``data`` (or the variable) when the folder it names does not exist, and
    ``n_candidates`` / ``n`` when they are not positive.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    if int(n_candidates) != n_candidates or n_candidates < 1:
        raise ValueError(f"n_candidates: must be a positive integer, got {n_candidates!r}")
    if n_relevant < 0 or n_relevant > n_candidates:
        raise ValueError(f"n_relevant: must be in 0..n_candidates ({n_candidates}), got {n_relevant!r}")
    rng = np.random.default_rng(seed)
    if demo:
        return _load_demo(int(n), int(n_candidates), rng)
    root = webis_data(data)
    if root is not None:
        return _load_webis(root, int(n), int(n_candidates), int(n_relevant), rng)
    return _load_demo(int(n), int(n_candidates), rng)


def split(queries: list[AuctionQuery], n_test: int) -> tuple[list[AuctionQuery], list[AuctionQuery]]:
    """The first ``len − n_test`` queries for training and the last ``n_test`` held out (queries are shuffled)."""
    if not 0 < n_test < len(queries):
        raise ValueError(f"n_test: must be in 1..{len(queries) - 1}, got {n_test!r}")
    return queries[:-n_test], queries[-n_test:]
