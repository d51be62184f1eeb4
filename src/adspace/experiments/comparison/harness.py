"""The comparison harness: every mechanism on the same episodes, judged one way, in one currency.

An :class:`Episode` is one held-out Webis query with its user profile, its candidate ads (some judged
relevant by people, the others drawn from the same topic), every advertiser's **value per click** (in
currency units, drawn once from ``{1..100}``), a sampling seed, and which advertiser misreports in the
incentive check. A mechanism (:class:`Mechanism`) sees the episode and a bid vector and returns what
the user is shown (:class:`Shown`): the answer text, with ads written inline as ``@Title@[Ad-ID]``
and/or one ad in a separate slot, and its payment rule in currency: a price per click for each ad
and/or a fixed payment per auction. The :class:`Judge` then measures every mechanism the same way:

* **one click model** (:class:`adspace.experiments.llm_auction.users.ClickModel`) gives each shown ad's
  click probability; advertiser value ``Σ_i v_i·ctr_i`` and platform revenue
  ``Σ_i (price_i·ctr_i + fixed_i)`` are expectations over clicks given the shown reply (currency units
  per query; prices are integer micros). **Expected revenue is the measure** (lower variance than one
  sampled click per ad, and what a researcher comparing mechanisms under one click model wants); the
  revenue with the click model's own sampled clicks (``sampled_revenue``, the quantity of the
  LLM-Auction paper's Table 2) comes from the same reply at no extra cost, and so does the reward
  ``revenue − λ·s_resp`` (``reward``; ``sampled_reward`` with the sampled clicks);
* **user experience**: ads per reply, format errors (the strict markup parser), and the departure of
  the answer from the plain assistant's: ``Δ NLL``, the plain model's negative log-likelihood per token
  of the shown answer minus that of the plain answer to the same query (0 for the plain answer itself);
* **relevance** of every shown ad by the Webis human judgments;
* **compute**: wall and process-CPU seconds of ``run`` (CPU time is the fairer number on a shared
  machine), forward passes of the language model and texts encoded by the sentence embedder, counted
  while ``run`` executes; model loading happens in :meth:`Mechanism.prepare` and in
  :meth:`Judge.prepare`, before any clock starts;
* **incentives**: the chosen advertiser bids 80% of its value (others truthful, same seed); the
  *shading gain* is its utility with the shaded bid minus its utility bidding truthfully. A mechanism
  where truthful bidding is optimal has gain ≤ 0 (up to sampling noise); a positive mean gain is the
  measured regret of bidding truthfully.

:func:`evaluate` runs it all and :func:`summarize` gives means with bootstrap 95% intervals
(:func:`adspace.experiments.stats.bootstrap_ci`, resampling queries; several episodes of one query, e.g.
``episodes_from(..., replicates=k)``, are one unit). ``adspace experiment compare`` and
``adspace experiment llm-auction`` both evaluate through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.format import check_candidates, parse_reply
from adspace.experiments.stats import bootstrap_ci
from adspace.mechanisms import llm_auction as gen

__all__ = [
    "CURRENCY",
    "Episode",
    "ForwardCounter",
    "Judge",
    "Mechanism",
    "PLAIN_SYSTEM",
    "Shown",
    "episodes_from",
    "evaluate",
    "plain_messages",
    "summarize",
]

CURRENCY = "currency units per query (values and bids per click drawn from 1..100; prices in integer micros)"
PLAIN_SYSTEM = "You are a helpful AI assistant. Answer the user's question concisely."
SHADE = 0.8


def plain_messages(query: str) -> list[dict]:
    """The plain assistant's prompt (no ads): the reference answer and the ``Δ NLL`` scorer."""
    return [{"role": "system", "content": PLAIN_SYSTEM}, {"role": "user", "content": query}]


@dataclass(frozen=True)
class Episode:
    """One held-out query: candidates, true values per click (currency), sampling seed, the shading advertiser.

    Validated on creation: the query's text is non-empty, its candidates pass
    :func:`adspace.experiments.llm_auction.format.check_candidates` (distinct ids among them), there is one
    positive value per candidate and ``shader`` indexes a candidate.
    """

    query: AuctionQuery
    values: NDArray[np.float64]
    seed: int
    shader: int

    def __post_init__(self) -> None:
        if not isinstance(self.query.text, str) or not self.query.text.strip():
            raise ValueError(f"query.text: must be a non-empty string, got {self.query.text!r}")
        try:
            check_candidates(self.query.candidates)
        except ValueError as exc:
            raise ValueError(f"query.{exc}") from None
        v = np.asarray(self.values, dtype=np.float64)
        if v.shape != (len(self.query.candidates),) or not (np.isfinite(v).all() and (v > 0).all()):
            raise ValueError(f"values: need one positive value per candidate ({len(self.query.candidates)}), got {v}")
        if not 0 <= self.shader < v.size:
            raise ValueError(f"shader: must index a candidate (0..{v.size - 1}), got {self.shader}")

    def shaded_bids(self, factor: float = SHADE) -> NDArray[np.float64]:
        b = np.asarray(self.values, dtype=np.float64).copy()
        b[self.shader] *= factor
        return b


def episodes_from(
    queries: Sequence[AuctionQuery], *, seed: int = 0, low: int = 1, high: int = 100, replicates: int = 1
) -> list[Episode]:
    """Episodes with values drawn uniformly from ``{low..high}`` (one ``numpy`` generator seeded by
    ``seed + 10_000``, as the LLM-Auction experiment draws its test bids); the highest-value advertiser
    shades (lowest index on ties); episode ``j`` samples with seed ``seed + j``. ``replicates = k`` adds,
    for each query, ``k − 1`` more episodes with the same values and other seeds (``seed + j + r·n`` for
    replicate ``r`` of ``n`` queries): more replies per query, still one unit in :func:`summarize`."""
    from adspace.experiments.llm_auction.environment import draw_bids

    if int(replicates) != replicates or replicates < 1:
        raise ValueError(f"replicates: must be a positive integer, got {replicates!r}")
    rng = np.random.default_rng(seed + 10_000)
    n = len(queries[0].candidates) if queries else 0
    vals = draw_bids(len(queries), n, rng, low, high)
    pairs = list(zip(queries, vals, strict=True))
    return [
        Episode(q, v, seed + j + r * len(pairs), int(np.argmax(v)))
        for r in range(int(replicates))
        for j, (q, v) in enumerate(pairs)
    ]


@dataclass
class Shown:
    """What a mechanism shows for one episode, and how it charges (currency units).

    ``reply``: the answer text (ads inline as ``@Title@[Ad-ID]``); ``slot``: index of the candidate
    shown in a separate ad slot below the answer, or ``None``; ``price_per_click``: ``(n,)`` integer
    micros charged when the ad is clicked; ``fixed``: ``(n,)`` payment per auction in currency units
    (charged whatever the clicks, e.g. MOSAIC's); ``info``: mechanism-specific numbers.
    """

    reply: str
    slot: int | None
    price_per_click: NDArray[np.int64]
    fixed: NDArray[np.float64]
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Mechanism(Protocol):
    """``name``; ``incentive`` (the property it guarantees) and ``payment_rule`` (how its payments
    become currency) in words; ``prepare()`` loads models (not timed); ``run(episode, bids)``."""

    name: str
    incentive: str
    payment_rule: str

    def prepare(self) -> None: ...

    def run(self, episode: Episode, bids: NDArray[np.float64]) -> Shown: ...


class ForwardCounter:
    """Counts, while active (``with counter: ...``), forward passes of the language model and texts
    encoded by the sentence embedder.

    One LLM pass = one call of a base transformer (a ``PreTrainedModel`` that is its own ``base_model``,
    the decoder stack), whatever the batch size, so a batched decoding step is one pass; counted by a
    global module pre-hook, removed on exit. The embedder (:func:`adspace.models.embedder.get_embedder`)
    encodes through sentence-transformers and caches by text, so its cost is counted as the texts it
    actually encoded (cache misses).
    """

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.embedded = 0
        self._handle = None
        self._emb = None
        self._m0 = 0

    def _hook(self, module, _args) -> None:
        if isinstance(module, self._base) and module.base_model is module:
            name = type(module).__name__
            self.calls[name] = self.calls.get(name, 0) + 1

    def __enter__(self) -> ForwardCounter:
        import torch
        from transformers import PreTrainedModel

        from adspace.models.embedder import get_embedder

        self._base = PreTrainedModel  # resolved once: the hook runs on every module call
        self.calls = {}
        self.embedded = 0
        self._emb = get_embedder()
        self._m0 = self._emb.misses
        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._emb is not None:
            self.embedded += self._emb.misses - self._m0
            self._emb = None

    def split(self) -> tuple[int, int]:
        """``(LLM forward passes, texts encoded by the embedder)``."""
        return sum(self.calls.values()), self.embedded


class Judge:
    """Measures a :class:`Shown` for an episode: clicks, money, user experience, relevance.

    Parameters
    ----------
    clicks : the click model (one for every mechanism).
    plain : the plain assistant (a :class:`adspace.models.llm.LLMBackend`) scoring ``Δ NLL``; ``None``
        skips it. ``plain_answers`` supplies (and caches) the plain answer per episode.
    lam, ad_cost, error_cost : the reward ``revenue − lam·s_resp`` with the response penalty
        ``s_resp = ad_cost·ads + error_cost·format errors`` (the LLM-Auction paper's; its defaults).
    """

    def __init__(
        self,
        clicks,
        plain=None,
        plain_answers=None,
        *,
        lam: float = 1.0,
        ad_cost: float = gen.DEFAULT_AD_COST,
        error_cost: float = gen.DEFAULT_ERROR_COST,
    ):
        self.clicks = clicks
        self.plain = plain
        self.plain_answers = plain_answers
        self.lam = float(lam)
        self.ad_cost = float(ad_cost)
        self.error_cost = float(error_cost)

    def prepare(self) -> None:
        """Load the click model's embedder (outside any timing)."""
        if hasattr(self.clicks, "_embed"):
            self.clicks._embed(["warm-up"])

    def displayed(self, ep: Episode, shown: Shown) -> str:
        """The text the user sees: the answer, and the slot ad below it."""
        if shown.slot is None:
            return shown.reply
        return f"{shown.reply}\n\nSponsored: {ep.query.candidates[shown.slot].markup()}"

    def _nll(self, ep: Episode, text: str) -> float | None:
        return self.delta_nll([ep], [text])[0]

    def delta_nll(self, episodes: Sequence[Episode], texts: Sequence[str]) -> list[float | None]:
        """``Δ NLL`` of each answer text against its episode's plain answer, the texts scored in one call."""
        if self.plain is None or self.plain_answers is None:
            return [None] * len(texts)
        if hasattr(self.plain_answers, "prefetch"):
            self.plain_answers.prefetch(episodes)
        refs = [self.plain_answers.get(ep) for ep in episodes]
        out: list[float | None] = [0.0 if t == ref.text else None for t, ref in zip(texts, refs, strict=True)]
        todo = [i for i, d in enumerate(out) if d is None]
        if todo:
            lps = self.plain.score([plain_messages(episodes[i].query.text) for i in todo], [texts[i] for i in todo])
            for i, lp in zip(todo, lps, strict=True):
                ref = refs[i]
                tokens = len(self.plain.tokenizer(texts[i], add_special_tokens=False)["input_ids"]) + 1
                out[i] = -float(lp) / tokens + ref.model_logprob / max(1, len(ref))
        return out

    def measure(self, ep: Episode, shown: Shown, *, nll: bool = True) -> dict[str, Any]:
        q = ep.query
        parsed = parse_reply(self.displayed(ep, shown), q.candidates)
        ctr = self.clicks.probabilities([(q, parsed)])[0]
        v = np.asarray(ep.values, dtype=np.float64)
        price = np.asarray(shown.price_per_click, dtype=np.int64) / gen.MICROS
        fixed = np.asarray(shown.fixed, dtype=np.float64)
        pay = price * ctr + fixed
        util = v * ctr - pay
        ads = [q.candidates[i] for i in parsed.indices]
        rel = [a.ad_id in q.relevant for a in ads]
        penalty = self.lam * parsed.s_resp(ad_cost=self.ad_cost, error_cost=self.error_cost)
        sampled = None
        if hasattr(self.clicks, "feedback"):  # the click model's own draw (deterministic by seed, query, ad, reply)
            from adspace.experiments.llm_auction.users import clicked_vector

            clicked = clicked_vector(self.clicks.feedback([(q, parsed)])[0], q).astype(np.float64)
            sampled = float((price * clicked + fixed).sum())
        return {
            "query_id": q.query_id,
            "value": float(v @ ctr),
            "revenue": float(pay.sum()),
            "reward": float(pay.sum()) - penalty,
            "sampled_revenue": sampled,
            "sampled_reward": None if sampled is None else sampled - penalty,
            "clicks": float(ctr.sum()),
            "utility": util.tolist(),
            "ads": parsed.n_ads,
            "format_errors": parsed.n_errors,
            "any_format_error": float(parsed.n_errors > 0),
            "shown_ads": [a.ad_id for a in ads],
            "relevant_ads": int(sum(rel)),
            "candidates_relevant": len(q.relevant),
            "candidates": len(q.candidates),
            "delta_nll": self._nll(ep, shown.reply) if nll else None,
            "reply": self.displayed(ep, shown),
        }


def evaluate(
    mechanisms: Sequence[Mechanism],
    episodes: Sequence[Episode],
    judge: Judge,
    *,
    shading: float | None = SHADE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per mechanism, one row per episode (same episodes, bids and seeds for every mechanism).

    Each row holds the judge's measurements of the truthful run, its compute (``seconds``,
    ``llm_passes``, ``embedder_texts``, measured around the mechanism's own work only), and
    ``shading_gain``: the shading advertiser's utility bidding ``shading × value`` minus bidding its
    value (``None`` when ``shading`` is ``None``: the misreport is not run, which halves the cost).

    A mechanism with a ``prefetch(requests)`` method (all of :mod:`adspace.experiments.comparison.adapters`)
    is first given every ``(episode, bids)`` of the evaluation, truthful and shaded, and samples their
    replies in few decoding batches (:mod:`adspace.experiments.comparison.batching`); its compute there is
    shared equally by the episodes and added to each row's. ``progress(done, total)`` is called after
    each mechanism's batches (``total`` = the number of mechanisms). The judge scores each mechanism's
    answers for ``Δ NLL`` in one call.
    """
    for m in mechanisms:
        if not isinstance(m, Mechanism):
            raise ValueError(f"mechanisms: {m!r} lacks name / incentive / payment_rule / prepare / run")
    names = [m.name for m in mechanisms]
    if len(set(names)) != len(names):
        raise ValueError(f"mechanisms: names must be distinct, got {names}")
    if shading is not None and not 0 < shading < 1:
        raise ValueError(f"shading: must be in (0, 1), got {shading!r}")
    judge.prepare()
    for m in mechanisms:
        m.prepare()
    shares = {}
    for k, m in enumerate(mechanisms):
        shares[m.name] = _prefetch(m, episodes, shading)
        if progress:
            progress(k + 1, len(mechanisms))
    rows: dict[str, list[dict[str, Any]]] = {m.name: [] for m in mechanisms}
    answers: dict[str, list[str]] = {m.name: [] for m in mechanisms}
    for ep in episodes:
        for m in mechanisms:
            counter = ForwardCounter()
            with counter:
                t0, c0 = time.perf_counter(), time.process_time()
                shown = m.run(ep, np.asarray(ep.values, dtype=np.float64))
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            llm, emb = counter.split()
            row = judge.measure(ep, shown, nll=False)
            gain = None
            if shading is not None:
                shaded = judge.measure(ep, m.run(ep, ep.shaded_bids(shading)), nll=False)
                gain = shaded["utility"][ep.shader] - row["utility"][ep.shader]
            share = shares[m.name]
            row.update(
                seconds=secs + share["seconds"],
                cpu_seconds=cpu + share["cpu_seconds"],
                llm_passes=llm + share["llm_passes"],
                embedder_texts=emb + share["embedder_texts"],
                shading_gain=gain,
                shader_shown=float(ep.query.candidates[ep.shader].ad_id in row["shown_ads"]),
                info=shown.info,
            )
            rows[m.name].append(row)
            answers[m.name].append(shown.reply)
    for m in mechanisms:  # Δ NLL of each mechanism's answers, scored in one call per mechanism
        for row, d in zip(rows[m.name], judge.delta_nll(episodes, answers[m.name]), strict=True):
            row["delta_nll"] = d
    return rows


def _prefetch(m: Mechanism, episodes: Sequence[Episode], shading: float | None) -> dict[str, float]:
    """Run ``m.prefetch`` (if it has one) on every request of the evaluation; its compute, shared
    equally by the episodes (a batch's cost cannot be split by row)."""
    zero = {"seconds": 0.0, "cpu_seconds": 0.0, "llm_passes": 0.0, "embedder_texts": 0.0}
    if not hasattr(m, "prefetch") or not episodes:
        return zero
    reqs = [(ep, np.asarray(ep.values, dtype=np.float64)) for ep in episodes]
    if shading is not None:
        reqs += [(ep, ep.shaded_bids(shading)) for ep in episodes]
    counter = ForwardCounter()
    with counter:
        t0, c0 = time.perf_counter(), time.process_time()
        m.prefetch(reqs)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    llm, emb = counter.split()
    n = len(episodes)
    return {"seconds": secs / n, "cpu_seconds": cpu / n, "llm_passes": llm / n, "embedder_texts": emb / n}


#: metric -> (label, how it is aggregated): "mean" of per-query numbers, or a ratio of per-query sums.
METRICS: dict[str, tuple[str, str]] = {
    "value": ("advertiser value / query", "mean"),
    "revenue": ("platform revenue / query", "mean"),
    "reward": ("reward (revenue − λ·s_resp) / query", "mean"),
    "sampled_revenue": ("revenue with sampled clicks / query", "mean"),
    "sampled_reward": ("reward with sampled clicks / query", "mean"),
    "ctr_per_ad": ("expected clicks per shown ad", "ratio"),
    "ads": ("ads / reply", "mean"),
    "any_format_error": ("format-error rate", "mean"),
    "delta_nll": ("Δ NLL vs plain (nats/token)", "mean"),
    "relevant_share": ("shown ads judged relevant", "ratio"),
    "seconds": ("seconds / query", "mean"),
    "cpu_seconds": ("CPU seconds / query", "mean"),
    "llm_passes": ("LLM forward passes / query", "mean"),
    "embedder_texts": ("texts embedded / query", "mean"),
    "shading_gain": ("gain from 20% shading / query", "mean"),
}


def _per_query(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one query's episodes (replicates) merged: numbers averaged, ``None`` where any row has none."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rs:
        groups.setdefault(r["query_id"], []).append(r)
    out = []
    for g in groups.values():
        if len(g) == 1:
            out.append(g[0])
            continue
        merged = {"query_id": g[0]["query_id"], "replies": len(g)}
        for key in (*METRICS, "clicks", "relevant_ads", "candidates_relevant", "candidates", "shader_shown"):
            vals = [r.get(key) for r in g]
            merged[key] = None if any(v is None for v in vals) else float(np.mean(vals))
        out.append(merged)
    return out


def summarize(rows: dict[str, list[dict[str, Any]]], *, seed: int = 0, n_resamples: int = 2000) -> dict[str, dict]:
    """Per mechanism and metric: ``{"estimate", "low", "high", "n", "level"}`` (bootstrap 95% over queries).

    Rows of the same query (replicate episodes) are averaged first, so that queries are the unit
    resampled. ``relevant_share`` is the share of all shown ads judged relevant (ratio of per-query
    sums); ``ctr_per_ad`` the expected clicks per shown ad (ratio of per-query sums);
    ``chance_relevant_share`` the share of relevant ads for an ad drawn uniformly from each query's
    candidates (over the queries where the mechanism showed ads, weighted by ads shown).
    """
    out: dict[str, dict] = {}
    for name, rows_ in rows.items():
        rs = _per_query(rows_)
        s: dict[str, Any] = {}
        for key in METRICS:
            if key in ("relevant_share", "ctr_per_ad"):
                num = "relevant_ads" if key == "relevant_share" else "clicks"
                iv = bootstrap_ci([r[num] for r in rs], [r["ads"] for r in rs], seed=seed, n_resamples=n_resamples)
            else:
                vals = [r[key] for r in rs if r.get(key) is not None]
                iv = bootstrap_ci(vals, seed=seed, n_resamples=n_resamples)
            s[key] = iv.to_json()
        chance = [r["ads"] * r["candidates_relevant"] / r["candidates"] for r in rs]
        s["chance_relevant_share"] = bootstrap_ci(
            chance, [r["ads"] for r in rs], seed=seed, n_resamples=n_resamples
        ).to_json()
        s["shader_shown_rate"] = float(np.mean([r["shader_shown"] for r in rs])) if rs else None
        s["queries"] = len(rs)
        s["replies"] = len(rows_)
        out[name] = s
    return out
