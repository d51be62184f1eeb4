"""The demo market that ``adspace serve --demo`` seeds into an empty database."""

from __future__ import annotations

from sqlalchemy import func, select

from adspace.exchange import schemas
from adspace.exchange.services import Exchange
from adspace.exchange.store.models import Account

# (advertiser, campaign name, description, sigma, bid in micros, creative title, body, url)
DEMO = [
    (
        "TrailCo",
        "Trail running shoes",
        "trail running shoes with grippy soles for muddy mountain paths",
        0.9,
        2_500_000,
        "TrailCo Ridge 3",
        "Grip that holds on wet rock. Free returns.",
        "https://example.com/trailco",
    ),
    (
        "TrailCo",
        "Marathon training plans",
        "beginner marathon training plan, pacing and long runs",
        0.8,
        1_500_000,
        "Your first marathon, planned",
        "16 weeks, coached by TrailCo runners.",
        "https://example.com/trailco/plans",
    ),
    (
        "CodeCloud",
        "Managed PostgreSQL",
        "managed postgres database hosting, backups and replication for developers",
        0.9,
        3_000_000,
        "CodeCloud Postgres",
        "Point-in-time recovery from $9/month.",
        "https://example.com/codecloud",
    ),
    (
        "CodeCloud",
        "GPU notebooks",
        "GPU notebooks to train machine learning models and fine-tune LLMs",
        0.9,
        2_000_000,
        "GPUs by the minute",
        "Jupyter on H100s, billed per minute.",
        "https://example.com/codecloud/gpu",
    ),
    (
        "Hearth",
        "Weeknight recipes",
        "quick healthy dinner recipes for busy weeknights, vegetarian meal ideas",
        1.0,
        1_200_000,
        "Hearth: 20-minute dinners",
        "Plan a week of meals in one click.",
        "https://example.com/hearth",
    ),
    (
        "Hearth",
        "Cast iron cookware",
        "cast iron skillet cookware, seasoning and care",
        0.7,
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


def seed_demo(ex: Exchange) -> dict[str, str]:
    """Seed an empty database (no advertisers or publishers yet); return the keys to print, or {}."""
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
    return keys
