"""Auctions: the exchange's write path, in one straight line.

A caller (the HTTP layer, the OpenRTB adapter, the dashboard, the demo) describes its auction as an
:class:`AuctionAsk` and calls :meth:`AuctionService.run` (a thread) or :meth:`AuctionService.run_async`
(an event loop). The service turns the ask into a point -- the keyword's point when a keyword decides
it (:func:`~adspace.exchange.domain.market_rows.deciding_keyword`), else the embedding, else the
conversation embedded -- and queues it on the micro-batch pipeline (:mod:`adspace.exchange.services.pipeline`), which hands each batch back to be:

1. cleared together: :meth:`LiveMarket.run_batch <adspace.exchange.domain.live_market.LiveMarket.run_batch>`
   builds each auction's eligibility mask (vectorised over campaigns, the campaign-level part once per
   batch) and makes one :meth:`Market.clear <adspace.mechanisms.vcg.Market.clear>` call per distinct
   reserve;
2. recorded: the batch's writes go to the group-commit writer as one transaction: per auction, the
   winner's budget hold (:data:`~adspace.exchange.store.money_sql.HOLD`, a conditional ``UPDATE ...
   RETURNING`` of its money, re-checked by the database under its row lock) and the auction's row;
3. answered after the commit: the committed money goes into the in-memory market and every waiter
   gets its :class:`AuctionResult`.

A hold that fails its condition (a concurrent auction, here or in another process, took the budget
first) sends that auction back to the queue to be cleared again on the refreshed market; after two such
refusals its winner is left out, after four the request gets 409. Nothing is acknowledged before its
transaction has committed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import numpy as np
from sqlalchemy.engine import Connection

from adspace.exchange.core import schemas
from adspace.exchange.core.apikeys import new_auction_id
from adspace.exchange.core.common import Conflict, Principal, utcnow
from adspace.exchange.core.config import Settings
from adspace.exchange.domain.live_market import CampaignState, LiveMarket, Outcome, Query
from adspace.exchange.domain.market_rows import deciding_keyword
from adspace.exchange.domain.visibility import explain_for
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.services.pipeline import Pipeline
from adspace.exchange.store import Store
from adspace.exchange.store.money_sql import RAW_HOLD, RAW_INSERT_AUCTION, READ_MONEY, money_of
from adspace.exchange.store.rawsql import cursor_of
from adspace.exchange.store.writer import AsyncWaiter, resolve_all

__all__ = ["AuctionAsk", "AuctionResult", "AuctionService", "explain"]

_REASON_FILLED = (
    "highest score log(bid) - |x - c|^2 / sigma^2 among the eligible campaigns; the price is the "
    "runner-up's reported value (or the reserve, if higher), rounded down to whole micros"
)


@dataclass(frozen=True, slots=True)
class AuctionAsk:
    """One auction, as a caller asks for it.

    The query is a keyword's point, an ``embedding`` or a conversation's ``text`` (see
    :meth:`AuctionService.run`); ``reserve_micros`` ``None`` is the exchange's default reserve;
    ``tau`` is the relevance gate; ``source`` and ``notice_token`` are recorded with the auction.
    """

    who: Principal
    embedding: Sequence[float] | np.ndarray | None = None
    text: str | None = None
    keywords: list[str] | None = None
    reserve_micros: int | None = None
    tau: float | None = None
    source: str = "rest"
    notice_token: str | None = None


@dataclass(frozen=True)
class AuctionResult:
    """A committed auction: what the router needs to answer (and the outcome, for the dashboard)."""

    auction_id: str
    filled: bool
    campaign: CampaignState | None
    price_micros: int
    expires_at: datetime | None
    explain: dict[str, Any]
    outcome: Outcome

    def response(self) -> schemas.AuctionResponse:
        """The body of ``POST /v1/auctions``."""
        c = self.campaign
        ad = None
        if self.filled and c is not None:
            ad = schemas.Ad.model_construct(campaign_id=c.id, title=c.title, body=c.body, url=c.url)
        # Built from the committed result (validated on the way in): no second validation pass.
        return schemas.AuctionResponse.model_construct(
            auction_id=self.auction_id,
            filled=self.filled,
            ad=ad,
            price_micros=self.price_micros,
            expires_at=self.expires_at,
            explain=self.explain,
        )


def explain(out: Outcome) -> dict[str, Any]:
    """Why the auction ended as it did: stored in full with the auction; each reader sees what
    :func:`~adspace.exchange.domain.visibility.explain_for` allows."""
    ex: dict[str, Any] = {
        "mechanism": "embedding-space VCG (Clarke pivot)",
        "point": out.point,
        "keyword": out.keyword,
        "campaigns_total": out.total,
        "considered": out.considered,
        "excluded": out.excluded,
    }
    if out.filled:
        ex["winner"] = {"campaign_id": out.campaign.id, "score": out.score, "value_micros": out.value_micros}
        ex["runner_up"] = None if out.runner_up_score is None else {"score": out.runner_up_score}
        ex["reason"] = _REASON_FILLED
    else:
        ex["winner"] = None
        ex["runner_up"] = None
        if out.below_reserve:
            ex["reason"] = "below_reserve: no eligible campaign's reported value reaches the reserve"
        else:
            ex["reason"] = "no eligible campaign (see excluded)"
    return ex


class _Job:
    """One queued auction: the ask, its point and reserve, and its progress through the pipeline."""

    __slots__ = ("ask", "x", "reserve", "exclude", "attempt", "refresh", "future", "t0")

    def __init__(self, ask: AuctionAsk, x: np.ndarray | None, reserve: int, waiter: AsyncWaiter | None = None):
        self.ask, self.x, self.reserve = ask, x, reserve
        self.exclude: set[str] = set()
        self.attempt = 0
        self.refresh: str | None = None
        #: a concurrent Future, or an AsyncWaiter of the caller's event loop (answered in bulk per batch)
        self.future: Future[AuctionResult] | AsyncWaiter = Future() if waiter is None else waiter
        self.t0 = time.perf_counter()


class AuctionService:
    """Clears, holds and records auctions in micro-batches (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        market: LiveMarket,
        settings: Settings,
        embed,
        holds: PublisherHolds,
        cached_embedding=None,
    ):
        self.store = store
        self.market = market
        self.holds = holds
        self.settings = settings
        self.embed = embed
        self.cached_embedding = cached_embedding or (lambda text: None)
        #: Seconds: embedding (callers' threads), clearing (per batch), from handing a batch to the writer
        #: to its commit (per batch), and the sum of every auction's time from submit to answer.
        self.timings = {"embed": 0.0, "clear": 0.0, "db": 0.0, "latency": 0.0, "auctions": 0}
        self._timing_lock = threading.Lock()
        self.pipeline = Pipeline(self._clear_and_submit, settings.batch_window_us / 1e6)

    def start(self) -> None:
        self.pipeline.start()

    def stop(self) -> None:
        self.pipeline.stop()

    # -- the one way in ------------------------------------------------------------------------------
    def run(self, ask: AuctionAsk) -> AuctionResult:
        """Clear one auction, hold the winner's price against its budget, and record it (committed).

        Blocks the calling thread (a conversation's text is embedded on it) until the auction's batch
        has committed."""
        x = self._point(ask)
        if isinstance(x, str):
            x = self._embed(x)
        return self._queue(ask, x).result()

    async def run_async(self, ask: AuctionAsk) -> AuctionResult:
        """:meth:`run` for an event loop: never blocks it (a text not embedded before is embedded in a
        worker thread; the auction waits for the pipeline without holding a thread)."""
        x = self._point(ask)
        if isinstance(x, str):
            text, x = x, self.cached_embedding(x)
            if x is None:
                x = await anyio.to_thread.run_sync(self._embed, text)
        w = AsyncWaiter()
        self._queue(ask, x, w)
        return await w.future

    def _point(self, ask: AuctionAsk) -> np.ndarray | str | None:
        """The auction's point: ``None`` when a keyword decides it (the market puts the auction at that
        keyword's point) or no query was given; else the embedding; else the text, still to embed."""
        if deciding_keyword(ask.keywords, self.market.has_keyword) is not None:
            return None
        if ask.embedding is not None:
            return np.asarray(ask.embedding, dtype=np.float64)
        return ask.text

    def _embed(self, text: str) -> np.ndarray:
        t0 = time.perf_counter()
        x = self.embed([text])[0]
        self._time("embed", time.perf_counter() - t0)
        return x

    def _job(self, ask: AuctionAsk, x: np.ndarray | None, waiter: AsyncWaiter | None = None) -> _Job:
        reserve = self.settings.default_reserve_micros if ask.reserve_micros is None else ask.reserve_micros
        return _Job(ask, x, reserve, waiter)

    def _queue(self, ask: AuctionAsk, x: np.ndarray | None, waiter: AsyncWaiter | None = None):
        """Queue an auction at point ``x``; its future (or ``waiter``) resolves once it has committed."""
        job = self._job(ask, x, waiter)
        self.pipeline.put(job)
        return job.future

    def _time(self, key: str, seconds: float) -> None:
        with self._timing_lock:
            self.timings[key] += seconds

    def timings_snapshot(self) -> dict[str, float]:
        """A consistent copy of the counters: auctions served and seconds embedding, clearing, in the
        database and end to end."""
        with self._timing_lock:
            return dict(self.timings)

    # -- one batch: clear, hold and record, answer ---------------------------------------------------
    def _clear_and_submit(self, batch: list[_Job]) -> None:
        """Clear one batch and hand its writes to the writer; :meth:`_finish` answers after the commit.

        While the writer commits this batch (an ``fsync`` on SQLite), the pipeline clears the next one.
        """
        for job in batch:
            if job.refresh is not None:  # its winner's hold was refused: re-read that budget first
                self.refresh_money(job.refresh)
                job.refresh = None
        t0 = time.perf_counter()
        now = utcnow()
        outs = self.market.run_batch(
            [
                Query(
                    j.x,
                    j.ask.keywords,
                    j.reserve,
                    j.ask.tau,
                    frozenset(j.exclude),
                    self.holds.capped(j.ask.who.account_id, now),
                )
                for j in batch
            ],
            now,
        )
        day = now.strftime("%Y-%m-%d")
        expires = now + timedelta(seconds=self.settings.hold_seconds)
        records = [self._record(j, out, now, day, expires) for j, out in zip(batch, outs, strict=True)]
        holds = [hold for hold, _, _ in records]
        rows = [row for _, row, _ in records]

        def op(conn: Connection):
            # Each hold is its own conditional UPDATE (re-checked by the database); the rows of the
            # auctions whose hold stood (or that need none) are inserted by one executemany.
            cur = cursor_of(conn)
            # Holds in campaign-id order: two processes' transactions lock campaign rows in one order.
            # Per auction: (whether the hold's condition matched, the campaign's money it returned).
            held: list[tuple[bool, Any]] = [(True, None)] * len(holds)
            order = sorted((i for i, h in enumerate(holds) if h is not None), key=lambda i: holds[i]["p_campaign"])
            for i, money in zip(order, RAW_HOLD.first_each(conn, cur, [holds[i] for i in order]), strict=True):
                held[i] = (money is not None, money)
            keep = [row for row, (ok, _) in zip(rows, held, strict=True) if ok]
            RAW_INSERT_AUCTION.executemany(conn, cur, keep)
            return held

        t1 = time.perf_counter()
        self._time("clear", t1 - t0)
        self.pipeline.cleared(t1 - t0)
        fut = self.store.writer.submit_future(op)
        fut.add_done_callback(lambda f: self._finish(batch, outs, records, t1, f))

    def _finish(self, batch: list[_Job], outs: list[Outcome], records, t1: float, fut: Future) -> None:
        """After the batch's transaction: apply the committed money, answer each waiter, re-queue refusals."""
        retry: list[_Job] = []
        try:
            try:
                results = fut.result()
            except BaseException as exc:  # noqa: BLE001 - nothing of the batch committed; every waiter hears why
                results = [exc] * len(batch)
            t2 = time.perf_counter()
            answers: list = []  # (waiter, ok, value), answered together below
            done = 0
            latency = 0.0
            for job, out, (_, _, result), res in zip(batch, outs, records, results, strict=True):
                if isinstance(res, BaseException):
                    answers.append((job.future, False, res))
                    latency += t2 - job.t0
                    continue
                held, money = res
                if not held:
                    # A concurrent auction took the winner's budget first: our copy was stale. Clear again.
                    job.attempt += 1
                    job.refresh = out.campaign.id
                    if job.attempt >= 2:
                        job.exclude.add(out.campaign.id)
                    if job.attempt >= 4:
                        refused = Conflict("auction: could not hold a winner's budget after several tries; retry")
                        answers.append((job.future, False, refused))
                        latency += t2 - job.t0
                    else:
                        retry.append(job)
                    continue
                if money is not None:
                    self.market.set_money(out.campaign.id, **money_of(money))
                    self.holds.add(
                        result.auction_id, job.ask.who.account_id, out.campaign, out.price_micros, result.expires_at
                    )
                done += 1
                latency += t2 - job.t0
                answers.append((job.future, True, result))
            resolve_all(answers)
            with self._timing_lock:
                tm = self.timings
                tm["db"] += t2 - t1
                tm["auctions"] += done
                tm["latency"] += latency
        finally:
            self.pipeline.done(batch, retry)  # answered, or back in the queue

    def _record(self, job: _Job, out: Outcome, now: datetime, day: str, expires: datetime):
        """The auction's budget hold (``None`` for no fill), its row, and the result it answers with."""
        ask = job.ask
        why = explain(out)
        camp = out.campaign if out.filled else None
        row = {
            "id": new_auction_id(),
            "publisher_id": ask.who.account_id,
            "source": ask.source,
            "created_at": now,
            "expires_at": expires,
            "day": day,
            "filled": out.filled,
            "campaign_id": camp.id if camp else None,
            "advertiser_id": camp.advertiser_id if camp else None,
            "price_micros": out.price_micros,
            "status": "held" if out.filled else "no_fill",
            "keyword": out.keyword,
            "notice_token": ask.notice_token,
            "explain": json.dumps(why),
            "billed_at": None,
            "clicked_at": None,
        }
        hold = None
        if camp is not None:
            hold = {"p_campaign": camp.id, "p_bid": camp.bid_micros, "p_price": out.price_micros, "p_day": day}
        result = AuctionResult(
            auction_id=row["id"],
            filled=out.filled,
            campaign=camp,
            price_micros=out.price_micros,
            expires_at=expires if out.filled else None,
            explain=explain_for(ask.who, why),  # the full one is stored; the caller sees its share (visibility.py)
            outcome=out,
        )
        return hold, row, result

    def refresh_money(self, campaign_id: str) -> None:
        """Re-read a campaign's committed money into the market (after a refused hold)."""
        with self.store.read_engine.connect() as conn:
            row = conn.execute(READ_MONEY, {"p_campaign": campaign_id}).first()
        if row is not None:
            self.market.set_money(campaign_id, **money_of(row))
