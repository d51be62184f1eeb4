"""A Python client for the adspace exchange: one typed method per endpoint, sync and async.

Example (needs a running exchange; the README's walkthrough runs it as a test)::

    from adspace.client import Client

    adv = Client("http://127.0.0.1:8000", api_key="adsk_adv_...")
    camp = adv.create_campaign("Trail shoes", bid_micros=2_500_000, budget_micros=500_000_000,
        description="trail running shoes for muddy mountain paths", sigma=0.6,
        creative={"title": "TrailCo Ridge 3", "url": "https://example.com/trailco"})

``AsyncClient`` has the same methods, to be awaited. Answers are the exchange's own pydantic models
(:mod:`adspace.exchange.core.schemas`), so fields are typed and checked; the dashboard's JSON views come
back as dicts.

Errors. An answer other than 2xx raises :class:`ApiError` (a subclass per status:
:class:`AuthError`, :class:`NotFound`, :class:`Conflict`, :class:`InvalidRequest`,
:class:`RateLimited`, :class:`ServerError`) carrying ``status``, ``field`` (the request field the
exchange named, e.g. ``"sigma"`` or ``"creative.url"``) and ``message``. A connection that fails
raises :class:`TransportError`.

Retries. Billing notices and clicks are idempotent on the exchange (a repeat charges nothing and
answers the same), so :meth:`Client.bill`, :meth:`Client.click` and :meth:`Client.notice` retry on
connection errors, timeouts, 429 and 5xx answers, with exponential back-off, and so do reads (GET).
Every other call retries
only what cannot have reached the exchange (a refused connection) and 429 (refused before any work),
so an auction or a new campaign is never made twice.

HTTP is httpx's API (the ``httpx2`` package pinned in requirements.lock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx2 as httpx
from pydantic import TypeAdapter

from adspace.exchange.core import schemas

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Client",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TransportError",
]

DEFAULT_URL = "http://127.0.0.1:8000"


# -- errors ----------------------------------------------------------------------------------------


class TransportError(Exception):
    """The exchange could not be reached (after the retries the call allows)."""


class ApiError(Exception):
    """The exchange answered with an error: ``status``, the ``field`` it named, and its ``message``."""

    def __init__(self, status: int, field: str | None, message: str, detail: Any = None):
        super().__init__(f"{status} {field + ': ' if field else ''}{message}")
        self.status, self.field, self.message, self.detail = status, field, message, detail


class AuthError(ApiError):
    """401 (missing, unknown or revoked key) or 403 (this key's role may not call this)."""


class NotFound(ApiError):
    """404: no such object of yours."""


class Conflict(ApiError):
    """409: the request contradicts the object's state."""


class InvalidRequest(ApiError):
    """400 or 422: a field's value is not allowed (``field`` names it)."""


class RateLimited(ApiError):
    """429: too many requests for this key."""


class ServerError(ApiError):
    """5xx."""


_BY_STATUS = {401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict, 400: InvalidRequest, 422: InvalidRequest}


def _named(text: str) -> str | None:
    """``"sigma: must be > 0"`` -> ``"sigma"``; ``"text | embedding: give one"`` -> ``"text | embedding"``."""
    head, sep, _ = text.partition(":")
    head = head.strip()
    return head if sep and head and all(" " not in p.strip() for p in head.split("|")) else None


def _field_and_message(detail: Any) -> tuple[str | None, str]:
    """The exchange's ``detail``: a list of validation errors (with ``loc``), or ``"field: message"``."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        return (".".join(loc) if loc else _named(msg)), msg
    if isinstance(detail, str):
        return _named(detail), detail
    return None, str(detail)


def _error(r: httpx.Response) -> ApiError:
    try:
        body = r.json()
    except ValueError:
        body = r.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    field, message = _field_and_message(detail)
    cls = _BY_STATUS.get(r.status_code) or (
        RateLimited if r.status_code == 429 else ServerError if r.status_code >= 500 else ApiError
    )
    return cls(r.status_code, field, message, detail)


# -- one call --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    model: Any = None  # a pydantic model or TypeAdapter type; None: the JSON as it is
    idempotent: bool = False  # retry on any transport error, 429 and 5xx
    empty: Any = None  # what a 204 answers

    def parse(self, r: httpx.Response) -> Any:
        if r.status_code == 204 or not r.content:
            return self.empty
        if not r.headers.get("content-type", "").startswith("application/json"):
            return r.text
        data = r.json()
        return data if self.model is None else _adapter(self.model).validate_python(data)


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(tp: Any) -> TypeAdapter:
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def _retryable(call: _Call, exc: Exception | None, status: int | None) -> bool:
    safe = call.idempotent or call.method == "GET"
    if exc is not None:
        return safe or isinstance(exc, httpx.ConnectError)
    return status == 429 or (safe and status is not None and status >= 500)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items() if v is not None}


# -- the endpoints, once for both clients ----------------------------------------------------------


class _Endpoints:
    """Every endpoint of the exchange. ``_do`` runs a call (returns the answer, or an awaitable of it)."""

    def _do(self, call: _Call) -> Any:  # pragma: no cover - implemented by Client and AsyncClient
        raise NotImplementedError

    # health and identity
    def healthz(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/healthz"))

    def me(self) -> schemas.AccountOut:
        return self._do(_Call("GET", "/v1/me", model=schemas.AccountOut))

    # accounts (admin)
    def create_advertiser(self, name: str) -> schemas.AccountCreated:
        return self._do(_Call("POST", "/v1/advertisers", {"name": name}, model=schemas.AccountCreated))

    def list_advertisers(self) -> list[schemas.AccountOut]:
        return self._do(_Call("GET", "/v1/advertisers", model=list[schemas.AccountOut]))

    def create_publisher(self, name: str) -> schemas.AccountCreated:
        return self._do(_Call("POST", "/v1/publishers", {"name": name}, model=schemas.AccountCreated))

    def list_publishers(self) -> list[schemas.AccountOut]:
        return self._do(_Call("GET", "/v1/publishers", model=list[schemas.AccountOut]))

    def rotate_key(self, account_id: str) -> schemas.AccountCreated:
        """A new API key for an advertiser or publisher; its earlier keys stop working."""
        return self._do(_Call("POST", f"/v1/accounts/{account_id}/keys", model=schemas.AccountCreated))

    # campaigns (advertiser)
    def create_campaign(
        self,
        name: str,
        *,
        bid_micros: int,
        budget_micros: int,
        creative: dict[str, str],
        description: str | None = None,
        embedding: Sequence[float] | None = None,
        keywords: Sequence[str] | None = None,
        sigma: float | None = None,
        daily_budget_micros: int | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        status: Literal["active", "paused"] = "active",
    ) -> schemas.CampaignOut:
        body = _clean(
            {
                "name": name,
                "description": description,
                "embedding": None if embedding is None else [float(v) for v in embedding],
                "keywords": None if keywords is None else list(keywords),
                "sigma": sigma,
                "bid_micros": bid_micros,
                "budget_micros": budget_micros,
                "daily_budget_micros": daily_budget_micros,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "status": status,
                "creative": creative,
            }
        )
        return self._do(_Call("POST", "/v1/campaigns", body, model=schemas.CampaignOut))

    def list_campaigns(
        self, *, status: Literal["active", "paused"] | None = None, limit: int = 100, offset: int = 0
    ) -> list[schemas.CampaignOut]:
        params = _clean({"status": status, "limit": limit, "offset": offset})
        return self._do(_Call("GET", "/v1/campaigns", params=params, model=list[schemas.CampaignOut]))

    def get_campaign(self, campaign_id: str) -> schemas.CampaignOut:
        return self._do(_Call("GET", f"/v1/campaigns/{campaign_id}", model=schemas.CampaignOut))

    def update_campaign(self, campaign_id: str, **fields: Any) -> schemas.CampaignOut:
        """Change the fields given (as in :class:`adspace.exchange.core.schemas.CampaignUpdate`; ``None`` clears
        ``daily_budget_micros``, ``starts_at`` and ``ends_at``)."""
        body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
        return self._do(_Call("PATCH", f"/v1/campaigns/{campaign_id}", body, model=schemas.CampaignOut))

    def delete_campaign(self, campaign_id: str) -> None:
        return self._do(_Call("DELETE", f"/v1/campaigns/{campaign_id}"))

    def reach(
        self,
        customers: Sequence[str],
        *,
        non_customers: Sequence[str] | None = None,
        queries: Sequence[str] | None = None,
        bid_micros: int | None = None,
        sigma: float | None = None,
        reserve_micros: int | None = None,
        campaign_id: str | None = None,
    ) -> schemas.ReachResult:
        """A center and σ fitted to example conversations; with ``bid_micros``, a preview on ``queries``."""
        body = _clean(
            {
                "customers": list(customers),
                "non_customers": None if non_customers is None else list(non_customers),
                "queries": None if queries is None else list(queries),
                "bid_micros": bid_micros,
                "sigma": sigma,
                "reserve_micros": reserve_micros,
                "campaign_id": campaign_id,
            }
        )
        return self._do(_Call("POST", "/v1/campaigns/reach", body, model=schemas.ReachResult))

    # auctions (publisher)
    def run_auction(
        self,
        messages: Sequence[dict[str, str]] | None = None,
        *,
        embedding: Sequence[float] | None = None,
        keywords: Sequence[str] | None = None,
        reserve_micros: int | None = None,
        tau: float | None = None,
    ) -> schemas.AuctionResponse:
        body = _clean(
            {
                "messages": None if messages is None else list(messages),
                "embedding": None if embedding is None else [float(v) for v in embedding],
                "keywords": None if keywords is None else list(keywords),
                "reserve_micros": reserve_micros,
                "tau": tau,
            }
        )
        return self._do(_Call("POST", "/v1/auctions", body, model=schemas.AuctionResponse))

    def list_auctions(self, *, limit: int = 100, offset: int = 0) -> list[schemas.AuctionOut]:
        params = {"limit": limit, "offset": offset}
        return self._do(_Call("GET", "/v1/auctions", params=params, model=list[schemas.AuctionOut]))

    def get_auction(self, auction_id: str) -> schemas.AuctionOut:
        return self._do(_Call("GET", f"/v1/auctions/{auction_id}", model=schemas.AuctionOut))

    def bill(self, auction_id: str) -> schemas.BillingResult:
        """The ad was shown: charge the winner (exactly once; retried safely)."""
        call = _Call("POST", f"/v1/auctions/{auction_id}/billing", model=schemas.BillingResult, idempotent=True)
        return self._do(call)

    def click(self, auction_id: str) -> schemas.ClickResult:
        """The ad was clicked (recorded once; retried safely)."""
        call = _Call("POST", f"/v1/auctions/{auction_id}/click", model=schemas.ClickResult, idempotent=True)
        return self._do(call)

    # OpenRTB 2.6
    def openrtb_auction(self, bid_request: dict[str, Any]) -> dict[str, Any] | None:
        """An OpenRTB BidResponse, or ``None`` for 204 (no bid)."""
        return self._do(_Call("POST", "/openrtb2/auction", bid_request))

    def notice(self, url: str) -> dict[str, Any] | None:
        """Fire a notice URL from a bid (nurl, burl or lurl); idempotent on the exchange, retried safely."""
        return self._do(_Call("GET", url, idempotent=True))

    # reports and the ledger
    def campaign_report(self) -> schemas.CampaignReportPage:
        return self._do(_Call("GET", "/v1/reports/campaigns", model=schemas.CampaignReportPage))

    def campaign_report_csv(self) -> str:
        return self._do(_Call("GET", "/v1/reports/campaigns", params={"format": "csv"}))

    def ledger(self, *, after: int = 0, limit: int = 100) -> schemas.LedgerPage:
        params = {"after": after, "limit": limit}
        return self._do(_Call("GET", "/v1/ledger", params=params, model=schemas.LedgerPage))

    def ledger_check(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/v1/ledger/check"))

    def stats(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/v1/stats"))

    # the dashboard's views
    def market_map(
        self,
        text: str | None = None,
        *,
        embedding: Sequence[float] | None = None,
        keywords: Sequence[str] | None = None,
        reserve_micros: int | None = None,
        tau: float | None = None,
        run: bool = False,
    ) -> dict[str, Any]:
        body = _clean(
            {
                "text": text,
                "embedding": None if embedding is None else [float(v) for v in embedding],
                "keywords": None if keywords is None else list(keywords),
                "reserve_micros": reserve_micros,
                "tau": tau,
                "run": run,
            }
        )
        return self._do(_Call("POST", "/v1/dashboard/market", body))

    def market_slice(self, a: str, b: str, *, text: str | None = None, n: int = 241) -> dict[str, Any]:
        return self._do(_Call("POST", "/v1/dashboard/slice", _clean({"a": a, "b": b, "text": text, "n": n})))

    def projection(self, *, limit: int = 200) -> dict[str, Any]:
        return self._do(_Call("GET", "/v1/dashboard/projection", params={"limit": limit}))

    def series(self, window: Literal["1h", "24h", "7d", "30d"] = "24h") -> dict[str, Any]:
        return self._do(_Call("GET", "/v1/dashboard/series", params={"window": window}))

    def auction_log(self, *, limit: int = 100, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        params = _clean({"limit": limit, "offset": offset, "status": status})
        return self._do(_Call("GET", "/v1/dashboard/auctions", params=params))

    def accounts(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/v1/dashboard/accounts"))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client(_Endpoints):
    """The exchange, synchronously. ``with Client(url, api_key=key) as c: ...`` closes the connections."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ):
        self.retries, self.backoff = retries, backoff
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def _do(self, call: _Call) -> Any:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                r = self._http.request(call.method, call.path, json=call.json, params=call.params)
            except httpx.TransportError as exc:
                if last or not _retryable(call, exc, None):
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if r.is_success:
                    return call.parse(r)
                if last or not _retryable(call, None, r.status_code):
                    raise _error(r)
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """The exchange, asynchronously: the same methods as :class:`Client`, each to be awaited."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.retries, self.backoff = retries, backoff
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def _run(self, call: _Call) -> Any:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                r = await self._http.request(call.method, call.path, json=call.json, params=call.params)
            except httpx.TransportError as exc:
                if last or not _retryable(call, exc, None):
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if r.is_success:
                    return call.parse(r)
                if last or not _retryable(call, None, r.status_code):
                    raise _error(r)
            await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _do(self, call: _Call) -> Any:
        return self._run(call)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
