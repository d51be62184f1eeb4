"""Auctions: the exchange's write path, in one straight line.

A request (router, OpenRTB adapter or dashboard) turns its query into a point -- an embedding, a
keyword's point, or a conversation embedded by the model -- and hands it to :meth:`AuctionService.submit`.
One pipeline thread then repeatedly takes every auction queued so far (a micro-batch) and:

1. clears them together: :meth:`LiveMarket.run_batch <adspace.exchange.domain.live_market.LiveMarket.run_batch>`
   builds each auction's eligibility mask (vectorised over campaigns, the campaign-level part once per
   batch) and makes one :meth:`Market.clear <adspace.mechanisms.vcg.Market.clear>` call per distinct
   reserve;
2. hands the batch's writes to the group-commit writer as one transaction: per auction, the winner's
   budget hold (a compiled conditional ``UPDATE ... RETURNING`` of its money, re-checked by the
   database under its row lock) and the auction's row;
3. after the commit, applies the committed money to the in-memory market and answers every waiter.

A hold that fails its condition (a concurrent auction, here or in another process, took the budget
first) sends that auction back to the queue to be cleared again on the refreshed market; after two such
refusals its winner is left out, after four the request gets 409.

Batching adds no wait when the exchange is idle: the pipeline takes what is queued the moment it is
free. Under load (one of the last few batches had more than one caller) it waits for auctions
already on their way, so batches fill: until as many are queued as the largest of those batches had
callers -- its own auctions plus those still in flight when it was taken, whose callers come back
once answered (callers that came back together are taken the moment the last of them arrives, and
callers split across two batches merge again) -- and at most ``batch_window_us`` (default 200 µs),
or on a market whose clearing pass costs more than that (100,000 campaigns: ~10 ms, about the same for
one auction as for eight) up to a quarter of a pass (at most 5 ms), so concurrent callers share a pass
instead of queueing for the next. Nothing is acknowledged before its transaction has committed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import numpy as np
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.engine import Connection

from adspace.exchange.core.apikeys import new_auction_id
from adspace.exchange.core.config import Settings
from adspace.exchange.domain.live_market import CampaignState, LiveMarket, Outcome, Query
from adspace.exchange.domain.visibility import explain_for
from adspace.exchange.http import schemas
from adspace.exchange.services.common import Conflict, NotFound, Principal, as_utc, utcnow
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.store import Store
from adspace.exchange.store.rawsql import RawStatement, cursor_of
from adspace.exchange.store.tables import Auction, Campaign
from adspace.exchange.store.writer import AsyncWaiter, resolve_all

__all__ = ["AuctionResult", "AuctionService", "MONEY_COLUMNS", "money_of"]

log = logging.getLogger("adspace.exchange")

#: Most auctions cleared and committed together.
MAX_BATCH = 128
#: Under load the pipeline waits until as many auctions are queued as the largest of this many recent
#: batches had callers (its auctions plus those in flight when it was taken), or the window below has passed.
RECENT_BATCHES = 8
#: Under load, the pipeline waits for arrivals up to ``batch_window_us`` or this share of a batch's
#: clearing time, whichever is longer (at most MAX_WINDOW_S).
WINDOW_SHARE = 0.25
MAX_WINDOW_S = 0.005
#: Batches cleared but not yet committed: the pipeline clears while the writer commits, and batches
#: waiting for the writer go into its next transaction together.
IN_FLIGHT = 4

_c = Campaign.__table__.c

#: The money columns of a campaign, in the order :func:`money_of` reads them.
MONEY_COLUMNS = (_c.spent_micros, _c.held_micros, _c.daily_day, _c.daily_used_micros, _c.money_version)

# Compiled once: the hold is a conditional UPDATE (the budget and daily cap re-checked by the database,
# under its row lock), returning the campaign's committed money.
_USED_TODAY = case((_c.daily_day == bindparam("p_day"), _c.daily_used_micros), else_=0)
_HOLD = (
    update(Campaign.__table__)
    .where(
        _c.id == bindparam("p_campaign"),
        _c.deleted_at.is_(None),
        _c.status == "active",
        _c.budget_micros - _c.spent_micros - _c.held_micros >= bindparam("p_bid"),
        _c.daily_budget_micros.is_(None) | (_USED_TODAY + bindparam("p_bid") <= _c.daily_budget_micros),
    )
    .values(
        held_micros=_c.held_micros + bindparam("p_price"),
        daily_used_micros=_USED_TODAY + bindparam("p_price"),
        daily_day=bindparam("p_day"),
        money_version=_c.money_version + 1,
    )
    .returning(*MONEY_COLUMNS)
)
_INSERT_AUCTION = insert(Auction.__table__)
# The same two statements on the driver's cursor, inside the writer's transaction (store/rawsql.py).
_RAW_HOLD = RawStatement(_HOLD)
_AUCTION_COLUMNS = tuple(c.name for c in Auction.__table__.c)
_RAW_INSERT_AUCTION = RawStatement(_INSERT_AUCTION, column_keys=_AUCTION_COLUMNS)
_MONEY = select(*MONEY_COLUMNS).where(_c.id == bindparam("p_campaign"))

_REASON_FILLED = (
    "highest score log(bid) - |x - c|^2 / sigma^2 among the eligible campaigns; the price is the "
    "runner-up's reported value (or the reserve, if higher), rounded down to whole micros"
)


def _held(money) -> tuple[bool, Any]:
    """(whether the hold's conditional UPDATE matched, the campaign's money it returned)."""
    return money is not None, money


def money_of(row) -> dict[str, Any]:
    """Keyword arguments of :meth:`LiveMarket.set_money` from a row of :data:`MONEY_COLUMNS`."""
    return {"spent": row[0], "held": row[1], "daily_day": row[2], "daily_used": row[3], "version": row[4]}


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
    """One queued auction."""

    __slots__ = (
        "who",
        "x",
        "keywords",
        "reserve",
        "tau",
        "source",
        "token",
        "exclude",
        "attempt",
        "refresh",
        "future",
        "t0",
    )

    def __init__(self, who, x, keywords, reserve, tau, source, token, waiter=None):
        self.who, self.x, self.keywords, self.reserve, self.tau = who, x, keywords, reserve, tau
        self.source, self.token = source, token
        self.exclude: set[str] = set()
        self.attempt = 0
        self.refresh: str | None = None
        #: a concurrent Future, or an AsyncWaiter of the caller's event loop (answered in bulk per batch)
        self.future: Future[AuctionResult] | AsyncWaiter = Future() if waiter is None else waiter
        self.t0 = time.perf_counter()


class AuctionService:
    """Clears, holds and records auctions in micro-batches; reads a publisher's own auctions back."""

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
        self.window_s = settings.batch_window_us / 1e6
        #: Seconds: embedding (callers' threads), clearing (per batch), from handing a batch to the writer
        #: to its commit (per batch), and the sum of every auction's time from submit to answer.
        self.timings = {"embed": 0.0, "clear": 0.0, "db": 0.0, "latency": 0.0, "auctions": 0}
        self._timing_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        #: callers of the last batches: each batch's auctions plus those in flight when it was taken
        self._recent: deque[int] = deque(maxlen=RECENT_BATCHES)
        self._busy = 0  # auctions taken and not yet answered (being cleared, committed or re-queued)
        self._enough = MAX_BATCH  # queued auctions that wake a pipeline waiting for arrivals
        self._clear_s = 0.0
        self._idle = False  # the pipeline waits for work (an arrival must wake it)
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)

    # -- the pipeline --------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._loop, name="adspace-auctions", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=10)

    def point(self, embedding, text: str | None, keywords: list[str] | None) -> np.ndarray | None:
        """The query point: the embedding, or the conversation embedded (``None`` when a keyword of a
        keyword campaign decides the point, or no query was given)."""
        if keywords and any(self.market.has_keyword(k) for k in keywords):
            return None
        if embedding is not None:
            return np.asarray(embedding, dtype=np.float64)
        if text is not None:
            t0 = time.perf_counter()
            x = self.embed([text])[0]
            self._time("embed", time.perf_counter() - t0)
            return x
        return None

    def submit(
        self,
        who: Principal,
        x: np.ndarray | None,
        *,
        keywords: list[str] | None,
        reserve_micros: int | None,
        tau: float | None,
        source: str = "rest",
        notice_token: str | None = None,
        waiter: AsyncWaiter | None = None,
    ) -> Future[AuctionResult] | AsyncWaiter:
        """Queue an auction at point ``x`` (see :meth:`point`); the future (or ``waiter``, for a caller
        on an event loop) resolves once it has committed."""
        reserve = self.settings.default_reserve_micros if reserve_micros is None else reserve_micros
        job = _Job(who, x, keywords, reserve, tau, source, notice_token, waiter)
        if self._thread is None:
            self.start()
        with self._cond:
            self._queue.append(job)
            if self._idle or len(self._queue) >= self._enough:
                self._cond.notify()
        return job.future

    def run(
        self,
        who: Principal,
        *,
        embedding: list[float] | np.ndarray | None,
        text: str | None,
        keywords: list[str] | None,
        reserve_micros: int | None,
        tau: float | None,
        source: str = "rest",
        notice_token: str | None = None,
    ) -> AuctionResult:
        """Clear one auction, hold the winner's price against its budget, and record it (committed)."""
        x = self.point(embedding, text, keywords)
        fut = self.submit(
            who, x, keywords=keywords, reserve_micros=reserve_micros, tau=tau, source=source, notice_token=notice_token
        )
        return fut.result()

    async def run_async(
        self,
        who: Principal,
        *,
        embedding: list[float] | np.ndarray | None,
        text: str | None,
        keywords: list[str] | None,
        reserve_micros: int | None,
        tau: float | None,
    ) -> AuctionResult:
        """:meth:`run` for an event loop: never blocks it (a text not embedded before is embedded in a
        worker thread; the auction waits for the pipeline without holding a thread)."""
        x = None
        if text is not None and embedding is None and not (keywords and any(map(self.market.has_keyword, keywords))):
            x = self.cached_embedding(text)
            if x is None:
                x = await anyio.to_thread.run_sync(self.point, None, text, keywords)
        else:
            x = self.point(embedding, None, keywords)
        w = AsyncWaiter()
        self.submit(who, x, keywords=keywords, reserve_micros=reserve_micros, tau=tau, waiter=w)
        return await w.future

    def _time(self, key: str, seconds: float) -> None:
        with self._timing_lock:
            self.timings[key] += seconds

    def _loop(self) -> None:
        while True:
            self._slots.acquire()  # at most IN_FLIGHT batches cleared and not yet committed
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                if not self._queue:
                    self._slots.release()
                    return
                enough = min(MAX_BATCH, max(self._recent, default=1))
                if enough > 1 and len(self._queue) < enough and self.window_s > 0:
                    # Under load: let auctions on their way join, until as many are queued as the
                    # recent batches had callers (the submit that makes them enough wakes this wait:
                    # one wake-up per batch, not one per auction) or the window has passed. On a market so
                    # large that a clearing pass costs more than the window (a pass over every
                    # campaign: about the same for 1 auction as for 8), wait up to a quarter of a pass.
                    self._enough = enough
                    self._cond.wait(min(MAX_WINDOW_S, max(self.window_s, WINDOW_SHARE * self._clear_s)))
                    self._enough = MAX_BATCH
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                # The callers of the auctions still in flight come back once answered: counting them
                # lets two halves of the same callers, split across batches, merge again.
                self._recent.append(len(batch) + self._busy)
                self._busy += len(batch)
            try:
                self._clear_and_submit(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiter of the batch gets it
                self._slots.release()
                with self._cond:
                    self._busy -= len(batch)
                log.exception("auction batch failed")
                resolve_all([(job.future, False, exc) for job in batch if not job.future.done()])

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
                Query(j.x, j.keywords, j.reserve, j.tau, frozenset(j.exclude), self.holds.capped(j.who.account_id, now))
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
            held: list[tuple[bool, Any]] = [(True, None)] * len(holds)
            order = sorted((i for i, h in enumerate(holds) if h is not None), key=lambda i: holds[i]["p_campaign"])
            for i, money in zip(order, _RAW_HOLD.first_each(conn, cur, [holds[i] for i in order]), strict=True):
                held[i] = _held(money)
            keep = [row for row, (ok, _) in zip(rows, held, strict=True) if ok]
            _RAW_INSERT_AUCTION.executemany(conn, cur, keep)
            return held

        t1 = time.perf_counter()
        self._time("clear", t1 - t0)
        self._clear_s += 0.2 * ((t1 - t0) - self._clear_s)  # moving average of a batch's clearing time
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
                        answers.append(
                            (
                                job.future,
                                False,
                                Conflict("auction: could not hold a winner's budget after several tries; retry"),
                            )
                        )
                        latency += t2 - job.t0
                    else:
                        retry.append(job)
                    continue
                if money is not None:
                    self.market.set_money(out.campaign.id, **money_of(money))
                    self.holds.add(
                        result.auction_id, job.who.account_id, out.campaign, out.price_micros, result.expires_at
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
            # In one step, so no batch sees the refused auctions both queued and in flight.
            with self._cond:
                self._busy -= len(batch)  # answered, or back in the queue
                if retry:
                    self._queue[:0] = retry
                    self._cond.notify()
            self._slots.release()

    def _record(self, job: _Job, out: Outcome, now: datetime, day: str, expires: datetime):
        """The auction's budget hold (``None`` for no fill), its row, and the result it answers with."""
        why = explain(out)
        camp = out.campaign if out.filled else None
        row = {
            "id": new_auction_id(),
            "publisher_id": job.who.account_id,
            "source": job.source,
            "created_at": now,
            "expires_at": expires,
            "day": day,
            "filled": out.filled,
            "campaign_id": camp.id if camp else None,
            "advertiser_id": camp.advertiser_id if camp else None,
            "price_micros": out.price_micros,
            "status": "held" if out.filled else "no_fill",
            "keyword": out.keyword,
            "notice_token": job.token,
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
            explain=explain_for(job.who, why),  # the full one is stored; the caller sees its share (visibility.py)
            outcome=out,
        )
        return hold, row, result

    def refresh_money(self, campaign_id: str) -> None:
        """Re-read a campaign's committed money into the market (after a refused hold)."""
        with self.store.read_engine.connect() as conn:
            row = conn.execute(_MONEY, {"p_campaign": campaign_id}).first()
        if row is not None:
            self.market.set_money(campaign_id, **money_of(row))

    # -- reading -------------------------------------------------------------------------------------
    def get(self, who: Principal, auction_id: str) -> schemas.AuctionOut:
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            return auction_out(who, a)

    def list(self, who: Principal, *, limit: int, offset: int) -> list[schemas.AuctionOut]:
        with self.store.read() as s:
            rows = s.scalars(
                select(Auction)
                .where(Auction.publisher_id == who.account_id)
                .order_by(Auction.created_at.desc(), Auction.id)
                .limit(limit)
                .offset(offset)
            )
            return [auction_out(who, a) for a in rows]


def auction_out(who: Principal, a: Auction) -> schemas.AuctionOut:
    return schemas.AuctionOut(
        auction_id=a.id,
        created_at=as_utc(a.created_at),
        expires_at=as_utc(a.expires_at),
        source=a.source,
        filled=a.filled,
        status=a.status,
        campaign_id=a.campaign_id,
        price_micros=a.price_micros,
        billed_at=as_utc(a.billed_at),
        clicked_at=as_utc(a.clicked_at),
        explain=explain_for(who, json.loads(a.explain), winner_advertiser_id=a.advertiser_id),
    )
