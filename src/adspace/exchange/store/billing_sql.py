"""The statements of billing's other writes: giving a hold back (expiry, loss notices) and a click.

Built once with SQLAlchemy Core. Each flip is a conditional ``UPDATE ... RETURNING`` on the auction's
status, so of two concurrent releases (or a release and a charge) exactly one matches.
"""

from __future__ import annotations

from sqlalchemy import bindparam, case, update

from adspace.exchange.store.money_sql import MONEY_COLUMNS
from adspace.exchange.store.tables import Auction, Campaign

__all__ = ["CLICK", "FLIP_EXPIRED", "FLIP_LOST", "UNHOLD"]

_a = Auction.__table__.c
_c = Campaign.__table__.c

#: A held auction whose billing window closed by ``p_by`` -> ``expired``; returns its price, campaign
#: and day (parameters ``p_auction``, ``p_by``).
FLIP_EXPIRED = (
    update(Auction.__table__)
    .where(_a.id == bindparam("p_auction"), _a.status == "held", _a.expires_at <= bindparam("p_by"))
    .values(status="expired")
    .returning(_a.price_micros, _a.campaign_id, _a.day)
)

#: A held auction lost (an OpenRTB loss notice) -> ``expired``, whatever its window (parameter ``p_auction``).
FLIP_LOST = (
    update(Auction.__table__)
    .where(_a.id == bindparam("p_auction"), _a.status == "held")
    .values(status="expired")
    .returning(_a.price_micros, _a.campaign_id, _a.day)
)

#: The hold of ``p_price`` given back to campaign ``p_campaign`` (and to its daily use, when the hold was
#: taken on the day it still counts, ``p_day``); returns the campaign's money (:data:`MONEY_COLUMNS`).
UNHOLD = (
    update(Campaign.__table__)
    .where(_c.id == bindparam("p_campaign"))
    .values(
        held_micros=_c.held_micros - bindparam("p_price"),
        daily_used_micros=case(
            (_c.daily_day == bindparam("p_day"), _c.daily_used_micros - bindparam("p_price")),
            else_=_c.daily_used_micros,
        ),
        money_version=_c.money_version + 1,
    )
    .returning(*MONEY_COLUMNS)
)

#: The first click on a billed auction of publisher ``p_publisher`` at ``p_now`` (a repeat matches nothing).
CLICK = (
    update(Auction.__table__)
    .where(
        _a.id == bindparam("p_auction"),
        _a.publisher_id == bindparam("p_publisher"),
        _a.status == "billed",
        _a.clicked_at.is_(None),
    )
    .values(clicked_at=bindparam("p_now"))
)
