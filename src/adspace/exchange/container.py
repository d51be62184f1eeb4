"""The exchange of one process: the services wired to one store, one market and one embedder.

Each service has one job and owns its transactions; they share the :class:`~adspace.exchange.store.Store`
(one unit of work: reads, ORM writes, the group-commit writer) and the in-memory
:class:`~adspace.exchange.domain.live_market.LiveMarket`:

* ``accounts``  -- keys and roles, accounts, ledger accounts
* ``campaigns`` -- campaigns, and the market cache they feed
* ``auctions``  -- clear (micro-batched), hold, record (group-committed), explain
* ``auction_reads`` -- a publisher's own auctions, read back
* ``billing``   -- charges exactly once, OpenRTB billing and loss notices
* ``clicks``    -- a click on a billed ad, once
* ``hold_expiry`` -- holds given back when the billing window closes (a sweeper thread) or the auction is lost
* ``ledger``    -- the double-entry ledger, read: postings, balances, the invariant check
* ``holds``     -- per-publisher caps on outstanding holds (in memory; budget griefing)
* ``reports``   -- per-campaign outcomes
* ``dashboard`` -- market map, slices, projection (what the market looks like at a query)
* ``activity``  -- series per time bucket, the admin's auction log and accounts, a publisher's auctions
* ``reach``     -- a center and σ fitted to example conversations, previewed against the market
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

import numpy as np

from adspace.exchange.core.common import Unavailable
from adspace.exchange.core.config import Settings, default_clear_threads
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.services.accounts import AccountService
from adspace.exchange.services.auction_reads import AuctionReads
from adspace.exchange.services.auctions import AuctionService
from adspace.exchange.services.billing import BillingService
from adspace.exchange.services.campaigns import CampaignService
from adspace.exchange.services.clicks import ClickService
from adspace.exchange.services.dashboard.activity import ActivityService
from adspace.exchange.services.dashboard.market_views import DashboardService
from adspace.exchange.services.hold_expiry import HoldExpiry
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.services.ledger import LedgerService
from adspace.exchange.services.reach_preview import ReachService
from adspace.exchange.services.reports import ReportService
from adspace.exchange.store import Store
from adspace.models.embedder import DIM, MODEL_NAME

__all__ = ["Exchange"]

log = logging.getLogger("adspace.exchange")


class Exchange:
    """The exchange's state and services (one per process)."""

    def __init__(self, settings: Settings, *, embedder=None):
        self.settings = settings
        self.store = Store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.market = LiveMarket(DIM, threads=settings.clear_threads or default_clear_threads())
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self.holds = PublisherHolds(settings.publisher_hold_cap_bps)
        self.accounts = AccountService(self.store)
        self.campaigns = CampaignService(self.store, self.market, self.embed)
        self.auctions = AuctionService(
            self.store, self.market, settings, self.embed, self.holds, cached_embedding=self.cached_embedding
        )
        self.auction_reads = AuctionReads(self.store)
        self.hold_expiry = HoldExpiry(self.store, self.market, settings, self.holds)
        self.billing = BillingService(self.store, self.market, settings, self.accounts, self.holds, self.hold_expiry)
        self.clicks = ClickService(self.store)
        self.ledger = LedgerService(self.store)
        self.reports = ReportService(self.store)
        self.activity = ActivityService(self.store)
        self.dashboard = DashboardService(self.store, self.market, settings, self.auctions, self.embed)
        self.reach = ReachService(self.store, settings, self.embed, self.dashboard.cache)

    @property
    def engine(self):
        return self.store.engine

    # -- life cycle ----------------------------------------------------------------------------------
    def migrate(self) -> None:
        self.store.migrate()
        self.accounts.ensure_exchange_ledger_account()

    def bootstrap_admin(self) -> str | None:
        """Make sure an admin exists. Returns a newly generated admin key (to print once), else None."""
        return self.accounts.bootstrap_admin(self.settings.admin_key)

    def load_market(self) -> None:
        """Fill the in-memory market from the database (at start), and the publishers' hold counts."""
        self.campaigns.load()
        if self.holds.enabled:
            self.holds.load(self.hold_expiry.held(), self.market.get)

    def start_background(self) -> None:
        self.auctions.start()
        self.hold_expiry.start()
        if self.settings.preload_model:
            threading.Thread(target=self._preload, name="adspace-model", daemon=True).start()

    def close(self) -> None:
        self.auctions.stop()
        self.hold_expiry.stop()
        self.store.close()

    # -- the embedding model -------------------------------------------------------------------------
    def _preload(self) -> None:
        try:
            self.embedder()
        except Exception:  # pragma: no cover - logged, text requests will report it
            log.exception("could not load the embedding model")
        freeze_heap()

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    def embedder(self):
        """The embedder, loaded once (concurrent first callers wait for the one load)."""
        with self._embedder_lock:
            if self._embedder is None:
                from adspace.models.embedder import get_embedder

                emb = get_embedder()
                emb.embed(["warm up"])  # loads the model
                self._embedder = emb
            return self._embedder

    def cached_embedding(self, text: str) -> np.ndarray | None:
        """The embedding of a text this process has embedded before, without loading anything."""
        emb = self._embedder
        return None if emb is None else emb.cached(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        try:
            return self.embedder().embed(texts)
        except Exception as exc:  # pragma: no cover - only when the model cannot load
            raise Unavailable(f"embedding model {MODEL_NAME} unavailable: {exc}") from exc

    # -- the process's counters ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Admin: counters of this process (auctions served; seconds embedding, clearing, in the database;
        how many auctions each clearing kernel call and each commit carried)."""
        t = self.auctions.timings_snapshot()
        emb = self._embedder
        w = self.store.writer
        m = self.market
        return {
            "campaigns": len(m),
            "market_rebuilds": m.rebuilds,
            "clearing_batches": m.batches,
            "clearing_queries": m.batched_queries,
            "auctions_per_kernel_call": m.batched_queries / m.batches if m.batches else None,
            "commits": w.batches,
            "committed_ops": w.ops,
            "ops_per_commit": w.ops / w.batches if w.batches else None,
            "auctions": t["auctions"],
            "seconds": {k: t[k] for k in ("embed", "clear", "db", "latency")},
            "writer_seconds": w.seconds,
            "embedding_cache": None if emb is None else {"hits": emb.hits, "misses": emb.misses},
        }


def freeze_heap() -> None:
    """Move every object alive now (the model's modules and weights, the market) out of the garbage
    collector's reach. They live as long as the process; without this, each full collection walks
    millions of them and stalls every request for a few hundred milliseconds (the p99 of
    ``benchmarks/exchange_load.py``). Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()
