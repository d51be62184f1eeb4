"""The FastAPI application: ``create_app(settings)``, the exchange's one ASGI wiring.

A request passes the guard (who is calling, the rate limit, the body limit: ``http/guard.py``), then
the fast lane, which serves the auction and billing operations (``http/fastlane.py``), or the routers
(``http/routes/``). Every error is answered in one form (``http/errors.py``).

Start-up loads the campaigns into the in-memory market and starts the pipeline and the thread that
releases expired holds; unless ``adspace serve`` has done so already, it first runs the Alembic
migrations and makes sure an admin key exists.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from adspace import __version__
from adspace.exchange.container import Exchange, freeze_heap
from adspace.exchange.core.config import Settings
from adspace.exchange.http import apidocs, errors
from adspace.exchange.http.fastlane import FastLane
from adspace.exchange.http.guard import Guard, RateLimits
from adspace.exchange.http.routes import accounts, auctions, campaigns, dashboard, openrtb, reports
from adspace.exchange.services.market_sync import start_market_sync

__all__ = ["create_app", "create_served_app", "prepare_database"]

log = logging.getLogger("adspace.exchange")

DESCRIPTION = """\
Ads inside LLM conversations, sold by the embedding-space VCG auction (the power-diagram auction):
the winner pays the Clarke pivot, computed by `adspace.mechanisms.vcg`.

Authenticate with `Authorization: Bearer <key>`. Money is integer **micros** (1e-6 of the currency).
"""


def prepare_database(ex: Exchange) -> str | None:
    """Run the migrations and make sure an admin exists; a newly generated admin key (to show once), else None."""
    ex.migrate()
    return ex.bootstrap_admin()


def create_app(settings: Settings | None = None, *, exchange: Exchange | None = None, prepare: bool = True) -> FastAPI:
    """The exchange's app. ``exchange``: one built by the caller (else the app builds its own at start-up);
    ``prepare=False``: the database was migrated and the admin key made before (``adspace serve``)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=settings.blas_threads, user_api="blas")  # for the whole process
        ex = exchange or Exchange(settings)
        if prepare:
            key = prepare_database(ex)
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
        docs_url=None,  # served offline by http/apidocs.py, not from a CDN
        redoc_url=None,
    )
    apidocs.install(app)
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict:
        ex: Exchange = request.app.state.exchange
        return {"status": "ok", "campaigns": len(ex.market), "model_loaded": ex.model_loaded}

    for r in (accounts.router, campaigns.router, auctions.router, reports.router, openrtb.router, dashboard.router):
        app.include_router(r)
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


def create_served_app() -> FastAPI:
    """The app of each process of ``adspace serve --workers N`` (settings from the environment): ``serve``
    has migrated the database and made the admin key, once, before starting them."""
    return create_app(prepare=False)
