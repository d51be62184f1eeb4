"""Dependencies shared by the routers: the exchange instance and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adspace.exchange.services import Exchange, Principal

#: A path id (campaign, auction, account): short, URL-safe characters only.
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


# The dependencies are coroutines: FastAPI runs plain functions in its thread pool, a hop per request.


async def get_exchange(request: Request) -> Exchange:
    return request.app.state.exchange


ExchangeDep = Annotated[Exchange, Depends(get_exchange)]


async def current(ex: ExchangeDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    if creds is None or not creds.credentials:
        raise HTTPException(401, "Authorization: missing bearer API key", headers={"WWW-Authenticate": "Bearer"})
    who = ex.accounts.cached(creds.credentials)  # a known key: no database, no thread
    if who is None:
        who = await run_in_threadpool(ex.accounts.authenticate, creds.credentials)
    if who is None:
        raise HTTPException(401, "Authorization: unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return who


def _role(*kinds: str):
    async def dep(who: Annotated[Principal, Depends(current)]) -> Principal:
        if who.kind not in kinds:
            raise HTTPException(403, f"Authorization: this endpoint is for {' or '.join(kinds)} keys, not {who.kind}")
        return who

    return dep


Caller = Annotated[Principal, Depends(current)]
Admin = Annotated[Principal, Depends(_role("admin"))]
Advertiser = Annotated[Principal, Depends(_role("advertiser"))]
Publisher = Annotated[Principal, Depends(_role("publisher"))]
