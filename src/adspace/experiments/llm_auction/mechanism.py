"""LLM-Auction behind the common mechanism interface of :mod:`adspace.experiments.compare`.

:class:`GenerativeAuction` has a ``name`` and ``run(auction) -> AuctionOutcome`` like the embedding VCG
and MOSAIC adapters, so :func:`adspace.experiments.compare.compare` runs all three on the same inputs.

Each advertiser of the :class:`~adspace.experiments.compare.AuctionInput` becomes a candidate ad
``Ad-NNNN`` (its position), titled with its name and described by its description; its ``bid`` is the
bid per click. The ad-writer LLM (pre-trained or IRPO-trained, any :class:`adspace.models.llm.LLMBackend`)
writes one reply; the strict parser finds the inserted ads; a user simulator clicks; a clicked ad pays its
bid (first price per click, :func:`adspace.mechanisms.llm_auction.first_price_payments`, in integer micros
and reported in currency units).
"""

from __future__ import annotations

import time

import numpy as np

from adspace.experiments.llm_auction.data import AuctionQuery
from adspace.experiments.llm_auction.environment import rollout
from adspace.experiments.llm_auction.format import Ad, check_candidates
from adspace.experiments.llm_auction.users import ClickModel, UserSimulator
from adspace.mechanisms import llm_auction as gen

__all__ = ["GenerativeAuction"]


class GenerativeAuction:
    """The generative auction as a :class:`adspace.experiments.compare.Mechanism`.

    Parameters
    ----------
    llm : the ad-writing backend.
    user : the simulated user (default: the deterministic :class:`ClickModel`).
    profile : the user profile shown to the ad-writer and the user (the common input carries none).
    short_prompt, max_new_tokens, temperature, top_p, lam : as in :class:`~.training.IRPOConfig`.
    """

    name = "llm-auction"

    def __init__(
        self,
        llm,
        *,
        user: UserSimulator | None = None,
        profile: str = "No profile given.",
        short_prompt: bool = True,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.8,
        lam: float = 1.0,
    ):
        self.llm = llm
        self.user = user if user is not None else ClickModel()
        self.profile = profile
        self.short_prompt = short_prompt
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.lam = float(lam)

    def to_query(self, auction) -> AuctionQuery:
        ads = check_candidates(
            Ad(f"Ad-{k:04d}", a.name, a.description, a.name) for k, a in enumerate(auction.advertisers)
        )
        return AuctionQuery(auction.query_id or "Q", auction.query, "", "", self.profile, ads)

    def run(self, auction):
        from adspace.experiments.compare import AuctionOutcome

        t0 = time.perf_counter()
        q = self.to_query(auction)
        bids = np.array([[a.bid for a in auction.advertisers]], dtype=np.float64)
        (row,) = rollout(
            self.llm, [q], bids, self.user, samples=1, seed=auction.seed, short=self.short_prompt, **self.sampling
        )
        r = row[0]
        pay = gen.first_price_payments(r.bid_micros, r.clicked)
        payments = {a.name: int(p) / gen.MICROS for a, p in zip(auction.advertisers, pay, strict=True)}
        metrics = {
            "inserted": [q.candidates[i].title for i in r.parsed.indices],
            "clicked": [a.name for a, c in zip(auction.advertisers, r.clicked, strict=True) if c],
            "format_errors": [e.kind for e in r.parsed.errors],
            "s_resp": r.parsed.s_resp(),
            "reward": r.reward(lam=self.lam),
            "payments_micros": {a.name: int(p) for a, p in zip(auction.advertisers, pay, strict=True)},
        }
        return AuctionOutcome(self.name, auction.query, r.text, None, payments, metrics, time.perf_counter() - t0)
