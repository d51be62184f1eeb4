"""``adspace.client`` against the real exchange (uvicorn in a child process, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import httpx2 as httpx
import pytest

from adspace.client import ApiError, AsyncClient, AuthError, Client, InvalidRequest, NotFound, TransportError
from adspace.exchange.core import schemas

from .conftest import ADMIN_KEY, isolated_dims, unit

CREATIVE = {"title": "Ridge 3", "body": "Grip on wet rock.", "url": "https://example.com/ridge"}


class LoseAnswers(httpx.HTTPTransport):
    """Forwards requests to the server, then loses the answer of the first ``n`` POSTs to a path ending ``suffix``
    (the exchange did the work; the caller never heard), or refuses the connection before sending (``refuse``)."""

    def __init__(self, suffix: str, n: int = 1, *, refuse: bool = False):
        super().__init__()
        self.suffix, self.n, self.refuse, self.seen = suffix, n, refuse, 0

    def handle_request(self, request):
        hit = request.method == "POST" and request.url.path.endswith(self.suffix) and self.seen < self.n
        if hit and self.refuse:
            self.seen += 1
            raise httpx.ConnectError("refused (test)", request=request)
        response = super().handle_request(request)
        if hit:
            self.seen += 1
            response.read()
            raise httpx.ReadError("answer lost (test)", request=request)
        return response


def _market(server):
    admin = Client(server.base, ADMIN_KEY)
    adv_acc = admin.create_advertiser("client adv")
    pub_acc = admin.create_publisher("client pub")
    assert isinstance(adv_acc, schemas.AccountCreated) and adv_acc.api_key.startswith("adsk_adv_")
    return admin, adv_acc, pub_acc


def test_client_walkthrough_and_idempotent_billing_retry(server):
    admin, adv_acc, pub_acc = _market(server)
    adv = Client(server.base, adv_acc.api_key)
    (dim,) = isolated_dims(1)
    camp = adv.create_campaign(
        "Ridge", embedding=unit(dim), sigma=0.5, bid_micros=2_000_000, budget_micros=10**9, creative=CREATIVE
    )
    assert isinstance(camp, schemas.CampaignOut) and camp.kind == "embedding" and camp.sigma == 0.5
    assert adv.get_campaign(camp.id).name == "Ridge"
    assert adv.update_campaign(camp.id, bid_micros=2_500_000).bid_micros == 2_500_000
    assert camp.id in [c.id for c in adv.list_campaigns()]
    assert adv.me().kind == "advertiser"

    lossy = LoseAnswers("/billing", n=2)
    pub = Client(server.base, pub_acc.api_key, transport=lossy, backoff=0.01)
    auction = pub.run_auction(embedding=unit(dim), reserve_micros=1000, tau=1e-9)
    assert auction.filled and auction.ad.campaign_id == camp.id and auction.price_micros == 1000
    billed = pub.bill(auction.auction_id)  # two answers lost, the third heard: charged once
    assert lossy.seen == 2 and billed.price_micros == 1000
    again = pub.bill(auction.auction_id)
    assert again.transaction_id == billed.transaction_id
    assert pub.click(auction.auction_id).auction_id == auction.auction_id
    assert pub.get_auction(auction.auction_id).status == "billed"

    report = {r.campaign_id: r for r in adv.campaign_report().campaigns}[camp.id]
    assert (report.wins, report.impressions, report.clicks, report.spend_micros) == (1, 1, 1, 1000)
    assert "campaign_id" in adv.campaign_report_csv().splitlines()[0]
    charges = [e for e in adv.ledger(limit=1000).entries if e.auction_id == auction.auction_id]
    assert [e.amount_micros for e in charges] == [-1000]
    assert admin.ledger_check()["balanced"] is True
    adv.delete_campaign(camp.id)
    with pytest.raises(NotFound):
        adv.get_campaign(camp.id)


def test_an_auction_whose_answer_is_lost_is_not_run_again(server):
    _, adv_acc, pub_acc = _market(server)
    (dim,) = isolated_dims(1)
    Client(server.base, adv_acc.api_key).create_campaign(
        "Once", embedding=unit(dim), sigma=0.5, bid_micros=10**6, budget_micros=10**9, creative=CREATIVE
    )
    lossy = LoseAnswers("/v1/auctions", n=1)
    pub = Client(server.base, pub_acc.api_key, transport=lossy, backoff=0.01)
    before = len(pub.list_auctions(limit=1000))
    with pytest.raises(TransportError):
        pub.run_auction(embedding=unit(dim), tau=1e-9)
    assert len(pub.list_auctions(limit=1000)) == before + 1  # run once, not retried
    refused = LoseAnswers("/v1/auctions", n=1, refuse=True)
    pub = Client(server.base, pub_acc.api_key, transport=refused, backoff=0.01)
    assert pub.run_auction(embedding=unit(dim), tau=1e-9).filled  # never sent: retried
    assert len(pub.list_auctions(limit=1000)) == before + 2


def test_errors_carry_the_status_and_the_field(server):
    admin, adv_acc, pub_acc = _market(server)
    adv, pub = Client(server.base, adv_acc.api_key), Client(server.base, pub_acc.api_key)
    cases = [
        (
            lambda: adv.create_campaign(
                "x", embedding=unit(1), sigma=-1, bid_micros=1, budget_micros=1, creative=CREATIVE
            ),
            422,
            "sigma",
        ),
        (
            lambda: adv.create_campaign("x", embedding=unit(1), bid_micros=1, budget_micros=1, creative=CREATIVE),
            422,
            "sigma",
        ),
        (
            lambda: adv.create_campaign(
                "x", embedding=[1.0], sigma=1, bid_micros=1, budget_micros=1, creative=CREATIVE
            ),
            422,
            "embedding",
        ),
        (
            lambda: adv.create_campaign(
                "x",
                embedding=unit(1),
                sigma=1,
                bid_micros=1,
                budget_micros=1,
                creative={"title": "t", "url": "ftp://x"},
            ),
            422,
            "creative.url",
        ),
        (lambda: adv.get_campaign("cmp_nope"), 404, "campaign_id"),
        (
            lambda: pub.create_campaign(
                "x", embedding=unit(1), sigma=1, bid_micros=1, budget_micros=1, creative=CREATIVE
            ),
            403,
            "Authorization",
        ),
        (lambda: Client(server.base, "adsk_adv_wrong").me(), 401, "Authorization"),
        (lambda: pub.run_auction(), 422, "messages | embedding | keywords"),
    ]
    for call, status, field in cases:
        with pytest.raises(ApiError) as err:
            call()
        assert (err.value.status, err.value.field) == (status, field), err.value
        assert isinstance(
            err.value, AuthError if status in (401, 403) else NotFound if status == 404 else InvalidRequest
        )


def test_async_client(server):
    async def main():
        async with AsyncClient(server.base, ADMIN_KEY) as admin:
            adv_acc = await admin.create_advertiser("async adv")
            pub_acc = await admin.create_publisher("async pub")
        (dim,) = isolated_dims(1)
        async with (
            AsyncClient(server.base, adv_acc.api_key) as adv,
            AsyncClient(server.base, pub_acc.api_key, transport=None) as pub,
        ):
            camp = await adv.create_campaign(
                "Async", embedding=unit(dim), sigma=0.5, bid_micros=10**6, budget_micros=10**9, creative=CREATIVE
            )
            outs = await asyncio.gather(*[pub.run_auction(embedding=unit(dim), tau=1e-9) for _ in range(4)])
            assert all(o.ad.campaign_id == camp.id for o in outs)
            bills = await asyncio.gather(*[pub.bill(o.auction_id) for o in outs])
            assert {b.auction_id for b in bills} == {o.auction_id for o in outs}
            with pytest.raises(NotFound) as err:
                await adv.get_campaign("cmp_nope")
            assert err.value.field == "campaign_id"
            return (await adv.campaign_report()).campaigns

    report = asyncio.run(main())
    assert [r.impressions for r in report] == [4]
