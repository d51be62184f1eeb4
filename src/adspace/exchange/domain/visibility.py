"""What each role may see: the exchange's disclosure policy, written down and enforced here only.

Every view that shows an auction or the market -- the auction's ``explain`` (REST response, auction
reads, the OpenRTB bid's ``ext``), the admin's auction log, and the dashboard's market map, slices and
projection -- asks this module what the caller may see.

* **Publisher** (it sells the impression and sets the reserve): the winner (the ad it shows: campaign
  id, name, kind), the price it is paid, why in words, and how many campaigns were considered and
  excluded by cause. Never another party's bid, reported value or score, nor who the runner-up was,
  nor an ordering of campaigns by score. Why: a seller who knows the winner's value before choosing
  the reserve sets ``reserve = value − 1`` and takes nearly all of it (a winner whose Clarke price is
  2,000,000 micros paid 2,999,999): bids seen by the seller undo the mechanism's truthfulness. For the
  same reason a publisher may name a reserve only on a real, recorded auction: on the free market map,
  fill or no fill at a chosen reserve would give the winner's value away by bisection.
* **Advertiser**: its own campaigns in full (report, score, reported value, why not eligible); every
  other campaign as an anonymous row with only whether it is eligible; never a competitor's bid,
  reported value or score (at a keyword's point the reported value *is* the bid), nor the price of a
  hypothetical auction (it is the runner-up's reported value). No reserve on the market map (fill at a
  chosen reserve would bisect the winning competitor's value).
* **Admin**: everything.

The price of a real auction is the runner-up's reported value (or the reserve): the publisher is paid
it and the winner is charged it, so it cannot be hidden from them; what must stay hidden is the gap
above it (the winner's value), which only a reserve could take.

Storage: the auction row keeps the **full** explain (winner's score and value, the runner-up's
score), because the admin's audit needs them to check each price after the fact and they cannot be
recomputed once campaigns change. Every read filters it through :func:`explain_for`; no reader
returns the stored JSON as is.
"""

from __future__ import annotations

from typing import Any

from adspace.exchange.core.common import Forbidden, Principal

__all__ = [
    "explain_for",
    "check_market_query",
    "may_slice",
    "sees_campaign",
    "sees_price",
    "sees_scores",
    "shows_name",
]

#: Explain keys every role sees (besides ``winner``, shaped below).
_PUBLIC_EXPLAIN = ("mechanism", "point", "keyword", "campaigns_total", "considered", "excluded", "reason")


def sees_campaign(who: Principal, advertiser_id: str | None) -> bool:
    """Whether ``who`` sees a campaign in full (its report: center, σ, bid; scores and values)."""
    return who.kind == "admin" or (who.kind == "advertiser" and advertiser_id == who.account_id)


def sees_scores(who: Principal, advertiser_id: str | None) -> bool:
    """Whether ``who`` sees a campaign's score and reported value at a query."""
    return sees_campaign(who, advertiser_id)


def shows_name(who: Principal, advertiser_id: str | None) -> bool:
    """Whether a campaign appears under its name and kind (publishers: yes, what is public; a rival's
    campaign to an advertiser: no, it is an anonymous row)."""
    return who.kind == "publisher" or sees_campaign(who, advertiser_id)


def sees_price(who: Principal) -> bool:
    """Whether the price of an auction computed on the market map is shown (not to advertisers)."""
    return who.kind in ("admin", "publisher")


def may_slice(who: Principal) -> None:
    """Slices draw campaigns' score parabolas: admin and advertisers (their own) only."""
    if who.kind == "publisher":
        raise Forbidden("slice: publishers set reserves, so they do not see campaigns' score curves")


def check_market_query(who: Principal, *, reserve_micros: int | None, run: bool) -> None:
    """A reserve on the market map: the admin's what-if, or a publisher's real auction (``run``)."""
    if reserve_micros is None or who.kind == "admin" or (who.kind == "publisher" and run):
        return
    if who.kind == "publisher":
        raise Forbidden(
            "reserve_micros: a publisher names a reserve only on a real auction (run: true); on the free "
            "map, fill or no fill at chosen reserves would reveal the winner's value"
        )
    raise Forbidden("reserve_micros: advertisers do not set reserves (they would reveal competitors' values)")


def explain_for(who: Principal, ex: dict[str, Any], *, winner_advertiser_id: str | None = None) -> dict[str, Any]:
    """The part of a stored explain that ``who`` may see (the admin: all of it)."""
    if who.kind == "admin":
        return ex
    out = {k: ex[k] for k in _PUBLIC_EXPLAIN if k in ex}
    w = ex.get("winner")
    if w is None:
        out["winner"] = None
    elif who.kind == "advertiser" and winner_advertiser_id == who.account_id:
        out["winner"] = {k: w[k] for k in ("campaign_id", "score", "value_micros") if k in w}
    else:
        out["winner"] = {"campaign_id": w.get("campaign_id")}
    return out
