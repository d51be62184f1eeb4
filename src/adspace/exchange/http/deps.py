"""Dependencies shared by the routers: the exchange instance and the authenticated caller.

The fast lane checks its callers with the same two functions (:func:`identify`, :func:`require`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer

from adspace.exchange.container import Exchange
from adspace.exchange.core.identity import SCOPE_KEY, UNKNOWN, AuthHeaderError, Identity, parse_authorization
from adspace.exchange.services import Principal

#: A path id (campaign, auction, account): short, URL-safe characters only.
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

#: Declares the scheme in the OpenAPI document; the header itself is read by :func:`identify`.
bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


# The dependencies are coroutines: FastAPI runs plain functions in its thread pool, a hop per request.


async def get_exchange(request: Request) -> Exchange:
    return request.app.state.exchange


ExchangeDep = Annotated[Exchange, Depends(get_exchange)]


async def identify(scope, ex: Exchange) -> Identity:
    """The caller: as the guard resolved it (its one parse of ``Authorization``), else resolved here
    the same way (an app mounted without the guard)."""
    ident = scope.get(SCOPE_KEY)
    if ident is not None:
        return ident
    try:
        key, problem = parse_authorization(scope.get("headers") or ())
    except AuthHeaderError as exc:
        raise HTTPException(400, str(exc)) from None
    if key is None:
        return Identity(None, problem)
    who = ex.accounts.cached(key) or await run_in_threadpool(ex.accounts.authenticate, key)
    return Identity(who, None if who is not None else UNKNOWN)


def require(ident: Identity, kinds: tuple[str, ...] | None = None) -> Principal:
    """The authenticated caller, if its key is of one of ``kinds`` (any kind when ``None``); else 401
    (no key, or not a valid one) or 403 (a key of another kind)."""
    who = ident.principal
    if who is None:
        raise HTTPException(401, ident.problem, headers={"WWW-Authenticate": "Bearer"})
    if kinds is not None and who.kind not in kinds:
        raise HTTPException(403, f"Authorization: this endpoint is for {' or '.join(kinds)} keys, not {who.kind}")
    return who


async def current(request: Request, ex: ExchangeDep, _scheme: Annotated[object, Depends(bearer)]) -> Principal:
    return require(await identify(request.scope, ex))


def _role(*kinds: str):
    async def dep(who: Annotated[Principal, Depends(current)]) -> Principal:
        return require(Identity(who, None), kinds)

    return dep


Caller = Annotated[Principal, Depends(current)]
Admin = Annotated[Principal, Depends(_role("admin"))]
Advertiser = Annotated[Principal, Depends(_role("advertiser"))]
Publisher = Annotated[Principal, Depends(_role("publisher"))]
