"""The PostgreSQL market sync's notifications: money alone travels in the payload, anything else is re-read."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from adspace.exchange.domain.live_market import CampaignState, LiveMarket
from adspace.exchange.services import market_sync as sync
from adspace.exchange.store.money_sql import MONEY_COLUMNS
from adspace.exchange.store.tables import Campaign


def test_trigger_columns_cover_the_campaigns_table():
    """Every column is either money (sent as values) or report (re-read): a new column cannot slip
    through as a money-only change."""
    cols = {c.name for c in Campaign.__table__.c}
    money, report = set(sync.MONEY_COLUMN_NAMES), set(sync.REPORT_COLUMN_NAMES)
    assert money.isdisjoint(report)
    assert money | report == cols
    assert money == {c.key for c in MONEY_COLUMNS}


def _sync_with(market: LiveMarket) -> sync.MarketSync:
    return sync.MarketSync(SimpleNamespace(market=market))


def test_money_notification_is_applied_without_a_read_and_in_version_order():
    m = LiveMarket(2)
    m.upsert(CampaignState(id="cmp_a", advertiser_id="adv", kind="embedding", center=np.zeros(2), sigma=1.0,
                           bid_micros=10, budget_micros=1000, order=(1,)))  # fmt: skip
    s = _sync_with(m)
    ids: set[str] = set()
    s._note("m cmp_a 5 7 2026-11-26 7 3", ids)
    assert ids == set()
    c = m.get("cmp_a")
    assert (c.spent_micros, c.held_micros, c.daily_day, c.daily_used_micros, c.money_version) == (
        5,
        7,
        "2026-11-26",
        7,
        3,
    )
    s._note("m cmp_a 1 1 - 0 2", ids)  # older version: ignored
    assert (m.get("cmp_a").spent_micros, m.get("cmp_a").money_version) == (5, 3)
    s._note("m cmp_a 9 0 - 0 4", ids)
    c = m.get("cmp_a")
    assert (c.spent_micros, c.held_micros, c.daily_day, c.money_version) == (9, 0, None, 4)


def test_other_notifications_name_the_campaign_to_re_read():
    s = _sync_with(LiveMarket(2))
    ids: set[str] = set()
    s._note("cmp_b", ids)
    assert ids == {"cmp_b"}
