"""The market map of one query: every campaign's score at the point, and the outcome in words and numbers.

Visibility (:mod:`adspace.exchange.domain.visibility`) shapes every row and number: the admin sees
all; an advertiser its own campaigns in full and rivals as anonymous rows without score, value or
curve; a publisher campaign names and kinds, eligibility, the winner and the price, never a score or
reported value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adspace.exchange.core.common import Principal
from adspace.exchange.domain import visibility
from adspace.exchange.domain.live_market import Outcome
from adspace.exchange.services.dashboard.snapshot import Snapshot, finite
from adspace.mechanisms.vcg import Market

__all__ = ["Scores", "map_view", "score_rows"]


@dataclass
class Scores:
    """Per snapshot row: the score, reported value and squared distance at the query's point (``None``
    where not scored), and its reason to be left out (``None``: eligible); ``scored``, the rows scored."""

    reason: list[str | None]
    scored: list[int]
    score: list[float | None]
    value: list[float | None]
    sqdist: list[float | None]


def score_rows(snap: Snapshot, point: np.ndarray | None, keyword: str | None, tau: float | None) -> Scores:
    """Score the rows at ``point`` with the kernel: the embedding campaigns, and the keyword's campaigns
    sitting at distance 0 (other keyword campaigns are left out for ``keyword``; τ gates on distance)."""
    n = len(snap.rows)
    reason: list[str | None] = list(snap.reason)
    scored: list[int] = []
    centers, sigmas, bids = [], [], []
    for i, r in enumerate(snap.rows):
        if r.kind == "keyword":
            if keyword is None or keyword not in snap.keywords.get(r.id, []):
                reason[i] = reason[i] or "keyword"
                continue
            c, sg = snap.kw_point[keyword], 1.0  # σ is irrelevant at distance 0
        else:
            c, sg = snap.center[r.id], float(r.sigma)
        if point is None:
            continue
        scored.append(i)
        centers.append(c)
        sigmas.append(sg)
        bids.append(float(r.bid_micros))
    score: list[float | None] = [None] * n
    value: list[float | None] = [None] * n
    sqdist: list[float | None] = [None] * n
    if scored:
        m = Market(np.vstack(centers), np.asarray(sigmas), np.asarray(bids))
        sc = m.scores(point)  # the kernel's exact scores
        for k, i in enumerate(scored):
            score[i] = float(sc[k])
            value[i] = float(np.exp(sc[k]))
            d = m.centers[k] - point
            sqdist[i] = float(d @ d)
            if tau is not None and snap.rows[i].kind == "embedding" and reason[i] is None and sqdist[i] > tau:
                reason[i] = "relevance"
    return Scores(reason, scored, score, value, sqdist)


def map_view(
    snap: Snapshot, sc: Scores, out: Outcome, who: Principal, reserve: int, auction: dict | None
) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
    """The outcome and the campaign rows of the market map as ``who`` may see them, and the winner's
    snapshot row (``None``: no fill). ``auction``: the real auction's response when one was run."""
    winner = snap.index(out.campaign.id) if out.filled and out.campaign is not None else None
    runner = None
    rest = [i for i in sc.scored if sc.reason[i] is None and i != winner]
    if winner is not None and rest:
        runner = max(rest, key=lambda i: sc.score[i])
    shown_ad = auction["ad"] if auction and auction.get("ad") else None
    scores_ok = [visibility.sees_scores(who, r.advertiser_id) for r in snap.rows]
    rows, labels = _rows(snap, sc, who, winner, runner, scores_ok)
    outcome = _outcome(snap, sc, out, who, winner, runner, labels, scores_ok, reserve, shown_ad)
    return outcome, rows, winner


def _rows(
    snap: Snapshot, sc: Scores, who: Principal, winner: int | None, runner: int | None, scores_ok: list[bool]
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The rows, shaped by what the caller may see, and each row's label. Scores order the rows only for
    the admin; others see the rows they may score first (by score), then the rest by name."""
    score = sc.score
    adv_of = [r.advertiser_id for r in snap.rows]

    def sort_key(i: int):
        if who.kind == "admin":
            return (score[i] is None, -(score[i] or 0.0), i)
        return (not scores_ok[i], i != winner, -(score[i] or 0.0) if scores_ok[i] else 0.0, snap.rows[i].name, i)

    order = sorted(range(len(snap.rows)), key=sort_key)
    labels: dict[int, str] = {}
    k = 0
    rows_out = []
    for rank, i in enumerate(order, start=1):
        eligible = sc.reason[i] is None and score[i] is not None
        if visibility.sees_campaign(who, adv_of[i]):
            row = snap.describe(who, i)
            row.update(reason=sc.reason[i], sqdist=finite(sc.sqdist[i]))
        elif visibility.shows_name(who, adv_of[i]):
            r = snap.rows[i]  # what is public to a publisher: the name and kind, eligibility, winner
            row = {"campaign_id": r.id, "name": r.name, "mine": False, "kind": r.kind, "reason": None}
        else:
            k += 1
            row = {"campaign_id": None, "name": f"other #{k}", "mine": False, "kind": None, "reason": None}
        labels[i] = row["name"]
        see = scores_ok[i]
        row.update(
            label=labels[i],
            rank=rank,
            score=finite(score[i]) if see else None,
            value_micros=finite(sc.value[i]) if see else None,
            eligible=eligible,
            winner=i == winner,
            runner_up=i == runner and (see or who.kind == "admin"),
        )
        rows_out.append(row)
    return rows_out, labels


def _outcome(
    snap: Snapshot,
    sc: Scores,
    out: Outcome,
    who: Principal,
    winner: int | None,
    runner: int | None,
    labels: dict[int, str],
    scores_ok: list[bool],
    reserve: int,
    shown_ad: dict | None,
) -> dict[str, Any]:
    """The outcome's numbers the caller may see, the exclusion counts, and why, in words."""
    excluded: dict[str, int] = {}
    for rsn in sc.reason:
        if rsn is not None:
            excluded[rsn] = excluded.get(rsn, 0) + 1
    sees_winner = winner is not None and scores_ok[winner]
    sees_runner = runner is not None and scores_ok[runner]
    price_ok = visibility.sees_price(who)
    return {
        "filled": bool(out.filled),
        "point": out.point,
        "keyword": out.keyword,
        "winner": None if winner is None else labels[winner],
        "winner_campaign_id": None
        if winner is None or not (visibility.shows_name(who, snap.rows[winner].advertiser_id) or shown_ad)
        else snap.rows[winner].id,
        "runner_up": labels[runner] if sees_runner else None,
        "price_micros": int(out.price_micros) if price_ok else None,
        "reserve_micros": int(reserve),
        "score": finite(out.score) if sees_winner else None,
        "value_micros": finite(out.value_micros) if sees_winner else None,
        "runner_up_score": finite(out.runner_up_score) if sees_runner else None,
        "runner_up_value_micros": finite(math.exp(out.runner_up_score)) if sees_runner else None,
        "considered": int(out.considered),
        "total": int(out.total),
        "excluded": excluded,
        "below_reserve": bool(out.below_reserve),
        "why": _why(out, labels, winner, runner, reserve)
        if who.kind == "admin"
        else _why_in_words(out, labels, winner, sees_winner, price_ok),
    }


def _money(micros: float) -> str:
    """Currency units, as the dashboard prints money everywhere (micros / 1e6; small amounts keep 6 digits)."""
    v = micros / 1e6
    return f"{v:,.6f}" if v and abs(v) < 0.01 else f"{v:,.2f}"


def _why(out: Outcome, labels: dict[int, str], winner: int | None, runner: int | None, reserve: int) -> str:
    """The outcome for the admin: every number of the clearing."""
    if not out.filled:
        if out.below_reserve:
            return (
                f"No fill: the best eligible reported value is below the reserve ({_money(reserve)}). "
                "Reported value = bid · exp(−‖x − c‖²/σ²)."
            )
        return "No fill: no campaign is eligible for this query (see the reasons in the table)."
    name = labels.get(winner, "the winner")
    s = f"{name} wins with the highest score log(bid) − ‖x − c‖²/σ² = {out.score:.4f} "
    s += f"(reported value {_money(out.value_micros)})"
    if out.runner_up_score is not None and runner is not None:
        rv = math.exp(out.runner_up_score)
        s += f"; the runner-up {labels[runner]} scores {out.runner_up_score:.4f} (reported value {_money(rv)}). "
        s += "The price is the Clarke pivot: the runner-up's reported value"
    else:
        s += "; nobody else is eligible, so the Clarke pivot is 0"
    s += f", raised to the reserve ({_money(reserve)}), rounded down to whole micros: {_money(out.price_micros)}."
    return s


def _why_in_words(out: Outcome, labels: dict[int, str], winner: int | None, sees_winner: bool, price_ok: bool) -> str:
    """The outcome for a publisher or an advertiser: words, and numbers only of what they may see."""
    if not out.filled:
        if out.below_reserve:
            return "No fill: no eligible campaign's reported value reaches the reserve."
        return "No fill: no campaign is eligible for this query (see the reasons in the table)."
    name = labels.get(winner, "another advertiser's campaign")
    s = f"{name} wins: the highest score log(bid) − ‖x − c‖²/σ² among the {out.considered} eligible campaigns"
    if sees_winner:
        s += f" (its score {out.score:.4f}, reported value {out.value_micros:,.0f} micros)"
    s += ". It pays the Clarke pivot: the runner-up's reported value, raised to the reserve, rounded down"
    s += f" to whole micros: {out.price_micros} micros." if price_ok else "."
    return s
