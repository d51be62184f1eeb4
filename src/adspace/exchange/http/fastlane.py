"""The fast lane: it serves ``POST /v1/auctions`` and ``POST /v1/auctions/{auction_id}/billing``.

These two operations (an auction per conversation turn, a billing notice per impression) are nearly
every request an exchange serves. Through FastAPI each would pay for matching the path against every
route, solving the route's dependency graph, a Starlette ``Request``, and a two-pass body parse
(``json.loads``, then validation of the Python objects): profiled under load, more of the event
loop's time than the auction itself (docs/exchange.md, "Performance").

This ASGI layer sits behind the :class:`~adspace.exchange.http.guard.Guard` (which has already
authenticated the caller, applied the rate limit and bounded the body) and answers **every** request
to those two paths itself, errors included; none goes on to the routes. A publisher's JSON body is
validated by pydantic-core straight from its bytes (:meth:`~pydantic.BaseModel.model_validate_json`,
the route's model and validators). Any other request is checked in the order FastAPI checks the
route, and refused with the route's error (:mod:`adspace.exchange.http.errors`):

1. the body, read as FastAPI reads a declared JSON body (JSON for an ``application/json`` or
   ``+json`` content type, the raw bytes for another, missing when empty): JSON that does not decode
   is a 422 (``json_invalid``, at its character position);
2. the caller (:func:`~adspace.exchange.http.deps.require`): no valid key is a 401, a key that is not
   a publisher's a 403;
3. the parameters: an auction id that breaks the path-id rule, or a body that fails validation
   (at ``["body", ...]``), is a 422.

Then the same two functions run the operation and build the answer: :func:`auction_json` and
:func:`billing_json`. The routes of :mod:`adspace.exchange.http.routes.auctions` declare the same
models and call these functions too: they are the operations' contract in the OpenAPI document, and
serve them only in an app built without the lane (``ADSPACE_FAST_LANE=0``). The tests send the same
requests, good and bad, to an app with the lane and to one without, and get the same answers.
"""

from __future__ import annotations

import email.message
import json
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from adspace.exchange.core import schemas
from adspace.exchange.core.identity import SCOPE_KEY
from adspace.exchange.http.deps import Id, identify, require
from adspace.exchange.http.errors import send_exception, send_json
from adspace.exchange.services import ServiceError, conversation_text
from adspace.exchange.services.auctions import AuctionAsk

__all__ = ["FastLane", "auction_json", "billing_json"]

_AUCTIONS = "/v1/auctions"
#: ``/v1/auctions/{auction_id}/billing``: the id is one path segment, as the router matches it.
_BILLING = re.compile(r"/v1/auctions/([^/]+)/billing")
_PUBLISHER = ("publisher",)
#: The routes' path-id rule (:data:`adspace.exchange.http.deps.Id`), as FastAPI validates it.
_AUCTION_ID = TypeAdapter(Id)
_MISSING = object()


async def auction_json(ex, who, body: schemas.AuctionRequest) -> bytes:
    """Run one auction for a validated request; the response body (``schemas.AuctionResponse``)."""
    text = conversation_text([m.model_dump() for m in body.messages]) if body.messages is not None else None
    ask = AuctionAsk(
        who,
        embedding=body.embedding,
        text=text,
        keywords=body.keywords,
        reserve_micros=body.reserve_micros,
        tau=body.tau,
    )
    result = await ex.auctions.run_async(ask)
    # Serialised once by pydantic-core, from the committed result (no second validation on the way out).
    answer = result.response()
    return answer.__pydantic_serializer__.to_json(answer)


async def billing_json(ex, who, auction_id: str) -> bytes:
    """Bill one auction (exactly once); the response body (``schemas.BillingResult``)."""
    result = await ex.billing.bill_async(who, auction_id)
    return result.__pydantic_serializer__.to_json(result)


def _is_json(headers) -> bool:
    """Whether FastAPI decodes the body as JSON: a content type ``application/json`` or ``application/*+json``
    (none at all: the body is left as bytes)."""
    for k, v in headers:
        if k == b"content-type":
            if v == b"application/json":
                return True
            m = email.message.Message()
            m["content-type"] = v.decode("latin-1")
            sub = m.get_content_subtype()
            return m.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json"))
    return False


def _located(prefix: tuple[str, ...], exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)])


def _decoded(body: bytes, is_json: bool) -> Any:
    """The body as the route receives it, before validation (step 1 of the module docstring)."""
    if not body:
        return _MISSING
    if not is_json:
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        err = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**err, "ctx": {"error": e.msg}}]) from None
    except Exception:  # not text in a JSON encoding
        raise HTTPException(400, "There was an error parsing the body") from None


def _validated(model: type[BaseModel], value: Any) -> BaseModel:
    """The decoded body validated as FastAPI validates a declared body (step 3)."""
    if value is _MISSING:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        raise _located(("body",), exc) from None


async def _read(receive) -> bytes | None:
    """The whole body (the guard has bounded its size); ``None`` when the client has gone."""
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks)


class FastLane:
    """ASGI middleware: serves the auction and billing operations (module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == _AUCTIONS:
            body = await _read(receive)
            if body is None:
                return
            work = _auction(scope, body)
        elif (m := _BILLING.fullmatch(path)) is not None:
            work = _billing(scope, m.group(1))
        else:
            return await self.app(scope, receive, send)
        try:
            answer = await work
        except (RequestValidationError, ServiceError, HTTPException) as exc:
            return await send_exception(send, exc)
        await send_json(send, 200, answer)


async def _auction(scope, body: bytes) -> bytes:
    ex = scope["app"].state.exchange
    ident = scope.get(SCOPE_KEY)
    who = None if ident is None else ident.principal
    is_json = _is_json(scope.get("headers") or ())
    request = None
    if body and is_json and who is not None and who.kind == "publisher":
        try:
            request = schemas.AuctionRequest.model_validate_json(body)
        except ValidationError:
            pass  # refused below, with the route's error
    if request is None:
        value = _decoded(body, is_json)
        who = require(await identify(scope, ex), _PUBLISHER)
        request = _validated(schemas.AuctionRequest, value)
    return await auction_json(ex, who, request)


async def _billing(scope, auction_id: str) -> bytes:
    ex = scope["app"].state.exchange
    who = require(await identify(scope, ex), _PUBLISHER)
    try:
        auction_id = _AUCTION_ID.validate_python(auction_id, from_attributes=True)
    except ValidationError as exc:
        raise _located(("path", "auction_id"), exc) from None
    return await billing_json(ex, who, auction_id)
