"""Request and response bodies of the REST API (pydantic v2).

Every request model forbids unknown fields, and every constraint is declared on the field it
concerns, so a bad request is answered 422 with the field's location in ``detail[].loc`` and the
field named in ``detail[].msg``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adspace.exchange.core.vectors import check_vector

MAX_MICROS = 10**15  # a billion currency units
MAX_BID_MICROS = 10**12
MIN_SIGMA = 1e-6
MAX_SIGMA = 1e6

Micros = Annotated[int, Field(ge=0, le=MAX_MICROS, description="Amount in micros (1e-6 of the currency unit)")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Keyword = Annotated[str, Field(min_length=1, max_length=100)]


def _check_text(value: Any, field: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{field}: must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{field}: must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, list):
        if value and isinstance(value[0], float | int):
            return  # a validated list of numbers (an embedding's 384 of them): nothing to check as text
        for i, v in enumerate(value):
            if isinstance(v, str | list):  # numbers (an embedding's 384 of them) need no text check
                _check_text(v, f"{field}[{i}]")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, v, info):
        _check_text(v, info.field_name)
        return v


def check_embedding(v: list[float] | None, field: str) -> list[float] | None:
    """The field's vector through the exchange's one vector validator (:func:`check_vector`)."""
    if v is not None:
        check_vector(v, field)
    return v


def check_sigma(v: float | None) -> float | None:
    """A reach σ, when given, of at least ``MIN_SIGMA`` (the error names ``sigma``)."""
    if v is not None and v < MIN_SIGMA:
        raise ValueError(f"sigma: must be >= {MIN_SIGMA:g}, got {v!r}")
    return v


def normalize_keyword(k: str) -> str:
    """Keywords match case-insensitively, with runs of whitespace collapsed."""
    return " ".join(k.lower().split())


def check_keywords(v: list[str] | None, field: str) -> list[str] | None:
    if v is None:
        return v
    out: list[str] = []
    for i, k in enumerate(v):
        n = normalize_keyword(k)
        if not n:
            raise ValueError(f"{field}[{i}]: must not be blank")
        if n not in out:
            out.append(n)
    return out


# -- accounts --------------------------------------------------------------------------------------


class AccountCreate(_In):
    name: Name


class AccountCreated(BaseModel):
    id: str
    name: str
    kind: str
    api_key: str = Field(description="Shown once; only its hash is stored.")


class AccountOut(BaseModel):
    id: str
    name: str
    kind: str
    created_at: datetime


# -- campaigns -------------------------------------------------------------------------------------


class Creative(_In):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=2000)] = ""
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://\S+$")]


Sigma = Annotated[float, Field(gt=0, le=MAX_SIGMA, allow_inf_nan=False, description="Reach σ > 0 (σ >= 1e-6)")]
Bid = Annotated[
    int, Field(gt=0, le=MAX_BID_MICROS, description="Value of one impression exactly at the center, micros")
]
Embedding = Annotated[list[float], Field(min_length=1, max_length=4096)]


class CampaignCreate(_In):
    """Exactly one of ``description`` (embedded to the center), ``embedding`` (the center) or ``keywords``."""

    name: Name
    description: Annotated[str, Field(min_length=1, max_length=5000)] | None = None
    embedding: Embedding | None = None
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=50)] | None = None
    sigma: Sigma | None = None
    bid_micros: Bid
    budget_micros: Micros
    daily_budget_micros: Micros | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: Literal["active", "paused"] = "active"
    creative: Creative

    @field_validator("embedding")
    @classmethod
    def _emb(cls, v):
        return check_embedding(v, "embedding")

    @field_validator("keywords")
    @classmethod
    def _kw(cls, v):
        return check_keywords(v, "keywords")

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v):
        return check_sigma(v)

    @model_validator(mode="after")
    def _one_target(self):
        given = [k for k in ("description", "embedding", "keywords") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "description | embedding | keywords: give exactly one of them"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.keywords is None and self.sigma is None:
            raise ValueError("sigma: required for description and embedding campaigns")
        if self.keywords is not None and self.sigma is not None:
            raise ValueError("sigma: keyword campaigns have σ → 0; omit sigma")
        _check_schedule(self.starts_at, self.ends_at)
        return self


def _check_schedule(starts_at, ends_at):
    for name, v in (("starts_at", starts_at), ("ends_at", ends_at)):
        if v is not None and v.tzinfo is None:
            raise ValueError(f"{name}: must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValueError("ends_at: must be later than starts_at")


class CampaignUpdate(_In):
    """Fields to change; absent fields stay. ``null`` clears ``daily_budget_micros``, ``starts_at``, ``ends_at``."""

    name: Name | None = None
    description: Annotated[str, Field(min_length=1, max_length=5000)] | None = None
    embedding: Embedding | None = None
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=50)] | None = None
    sigma: Sigma | None = None
    bid_micros: Bid | None = None
    budget_micros: Micros | None = None
    daily_budget_micros: Micros | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: Literal["active", "paused"] | None = None
    creative: Creative | None = None

    @field_validator("embedding")
    @classmethod
    def _emb(cls, v):
        return check_embedding(v, "embedding")

    @field_validator("keywords")
    @classmethod
    def _kw(cls, v):
        return check_keywords(v, "keywords")

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v):
        return check_sigma(v)

    @model_validator(mode="after")
    def _fields(self):
        for name in (
            "name",
            "bid_micros",
            "budget_micros",
            "status",
            "creative",
            "sigma",
            "description",
            "embedding",
            "keywords",
        ):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: cannot be null")
        if self.description is not None and self.embedding is not None:
            raise ValueError("description | embedding: give at most one of them")
        for name in ("starts_at", "ends_at"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                raise ValueError(f"{name}: must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
        return self


class CampaignOut(BaseModel):
    id: str
    advertiser_id: str
    name: str
    kind: Literal["embedding", "keyword"]
    description: str | None
    keywords: list[str] | None
    sigma: float | None
    bid_micros: int
    budget_micros: int
    daily_budget_micros: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    status: str
    creative: dict[str, str]
    spent_micros: int
    held_micros: int
    remaining_micros: int
    created_at: datetime
    updated_at: datetime


# -- auctions --------------------------------------------------------------------------------------


class Message(_In):
    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[str, Field(max_length=20_000)]


class AuctionRequest(_In):
    """``messages`` (embedded) or ``embedding``; ``keywords`` may route the auction to a keyword's point."""

    messages: Annotated[list[Message], Field(min_length=1, max_length=200)] | None = None
    embedding: Embedding | None = None
    keywords: Annotated[list[Keyword], Field(max_length=50)] | None = None
    reserve_micros: Annotated[int, Field(ge=0, le=MAX_BID_MICROS)] | None = None
    tau: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @field_validator("embedding")
    @classmethod
    def _emb(cls, v):
        return check_embedding(v, "embedding")

    @field_validator("keywords")
    @classmethod
    def _kw(cls, v):
        return check_keywords(v, "keywords")

    @model_validator(mode="after")
    def _query(self):
        if self.messages is not None and self.embedding is not None:
            raise ValueError("messages | embedding: give one of them, not both")
        if self.messages is None and self.embedding is None and not self.keywords:
            raise ValueError("messages | embedding | keywords: give messages or an embedding (or keywords)")
        return self


class Ad(BaseModel):
    campaign_id: str
    title: str
    body: str
    url: str
    label: Literal["Sponsored"] = "Sponsored"


class AuctionResponse(BaseModel):
    auction_id: str
    filled: bool
    ad: Ad | None
    price_micros: int
    expires_at: datetime | None = None
    explain: dict[str, Any]


class AuctionOut(BaseModel):
    auction_id: str
    created_at: datetime
    expires_at: datetime
    source: str
    filled: bool
    status: Literal["no_fill", "held", "billed", "expired"]
    campaign_id: str | None
    price_micros: int
    billed_at: datetime | None
    clicked_at: datetime | None
    explain: dict[str, Any]


class BillingResult(BaseModel):
    auction_id: str
    status: Literal["billed"] = "billed"
    campaign_id: str
    price_micros: int
    publisher_micros: int
    exchange_micros: int
    billed_at: datetime
    transaction_id: int


class ClickResult(BaseModel):
    auction_id: str
    clicked_at: datetime


# -- ledger and reports ----------------------------------------------------------------------------


class LedgerEntry(BaseModel):
    transaction_id: int
    kind: str
    auction_id: str
    created_at: datetime
    account: str = Field(description="advertiser:<id>, publisher:<id> or exchange")
    amount_micros: int = Field(description="Signed: negative leaves the account, positive enters it")


class LedgerPage(BaseModel):
    balance_micros: int
    entries: list[LedgerEntry]
    next_after: int | None = Field(description="Pass as ?after= for the next page")


class CampaignReport(BaseModel):
    campaign_id: str
    name: str
    status: str
    wins: int
    impressions: int
    clicks: int
    spend_micros: int
    avg_price_micros: int
    ctr: float


class CampaignReportPage(BaseModel):
    campaigns: list[CampaignReport]


# -- the dashboard's views --

MAX_DASHBOARD_TEXT = 2000

DashboardText = Annotated[
    str, Field(min_length=1, max_length=MAX_DASHBOARD_TEXT, description="Conversation text, embedded")
]


class DashboardQuery(_In):
    """A query point for the dashboard's views: ``text`` (embedded), ``embedding`` and/or ``keywords``."""

    text: DashboardText | None = None
    embedding: Embedding | None = None
    keywords: Annotated[list[Keyword], Field(max_length=50)] | None = None

    @field_validator("embedding")
    @classmethod
    def _emb(cls, v):
        return check_embedding(v, "embedding")

    @field_validator("keywords")
    @classmethod
    def _kw(cls, v):
        return check_keywords(v, "keywords")


class MarketQuery(DashboardQuery):
    """A query (``text``, ``embedding`` and/or ``keywords``) to score every campaign at."""

    reserve_micros: Annotated[int, Field(ge=0, le=MAX_BID_MICROS)] | None = None
    tau: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)] | None = None
    run: bool = Field(False, description="Publisher only: also run the real auction (recorded and billable)")

    @model_validator(mode="after")
    def _query(self):
        if self.text is not None and self.embedding is not None:
            raise ValueError("text | embedding: give one of them, not both")
        if self.text is None and self.embedding is None and not self.keywords:
            raise ValueError("text | embedding | keywords: give a query")
        return self


Endpoint = Annotated[str, Field(min_length=1, max_length=64, description='A campaign id, or "query"')]


class SliceQuery(DashboardQuery):
    """The line ``x(t) = a + t (b − a)`` through two points: campaign centers or the query."""

    a: Endpoint
    b: Endpoint
    n: Annotated[int, Field(ge=21, le=801)] = 241
    t_min: Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)] = -0.6
    t_max: Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)] = 1.6

    @model_validator(mode="after")
    def _line(self):
        if self.t_max <= self.t_min:
            raise ValueError("t_max: must be greater than t_min")
        if self.a == self.b:
            raise ValueError("b: must differ from a")
        if "query" in (self.a, self.b) and self.text is None and self.embedding is None:
            raise ValueError('text | embedding: needed when a or b is "query"')
        if self.text is not None and self.embedding is not None:
            raise ValueError("text | embedding: give one of them, not both")
        return self


# -- reach: a center and σ chosen from evidence, previewed against the market ----------------------

ExampleText = Annotated[str, Field(min_length=1, max_length=5000, description="A conversation (its text), embedded")]
MAX_REACH_TEXTS = 400


class ReachRequest(_In):
    """Example conversations of customers (and optionally of non-customers) and queries to preview."""

    customers: Annotated[list[ExampleText], Field(min_length=2, max_length=200)] = Field(
        description="Conversations of your customers: the center is their mean embedding"
    )
    non_customers: Annotated[list[ExampleText], Field(max_length=200)] | None = Field(
        None, description="Conversations of people who are not: with them, σ is the maximum-likelihood fit"
    )
    queries: Annotated[list[ExampleText], Field(min_length=1, max_length=100)] | None = Field(
        None, description="Conversations to preview the campaign on (default: the customers and non-customers)"
    )
    bid_micros: Bid | None = Field(None, description="Preview at this bid (no preview without it)")
    sigma: Sigma | None = Field(None, description="Preview with this σ instead of the fitted one")
    reserve_micros: Annotated[int, Field(ge=0, le=MAX_BID_MICROS)] | None = None
    campaign_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Preview as a change of this campaign of yours (its current report leaves the preview)"
    )

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v):
        return check_sigma(v)

    @model_validator(mode="after")
    def _size(self):
        n = len(self.customers) + len(self.non_customers or []) + len(self.queries or [])
        if n > MAX_REACH_TEXTS:
            raise ValueError(f"customers | non_customers | queries: at most {MAX_REACH_TEXTS} texts in all, got {n}")
        return self


class ReachQuery(BaseModel):
    text: str
    won: bool
    price_micros: int = Field(description="What the campaign would pay there (Clarke pivot), 0 where it loses")
    value_micros: float = Field(description="The campaign's reported value bid·exp(−‖x − c‖²/σ²)")
    sqdist: float = Field(description="‖x − c‖² to the proposed center")
    winner: str | None = Field(description='"this campaign", one of your campaigns, "another advertiser" or null')
    bid_to_win_micros: int | None = Field(description="The smallest bid that wins this query (null: out of reach)")


class ReachPreviewOut(BaseModel):
    bid_micros: int
    sigma: float
    reserve_micros: int
    wins: int
    queries: list[ReachQuery]
    rivals: int = Field(description="Campaigns competing in the preview (eligible embedding campaigns)")


class ReachResult(BaseModel):
    center: list[float] = Field(description="The proposed center: create the campaign with it as `embedding`")
    sigma: float = Field(description="The proposed reach σ")
    fit: dict[str, Any] = Field(description="How σ was chosen and the evidence's squared distances to the center")
    preview: ReachPreviewOut | None
