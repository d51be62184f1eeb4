"""The in-memory market on its own: σ → 0 keyword limit, daily reset at UTC midnight, price rounding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.exchange.domain.eligibility import CampaignTerms
from adspace.exchange.domain.live_market import CampaignState, LiveMarket, Query
from adspace.mechanisms.vcg import clear


def state(i, *, kind="embedding", center=None, sigma=1.0, bid=1_000_000, keywords=None, **kw):
    kw.setdefault("budget_micros", 10**12)
    return CampaignState(
        id=f"c{i}",
        advertiser_id="a",
        kind=kind,
        center=center,
        sigma=sigma if kind == "embedding" else None,
        keywords=keywords or {},
        bid_micros=bid,
        order=(i,),
        **kw,
    )


NOW = datetime(2030, 5, 1, 23, 59, 59, tzinfo=UTC)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 10**9), min_size=2, max_size=8))
def test_keyword_bidders_only_is_second_price(bids):
    m = LiveMarket(4)
    point = np.array([0.3, -1.0, 2.0, 0.5])
    for i, b in enumerate(bids):
        m.upsert(state(i, kind="keyword", bid=b, keywords={"shoes": point}))
    m.upsert(state(99, kind="keyword", bid=10**10, keywords={"boots": point + 1}))  # another keyword
    out = m.run(None, keywords=["shoes"], reserve_micros=0, tau=None, now=NOW)
    order = sorted(range(len(bids)), key=lambda i: (-bids[i], i))
    assert out.campaign.id == f"c{order[0]}"
    assert out.price_micros == bids[order[1]]  # exactly the second-highest bid
    assert out.point == "keyword" and out.considered == len(bids) and out.excluded["keyword"] == 1


def test_keyword_point_equals_the_sigma_to_zero_limit():
    """At the keyword's point, keyword campaigns with tiny σ in the kernel give the same outcome."""
    rng = np.random.default_rng(1)
    point = rng.normal(size=8)
    emb = [state(i, center=point + rng.normal(size=8) * 0.3, sigma=0.5, bid=int(b)) for i, b in enumerate([3e6, 2e6])]
    kws = [state(10 + i, kind="keyword", bid=int(b), keywords={"k": point}) for i, b in enumerate([2.5e6, 1e6])]
    m = LiveMarket(8)
    for c in emb + kws:
        m.upsert(c)
    out = m.run(None, keywords=["k"], reserve_micros=0, tau=None, now=NOW)
    centers = np.vstack([c.center for c in emb] + [point for _ in kws])
    sigmas = np.array([0.5, 0.5, 1e-9, 1e-9])
    bids = np.array([3e6, 2e6, 2.5e6, 1e6])
    ref = clear(point, centers, sigmas, bids)
    assert out.campaign.id == (emb + kws)[int(ref.winner[0])].id
    assert out.price_micros == int(np.floor(ref.payment[0]))


def test_daily_budget_resets_at_utc_midnight():
    m = LiveMarket(2)
    today = NOW.strftime("%Y-%m-%d")
    m.upsert(state(0, center=np.zeros(2), bid=5, daily_budget_micros=8, daily_day=today, daily_used_micros=4))
    assert not m.run(np.zeros(2), keywords=None, reserve_micros=0, tau=None, now=NOW).filled
    tomorrow = NOW + timedelta(seconds=1)
    out = m.run(np.zeros(2), keywords=None, reserve_micros=0, tau=None, now=tomorrow)
    assert out.filled and out.excluded["daily_budget"] == 0


def test_price_rounds_down_and_never_exceeds_bid():
    m = LiveMarket(1)
    m.upsert(state(0, center=np.zeros(1), sigma=1.0, bid=1_000_000))
    m.upsert(state(1, center=np.array([0.5]), sigma=1.0, bid=1_000_000))
    out = m.run(np.zeros(1), keywords=None, reserve_micros=0, tau=None, now=NOW)
    assert out.campaign.id == "c0"
    assert out.price_micros == int(np.floor(1_000_000 * np.exp(-0.25)))  # 778800.78... -> 778800
    # equal reports at the same point: the tie goes to the earlier campaign, which pays its own bid
    m.upsert(state(2, center=np.zeros(1), sigma=1.0, bid=1_000_000))
    out = m.run(np.zeros(1), keywords=None, reserve_micros=0, tau=None, now=NOW)
    assert out.campaign.id == "c0" and out.price_micros == 1_000_000


def test_money_updates_apply_in_version_order():
    m = LiveMarket(1)
    m.upsert(state(0, center=np.zeros(1), bid=5, budget_micros=10))
    m.set_money("c0", spent=6, held=0, daily_day=None, daily_used=0, version=2)
    m.set_money("c0", spent=0, held=0, daily_day=None, daily_used=0, version=1)  # stale: ignored
    assert m.get("c0").spent_micros == 6
    assert not m.run(np.zeros(1), keywords=None, reserve_micros=0, tau=None, now=NOW).filled


def test_in_place_changes_do_not_rebuild_and_are_seen():
    m = LiveMarket(1)
    for i, b in enumerate([5, 4, 3]):
        m.upsert(state(i, center=np.zeros(1), bid=b))
    run = lambda: m.run(np.zeros(1), keywords=None, reserve_micros=0, tau=None, now=NOW)  # noqa: E731
    assert run().campaign.id == "c0"
    rebuilds = m.rebuilds
    m.upsert(state(0, center=np.zeros(1), bid=5, status="paused"))  # status: in place
    out = run()
    assert out.campaign.id == "c1" and out.price_micros == 3 and out.excluded["paused"] == 1
    m.remove("c1")  # removal: in place
    out = run()
    assert out.campaign.id == "c2" and out.total == 2 and out.price_micros == 0
    assert m.rebuilds == rebuilds
    m.upsert(state(2, center=np.zeros(1), bid=7))  # a new bid: rebuilt before the next auction
    assert run().price_micros == 0 and m.rebuilds == rebuilds + 1
    m.upsert(state(0, center=np.zeros(1), bid=5))
    assert run().price_micros == 5


def test_auctions_cleared_in_batches_match_clearing_alone():
    """Batching auctions changes nothing: each outcome equals clearing that auction alone (mixed reserves,
    relevance gates and exclusions in one batch)."""
    rng = np.random.default_rng(7)
    d, n = 16, 300
    centers = rng.normal(size=(n, d))
    sigmas = rng.uniform(0.5, 2.0, n)
    bids = rng.integers(1_000, 5_000_000, n)
    m = LiveMarket(d)
    for i in range(n):
        budget = 10**12 if i % 7 else 0  # some campaigns out of budget: per-query masks differ by reserve too
        m.upsert(state(i, center=centers[i], sigma=float(sigmas[i]), bid=int(bids[i]), budget_micros=budget))
    queries = centers[rng.integers(0, n, 400)] + rng.normal(size=(400, d)) * 0.3
    reserves = rng.choice([0, 10_000, 2_000_000], 400)
    taus = rng.choice([None, 5.0], 400)

    batch = [Query(queries[i], None, int(reserves[i]), None if taus[i] is None else float(taus[i])) for i in range(400)]
    outs = []
    for lo in range(0, 400, 50):
        outs += m.run_batch(batch[lo : lo + 50], NOW)
    assert m.batched_queries == 400 and m.batches == 8 * 3  # one kernel call per distinct reserve and batch
    alive = np.array([i % 7 != 0 for i in range(n)])
    for i, out in enumerate(outs):
        elig = alive.copy()
        if taus[i] is not None:
            elig &= ((centers - queries[i]) ** 2).sum(axis=1) <= taus[i]
        ref = clear(queries[i], centers, sigmas, bids.astype(float), reserve=float(reserves[i]), eligible=elig)
        w = int(ref.winner[0])
        assert out.filled == (w >= 0)
        if w >= 0:
            assert out.campaign.id == f"c{w}"
            assert out.price_micros == min(int(np.floor(ref.payment[0])), int(bids[w]))


def _eligibility_from_scratch(terms: CampaignTerms, now: datetime):
    """The campaign-level eligibility and its counts, computed over every campaign (the reference)."""
    camp_ok, reasons = terms.reasons(now.timestamp(), now.date().toordinal())
    counts, left = {}, terms.arrays["live"].copy()
    for name in ("paused", "schedule", "budget", "daily_budget"):
        hit = reasons[name] & left
        counts[name] = int(hit.sum())
        left &= ~hit
    return camp_ok, counts


_T0 = datetime(2030, 5, 1, 23, 0, tzinfo=UTC).timestamp()
_op = st.one_of(
    st.tuples(
        st.just("money"), st.integers(0, 7), st.integers(0, 3_000), st.sampled_from([None, "2030-05-01", "2030-05-02"])
    ),
    st.tuples(st.just("terms"), st.integers(0, 7), st.sampled_from(["active", "paused"]), st.integers(-3, 3)),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("tick"), st.integers(0, 2_400)),  # seconds: crosses schedules and midnight
)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(_op, max_size=30))
def test_eligibility_kept_in_place_equals_a_full_scan(ops):
    """The market keeps each campaign's eligibility up to date as its money, terms and schedule change
    (and rescans on a new day or when a schedule starts or ends): after any sequence of changes it is
    what a scan of every campaign gives."""
    m = LiveMarket(2)
    for i in range(8):
        m.upsert(
            state(
                i,
                center=np.array([float(i), 0.0]),
                bid=1_000,
                budget_micros=2_000 + 500 * i,
                daily_budget_micros=None if i % 3 else 1_500,
                starts_at=_T0 + 600 * (i % 4) - 600,
                ends_at=_T0 + 1800 + 300 * i,
            )
        )
    now = datetime.fromtimestamp(_T0, UTC)
    version = {f"c{i}": 0 for i in range(8)}
    for op in ops:
        if op[0] == "money":
            _, i, held, day = op
            version[f"c{i}"] += 1
            m.set_money(f"c{i}", spent=0, held=held, daily_day=day, daily_used=held, version=version[f"c{i}"])
        elif op[0] == "terms":
            _, i, status, shift = op
            old = m.get(f"c{i}")
            if old is not None:
                new = state(
                    i,
                    center=old.center,
                    bid=old.bid_micros,
                    budget_micros=old.budget_micros,
                    daily_budget_micros=old.daily_budget_micros,
                    starts_at=old.starts_at + 300 * shift,
                    ends_at=old.ends_at,
                    status=status,
                    updated=old.updated + 1,
                )
                m.upsert(new)
        elif op[0] == "remove":
            m.remove(f"c{op[1]}")
        else:
            now = now + timedelta(seconds=op[1])
        with m._lock:
            m._ensure()
            camp_ok, counts, left = m._terms.eligibility(now)
            ref_ok, ref_counts = _eligibility_from_scratch(m._terms, now)
        np.testing.assert_array_equal(camp_ok, ref_ok)
        np.testing.assert_array_equal(left, ref_ok)
        assert counts == ref_counts
