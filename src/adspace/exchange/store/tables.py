"""Database tables of the exchange (SQLAlchemy 2 declarative models).

Money is integer micros (``BigInteger``) everywhere; floats never reach the ledger. The schema is
created and upgraded by the Alembic migrations in ``migrations/`` (run at start), never by
``create_all``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: 64-bit ids on PostgreSQL; SQLite's autoincrementing rowid must be declared INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class Account(Base):
    """An admin, advertiser or publisher."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # admin | advertiser | publisher
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A bearer key; only the SHA-256 of the (high-entropy, random) key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Campaign(Base):
    """An advertiser's report (center, σ, bid) with its budget, schedule and creative.

    ``spent_micros`` (billed) and ``held_micros`` (won, awaiting billing) are changed only by
    conditional UPDATEs in the same transaction as the auction or ledger rows they account for.
    ``daily_used_micros`` counts held + billed money of auctions run on UTC day ``daily_day``.
    """

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    advertiser_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # embedding | keyword
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    center: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float64 little-endian
    sigma: Mapped[float | None] = mapped_column(Float, nullable=True)
    bid_micros: Mapped[int] = mapped_column(BigInteger)
    budget_micros: Mapped[int] = mapped_column(BigInteger)
    daily_budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # active | paused
    creative_title: Mapped[str] = mapped_column(String(200))
    creative_body: Mapped[str] = mapped_column(Text)
    creative_url: Mapped[str] = mapped_column(String(2048))
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    held_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    daily_day: Mapped[str | None] = mapped_column(String(10), nullable=True)
    daily_used_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Incremented by every change of the money columns, so caches apply updates in order.
    money_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CampaignKeyword(Base):
    """A keyword of a keyword campaign and the point of the embedding space the keyword sits at."""

    __tablename__ = "campaign_keywords"
    __table_args__ = (UniqueConstraint("campaign_id", "keyword", name="uq_campaign_keyword"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    keyword: Mapped[str] = mapped_column(String(100), index=True)
    point: Mapped[bytes] = mapped_column(LargeBinary)  # float64 little-endian


class Auction(Base):
    """One auction run for a publisher. ``status``: no_fill | held | billed | expired."""

    __tablename__ = "auctions"
    __table_args__ = (
        Index("ix_auctions_status_expires", "status", "expires_at"),
        Index("ix_auctions_publisher_created", "publisher_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    publisher_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    source: Mapped[str] = mapped_column(String(16))  # rest | openrtb
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[str] = mapped_column(String(10))  # UTC day the auction ran (daily budgets)
    filled: Mapped[bool] = mapped_column(Boolean)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True, index=True)
    advertiser_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True, index=True)
    price_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    billed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    keyword: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: Capability for OpenRTB notice URLs (nurl/burl/lurl), which ad servers fire without our API key.
    notice_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    explain: Mapped[str] = mapped_column(Text)  # JSON


class LedgerAccount(Base):
    """One ledger account per advertiser, per publisher, and one for the exchange."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", name="uq_ledger_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # advertiser | publisher | exchange
    owner_id: Mapped[str] = mapped_column(String(40))  # account id, or "exchange"


class LedgerTransaction(Base):
    """A balanced set of postings. ``(auction_id, kind)`` is unique: an auction is charged at most once."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("auction_id", "kind", name="uq_ledger_auction_kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # charge
    auction_id: Mapped[str] = mapped_column(ForeignKey("auctions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    publisher_share_bps: Mapped[int] = mapped_column(Integer)


class LedgerPosting(Base):
    """A signed amount on one account: negative leaves the account, positive enters it."""

    __tablename__ = "ledger_postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
