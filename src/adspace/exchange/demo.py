"""The demo market that ``adspace serve --demo`` seeds into an empty database, and a day of its traffic.

The traffic is real: every auction, bill and click goes through the exchange's own services (so
holds, spend, the ledger and the reports agree), as the demo publisher "Demo Chat App". Each demo
auction is recorded with ``source = "demo"`` and then moved back to a time in the past 24 hours (a
daily rhythm: quiet at night, busy in the evening), so the dashboard's charts have a day to show;
the dashboard labels them as simulated.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

from sqlalchemy import func, select, update

from adspace.exchange.container import Exchange
from adspace.exchange.core import schemas
from adspace.exchange.core.common import utcnow
from adspace.exchange.services import Principal
from adspace.exchange.services.auctions import AuctionAsk
from adspace.exchange.store.tables import Account, Auction, LedgerTransaction

# (advertiser, campaign name, description, sigma, bid in micros, creative title, body, url). The reaches
# follow the distance scale measured in docs/markets.md: related conversations sit at ‖x − c‖² ≈ 0.3–1,
# unrelated ones at 1.5–2, and σ ≈ 0.5–0.65 keeps a few per cent of the bid for the latter.
DEMO = [
    (
        "TrailCo",
        "Trail running shoes",
        "trail running shoes with grippy soles for muddy mountain paths",
        0.6,
        2_500_000,
        "TrailCo Ridge 3",
        "Grip that holds on wet rock. Free returns.",
        "https://example.com/trailco",
    ),
    (
        "TrailCo",
        "Marathon training plans",
        "beginner marathon training plan, pacing and long runs",
        0.55,
        1_500_000,
        "Your first marathon, planned",
        "16 weeks, coached by TrailCo runners.",
        "https://example.com/trailco/plans",
    ),
    (
        "CodeCloud",
        "Managed PostgreSQL",
        "managed postgres database hosting, backups and replication for developers",
        0.6,
        3_000_000,
        "CodeCloud Postgres",
        "Point-in-time recovery from $9/month.",
        "https://example.com/codecloud",
    ),
    (
        "CodeCloud",
        "GPU notebooks",
        "GPU notebooks to train machine learning models and fine-tune LLMs",
        0.6,
        2_000_000,
        "GPUs by the minute",
        "Jupyter on H100s, billed per minute.",
        "https://example.com/codecloud/gpu",
    ),
    (
        "Hearth",
        "Weeknight recipes",
        "quick healthy dinner recipes for busy weeknights, vegetarian meal ideas",
        0.65,
        1_200_000,
        "Hearth: 20-minute dinners",
        "Plan a week of meals in one click.",
        "https://example.com/hearth",
    ),
    (
        "Hearth",
        "Cast iron cookware",
        "cast iron skillet cookware, seasoning and care",
        0.5,
        1_800_000,
        "Hearth Skillet",
        "Pre-seasoned, made to last a lifetime.",
        "https://example.com/hearth/skillet",
    ),
]
DEMO_KEYWORDS = [
    (
        "Hearth",
        "Sourdough starter kit",
        ["sourdough", "bread baking"],
        1_000_000,
        "Sourdough in a box",
        "Live starter, flour and a guide.",
        "https://example.com/hearth/sourdough",
    )
]


# What the demo publisher's users ask: near the demo campaigns, and (a third) about anything else.
DEMO_QUERIES = [
    "which trail shoes grip on wet rock and mud?",
    "my running shoes slip on muddy descents, what should I buy?",
    "how do I train for my first marathon in 16 weeks?",
    "how fast should my long runs be for a marathon?",
    "what is the easiest way to host a postgres database with backups?",
    "how do I set up replication for PostgreSQL?",
    "where can I rent a GPU to fine-tune a small language model?",
    "cheapest way to train a machine learning model on an H100",
    "quick vegetarian dinner ideas for a busy weeknight",
    "healthy 20-minute recipes for two",
    "how do I season a cast iron skillet?",
    "my sourdough loaves come out flat, what am I doing wrong?",
    "how do I keep a sourdough starter alive?",
    "what should I see in Lisbon in four days?",
    "how do I file taxes as a freelancer?",
    "best board games for a family of four",
    "how do I fix a squeaky door hinge?",
    "what is a good first guitar for an adult beginner?",
    "tips for a job interview at a startup",
    "how often should I water a cactus?",
]
DEMO_KEYWORD_SHARE = 0.08  # auctions sent with the keyword "sourdough" (routed to the keyword campaign)
DEMO_RESERVE_MICROS = 20_000  # the demo publisher's reserve: 0.02 per impression


def _hour_weight(hour: float) -> float:
    """Relative traffic by local hour: a night trough, a lunchtime bump and an evening peak."""
    return 0.15 + 0.6 * math.exp(-(((hour - 12.5) / 2.0) ** 2)) + 1.0 * math.exp(-(((hour - 20.0) / 2.5) ** 2))


def seed_traffic(ex: Exchange, publisher: Principal, *, auctions: int = 240, seed: int = 2026) -> dict[str, int]:
    """A day of demo traffic for ``publisher``: auctions, bills (85 % of filled) and clicks (6 % of billed).

    Runs through the real services, then dates each auction (and its charge) back into the past 24
    hours; held auctions older than the hold window are released as expired, as the sweeper would.
    Returns counts. Deterministic for a given ``seed`` (the market decides who wins).
    """
    rng = random.Random(seed)
    now = utcnow()
    minutes = list(range(24 * 60))
    weights = [_hour_weight(((now - timedelta(minutes=m)).hour + 0.5) % 24) for m in minutes]
    ago = sorted(rng.choices(minutes, weights=weights, k=auctions), reverse=True)
    ex.embed(DEMO_QUERIES)  # embedded once, in one batch (the embedder caches by text)
    counts = {"auctions": 0, "filled": 0, "billed": 0, "clicked": 0}
    shifts: list[tuple[str, timedelta, timedelta | None, timedelta | None]] = []
    for m in ago:
        text = rng.choice(DEMO_QUERIES)
        keywords = ["sourdough"] if rng.random() < DEMO_KEYWORD_SHARE else None
        result = ex.auctions.run(
            AuctionAsk(publisher, text=text, keywords=keywords, reserve_micros=DEMO_RESERVE_MICROS, source="demo")
        )
        counts["auctions"] += 1
        back = timedelta(minutes=m, seconds=rng.randrange(60))
        bill_after = click_after = None
        if result.filled:
            counts["filled"] += 1
            if rng.random() < 0.85:
                ex.billing.bill(publisher, result.auction_id)
                counts["billed"] += 1
                bill_after = timedelta(seconds=rng.randrange(2, 40))
                if rng.random() < 0.06:
                    ex.clicks.record(publisher, result.auction_id)
                    counts["clicked"] += 1
                    click_after = bill_after + timedelta(seconds=rng.randrange(5, 300))
        shifts.append((result.auction_id, back, bill_after, click_after))
    hold = timedelta(seconds=ex.settings.hold_seconds)
    with ex.store.tx() as s:
        for auction_id, back, bill_after, click_after in shifts:
            at = now - back
            values = {"created_at": at, "expires_at": at + hold}
            if bill_after is not None:
                values["billed_at"] = at + bill_after
                s.execute(
                    update(LedgerTransaction)
                    .where(LedgerTransaction.auction_id == auction_id)
                    .values(created_at=at + bill_after)
                )
            if click_after is not None:
                values["clicked_at"] = at + click_after
            s.execute(update(Auction).where(Auction.id == auction_id).values(**values))
    ex.hold_expiry.release_expired(limit=auctions)
    return counts


def seed_demo(ex: Exchange, *, traffic: int = 240) -> dict[str, str]:
    """Seed an empty database (no advertisers or publishers yet) with the demo market and ``traffic``
    demo auctions over the past day; return the keys to print, or {} when the database has accounts."""
    with ex.store.read() as s:
        n = s.scalar(select(func.count()).select_from(Account).where(Account.kind != "admin"))
    if n:
        return {}
    keys: dict[str, str] = {}
    advertisers = {}
    for name in dict.fromkeys(row[0] for row in DEMO + DEMO_KEYWORDS):
        acc = ex.accounts.create("advertiser", name)
        advertisers[name] = ex.accounts.principal(acc.id)
        keys[f"advertiser {name}"] = acc.api_key
    pub = ex.accounts.create("publisher", "Demo Chat App")
    keys["publisher Demo Chat App"] = pub.api_key
    for adv, cname, desc, sigma, bid, title, body, url in DEMO:
        ex.campaigns.create(
            advertisers[adv],
            schemas.CampaignCreate(
                name=cname,
                description=desc,
                sigma=sigma,
                bid_micros=bid,
                budget_micros=1000 * bid,
                creative=schemas.Creative(title=title, body=body, url=url),
            ),
        )
    for adv, cname, kws, bid, title, body, url in DEMO_KEYWORDS:
        ex.campaigns.create(
            advertisers[adv],
            schemas.CampaignCreate(
                name=cname,
                keywords=kws,
                bid_micros=bid,
                budget_micros=1000 * bid,
                creative=schemas.Creative(title=title, body=body, url=url),
            ),
        )
    if traffic:
        seed_traffic(ex, ex.accounts.principal(pub.id), auctions=traffic)
    return keys
