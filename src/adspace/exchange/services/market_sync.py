"""Several exchange processes on one PostgreSQL: keeping every process's in-memory market in step.

Each ``adspace serve`` process clears auctions against its own :class:`~adspace.exchange.domain.live_market.LiveMarket`,
a cache of the ``campaigns`` table. What must hold across processes, and how it does:

* **Budgets are never overspent.** Already guaranteed by the database, not by the caches: a win is
  held by one conditional ``UPDATE campaigns SET held_micros = held_micros + price WHERE
  budget − spent − held >= bid AND …`` (row-locked by PostgreSQL), so two processes racing for the
  last of a budget cannot both hold it; the loser refreshes its copy and re-runs the auction
  (:meth:`adspace.exchange.services.auctions.AuctionService.run`).
* **A billing notice charges exactly once**, whichever process receives it: the charge flips the
  auction from ``held`` to ``billed`` by a conditional ``UPDATE`` and the ledger has a unique
  ``(auction_id, kind)``; a repeat (to any process) reads back the first charge.
* **A campaign change made through one process is used by auctions on the others within a second.**
  This module: a trigger on ``campaigns`` sends a notification on ``adspace_campaigns`` for every
  inserted or updated row, and each process runs a listener thread (``LISTEN adspace_campaigns`` on
  its own autocommit connection) that applies it to its market. PostgreSQL delivers a notification
  only after the transaction commits. A change of anything but money (report, status, schedule,
  creative, soft delete; a new campaign) sends the campaign's id, and the listener re-reads those
  campaigns (batched over ``batch_seconds``, 50 ms, in one ``SELECT``). A charge or a release (money
  alone) sends the committed money columns themselves, ``m <id> <spent> <held> <daily_day or -> <daily_used>
  <money_version>``, applied in place by :meth:`LiveMarket.set_money` (ordered by ``money_version``)
  with no read at all. A hold (one per filled auction: the hot path) sends nothing: it only lowers
  what is left of a budget, so another process's copy is at worst optimistic about that campaign, and
  the conditional ``UPDATE`` of that process's next hold on it re-checks the budget in the database
  (a refused hold refreshes the copy and clears the auction again, as above). So a busy exchange
  neither notifies, re-reads nor rebuilds per auction, and no commit of an auction waits for
  PostgreSQL's notification queue lock (taken at commit by every transaction that notifies). The listener re-reads *everything* when it (re)connects, so a
notification lost while it was disconnected is made up for. SQLite is single-host and needs none of
this: :func:`start_market_sync` returns ``None`` there.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select, text

from adspace.exchange.store.tables import Campaign, CampaignKeyword

if TYPE_CHECKING:
    from adspace.exchange.container import Exchange

__all__ = ["CHANNEL", "MarketSync", "install_notify_trigger", "start_market_sync"]

log = logging.getLogger("adspace.exchange.services.market_sync")

CHANNEL = "adspace_campaigns"
_LOCK_KEY = 7_242_001  # pg_advisory_xact_lock key serializing the trigger's (re)creation

#: The columns a campaign's money is: a change of these alone is sent as its values.
MONEY_COLUMN_NAMES = ("spent_micros", "held_micros", "daily_day", "daily_used_micros", "money_version")
#: Every other column of ``campaigns`` (a change of any of them makes each process re-read the row).
#: tests/exchange/test_market_sync.py checks that the two lists cover the table.
REPORT_COLUMN_NAMES = (
    "id", "advertiser_id", "name", "kind", "description", "center", "sigma", "bid_micros", "budget_micros",
    "daily_budget_micros", "starts_at", "ends_at", "status", "creative_title", "creative_body", "creative_url",
    "created_at", "updated_at", "deleted_at",
)  # fmt: skip
_new_report = ", ".join(f"NEW.{c}" for c in REPORT_COLUMN_NAMES)
_old_report = ", ".join(f"OLD.{c}" for c in REPORT_COLUMN_NAMES)

_TRIGGER_SQL = [
    f"""
    CREATE OR REPLACE FUNCTION adspace_campaign_notify() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND ({_new_report}) IS NOT DISTINCT FROM ({_old_report}) THEN
            IF NEW.spent_micros = OLD.spent_micros AND NEW.held_micros >= OLD.held_micros
               AND NEW.daily_used_micros >= OLD.daily_used_micros
               AND NEW.daily_day IS NOT DISTINCT FROM OLD.daily_day THEN
                -- a hold: less budget left, nothing else. Other processes' copies stay optimistic,
                -- and the conditional UPDATE of their next hold on it re-checks (and refreshes them).
                RETURN NULL;
            END IF;
            -- a charge or a release: send the money itself (no process needs to re-read the row)
            PERFORM pg_notify('{CHANNEL}', concat_ws(' ', 'm', NEW.id, NEW.spent_micros, NEW.held_micros,
                COALESCE(NEW.daily_day, '-'), NEW.daily_used_micros, NEW.money_version));
        ELSE
            PERFORM pg_notify('{CHANNEL}', NEW.id);
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE OR REPLACE TRIGGER adspace_campaign_notify
    AFTER INSERT OR UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION adspace_campaign_notify()
    """,
]


def install_notify_trigger(engine) -> None:
    """Create (or replace) the notify trigger on ``campaigns``; safe to run from several processes."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        for sql in _TRIGGER_SQL:
            conn.execute(text(sql))


def _report_key(c) -> tuple:
    """Everything of a cached campaign but its money: equal keys mean only money changed."""
    center = None if c.center is None else c.center.tobytes()
    kws = tuple(sorted((k, v.tobytes()) for k, v in c.keywords.items()))
    return (
        c.kind, center, c.sigma, kws, c.bid_micros, c.budget_micros, c.daily_budget_micros, c.starts_at,
        c.ends_at, c.status, c.title, c.body, c.url, c.order, c.advertiser_id,
    )  # fmt: skip


class MarketSync:
    """The listener thread of one exchange process (PostgreSQL only)."""

    def __init__(self, exchange: Exchange, *, batch_seconds: float = 0.05, reconnect_seconds: float = 1.0):
        self.exchange = exchange
        self.batch_seconds = batch_seconds
        self.reconnect_seconds = reconnect_seconds
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0  # campaigns re-read and applied (for tests and metrics)
        self.money_applied = 0  # money-only changes applied from the notification itself

    # -- applying changes ----------------------------------------------------------------------------
    def refresh(self, ids: set[str] | None = None) -> int:
        """Re-read campaigns ``ids`` (all when ``None``) from the database and apply them to the market."""
        ex = self.exchange
        with ex.store.read() as s:
            q = select(Campaign)
            if ids is not None:
                q = q.where(Campaign.id.in_(sorted(ids)))
            camps = s.scalars(q).all()
            kw_q = select(CampaignKeyword)
            if ids is not None:
                kw_q = kw_q.where(CampaignKeyword.campaign_id.in_(sorted(ids)))
            kws = s.scalars(kw_q).all()
        from adspace.exchange.core.common import vec as _vec
        from adspace.exchange.services.campaigns import campaign_state

        points: dict[str, dict] = {}
        for k in kws:
            points.setdefault(k.campaign_id, {})[k.keyword] = _vec(k.point)
        market = ex.market
        for c in camps:
            if c.deleted_at is not None:
                market.remove(c.id)
                continue
            state = campaign_state(c, points.get(c.id, {}))
            old = market.get(c.id)
            if old is not None and _report_key(old) == _report_key(state):
                market.set_money_of(state)
            else:
                market.upsert(state)
        self.applied += len(camps)
        return len(camps)

    def _note(self, payload: str, ids: set[str]) -> None:
        """One notification: money applied at once (``m ...``), or a campaign id to re-read into ``ids``."""
        if not payload.startswith("m "):
            ids.add(payload)
            return
        try:
            _, cid, spent, held, day, used, version = payload.split(" ")
            money = {
                "spent": int(spent),
                "held": int(held),
                "daily_day": None if day == "-" else day,
                "daily_used": int(used),
                "version": int(version),
            }
        except ValueError:  # pragma: no cover - not ours: re-read whatever it names
            ids.add(payload.split(" ")[1] if " " in payload else payload)
            return
        self.exchange.market.set_money(cid, **money)
        self.money_applied += 1

    # -- the listener --------------------------------------------------------------------------------
    def start(self, *, wait: float = 10.0) -> MarketSync:
        self._thread = threading.Thread(target=self._run, name="adspace-market-sync", daemon=True)
        self._thread.start()
        self._listening.wait(wait)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def _conninfo(self) -> str:
        url = self.exchange.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.refresh()  # whatever changed before LISTEN (or while disconnected)
                    self._listening.set()
                    while not self._stop.is_set():
                        ids: set[str] = set()
                        for note in conn.notifies(timeout=0.5, stop_after=1):
                            self._note(note.payload, ids)
                        if not ids:
                            continue
                        # Gather what else arrives in the next few ms, then one SELECT for all of it.
                        deadline = time.monotonic() + self.batch_seconds
                        while (left := deadline - time.monotonic()) > 0:
                            got = False
                            for note in conn.notifies(timeout=left, stop_after=1):
                                self._note(note.payload, ids)
                                got = True
                            if not got:
                                break
                        self.refresh(ids)
            except Exception:  # pragma: no cover - connection lost: reconnect, then re-read everything
                self._listening.clear()
                if self._stop.is_set():
                    break
                log.exception("market sync: listener failed; reconnecting")
                self._stop.wait(self.reconnect_seconds)


def start_market_sync(exchange: Exchange) -> MarketSync | None:
    """Install the trigger and start the listener when the exchange runs on PostgreSQL; else ``None``."""
    if exchange.engine.dialect.name != "postgresql":
        return None
    install_notify_trigger(exchange.engine)
    return MarketSync(exchange).start()
