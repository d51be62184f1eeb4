"""Crash safety: SIGKILL the server in the middle of a stream of auctions and billing notices (four
concurrent streams, so it dies with group-committed batches in flight).

After a restart on the same database, every acknowledged notice is charged exactly once, notices
whose answer was lost can be re-sent safely, and the ledger balances.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import requests
from sqlalchemy import text

from .conftest import Api, Server, campaign_body, new_advertiser, new_publisher, rand_unit
from .test_billing_ledger import ledger_invariants


def test_sigkill_mid_stream_then_restart(server_factory, backend, tmp_path):
    srv = server_factory(backend)
    rng = np.random.default_rng()
    adv, pub = new_advertiser(srv), new_publisher(srv)
    home = np.asarray(rand_unit(rng))
    for i in range(4):
        c = home + 0.05 * rng.normal(size=home.size) / np.sqrt(home.size)
        adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(c.tolist(), sigma=0.2, bid=2_000_000 + 100_000 * i))

    acked: dict[str, dict] = {}  # auction id -> billing result the client saw
    answered: set[str] = set()  # auctions whose answer the client saw (committed before it was sent)
    unanswered: set[str] = set()  # billing sent, answer lost in the crash
    lock = threading.Lock()
    stop = threading.Event()

    def stream(seed: int) -> None:
        api = Api(srv.base, pub.key)
        r_ = np.random.default_rng(seed)
        while not stop.is_set():
            x = (home + 0.05 * r_.normal(size=home.size) / np.sqrt(home.size)).tolist()
            try:
                out = api.post("/v1/auctions", json={"embedding": x, "reserve_micros": 1000}, timeout=10)
            except requests.RequestException:
                return
            if out.status_code != 200:
                continue
            with lock:
                answered.add(out.json()["auction_id"])
            if not out.json()["filled"]:
                continue
            aid = out.json()["auction_id"]
            with lock:
                unanswered.add(aid)
            try:
                r = api.post(f"/v1/auctions/{aid}/billing", timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    acked[aid] = r.json()
                    unanswered.discard(aid)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.kill()  # SIGKILL, mid-stream
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 40

    again = Server(srv.database_url, log_dir=tmp_path).start()
    try:
        engine = srv.db.engine()
        with engine.connect() as conn:
            charges = dict(
                conn.execute(text("select auction_id, count(*) from ledger_transactions group by auction_id")).all()
            )
            status = dict(conn.execute(text("select id, status from auctions")).all())
        for aid in acked:
            assert charges.get(aid) == 1, aid
            assert status[aid] == "billed"
        # Four streams keep the pipeline's batches full: every auction answered before the kill was in a
        # committed batch (group commit acknowledges nothing before its transaction commits).
        assert answered <= set(status), sorted(answered - set(status))[:5]
        ledger_invariants(engine)

        # Re-sending every notice is safe: acknowledged ones answer the same result, lost ones settle once.
        api = Api(again.base, pub.key)
        for aid, res in acked.items():
            r = api.post(f"/v1/auctions/{aid}/billing")
            assert r.status_code == 200 and r.json() == res
        for aid in unanswered:
            r = api.post(f"/v1/auctions/{aid}/billing")
            assert r.status_code == 200, r.text
        with engine.connect() as conn:
            n_tx = conn.execute(text("select count(*) from ledger_transactions")).scalar()
            n_billed = conn.execute(text("select count(*) from auctions where status = 'billed'")).scalar()
        assert n_tx == n_billed >= len(acked) + len(unanswered)
        ledger_invariants(engine)
        # the restarted market holds the money as the database does
        spent = sum(c["spent_micros"] for c in api.__class__(again.base, adv.key).ok("GET", "/v1/campaigns"))
        assert spent == sum(
            r["price_micros"] for r in api.ok("GET", "/v1/auctions?limit=1000") if r["status"] == "billed"
        )
        engine.dispose()
    finally:
        again.stop()
