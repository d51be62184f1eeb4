"""Set-based charges (services/charges.py) against the same charges run one by one.

The writer runs a batch's billing notices with :func:`charge_many`. Property: on two copies of one
database, any sequence of notices (first charges, repeats, another publisher's notice for an auction,
expired holds, unfilled or unknown auctions; several auctions of one campaign) leaves the database in
exactly the same state whether the notices run set-based or one after another, and every notice gets
the same answer; the money a charge returns is its campaign's money after the batch (the last charge
of each campaign returns exactly what it returns in order).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from adspace.exchange.core.common import as_utc
from adspace.exchange.store.charges import MANY_MAX, Charge, charge_many
from adspace.exchange.store.engine import make_engine

TABLES = ("auctions", "campaigns", "ledger_transactions", "ledger_postings", "ledger_accounts")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """A database with two publishers and held auctions on three campaigns (one unfilled auction too)."""
    from adspace.exchange.container import Exchange
    from adspace.exchange.core import schemas
    from adspace.exchange.core.config import Settings
    from adspace.exchange.services import Principal
    from adspace.exchange.services.auctions import AuctionAsk
    from adspace.exchange.store.tables import Auction

    from .conftest import campaign_body

    path = tmp_path_factory.mktemp("charges") / "base.db"
    settings = replace(Settings(), database_url=f"sqlite:///{path}", preload_model=False, publisher_hold_cap_bps=10_000)
    ex = Exchange(settings)
    ex.migrate()
    adv = ex.accounts.create("advertiser", "adv")
    who_adv = Principal(adv.id, "advertiser", "adv")
    pubs = [ex.accounts.create("publisher", f"pub{i}") for i in range(2)]
    who = [Principal(p.id, "publisher", p.name) for p in pubs]
    axes = np.eye(384)
    for k in range(3):
        body = campaign_body(axes[k].tolist(), sigma=0.3, bid=(k + 2) * 1_000_000, budget=10**12)
        ex.campaigns.create(who_adv, schemas.CampaignCreate(**body))
    auctions = []  # (auction id, publisher id)
    for i in range(12):
        r = ex.auctions.run(AuctionAsk(who[i % 2], embedding=axes[i % 3]))
        assert r.filled
        auctions.append((r.auction_id, who[i % 2].account_id))
    r = ex.auctions.run(AuctionAsk(who[0], embedding=-axes[0], reserve_micros=10**11))
    assert not r.filled
    auctions.append((r.auction_id, who[0].account_id))
    with ex.store.engine.connect() as conn:
        expiry = min(conn.execute(select(Auction.expires_at)).scalars())
    yield path, ex.accounts, auctions, [w.account_id for w in who], expiry
    ex.close()


def _copy(src, dst) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _dump(engine) -> dict:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"select * from {t} order by 1")).all() for t in TABLES}


notices = st.lists(
    st.tuples(st.integers(0, 13), st.integers(0, 1), st.booleans()),  # (auction, publisher, past its expiry)
    min_size=2,
    max_size=24,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=notices)
def test_set_based_charges_equal_the_same_charges_in_order(market, tmp_path, seq):
    base, accounts, auctions, pubs, expiry = market
    before = as_utc(expiry) - timedelta(seconds=5)
    after = as_utc(expiry) + timedelta(seconds=5)
    charges = []
    for j, (a, p, late) in enumerate(seq):
        aid = auctions[a][0] if a < len(auctions) else f"auc_unknown{j}"
        charges.append(Charge(pubs[p], aid, (after if late else before) + timedelta(microseconds=j), 7_000, accounts))

    results = {}
    dumps = {}
    for how in ("many", "in order"):
        path = tmp_path / f"{how.replace(' ', '_')}.db"
        _copy(base, path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            with engine.begin() as conn:
                if how == "many":
                    results[how] = charge_many(conn, charges)
                else:
                    results[how] = [ch(conn) for ch in charges]
            dumps[how] = _dump(engine)
        finally:
            engine.dispose()
            path.unlink()

    assert dumps["many"] == dumps["in order"]
    many, alone = results["many"], results["in order"]
    last_of_campaign = {}
    for i, r in enumerate(alone):
        if r is not None:
            last_of_campaign[r[1]] = i
    for i, (m, a) in enumerate(zip(many, alone, strict=True)):
        assert (m is None) == (a is None), i
        if a is None:
            continue
        assert m[0].model_dump() == a[0].model_dump() and m[1] == a[1]
        if last_of_campaign[a[1]] == i:
            assert tuple(m[2]) == tuple(a[2])  # the campaign's money after the batch


def test_a_long_run_of_charges_goes_in_parts(market, tmp_path):
    """More than MANY_MAX charges in a row: Charge.many takes them in parts, with the same effect."""
    base, accounts, auctions, pubs, expiry = market
    now = as_utc(expiry) - timedelta(seconds=5)
    held = [(aid, pub) for aid, pub in auctions[:-1]]
    charges = [Charge(pub, aid, now, 7_000, accounts) for _ in range(MANY_MAX // len(held) + 2) for aid, pub in held]
    assert len(charges) > MANY_MAX
    path = tmp_path / "long.db"
    _copy(base, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            out = Charge.many(conn, charges)
        with engine.connect() as conn:
            billed = conn.execute(text("select count(*) from auctions where status = 'billed'")).scalar_one()
            txs = conn.execute(text("select count(*) from ledger_transactions")).scalar_one()
    finally:
        engine.dispose()
    assert [r is not None for r in out] == [i < len(held) for i in range(len(charges))]
    assert billed == txs == len(held)
