"""The FastAPI application: ``create_app(settings)``.

Start-up runs the Alembic migrations, makes sure an admin key exists, loads the campaigns into the
in-memory market and starts the thread that releases expired holds.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from adspace import __version__
from adspace.exchange.container import Exchange, freeze_heap
from adspace.exchange.core.config import Settings
from adspace.exchange.http import apidocs as docs
from adspace.exchange.http.fastlane import FastLane
from adspace.exchange.http.guard import Guard, RateLimits
from adspace.exchange.http.routes import accounts, auctions, campaigns, openrtb, reports
from adspace.exchange.services import ServiceError
from adspace.exchange.services.market_sync import start_market_sync

log = logging.getLogger("adspace.exchange")

DESCRIPTION = """\
Ads inside LLM conversations, sold by the embedding-space VCG auction (the power-diagram auction):
the winner pays the Clarke pivot, computed by `adspace.mechanisms.vcg`.

Authenticate with `Authorization: Bearer <key>`. Money is integer **micros** (1e-6 of the currency).
"""


def create_app(settings: Settings | None = None, *, exchange: Exchange | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=settings.blas_threads, user_api="blas")  # for the whole process
        ex = exchange or Exchange(settings)
        ex.migrate()
        key = ex.bootstrap_admin()
        if key:
            log.warning("Generated admin API key (shown once): %s", key)
            print(f"Admin API key (shown once, store it): {key}", flush=True)
        ex.load_market()
        freeze_heap()  # again once the model is loaded (Exchange._preload)
        ex.start_background()
        # PostgreSQL: other exchange processes' campaign changes reach this market (LISTEN/NOTIFY).
        sync = start_market_sync(ex)
        app.state.exchange = ex
        app.state.market_sync = sync
        try:
            yield
        finally:
            if sync is not None:
                sync.stop()
            ex.close()

    app = FastAPI(
        title="adspace exchange",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by api.docs, not from a CDN
        redoc_url=None,
    )
    docs.install(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError):
        # Location, message and type of each error (the offending input is not echoed back: it may be
        # large, or not representable in JSON, such as NaN).
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ServiceError)
    async def _service_error(_req: Request, exc: ServiceError):
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail})

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict:
        ex: Exchange = request.app.state.exchange
        return {"status": "ok", "campaigns": len(ex.market), "model_loaded": ex.model_loaded}

    for r in (accounts.router, campaigns.router, auctions.router, reports.router, openrtb.router):
        app.include_router(r)
    from adspace.exchange.http.routes import dashboard  # the dashboard at / and its JSON views (issue 6)

    app.include_router(dashboard.router)
    if settings.fast_lane:
        app.add_middleware(FastLane)  # behind the guard: the caller is known, limited and its body bounded
    app.add_middleware(
        Guard,
        max_body_bytes=settings.max_body_bytes,
        limits=RateLimits(settings.limits(), settings.rate_limit_table_size)
        if settings.rate_limit_per_second > 0
        else None,
    )
    return app
