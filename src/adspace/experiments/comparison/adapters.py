"""The three mechanisms as :class:`~adspace.experiments.comparison.harness.Mechanism` adapters, in currency.

* :class:`SlotVCG` -- the embedding-space VCG (J. Kim, "Formally Verified VCG Mechanisms for
  Advertising in Embedding Spaces") with the ad in its **own slot** below the plain assistant's
  answer. Centers are the ads' sentence embeddings, the query is embedded, ``σ`` is common, the bid is
  the value per click; :func:`adspace.mechanisms.vcg.clear` (the one scoring kernel) picks the winner
  and its Clarke payment ``p`` (runner-up's reported value at the query). The winner pays, **per
  click**, the critical bid ``b_w·p / value_w``: the least bid per click with which it would still
  win. The allocation does not depend on the bid except through winning, and the click probability of
  the slot does not depend on the bid, so bidding the true value per click is a dominant strategy.
* :class:`CurrencyMosaic` -- MOSAIC (Soumalias, Curry, Seuken, "Truthful Aggregation of LLMs with an
  Application to Online Advertising", arXiv 2405.05905) with rewards **in currency**, as the
  LLM-Auction paper's MOSAIC baseline uses them (Zhao et al., arXiv 2512.10551): advertiser i reports
  ``r_i(y) = b_i·pCTR_i(y)``, its bid per click times the click probability of its ad in candidate
  ``y`` (0 when not inserted); the pCTR here is the click model itself. Candidates: ``M`` replies of
  ``π_ref``, the plain assistant (*baseline*), or of ``π_con``, the ad-writer prompt listing the
  candidate ads without bids (*context-aware*), with the importance weights ``log π_ref − log π_gen``.
  Allocation (softmax with ``τ`` in currency units) and Rochet payments with the §5.3 offset from
  :mod:`adspace.mechanisms.mosaic`; the payment is charged **per auction**, in currency. Truthful in
  expectation over the draw from the fixed candidates (the paper's Theorem 1); the candidates never
  depend on bids, which keeps it so.
* :class:`LLMAuctionPolicy` -- LLM-Auction (Zhao et al., arXiv 2512.10551): the ad-writer LLM (the
  IRPO-trained model of a checkpoint, or the pre-trained one) sees query, profile, candidates **with
  bids** and writes ads inline; a clicked ad pays its bid (**first price per click**). No dominant
  strategy: shading lowers the price per click and, unless the model has learnt to allocate by bid,
  barely changes the allocation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adspace.experiments.comparison.batching import BATCH_ROWS, sample_grouped
from adspace.experiments.comparison.harness import Episode, Shown, plain_messages
from adspace.experiments.llm_auction.prompts import ad_writer_messages
from adspace.mechanisms import llm_auction as gen

__all__ = ["CurrencyMosaic", "LLMAuctionPolicy", "PlainAnswers", "SlotVCG"]


class PlainAnswers:
    """The plain assistant's answer per episode, sampled once (seeded by the episode) and cached.

    Shared by :class:`SlotVCG` (its answer) and the judge (the ``Δ NLL`` reference). :meth:`prefetch`
    samples the answers of many episodes in few batches (:func:`sample_grouped`).
    """

    def __init__(
        self,
        llm,
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.7,
        top_p: float = 0.8,
        batch_rows: int = BATCH_ROWS,
    ):
        self.llm = llm
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.batch_rows = batch_rows
        self._cache: dict[tuple[str, int], Any] = {}

    def prefetch(self, episodes: Sequence[Episode]) -> None:
        """Sample the answers of ``episodes`` not cached yet, in batches."""
        todo = {_key(ep): ep for ep in episodes if _key(ep) not in self._cache}
        if not todo:
            return
        reqs = [(plain_messages(ep.query.text), ep.seed, None) for ep in todo.values()]
        got = sample_grouped(
            lambda ps, n, _x, seed: self.llm.sample(ps, n, seed=seed, **self.sampling),
            reqs,
            batch_rows=self.batch_rows,
        )
        for k, (reply,) in zip(todo, got, strict=True):
            self._cache[k] = reply

    def get(self, ep: Episode):
        """The answer of ``ep`` (sampled alone, with the episode's seed, unless prefetched)."""
        self.prefetch([ep])
        return self._cache[_key(ep)]


def _key(ep: Episode) -> tuple[str, int]:
    return (ep.query.query_id + "\x1f" + ep.query.text, ep.seed)


def _bids_key(ep: Episode, bids) -> tuple[str, int, bytes]:
    return (*_key(ep), np.asarray(bids, dtype=np.float64).tobytes())


def _zeros(n: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float64)


class SlotVCG:
    """The embedding VCG, ad in a separate slot, critical bid per click (see the module docstring)."""

    name = "embedding-vcg"
    incentive = "dominant-strategy truthful (critical price per click)"
    payment_rule = "winner pays, per click, the least bid that still wins: b_w · Clarke payment / reported value"

    def __init__(self, answers: PlainAnswers, embedder=None, *, sigma: float = 1.0, reserve: float = 0.0):
        if not sigma > 0:
            raise ValueError(f"sigma: must be > 0, got {sigma!r}")
        self.answers = answers
        self.embedder = embedder
        self.sigma = float(sigma)
        self.reserve = float(reserve)

    def prepare(self) -> None:
        if self.embedder is None:
            from adspace.models.embedder import get_embedder

            self.embedder = get_embedder()
        self.embedder.embed(["warm-up"])

    def prefetch(self, requests: Sequence[tuple[Episode, NDArray[np.float64]]]) -> None:
        """The plain answers of all episodes in batches (and, with a caching embedder, every text's
        embedding in one call)."""
        from adspace.experiments.llm_auction.users import ClickModel

        eps = [ep for ep, _ in requests]
        self.answers.prefetch(eps)
        if hasattr(self.embedder, "misses"):  # the project's embedder caches by text
            texts = dict.fromkeys(
                t for ep in eps for t in [ep.query.text, *map(ClickModel.ad_text, ep.query.candidates)]
            )
            self.embedder.embed(list(texts))

    def run(self, ep: Episode, bids: NDArray[np.float64]) -> Shown:
        from adspace.experiments.llm_auction.users import ClickModel
        from adspace.mechanisms.vcg import clear

        q = ep.query
        answer = self.answers.get(ep).text
        vecs = np.asarray(self.embedder.embed([q.text] + [ClickModel.ad_text(a) for a in q.candidates]))
        b = np.asarray(bids, dtype=np.float64)
        res = clear(vecs[:1], vecs[1:], np.full(len(b), self.sigma), b, reserve=self.reserve)
        w = int(res.winner[0])
        price, fixed = _zeros(len(b))
        if w >= 0:
            critical = b[w] * float(res.payment[0]) / float(res.value[0])
            price[w] = int(gen.to_micros(min(critical, b[w])))
        return Shown(answer, w if w >= 0 else None, price, fixed, {"winner_score": float(res.score[0])})


class CurrencyMosaic:
    """MOSAIC with rewards in currency, ``r_i(y) = b_i·pCTR_i(y)`` (see the module docstring)."""

    incentive = "truthful in expectation over the draw (Rochet payments)"
    payment_rule = "Rochet payment with the offset, rewards b_i·pCTR_i(y) in currency; charged per auction"

    def __init__(
        self,
        llm,
        clicks,
        *,
        m: int = 4,
        context_aware: bool = True,
        tau: float = 1.0,
        max_new_tokens: int = 48,
        temperature: float = 0.7,
        top_p: float = 0.8,
        batch_rows: int = BATCH_ROWS,
    ):
        if int(m) != m or m < 1:
            raise ValueError(f"m: must be a positive integer, got {m!r}")
        if not tau > 0:
            raise ValueError(f"tau: must be > 0, got {tau!r}")
        self.llm = llm
        self.clicks = clicks
        self.m = int(m)
        self.context_aware = bool(context_aware)
        self.name = "mosaic-context" if context_aware else "mosaic-baseline"
        self.tau = float(tau)
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.batch_rows = batch_rows
        self._cands: dict[tuple[str, int], tuple] = {}

    def prepare(self) -> None:
        if hasattr(self.clicks, "_embed"):
            self.clicks._embed(["warm-up"])

    def candidates(self, ep: Episode):
        """``(texts, parsed, ctr (n, M), log_ref (M,), log_gen (M,))``, bid-independent, cached per episode."""
        key = _key(ep)
        if key not in self._cands:
            self.prefetch([(ep, ep.values)])
        return self._cands[key]

    def _prompt(self, ep: Episode) -> list[dict]:
        q = ep.query
        if self.context_aware:
            return ad_writer_messages(q.text, q.profile, q.candidates, None, short=True)
        return plain_messages(q.text)

    def prefetch(self, requests: Sequence[tuple[Episode, NDArray[np.float64]]]) -> None:
        """The ``M`` candidates of every episode not cached yet: sampled in batches (the replicates of a
        query share its prompt), their ``log π_ref`` scored in one call. Bids play no part."""
        from adspace.experiments.llm_auction.format import parse_reply

        todo = {_key(ep): ep for ep, _ in requests if _key(ep) not in self._cands}
        if not todo:
            return
        eps = list(todo.values())
        rows = sample_grouped(
            lambda ps, n, _x, seed: self.llm.sample(ps, n, seed=seed, **self.sampling),
            [(self._prompt(ep), ep.seed, None) for ep in eps],
            per=self.m,
            batch_rows=self.batch_rows,
        )
        flat = [r for row in rows for r in row]
        if self.context_aware:
            refs = [plain_messages(ep.query.text) for ep in eps for _ in range(self.m)]
            log_ref_all = np.asarray(self.llm.score(refs, flat), dtype=np.float64)
        else:
            log_ref_all = np.array([r.model_logprob for r in flat], dtype=np.float64)
        for j, (key, ep, row) in enumerate(zip(todo, eps, rows, strict=True)):
            q = ep.query
            texts = [r.text for r in row]
            log_gen = np.array([r.logprob for r in row])
            log_ref = log_ref_all[j * self.m : (j + 1) * self.m]
            parsed = [parse_reply(t, q.candidates) for t in texts]
            ctr = np.stack(self.clicks.probabilities([(q, p) for p in parsed]), axis=1)  # (n, M)
            self._cands[key] = (texts, parsed, ctr, log_ref, log_gen)

    def run(self, ep: Episode, bids: NDArray[np.float64]) -> Shown:
        from adspace.mechanisms import mosaic

        texts, _parsed, ctr, log_ref, log_gen = self.candidates(ep)
        rewards = np.asarray(bids, dtype=np.float64)[:, None] * ctr
        out = mosaic.run(rewards, log_ref, log_gen, self.tau, rng=ep.seed, offset=True)
        price, _ = _zeros(len(bids))
        return Shown(
            texts[out.index],
            None,
            price,
            np.asarray(out.payments, dtype=np.float64),
            {
                "probs": out.probs.tolist(),
                "candidates_with_ads": int((ctr.sum(axis=0) > 0).sum()),
                "max_reward": float(rewards.max()),
                "log_weight_range": float(np.ptp(log_ref - log_gen)),
            },
        )


class LLMAuctionPolicy:
    """LLM-Auction: the ad-writer model writes one reply with the bids in its prompt; first price per click.

    ``constrained``: decode under the markup constraint (:mod:`adspace.experiments.llm_auction.constrained`,
    needs a :class:`adspace.models.llm.LocalLLM`): only the query's candidates can be written as ads.
    """

    incentive = "none in dominant strategy (first price per click)"
    payment_rule = "a clicked ad pays its bid (first price per click)"

    def __init__(
        self,
        llm,
        *,
        label: str = "llm-auction",
        max_new_tokens: int = 48,
        temperature: float = 0.7,
        top_p: float = 0.8,
        short_prompt: bool = True,
        constrained: bool = False,
        batch_rows: int = BATCH_ROWS,
    ):
        self.llm = llm
        self.name = label
        self.short_prompt = short_prompt
        self.constrained = bool(constrained)
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.batch_rows = batch_rows
        self._replies: dict[tuple[str, int, bytes], Any] = {}

    def prepare(self) -> None:
        pass

    def _sample(self, prompts, n, candidates, seed):
        if self.constrained:
            from adspace.experiments.llm_auction.constrained import sample_constrained

            return sample_constrained(self.llm, prompts, candidates, n, seed=seed, **self.sampling)
        return self.llm.sample(prompts, n, seed=seed, **self.sampling)

    def prefetch(self, requests: Sequence[tuple[Episode, NDArray[np.float64]]]) -> None:
        """One reply per ``(episode, bids)`` in batches (the replicates of a query with the same bids share
        a prompt); :meth:`run` then uses them."""
        todo = {_bids_key(ep, b): (ep, b) for ep, b in requests if _bids_key(ep, b) not in self._replies}
        reqs = [(self._messages(ep, b), ep.seed, ep.query.candidates) for ep, b in todo.values()]
        got = sample_grouped(self._sample, reqs, batch_rows=self.batch_rows) if reqs else []
        for k, (reply,) in zip(todo, got, strict=True):
            self._replies[k] = reply

    def _messages(self, ep: Episode, bids) -> list[dict]:
        q = ep.query
        b = np.asarray(bids, dtype=np.float64).tolist()
        return ad_writer_messages(q.text, q.profile, q.candidates, b, short=self.short_prompt)

    def run(self, ep: Episode, bids: NDArray[np.float64]) -> Shown:
        """The prefetched reply for ``(ep, bids)`` (used once), or one sampled now with the episode's seed."""
        b = np.asarray(bids, dtype=np.float64)
        reply = self._replies.pop(_bids_key(ep, b), None)
        if reply is None:
            ((reply,),) = self._sample([self._messages(ep, b)], 1, [ep.query.candidates], ep.seed)
        return Shown(reply.text, None, gen.to_micros(b), np.zeros(b.size), {})
