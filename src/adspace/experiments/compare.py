"""One interface to run every mechanism on the same queries: query + advertisers in, outcome out.

A :class:`Mechanism` takes an :class:`AuctionInput` (the user's query, the interested advertisers with
their descriptions and bids, a seed) and returns an :class:`AuctionOutcome`: what the user sees (the
reply, and an ad in a separate slot if any), each advertiser's payment, and mechanism-specific metrics.

Adapters here:

* :class:`EmbeddingVCG` -- the embedding-space VCG of Kim 2026 with the ad as a **separate slot**: the
  query and each advertiser's "name: description" are embedded (all-MiniLM-L6-v2), the auction is
  cleared by :func:`adspace.mechanisms.vcg.clear` (the one scoring kernel), the winner pays the Clarke
  pivot. The reply, if a reply model is given, is the plain assistant's answer, untouched by the ad.
* :class:`MosaicMechanism` -- MOSAIC (Soumalias et al., arXiv 2405.05905): M candidate replies from π_ref or the context-aware
  π_con, rewards ``log π_i − log π_ref`` from the advertisers' LLMs, Algorithm 1 picks the reply,
  Rochet payments with the §5.3 offset.

The generative auction of issue 5 implements the same protocol (a ``name`` and ``run(auction)``), so
:func:`compare` runs all mechanisms on the same inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from adspace.models.llm import LLMBackend

__all__ = [
    "AdvertiserSpec",
    "AuctionInput",
    "AuctionOutcome",
    "EmbeddingVCG",
    "Mechanism",
    "MosaicMechanism",
    "compare",
]


@dataclass(frozen=True)
class AdvertiserSpec:
    """An advertiser as every mechanism sees it.

    ``bid`` (value of an impression at the advertiser's center) and ``sigma`` (reach in embedding
    space) are used by the embedding VCG; MOSAIC's advertisers are represented by their LLM, built
    from ``name`` and ``description``.
    """

    name: str
    description: str
    bid: float = 1.0
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must be non-empty")
        if not (np.isfinite(self.bid) and self.bid > 0):
            raise ValueError(f"bid: must be a positive finite number, got {self.bid!r}")
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma: must be a positive finite number, got {self.sigma!r}")


@dataclass(frozen=True)
class AuctionInput:
    """A query and the advertisers competing for it."""

    query: str
    advertisers: tuple[AdvertiserSpec, ...]
    seed: int = 0
    query_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValueError("query: must be a non-empty string")
        if not self.advertisers:
            raise ValueError("advertisers: at least one advertiser")
        names = [a.name for a in self.advertisers]
        if len(set(names)) != len(names):
            raise ValueError(f"advertisers: names must be distinct, got {names}")


@dataclass
class AuctionOutcome:
    """What one mechanism did with one :class:`AuctionInput`.

    Attributes
    ----------
    mechanism : the mechanism's name.
    reply : the text the user sees as the answer (``None`` if the mechanism produces no reply).
    ad_slot : the advertiser shown in a separate ad slot (``None`` if none / ads live in the reply).
    payments : advertiser name -> payment (the mechanism's own units: bid units for VCG, reward
        units -- nats of log-probability -- for MOSAIC).
    metrics : mechanism-specific numbers (rewards, utilities, timings, ...).
    seconds : wall time of ``run``.
    """

    mechanism: str
    query: str
    reply: str | None
    ad_slot: str | None
    payments: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def revenue(self) -> float:
        return float(sum(self.payments.values()))


@runtime_checkable
class Mechanism(Protocol):
    """The common protocol: a ``name`` and ``run(auction) -> AuctionOutcome``."""

    name: str

    def run(self, auction: AuctionInput) -> AuctionOutcome: ...


# --------------------------------------------------------------------------------------------------
# Embedding VCG, ad as a separate slot
# --------------------------------------------------------------------------------------------------


class EmbeddingVCG:
    """The embedding-space VCG with the ad in a separate slot (issue 2).

    Parameters
    ----------
    embed : texts -> (k, d) unit vectors; default: adspace's all-MiniLM-L6-v2 embedder.
    reserve : reserve value in bid units.
    reply_llm : when given, the reply is the plain assistant's answer (one sample), shown beside the ad.
    """

    name = "embedding-vcg"

    def __init__(
        self,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        *,
        reserve: float = 0.0,
        reply_llm: LLMBackend | None = None,
        max_new_tokens: int = 64,
    ):
        if embed is None:
            from adspace.models.embedder import get_embedder

            embed = get_embedder().embed
        self.embed = embed
        self.reserve = float(reserve)
        self.reply_llm = reply_llm
        self.max_new_tokens = max_new_tokens

    def run(self, auction: AuctionInput) -> AuctionOutcome:
        from adspace.mechanisms.vcg import clear

        t0 = time.perf_counter()
        advs = auction.advertisers
        vecs = np.asarray(self.embed([auction.query] + [f"{a.name}: {a.description}" for a in advs]), dtype=np.float64)
        x, centers = vecs[0], vecs[1:]
        res = clear(
            x[None, :],
            centers,
            np.array([a.sigma for a in advs]),
            np.array([a.bid for a in advs]),
            reserve=self.reserve,
        )
        w, ru = int(res.winner[0]), int(res.runner_up[0])
        payments = {a.name: 0.0 for a in advs}
        if w >= 0:
            payments[advs[w].name] = float(res.payment[0])
        reply = None
        if self.reply_llm is not None:
            from adspace.models.llm import messages

            reply = self.reply_llm.sample(
                [messages(auction.query)], 1, max_new_tokens=self.max_new_tokens, seed=auction.seed
            )[0][0].text
        metrics = {
            "winner": advs[w].name if w >= 0 else None,
            "runner_up": advs[ru].name if ru >= 0 else None,
            "winner_score": float(res.score[0]),
            "winner_reported_value": float(res.value[0]),
        }
        return AuctionOutcome(
            self.name,
            auction.query,
            reply,
            advs[w].name if w >= 0 else None,
            payments,
            metrics,
            time.perf_counter() - t0,
        )


# --------------------------------------------------------------------------------------------------
# MOSAIC
# --------------------------------------------------------------------------------------------------


class MosaicMechanism:
    """MOSAIC on a language model: the ad lives inside the reply.

    Parameters
    ----------
    llm : the backend serving π_ref, the advertisers' LLMs and π_con (one model, different prompts).
    m : candidates per auction.
    context_aware : candidates from π_con (True) or π_ref (False, the baseline).
    tau : KL weight τ.
    offset : charge the §5.3 offset.
    """

    def __init__(
        self,
        llm: LLMBackend,
        *,
        m: int = 8,
        context_aware: bool = True,
        tau: float = 1.0,
        offset: bool = True,
        max_new_tokens: int = 32,
        temperature: float = 0.8,
        top_p: float = 0.95,
    ):
        if m < 1:
            raise ValueError(f"m: must be >= 1, got {m}")
        if not tau > 0:
            raise ValueError(f"tau: must be > 0, got {tau}")
        self.llm = llm
        self.m = m
        self.method = "context" if context_aware else "baseline"
        self.name = f"mosaic-{self.method}"
        self.tau = tau
        self.offset = offset
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}

    def run(self, auction: AuctionInput) -> AuctionOutcome:
        from adspace.experiments.mosaic.study import Advertiser, Instance, run_text_auction
        from adspace.mechanisms import mosaic

        t0 = time.perf_counter()
        advs = tuple(Advertiser(a.name, a.description) for a in auction.advertisers)
        inst = Instance(auction.query_id or auction.query, auction.query, advs)
        (auc,) = run_text_auction(
            self.llm, [inst], seed=auction.seed, m=self.m, methods=(self.method,), **self.sampling
        )
        a = auc[self.method]
        t1 = time.perf_counter()
        out = mosaic.run(a.rewards, a.log_ref, a.log_gen, self.tau, rng=auction.seed, offset=self.offset)
        t_mech = time.perf_counter() - t1
        reply = a.texts[out.index]
        payments = {adv.name: float(p) for adv, p in zip(advs, out.payments, strict=True)}
        mentioned = [adv.name for adv in advs if adv.name.lower() in reply.lower()]
        metrics = {
            "expected_reward": dict(zip([x.name for x in advs], (a.rewards @ out.probs).tolist(), strict=True)),
            "expected_utility": dict(zip([x.name for x in advs], out.expected_utilities.tolist(), strict=True)),
            "realized_reward": dict(zip([x.name for x in advs], a.rewards[:, out.index].tolist(), strict=True)),
            "logprob_pi_r": float(a.log_ref[out.index] + a.rewards[:, out.index].sum() / self.tau),
            "mentioned": mentioned,
            "timing": dict(a.timing, mechanism=t_mech),
        }
        return AuctionOutcome(self.name, auction.query, reply, None, payments, metrics, time.perf_counter() - t0)


def compare(mechanisms: Sequence[Mechanism], auctions: Sequence[AuctionInput]) -> list[AuctionOutcome]:
    """Run every mechanism on every auction (same inputs, same seeds); outcomes in (auction, mechanism) order."""
    for mech in mechanisms:
        if not isinstance(mech, Mechanism):
            raise ValueError(f"mechanisms: {mech!r} does not implement name + run(auction)")
    return [mech.run(a) for a in auctions for mech in mechanisms]
