"""The LLM-Auction environment: sample ad-integrated replies on the shared LLM backend, simulate clicks, score.

:func:`rollout` is one pass of the generative auction over a batch of queries: build the ad-writer prompt
(query, profile, candidates with bids), draw ``M`` replies per query from an
:class:`adspace.models.llm.LLMBackend`, parse them strictly, and ask a user simulator for clicks.
A rollout's realised revenue (sum of the bids of clicked ads) and reward (revenue − λ·s_resp) come from
:mod:`adspace.mechanisms.llm_auction`; they are IRPO's rewards. Evaluations go through the comparison
harness (:mod:`adspace.experiments.comparison.harness`), the one evaluation path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.format import ParsedReply, parse_reply
from adspace.experiments.llm_auction.prompts import ad_writer_messages
from adspace.experiments.llm_auction.users import Click, UserSimulator, clicked_vector
from adspace.mechanisms import llm_auction as gen

__all__ = ["Rollout", "chat_fn", "draw_bids", "prompts_for", "rollout"]


@dataclass(frozen=True)
class Rollout:
    """One sampled reply to one auction, with its clicks."""

    query: AuctionQuery
    bids: NDArray[np.float64]  # (n_candidates,) in currency units
    messages: list[dict]
    text: str
    parsed: ParsedReply
    clicks: tuple[Click, ...]

    @property
    def clicked(self) -> NDArray[np.bool_]:
        return clicked_vector(self.clicks, self.query)

    @property
    def bid_micros(self) -> NDArray[np.int64]:
        return gen.to_micros(self.bids)

    def revenue(self) -> float:
        """Sum of the bids of the clicked ads (currency units; exact from integer micros)."""
        return gen.revenue_micros(self.bid_micros, self.clicked) / gen.MICROS

    def reward(
        self, *, lam: float = 1.0, ad_cost: float = gen.DEFAULT_AD_COST, error_cost: float = gen.DEFAULT_ERROR_COST
    ) -> float:
        """Realised reward with the simulator's clicks: ``Σ b_i·click_i − λ·s_resp`` (the Oracle reward)."""
        return gen.reply_reward(
            self.bids,
            self.clicked.astype(float),
            self.parsed.shown(),
            self.parsed.n_errors,
            lam=lam,
            ad_cost=ad_cost,
            error_cost=error_cost,
        )


def draw_bids(
    n_queries: int, n_candidates: int, rng: np.random.Generator, low: int = 1, high: int = 100
) -> NDArray[np.float64]:
    """Bids drawn uniformly from ``{low, ..., high}`` (the paper redraws them per query and epoch)."""
    if not 0 < low <= high:
        raise ValueError(f"low/high: need 0 < low <= high, got {low}, {high}")
    return rng.integers(low, high + 1, size=(n_queries, n_candidates)).astype(np.float64)


def prompts_for(queries: Sequence[AuctionQuery], bids: NDArray[np.float64], *, short: bool = False) -> list[list[dict]]:
    """Ad-writer prompts (``short``: the condensed rules) for each query with its bids."""
    return [
        ad_writer_messages(q.text, q.profile, q.candidates, b.tolist(), short=short)
        for q, b in zip(queries, bids, strict=True)
    ]


def rollout(
    backend,
    queries: Sequence[AuctionQuery],
    bids: NDArray[np.float64],
    user: UserSimulator,
    *,
    samples: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 0.7,
    top_p: float = 0.8,
    seed: int | None = None,
    short: bool = False,
) -> list[list[Rollout]]:
    """``out[q][k]``: the k-th of ``samples`` replies to query ``q`` with its clicks."""
    bids = np.asarray(bids, dtype=np.float64)
    if bids.shape[0] != len(queries):
        raise ValueError(f"bids: need one row per query ({len(queries)}), got shape {bids.shape}")
    msgs = prompts_for(queries, bids, short=short)
    replies = backend.sample(
        msgs, samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
    )
    texts = [[r.text for r in row] for row in replies]
    return score_texts(queries, bids, msgs, texts, user)


def score_texts(
    queries: Sequence[AuctionQuery],
    bids: NDArray[np.float64],
    msgs: Sequence[list[dict]],
    texts: Sequence[Sequence[str]],
    user: UserSimulator,
) -> list[list[Rollout]]:
    """Parse given replies and simulate their clicks (one user call for the whole batch)."""
    parsed = [[parse_reply(t, q.candidates) for t in row] for q, row in zip(queries, texts, strict=True)]
    flat = [(q, p) for q, row in zip(queries, parsed, strict=True) for p in row]
    fb = iter(user.feedback(flat))
    out = []
    for q, b, m, row, prow in zip(queries, bids, msgs, texts, parsed, strict=True):
        out.append(
            [
                Rollout(q, np.asarray(b, dtype=np.float64), m, t, p, tuple(next(fb)))
                for t, p in zip(row, prow, strict=True)
            ]
        )
    return out


def chat_fn(backend, *, seed: int | None = None) -> Callable[[list[list[dict]], float, int], list[str]]:
    """A batch chat function for :class:`~adspace.experiments.llm_auction.users.LLMJudgeUser` over an LLM backend.

    Works with both backends of :mod:`adspace.models.llm` (local transformers, OpenAI-compatible HTTP).
    """
    counter = [0]

    def chat(batch: list[list[dict]], temperature: float, max_new_tokens: int) -> list[str]:
        s = None if seed is None else seed + counter[0]
        counter[0] += 1
        out = backend.sample(batch, 1, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, seed=s)
        return [row[0].text for row in out]

    return chat
