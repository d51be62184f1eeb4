"""The two endpoints that carry an exchange's traffic, answered without the framework's per-request work.

``POST /v1/auctions`` (one per conversation turn) and ``POST /v1/auctions/{auction_id}/billing`` (one
per impression) are nearly every request an exchange serves. Through FastAPI each pays for matching
the path against every route, solving the route's dependency graph, a Starlette ``Request``, and a
two-pass body parse (``json.loads``, then validation of the Python objects). Profiled under load,
that was more of the event loop's time than the auction itself (docs/exchange.md, "Performance").

This ASGI layer sits behind the :class:`~adspace.exchange.http.guard.Guard` (which has already
authenticated the caller, applied the rate limit and bounded the body) and answers those two
requests itself when they are well formed and come from a publisher key: the body is validated by
pydantic-core straight from its bytes (:meth:`~pydantic.BaseModel.model_validate_json`, the same
model and validators as the route), and the same functions as the routes (:func:`auction_json`,
:func:`billing_json`) run the auction and build the answer.

Anything else goes on to the FastAPI routes unchanged: another key kind (403) or none (401), a body
that fails validation (422, in the routes' usual error format), an id that is not a valid path id, a
body that is not ``application/json``. So the routes stay the reference: they are what the OpenAPI
document describes, and the answers to every request the lane declines.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from adspace.exchange.core.identity import SCOPE_KEY
from adspace.exchange.http import schemas
from adspace.exchange.http.guard import replaying, send_detail, send_json_body
from adspace.exchange.services import ServiceError, conversation_text

__all__ = ["FastLane", "auction_json", "billing_json"]

_AUCTIONS = "/v1/auctions"
_ITEM = "/v1/auctions/"
_BILLING = "/billing"
#: The routes' path-id rule (api/deps.Id).
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def auction_json(ex, who, body: schemas.AuctionRequest) -> bytes:
    """Run one auction for a validated request; the response body (``schemas.AuctionResponse``)."""
    text = conversation_text([m.model_dump() for m in body.messages]) if body.messages is not None else None
    result = await ex.auctions.run_async(
        who,
        embedding=body.embedding,
        text=text,
        keywords=body.keywords,
        reserve_micros=body.reserve_micros,
        tau=body.tau,
    )
    # Serialised once by pydantic-core, from the committed result (no second validation on the way out).
    answer = result.response()
    return answer.__pydantic_serializer__.to_json(answer)


async def billing_json(ex, who, auction_id: str) -> bytes:
    """Bill one auction (exactly once); the response body (``schemas.BillingResult``)."""
    result = await ex.billing.bill_async(who, auction_id)
    return result.__pydantic_serializer__.to_json(result)


def _is_json(headers) -> bool:
    for k, v in headers:
        if k == b"content-type":
            return v.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class FastLane:
    """ASGI middleware: answers well-formed auction and billing requests of publishers (module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        auction_id = None
        if path != _AUCTIONS:
            if not (path.startswith(_ITEM) and path.endswith(_BILLING)):
                return await self.app(scope, receive, send)
            auction_id = path[len(_ITEM) : -len(_BILLING)]
            if _ID.fullmatch(auction_id) is None:
                return await self.app(scope, receive, send)
        ident = scope.get(SCOPE_KEY)
        who = None if ident is None else ident.principal
        if who is None or who.kind != "publisher":
            return await self.app(scope, receive, send)
        ex = scope["app"].state.exchange
        if auction_id is not None:
            return await self._run(send, billing_json(ex, who, auction_id))
        # The body (the guard has bounded its size); replayed to the routes if the lane declines it.
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        request = None
        if _is_json(scope.get("headers") or ()):
            try:
                request = schemas.AuctionRequest.model_validate_json(body)
            except ValidationError:
                request = None  # the route answers 422, in its usual form
        if request is None:
            return await self.app(scope, replaying(body, receive), send)
        return await self._run(send, auction_json(ex, who, request))

    @staticmethod
    async def _run(send, work) -> None:
        try:
            body = await work
        except ServiceError as exc:  # as the app's handler answers it (app.py)
            return await send_detail(send, exc.status, exc.detail)
        await send_json_body(send, 200, body)
