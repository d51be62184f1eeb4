"""The stack's ceiling: what FastAPI + uvicorn serve on this machine when the endpoint does no work.

The same framework, server and request models as the exchange, with ``async`` endpoints (no thread-pool
hop: the best this stack does) that validate the same bodies and answer a small JSON:

* ``POST /v1/auctions``: parses and validates an :class:`adspace.exchange.core.schemas.AuctionRequest` (a
  384-float embedding or a conversation) behind the same bearer-token dependency shape;
* ``POST /v1/auctions/{auction_id}/billing``: the billing path's shape (path id, bearer token);
* the same two under ``/sync/...`` as plain functions, which FastAPI runs in its thread pool (the
  shape of the stack ceiling the exchange was first measured against: 808 requests/s there).

``benchmarks/exchange_load.py`` starts it beside the exchange and reports the exchange's throughput and
p99 as ratios of this one, measured in the same run by the same client (wrk).

Run: ``python benchmarks/stack_ceiling.py --port 8001``.
"""

from __future__ import annotations

import argparse
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adspace.exchange.core import schemas

bearer = HTTPBearer(auto_error=False)


async def caller(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    if creds is None or not creds.credentials:
        raise HTTPException(401, "Authorization: missing bearer API key")
    return creds.credentials[:12]


# At module level: FastAPI resolves the endpoints' (postponed) annotations in this module's globals, so a
# dependency defined inside create_app() would not be found (the parameter became a query field: 422).
def caller_sync(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    if creds is None or not creds.credentials:
        raise HTTPException(401, "Authorization: missing bearer API key")
    return creds.credentials[:12]


def create_app() -> FastAPI:
    app = FastAPI(title="stack ceiling")

    @app.post("/v1/auctions")
    async def auction(body: schemas.AuctionRequest, who: Annotated[str, Depends(caller)]) -> dict:
        return {"auction_id": "auc_ceiling", "filled": False, "price_micros": 0, "by": who}

    @app.post("/v1/auctions/{auction_id}/billing")
    async def bill(
        auction_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
        who: Annotated[str, Depends(caller)],
    ) -> dict:
        return {"auction_id": auction_id, "price_micros": 0, "by": who}

    # The same endpoints as plain functions (FastAPI runs them in its thread pool, one hop per request,
    # as the exchange did before its auction and billing endpoints became coroutines).
    @app.post("/sync/v1/auctions")
    def auction_sync(body: schemas.AuctionRequest, who: Annotated[str, Depends(caller_sync)]) -> dict:
        return {"auction_id": "auc_ceiling", "filled": False, "price_micros": 0, "by": who}

    @app.post("/sync/v1/auctions/{auction_id}/billing")
    def bill_sync(
        auction_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
        who: Annotated[str, Depends(caller_sync)],
    ) -> dict:
        return {"auction_id": auction_id, "price_micros": 0, "by": who}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
