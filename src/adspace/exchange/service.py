"""The service layer: every use case of the exchange, each owning its database transaction.

Routers parse and authenticate, then call one method here. Money moves only inside transactions
whose first write is a *conditional* UPDATE (``... WHERE status = 'held'``, ``... WHERE remaining >=
bid``), so two requests racing for the same auction or budget cannot both succeed, on SQLite
(``BEGIN IMMEDIATE``) as on PostgreSQL (row locks, READ COMMITTED re-check). The ledger's unique
``(auction_id, kind)`` is a second line of defence against a double charge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adspace.exchange import schemas
from adspace.exchange.config import Settings
from adspace.exchange.db import make_engine, make_sessionmaker, run_migrations
from adspace.exchange.market import CampaignState, LiveMarket, Outcome
from adspace.exchange.models import (
    Account,
    ApiKey,
    Auction,
    Campaign,
    CampaignKeyword,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
)
from adspace.exchange.security import hash_key, new_auction_id, new_id, new_key
from adspace.models.embedder import DIM, MODEL_NAME

log = logging.getLogger("adspace.exchange")

EXCHANGE_OWNER = "exchange"


class ServiceError(Exception):
    status = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Invalid(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Gone(ServiceError):
    status = 410


class Unavailable(ServiceError):
    status = 503


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    account_id: str
    kind: str  # admin | advertiser | publisher
    name: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _vec_bytes(v) -> bytes:
    return np.asarray(v, dtype="<f8").tobytes()


def _vec(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f8").astype(np.float64)


def conversation_text(messages: list[dict[str, str]]) -> str:
    """The text embedded for a conversation: :func:`adspace.market.conversation_text` (the project's one
    definition: the last user turns, most recent first). Raises :class:`ServiceError` naming
    ``messages`` when there is no user turn to auction."""
    from adspace.market import conversation_text as _text

    try:
        return _text(messages)[-2000:]
    except ValueError as exc:
        raise Invalid(f"messages: {exc}".replace("messages: messages", "messages")) from None


class Exchange:
    """The exchange's state and use cases (one per process)."""

    def __init__(self, settings: Settings, *, embedder=None):
        self.settings = settings
        self.engine: Engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.Session: sessionmaker[Session] = make_sessionmaker(self.engine)
        if self.engine.dialect.name == "sqlite":
            self._read_engine = make_engine(
                settings.database_url, immediate=False, sqlite_synchronous=settings.sqlite_synchronous
            )
            self.ReadSession = make_sessionmaker(self._read_engine)
        else:
            self._read_engine, self.ReadSession = None, self.Session
        self.market = LiveMarket(DIM)
        # SQLite has one writer at a time: queue writers on a fair in-process lock rather than on
        # SQLite's busy handler (which sleeps and polls). PostgreSQL needs no such lock.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._keys: dict[str, Principal] = {}
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.timings = {"embed": 0.0, "clear": 0.0, "db": 0.0, "total": 0.0, "auctions": 0}
        self._timing_lock = threading.Lock()

    def read(self) -> Session:
        """A session for reads (on SQLite it never waits for the writer)."""
        return self.ReadSession()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One write transaction (committed on success, rolled back on error)."""
        if self._write_lock is None:
            with self.Session.begin() as s:
                yield s
            return
        with self._write_lock, self.Session.begin() as s:
            yield s

    # -- life cycle ----------------------------------------------------------------------------------
    def migrate(self) -> None:
        run_migrations(self.engine)
        with self.tx() as s:
            self._ledger_account(s, EXCHANGE_OWNER, EXCHANGE_OWNER)

    def bootstrap_admin(self) -> str | None:
        """Make sure an admin exists. Returns a newly generated admin key (to print once), else None."""
        now = utcnow()
        with self.tx() as s:
            admin = s.scalars(select(Account).where(Account.kind == "admin").order_by(Account.created_at)).first()
            if admin is None:
                admin = Account(id=new_id("acc"), kind="admin", name="admin", created_at=now)
                s.add(admin)
                s.flush()
            env_key = self.settings.admin_key
            if env_key:
                h = hash_key(env_key)
                existing = s.scalars(select(ApiKey).where(ApiKey.key_hash == h)).first()
                if existing is None:
                    s.add(ApiKey(account_id=admin.id, key_hash=h, prefix=env_key[:12], created_at=now))
                # The environment's key is the admin's only key: earlier ones stop working.
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.account_id == admin.id, ApiKey.key_hash != h, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                return None
            has_key = s.scalars(
                select(ApiKey.id).where(ApiKey.account_id == admin.id, ApiKey.revoked_at.is_(None))
            ).first()
            if has_key is not None:
                return None
            key = new_key("admin")
            s.add(ApiKey(account_id=admin.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            return key

    def load_market(self) -> None:
        """Fill the in-memory market from the database (at start)."""
        with self.read() as s:
            camps = s.scalars(select(Campaign).where(Campaign.deleted_at.is_(None))).all()
            kws = s.scalars(select(CampaignKeyword)).all()
        by_campaign: dict[str, dict[str, np.ndarray]] = {}
        for k in kws:
            by_campaign.setdefault(k.campaign_id, {})[k.keyword] = _vec(k.point)
        for c in camps:
            self.market.upsert(self._state(c, by_campaign.get(c.id, {})))

    def start_background(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="adspace-sweeper", daemon=True)
            self._sweeper.start()
        if self.settings.preload_model:
            threading.Thread(target=self._preload, name="adspace-model", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()

    def _preload(self) -> None:
        try:
            self.embedder()
        except Exception:  # pragma: no cover - logged, text requests will report it
            log.exception("could not load the embedding model")

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    def embedder(self):
        """The embedder, loaded once (concurrent first callers wait for the one load)."""
        with self._embedder_lock:
            if self._embedder is None:
                from adspace.models.embedder import get_embedder

                emb = get_embedder()
                emb.embed(["warm up"])  # loads the model
                self._embedder = emb
            return self._embedder

    def embed(self, texts: list[str]) -> np.ndarray:
        try:
            return self.embedder().embed(texts)
        except Exception as exc:  # pragma: no cover - only when the model cannot load
            raise Unavailable(f"embedding model {MODEL_NAME} unavailable: {exc}") from exc

    # -- auth ----------------------------------------------------------------------------------------
    def authenticate(self, key: str) -> Principal | None:
        h = hash_key(key)
        p = self._keys.get(h)
        if p is not None:
            return p
        with self.read() as s:
            row = s.execute(
                select(Account.id, Account.kind, Account.name)
                .join(ApiKey, ApiKey.account_id == Account.id)
                .where(ApiKey.key_hash == h, ApiKey.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        p = Principal(row.id, row.kind, row.name)
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[h] = p
        return p

    # -- accounts ------------------------------------------------------------------------------------
    def _ledger_account(self, s: Session, kind: str, owner_id: str) -> int:
        acc = s.scalars(
            select(LedgerAccount.id).where(LedgerAccount.owner_kind == kind, LedgerAccount.owner_id == owner_id)
        ).first()
        if acc is not None:
            return acc
        row = LedgerAccount(owner_kind=kind, owner_id=owner_id)
        s.add(row)
        s.flush()
        return row.id

    def create_account(self, kind: str, name: str) -> schemas.AccountCreated:
        key = new_key(kind)
        now = utcnow()
        with self.tx() as s:
            acc = Account(id=new_id("adv" if kind == "advertiser" else "pub"), kind=kind, name=name, created_at=now)
            s.add(acc)
            s.flush()
            s.add(ApiKey(account_id=acc.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            self._ledger_account(s, kind, acc.id)
        return schemas.AccountCreated(id=acc.id, name=name, kind=kind, api_key=key)

    def _principal(self, account_id: str) -> Principal:
        with self.read() as s:
            a = s.get(Account, account_id)
            return Principal(a.id, a.kind, a.name)

    def list_accounts(self, kind: str) -> list[schemas.AccountOut]:
        with self.read() as s:
            rows = s.scalars(select(Account).where(Account.kind == kind).order_by(Account.created_at, Account.id))
            return [
                schemas.AccountOut(id=a.id, name=a.name, kind=a.kind, created_at=as_utc(a.created_at)) for a in rows
            ]

    def rotate_key(self, account_id: str) -> schemas.AccountCreated:
        """Issue a new key for an advertiser or publisher and revoke its old ones (admin)."""
        now = utcnow()
        with self.tx() as s:
            acc = s.get(Account, account_id)
            if acc is None or acc.kind == "admin":
                raise NotFound(f"account_id: no advertiser or publisher {account_id!r}")
            key = new_key(acc.kind)
            s.execute(
                update(ApiKey).where(ApiKey.account_id == acc.id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
            )
            s.add(ApiKey(account_id=acc.id, key_hash=hash_key(key), prefix=key[:12], created_at=now))
            name, kind = acc.name, acc.kind
        self._keys = {h: p for h, p in self._keys.items() if p.account_id != account_id}
        return schemas.AccountCreated(id=account_id, name=name, kind=kind, api_key=key)

    # -- campaigns -----------------------------------------------------------------------------------
    def _state(self, c: Campaign, keywords: dict[str, np.ndarray]) -> CampaignState:
        starts, ends = as_utc(c.starts_at), as_utc(c.ends_at)
        return CampaignState(
            id=c.id,
            advertiser_id=c.advertiser_id,
            kind=c.kind,
            center=None if c.center is None else _vec(c.center),
            sigma=c.sigma,
            keywords=keywords,
            bid_micros=c.bid_micros,
            budget_micros=c.budget_micros,
            daily_budget_micros=c.daily_budget_micros,
            starts_at=starts.timestamp() if starts else float("-inf"),
            ends_at=ends.timestamp() if ends else float("inf"),
            status=c.status,
            spent_micros=c.spent_micros,
            held_micros=c.held_micros,
            daily_day=c.daily_day,
            daily_used_micros=c.daily_used_micros,
            money_version=c.money_version,
            title=c.creative_title,
            body=c.creative_body,
            url=c.creative_url,
            order=(as_utc(c.created_at).timestamp(), c.id),
        )

    def _out(self, c: Campaign, keywords: list[str] | None) -> schemas.CampaignOut:
        return schemas.CampaignOut(
            id=c.id,
            advertiser_id=c.advertiser_id,
            name=c.name,
            kind=c.kind,
            description=c.description,
            keywords=keywords if c.kind == "keyword" else None,
            sigma=c.sigma,
            bid_micros=c.bid_micros,
            budget_micros=c.budget_micros,
            daily_budget_micros=c.daily_budget_micros,
            starts_at=as_utc(c.starts_at),
            ends_at=as_utc(c.ends_at),
            status=c.status,
            creative={"title": c.creative_title, "body": c.creative_body, "url": c.creative_url},
            spent_micros=c.spent_micros,
            held_micros=c.held_micros,
            remaining_micros=c.budget_micros - c.spent_micros - c.held_micros,
            created_at=as_utc(c.created_at),
            updated_at=as_utc(c.updated_at),
        )

    def _keyword_points(self, keywords: list[str]) -> dict[str, np.ndarray]:
        """Each keyword's point: the existing one if campaigns already bid on it, else its embedding."""
        points: dict[str, np.ndarray] = {}
        todo = []
        with self.read() as s:
            for k in keywords:
                row = s.scalars(select(CampaignKeyword.point).where(CampaignKeyword.keyword == k).limit(1)).first()
                if row is not None:
                    points[k] = _vec(row)
                else:
                    todo.append(k)
        if todo:
            for k, v in zip(todo, self.embed(todo), strict=True):
                points[k] = v
        return points

    def create_campaign(self, who: Principal, body: schemas.CampaignCreate) -> schemas.CampaignOut:
        now = utcnow()
        center = None
        points: dict[str, np.ndarray] = {}
        if body.description is not None:
            center = self.embed([body.description])[0]
        elif body.embedding is not None:
            center = np.asarray(body.embedding, dtype=np.float64)
        else:
            points = self._keyword_points(body.keywords)
        c = Campaign(
            id=new_id("cmp"),
            advertiser_id=who.account_id,
            name=body.name,
            kind="keyword" if body.keywords is not None else "embedding",
            description=body.description,
            center=None if center is None else _vec_bytes(center),
            sigma=body.sigma,
            bid_micros=body.bid_micros,
            budget_micros=body.budget_micros,
            daily_budget_micros=body.daily_budget_micros,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            status=body.status,
            creative_title=body.creative.title,
            creative_body=body.creative.body,
            creative_url=body.creative.url,
            spent_micros=0,
            held_micros=0,
            daily_day=None,
            daily_used_micros=0,
            money_version=0,
            created_at=now,
            updated_at=now,
        )
        with self.tx() as s:
            s.add(c)
            s.flush()
            for k, p in points.items():
                s.add(CampaignKeyword(campaign_id=c.id, keyword=k, point=_vec_bytes(p)))
        self.market.upsert(self._state(c, points))
        return self._out(c, list(points) or None)

    def _owned(self, s: Session, who: Principal, campaign_id: str, *, lock: bool = False) -> Campaign:
        q = select(Campaign).where(
            Campaign.id == campaign_id, Campaign.advertiser_id == who.account_id, Campaign.deleted_at.is_(None)
        )
        if lock:
            q = q.with_for_update()
        c = s.scalars(q).first()
        if c is None:
            raise NotFound(f"campaign_id: no campaign {campaign_id!r} of yours")
        return c

    def _keywords_of(self, s: Session, campaign_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if campaign_ids:
            for k in s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id.in_(campaign_ids))):
                out.setdefault(k.campaign_id, []).append(k.keyword)
        return out

    def list_campaigns(
        self, who: Principal, *, status: str | None, limit: int, offset: int
    ) -> list[schemas.CampaignOut]:
        with self.read() as s:
            q = select(Campaign).where(Campaign.advertiser_id == who.account_id, Campaign.deleted_at.is_(None))
            if status:
                q = q.where(Campaign.status == status)
            rows = s.scalars(q.order_by(Campaign.created_at, Campaign.id).limit(limit).offset(offset)).all()
            kws = self._keywords_of(s, [c.id for c in rows if c.kind == "keyword"])
            return [self._out(c, kws.get(c.id)) for c in rows]

    def get_campaign(self, who: Principal, campaign_id: str) -> schemas.CampaignOut:
        with self.read() as s:
            c = self._owned(s, who, campaign_id)
            return self._out(c, self._keywords_of(s, [c.id]).get(c.id))

    def update_campaign(self, who: Principal, campaign_id: str, body: schemas.CampaignUpdate) -> schemas.CampaignOut:
        fields = body.model_fields_set
        center = None
        points: dict[str, np.ndarray] | None = None
        with self.read() as s:  # validate against the stored campaign before any slow work
            c = self._owned(s, who, campaign_id)
            kind = c.kind
        if kind == "keyword" and ({"description", "embedding", "sigma"} & fields):
            bad = sorted({"description", "embedding", "sigma"} & fields)[0]
            raise Conflict(f"{bad}: not a field of a keyword campaign (σ → 0); create an embedding campaign instead")
        if kind == "embedding" and "keywords" in fields:
            raise Conflict("keywords: not a field of an embedding campaign; create a keyword campaign instead")
        if body.description is not None:
            center = self.embed([body.description])[0]
        elif body.embedding is not None:
            center = np.asarray(body.embedding, dtype=np.float64)
        if body.keywords is not None:
            points = self._keyword_points(body.keywords)
        with self.tx() as s:
            c = self._owned(s, who, campaign_id, lock=True)
            for name in (
                "name",
                "sigma",
                "bid_micros",
                "budget_micros",
                "daily_budget_micros",
                "starts_at",
                "ends_at",
                "status",
            ):
                if name in fields:
                    setattr(c, name, getattr(body, name))
            if body.description is not None:
                c.description, c.center = body.description, _vec_bytes(center)
            elif body.embedding is not None:
                c.description, c.center = None, _vec_bytes(center)
            if body.creative is not None:
                c.creative_title, c.creative_body, c.creative_url = (
                    body.creative.title,
                    body.creative.body,
                    body.creative.url,
                )
            starts, ends = as_utc(c.starts_at), as_utc(c.ends_at)
            if starts is not None and ends is not None and ends <= starts:
                raise ServiceError("ends_at: must be later than starts_at")
            c.updated_at = utcnow()
            if points is not None:
                for k in s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id == c.id)):
                    s.delete(k)
                s.flush()
                for k, p in points.items():
                    s.add(CampaignKeyword(campaign_id=c.id, keyword=k, point=_vec_bytes(p)))
            s.flush()
            kw_rows = s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id == c.id)).all()
            kw_points = {k.keyword: _vec(k.point) for k in kw_rows}
        self.market.upsert(self._state(c, kw_points))
        return self._out(c, list(kw_points) or None)

    def delete_campaign(self, who: Principal, campaign_id: str) -> None:
        """Soft delete: the campaign leaves the market; its auctions, ledger and reports stay."""
        with self.tx() as s:
            c = self._owned(s, who, campaign_id, lock=True)
            c.deleted_at = utcnow()
            c.status = "deleted"
        self.market.remove(campaign_id)

    # -- auctions ------------------------------------------------------------------------------------
    def _time(self, key: str, seconds: float) -> None:
        with self._timing_lock:
            self.timings[key] += seconds

    def run_auction(
        self,
        who: Principal,
        *,
        embedding: list[float] | None,
        text: str | None,
        keywords: list[str] | None,
        reserve_micros: int | None,
        tau: float | None,
        source: str = "rest",
        notice_token: str | None = None,
    ) -> tuple[Auction, Outcome, CampaignState | None]:
        """Clear one auction, hold the winner's price against its budget, and record it."""
        t_start = time.perf_counter()
        try:
            return self._run_auction(who, embedding, text, keywords, reserve_micros, tau, source, notice_token)
        finally:
            self._time("total", time.perf_counter() - t_start)

    def _run_auction(self, who, embedding, text, keywords, reserve_micros, tau, source, notice_token):
        reserve = self.settings.default_reserve_micros if reserve_micros is None else reserve_micros
        x: np.ndarray | None = None
        keyword_hit = any(self.market.has_keyword(k) for k in (keywords or []))
        if not keyword_hit:
            if embedding is not None:
                x = np.asarray(embedding, dtype=np.float64)
            elif text is not None:
                t0 = time.perf_counter()
                x = self.embed([text])[0]
                self._time("embed", time.perf_counter() - t0)
        now = utcnow()
        exclude: set[str] = set()
        for _attempt in range(4):
            t0 = time.perf_counter()
            out = self.market.run(
                x, keywords=keywords, reserve_micros=reserve, tau=tau, now=now, exclude=frozenset(exclude)
            )
            self._time("clear", time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                auction = self._record(who, out, now, source, notice_token)
            finally:
                self._time("db", time.perf_counter() - t0)
            if auction is not None:
                with self._timing_lock:
                    self.timings["auctions"] += 1
                return auction, out, out.campaign
            # The winner's budget was taken by a concurrent auction: our copy was stale. Refresh it, retry.
            self._refresh_money(out.campaign.id)
            if _attempt >= 2:
                exclude.add(out.campaign.id)
        raise Conflict("auction: could not hold a winner's budget after several tries; retry")

    def _record(
        self, who: Principal, out: Outcome, now: datetime, source: str, notice_token: str | None
    ) -> Auction | None:
        day = now.strftime("%Y-%m-%d")
        explain = self._explain(out)
        a = Auction(
            id=new_auction_id(),
            publisher_id=who.account_id,
            source=source,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.hold_seconds),
            day=day,
            filled=out.filled,
            campaign_id=out.campaign.id if out.filled else None,
            advertiser_id=out.campaign.advertiser_id if out.filled else None,
            price_micros=out.price_micros,
            status="held" if out.filled else "no_fill",
            keyword=out.keyword,
            notice_token=notice_token,
            explain=json.dumps(explain),
        )
        with self.tx() as s:
            if out.filled:
                c, p, bid = Campaign, out.price_micros, out.campaign.bid_micros
                used_today = case((c.daily_day == day, c.daily_used_micros), else_=0)
                res = s.execute(
                    update(c)
                    .where(
                        c.id == out.campaign.id,
                        c.deleted_at.is_(None),
                        c.status == "active",
                        c.budget_micros - c.spent_micros - c.held_micros >= bid,
                        (c.daily_budget_micros.is_(None)) | (used_today + bid <= c.daily_budget_micros),
                    )
                    .values(
                        held_micros=c.held_micros + p,
                        daily_used_micros=used_today + p,
                        daily_day=day,
                        money_version=c.money_version + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount != 1:
                    return None
            s.add(a)
            money = self._money(s, out.campaign.id) if out.filled else None
        if money is not None:
            self.market.set_money(out.campaign.id, **money)
        return a

    def _money(self, s: Session, campaign_id: str) -> dict[str, Any]:
        r = s.execute(
            select(
                Campaign.spent_micros,
                Campaign.held_micros,
                Campaign.daily_day,
                Campaign.daily_used_micros,
                Campaign.money_version,
            ).where(Campaign.id == campaign_id)
        ).one()
        return {"spent": r[0], "held": r[1], "daily_day": r[2], "daily_used": r[3], "version": r[4]}

    def _refresh_money(self, campaign_id: str) -> None:
        with self.read() as s:
            money = self._money(s, campaign_id)
        self.market.set_money(campaign_id, **money)

    def _explain(self, out: Outcome) -> dict[str, Any]:
        ex: dict[str, Any] = {
            "mechanism": "embedding-space VCG (Clarke pivot)",
            "point": out.point,
            "keyword": out.keyword,
            "campaigns_total": out.total,
            "considered": out.considered,
            "excluded": out.excluded,
        }
        if out.filled:
            ex["winner"] = {
                "campaign_id": out.campaign.id,
                "score": out.score,
                "value_micros": out.value_micros,
            }
            ex["runner_up"] = None if out.runner_up_score is None else {"score": out.runner_up_score}
            ex["reason"] = (
                "highest score log(bid) - |x - c|^2 / sigma^2 among the eligible campaigns; the price is the "
                "runner-up's reported value (or the reserve, if higher), rounded down to whole micros"
            )
        else:
            ex["winner"] = None
            ex["runner_up"] = None
            if out.below_reserve:
                ex["reason"] = "below_reserve: no eligible campaign's reported value reaches the reserve"
            else:
                ex["reason"] = "no eligible campaign (see excluded)"
        return ex

    def auction_response(self, a: Auction, out: Outcome, camp: CampaignState | None) -> schemas.AuctionResponse:
        ad = None
        if a.filled and camp is not None:
            ad = schemas.Ad(campaign_id=camp.id, title=camp.title, body=camp.body, url=camp.url)
        return schemas.AuctionResponse(
            auction_id=a.id,
            filled=a.filled,
            ad=ad,
            price_micros=a.price_micros,
            expires_at=a.expires_at if a.filled else None,
            explain=json.loads(a.explain),
        )

    def get_auction(self, who: Principal, auction_id: str) -> schemas.AuctionOut:
        with self.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            return self._auction_out(a)

    def _auction_out(self, a: Auction) -> schemas.AuctionOut:
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
            explain=json.loads(a.explain),
        )

    def list_auctions(self, who: Principal, *, limit: int, offset: int) -> list[schemas.AuctionOut]:
        with self.read() as s:
            rows = s.scalars(
                select(Auction)
                .where(Auction.publisher_id == who.account_id)
                .order_by(Auction.created_at.desc(), Auction.id)
                .limit(limit)
                .offset(offset)
            )
            return [self._auction_out(a) for a in rows]

    # -- billing -------------------------------------------------------------------------------------
    def bill(self, who: Principal, auction_id: str) -> schemas.BillingResult:
        """Charge the winner of ``auction_id`` exactly once; a repeat returns the same result."""
        now = utcnow()
        share = self.settings.publisher_share_bps
        try:
            result, money = self._charge(who, auction_id, now, share)
        except IntegrityError:  # a concurrent charge won the unique (auction_id, kind); report it
            result, money = None, None
        if money is not None:
            self.market.set_money(result.campaign_id, **money)
            return result
        return self._billing_result(who, auction_id, now)

    def _charge(self, who: Principal, auction_id: str, now: datetime, share: int):
        result = None
        with self.tx() as s:
            res = s.execute(
                update(Auction)
                .where(
                    Auction.id == auction_id,
                    Auction.publisher_id == who.account_id,
                    Auction.status == "held",
                    Auction.expires_at > now,
                )
                .values(status="billed", billed_at=now)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:
                a = s.get(Auction, auction_id)
                p = a.price_micros
                s.execute(
                    update(Campaign)
                    .where(Campaign.id == a.campaign_id)
                    .values(
                        held_micros=Campaign.held_micros - p,
                        spent_micros=Campaign.spent_micros + p,
                        money_version=Campaign.money_version + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                tx = LedgerTransaction(kind="charge", auction_id=a.id, created_at=now, publisher_share_bps=share)
                s.add(tx)
                s.flush()  # the unique (auction_id, kind) fails here if a charge already exists
                pub = p * share // 10_000
                postings = [
                    (self._ledger_account(s, "advertiser", a.advertiser_id), -p),
                    (self._ledger_account(s, "publisher", a.publisher_id), pub),
                    (self._ledger_account(s, EXCHANGE_OWNER, EXCHANGE_OWNER), p - pub),
                ]
                for acc, amount in postings:
                    s.add(LedgerPosting(transaction_id=tx.id, account_id=acc, amount_micros=amount))
                money = self._money(s, a.campaign_id)
                result = schemas.BillingResult(
                    auction_id=a.id,
                    campaign_id=a.campaign_id,
                    price_micros=p,
                    publisher_micros=pub,
                    exchange_micros=p - pub,
                    billed_at=now,
                    transaction_id=tx.id,
                )
            else:
                money = None
        return result, money

    def _billing_result(self, who: Principal, auction_id: str, now: datetime) -> schemas.BillingResult:
        with self.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            if a.status == "no_fill":
                raise Conflict("auction_id: the auction was not filled; there is nothing to bill")
            if a.status == "expired" or (a.status == "held" and as_utc(a.expires_at) <= now):
                raise Gone("auction_id: the auction expired unbilled; its hold was released")
            tx = s.scalars(
                select(LedgerTransaction).where(
                    LedgerTransaction.auction_id == a.id, LedgerTransaction.kind == "charge"
                )
            ).first()
            if a.status != "billed" or tx is None:  # pragma: no cover - would be a broken invariant
                raise Conflict(f"auction_id: auction {auction_id!r} is {a.status}")
            pub = s.scalars(
                select(LedgerPosting.amount_micros)
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(LedgerPosting.transaction_id == tx.id, LedgerAccount.owner_kind == "publisher")
            ).one()
            return schemas.BillingResult(
                auction_id=a.id,
                campaign_id=a.campaign_id,
                price_micros=a.price_micros,
                publisher_micros=pub,
                exchange_micros=a.price_micros - pub,
                billed_at=as_utc(a.billed_at),
                transaction_id=tx.id,
            )

    def click(self, who: Principal, auction_id: str) -> schemas.ClickResult:
        """Record a click on a billed (shown) ad, once; a repeat returns the first click's time."""
        now = utcnow()
        with self.tx() as s:
            s.execute(
                update(Auction)
                .where(
                    Auction.id == auction_id,
                    Auction.publisher_id == who.account_id,
                    Auction.status == "billed",
                    Auction.clicked_at.is_(None),
                )
                .values(clicked_at=now)
                .execution_options(synchronize_session=False)
            )
        with self.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            if a.clicked_at is None:
                raise Conflict(f"auction_id: auction is {a.status}; a click needs a billed impression (bill it first)")
            return schemas.ClickResult(auction_id=a.id, clicked_at=as_utc(a.clicked_at))

    # -- expiry --------------------------------------------------------------------------------------
    def release_expired(self, *, limit: int = 500) -> int:
        """Release the holds of auctions whose billing window closed. Returns how many were released."""
        now = utcnow()
        with self.read() as s:
            ids = s.scalars(
                select(Auction.id).where(Auction.status == "held", Auction.expires_at <= now).limit(limit)
            ).all()
        return sum(self._release(auction_id, expired_by=now) for auction_id in ids)

    def _release(self, auction_id: str, *, expired_by: datetime | None) -> bool:
        """Move a held auction to ``expired`` and give its hold back (only if still held)."""
        cond = [Auction.id == auction_id, Auction.status == "held"]
        if expired_by is not None:
            cond.append(Auction.expires_at <= expired_by)
        with self.tx() as s:
            res = s.execute(
                update(Auction).where(*cond).values(status="expired").execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                return False
            a = s.get(Auction, auction_id)
            p = a.price_micros
            s.execute(
                update(Campaign)
                .where(Campaign.id == a.campaign_id)
                .values(
                    held_micros=Campaign.held_micros - p,
                    daily_used_micros=case(
                        (Campaign.daily_day == a.day, Campaign.daily_used_micros - p), else_=Campaign.daily_used_micros
                    ),
                    money_version=Campaign.money_version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            money = self._money(s, a.campaign_id)
            cid = a.campaign_id
        self.market.set_money(cid, **money)
        return True

    # -- OpenRTB notices -----------------------------------------------------------------------------
    def notice(self, kind: str, auction_id: str, token: str) -> schemas.BillingResult | None:
        """A nurl/burl/lurl fired by an ad server: authenticated by the auction's capability token."""
        import hmac

        with self.read() as s:
            a = s.get(Auction, auction_id)
            ok = a is not None and a.notice_token is not None and hmac.compare_digest(a.notice_token, token)
            publisher = a.publisher_id if ok else None
        if not ok:
            raise NotFound(f"auction_id: no OpenRTB auction {auction_id!r} with this token")
        if kind == "billing":
            return self.bill(self._principal(publisher), auction_id)
        if kind == "loss":
            self._release(auction_id, expired_by=None)
        return None

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_seconds):
            try:
                self.release_expired()
            except Exception:  # pragma: no cover - logged and retried on the next tick
                log.exception("releasing expired holds failed")

    # -- ledger and reports --------------------------------------------------------------------------
    def ledger(self, who: Principal, *, after: int, limit: int) -> schemas.LedgerPage:
        with self.read() as s:
            if who.kind == "admin":
                owner = and_(LedgerAccount.owner_kind == EXCHANGE_OWNER)
            else:
                owner = and_(LedgerAccount.owner_kind == who.kind, LedgerAccount.owner_id == who.account_id)
            base = (
                select(LedgerPosting, LedgerTransaction, LedgerAccount)
                .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(owner)
            )
            rows = s.execute(base.where(LedgerPosting.id > after).order_by(LedgerPosting.id).limit(limit)).all()
            balance = s.scalar(
                select(func.coalesce(func.sum(LedgerPosting.amount_micros), 0))
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(owner)
            )
            entries = [
                schemas.LedgerEntry(
                    transaction_id=t.id,
                    kind=t.kind,
                    auction_id=t.auction_id,
                    created_at=as_utc(t.created_at),
                    account=EXCHANGE_OWNER if acc.owner_kind == EXCHANGE_OWNER else f"{acc.owner_kind}:{acc.owner_id}",
                    amount_micros=p.amount_micros,
                )
                for p, t, acc in rows
            ]
            nxt = rows[-1][0].id if len(rows) == limit else None
            return schemas.LedgerPage(balance_micros=int(balance), entries=entries, next_after=nxt)

    def stats(self) -> dict[str, Any]:
        """Admin: counters of this process (auctions served, seconds spent embedding, clearing, in the database)."""
        with self._timing_lock:
            t = dict(self.timings)
        emb = self._embedder
        return {
            "campaigns": len(self.market),
            "market_rebuilds": self.market.rebuilds,
            "clearing_batches": self.market.batches,
            "clearing_queries": self.market.batched_queries,
            "auctions": t["auctions"],
            "seconds": {k: t[k] for k in ("total", "embed", "clear", "db")},
            "embedding_cache": None if emb is None else {"hits": emb.hits, "misses": emb.misses},
        }

    def ledger_check(self) -> dict[str, Any]:
        """Admin: the ledger's invariants, computed by the database."""
        with self.read() as s:
            total = s.scalar(select(func.coalesce(func.sum(LedgerPosting.amount_micros), 0)))
            unbalanced = s.scalar(
                select(func.count()).select_from(
                    select(LedgerPosting.transaction_id)
                    .group_by(LedgerPosting.transaction_id)
                    .having(func.sum(LedgerPosting.amount_micros) != 0)
                    .subquery()
                )
            )
            txs = s.scalar(select(func.count()).select_from(LedgerTransaction))
            billed = s.scalar(select(func.count()).select_from(Auction).where(Auction.status == "billed"))
            spent = s.scalar(select(func.coalesce(func.sum(Campaign.spent_micros), 0)))
            billed_sum = s.scalar(
                select(func.coalesce(func.sum(Auction.price_micros), 0)).where(Auction.status == "billed")
            )
        return {
            "postings_sum_micros": int(total),
            "unbalanced_transactions": int(unbalanced),
            "transactions": int(txs),
            "billed_auctions": int(billed),
            "campaign_spent_micros": int(spent),
            "billed_price_micros": int(billed_sum),
            "balanced": int(total) == 0 and int(unbalanced) == 0 and int(txs) == int(billed) and spent == billed_sum,
        }

    def campaign_report(self, who: Principal) -> schemas.CampaignReportPage:
        with self.read() as s:
            camps = s.scalars(
                select(Campaign)
                .where(Campaign.advertiser_id == who.account_id)
                .order_by(Campaign.created_at, Campaign.id)
            ).all()
            billed = Auction.status == "billed"
            stats = {
                r.campaign_id: r
                for r in s.execute(
                    select(
                        Auction.campaign_id,
                        func.count().label("wins"),
                        func.coalesce(func.sum(case((billed, 1), else_=0)), 0).label("impressions"),
                        func.coalesce(func.sum(case((Auction.clicked_at.is_not(None), 1), else_=0)), 0).label("clicks"),
                        func.coalesce(func.sum(case((billed, Auction.price_micros), else_=0)), 0).label("spend"),
                    )
                    .where(Auction.advertiser_id == who.account_id, Auction.filled.is_(True))
                    .group_by(Auction.campaign_id)
                )
            }
        out = []
        for c in camps:
            r = stats.get(c.id)
            wins, imps, clicks, spend = (
                (int(r.wins), int(r.impressions), int(r.clicks), int(r.spend)) if r else (0, 0, 0, 0)
            )
            out.append(
                schemas.CampaignReport(
                    campaign_id=c.id,
                    name=c.name,
                    status=c.status,
                    wins=wins,
                    impressions=imps,
                    clicks=clicks,
                    spend_micros=spend,
                    avg_price_micros=spend // imps if imps else 0,
                    ctr=clicks / imps if imps else 0.0,
                )
            )
        return schemas.CampaignReportPage(campaigns=out)
