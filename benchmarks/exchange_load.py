"""Bounded load on loopback against ``adspace serve`` with 10,000 campaigns; prints JSON.

What it does:

1. creates a fresh database (a SQLite file, or ``--database-url``), migrates it and bulk-inserts
   ``--campaigns`` embedding campaigns (unit-norm centers, σ ~ U[0.3, 1.0], bids log-normal around
   $2 per impression, budgets that never run out) for one advertiser, plus a publisher;
2. starts the real server (``python -m adspace.exchange``) on a free 127.0.0.1 port, rate limit off,
   model preloaded;
3. runs, each with ``--concurrency`` keep-alive clients and a bounded count and duration:
   ``embedding``: ``POST /v1/auctions`` with query embeddings near random centers;
   ``text``: ``POST /v1/auctions`` with conversations drawn from ``--distinct-texts`` different texts
   (so the embedding cache is exercised: the first use of a text is embedded, repeats are cache hits);
   ``billing``: ``POST /v1/auctions/{id}/billing`` for auctions won in the embedding phase;
4. prints, per phase, throughput and p50/p90/p99 latency (client side, over HTTP), and the share of the
   server's auction time spent embedding, clearing (``adspace.mechanisms.vcg.Market.clear`` and the
   eligibility mask, lock waits included) and in the database (read from ``GET /v1/stats``).

Usage: ``python benchmarks/exchange_load.py [--campaigns 10000] [--requests 3000] [--concurrency 8]``.
Everything runs on this machine; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests

DIM = 384
TOPICS = [
    "trail running shoes",
    "a beginner marathon plan",
    "managed postgres hosting",
    "GPU notebooks for fine-tuning",
    "quick vegetarian dinners",
    "cast iron skillet care",
    "budget travel in Japan",
    "learning the piano as an adult",
    "home espresso machines",
    "noise cancelling headphones",
    "electric bikes for commuting",
    "houseplants in low light",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(database_url: str, admin_key: str, n: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """Bulk-insert ``n`` campaigns through the exchange's own models; returns (publisher key, centers)."""
    from adspace.exchange.config import Settings
    from adspace.exchange.security import new_id
    from adspace.exchange.services import Exchange
    from adspace.exchange.services.common import vec_bytes as _vec_bytes
    from adspace.exchange.store.models import Campaign

    ex = Exchange(Settings(database_url=database_url, admin_key=admin_key, preload_model=False))
    ex.migrate()
    ex.bootstrap_admin()
    adv = ex.accounts.create("advertiser", "load-advertiser")
    pub = ex.accounts.create("publisher", "load-publisher")
    centers = rng.standard_normal((n, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    sigmas = rng.uniform(0.3, 1.0, n)
    bids = np.clip(rng.lognormal(np.log(2_000_000), 0.5, n), 1000, 10**9).astype(np.int64)
    now = datetime.now(UTC)
    rows = [
        Campaign(
            id=new_id("cmp"),
            advertiser_id=adv.id,
            name=f"load {i}",
            kind="embedding",
            description=None,
            center=_vec_bytes(centers[i]),
            sigma=float(sigmas[i]),
            bid_micros=int(bids[i]),
            budget_micros=10**15,
            daily_budget_micros=None,
            starts_at=None,
            ends_at=None,
            status="active",
            creative_title=f"Ad {i}",
            creative_body="Body",
            creative_url="https://example.com",
            spent_micros=0,
            held_micros=0,
            daily_day=None,
            daily_used_micros=0,
            money_version=0,
            created_at=now,
            updated_at=now,
        )
        for i in range(n)
    ]
    with ex.store.Session.begin() as s:
        s.add_all(rows)
    ex.close()
    return pub.api_key, centers


def percentiles(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 2) for q in (50, 90, 99)} | {
        "max_ms": round(float(a.max()), 2)
    }


def run_phase(name, make_request, n: int, concurrency: int, max_seconds: float) -> dict:
    """``make_request(session, i)`` -> (ok, extra); n requests over ``concurrency`` threads, bounded in time."""
    lat: list[float] = []
    errors = 0
    extras: list = []
    lock = threading.Lock()
    counter = iter(range(n))
    deadline = time.monotonic() + max_seconds

    def worker():
        nonlocal errors
        sess = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            ok, extra = make_request(sess, i)
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat.append(dt)
                    extras.append(extra)
                else:
                    errors += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {
        "phase": name,
        "requests": len(lat),
        "errors": errors,
        "seconds": round(wall, 2),
        "throughput_rps": round(len(lat) / wall, 1),
    }
    if lat:
        out |= percentiles(lat)
    return out, extras


def shares(before: dict, after: dict) -> dict:
    d = {k: after["seconds"][k] - before["seconds"][k] for k in after["seconds"]}
    total = d["total"] or 1e-12
    n = after["auctions"] - before["auctions"]
    return {
        "auctions": n,
        "server_ms_per_auction": round(1000 * d["total"] / max(n, 1), 3),
        "share_embedding": round(d["embed"] / total, 3),
        "share_clearing": round(d["clear"] / total, 3),
        "share_database": round(d["db"] / total, 3),
        "share_other": round(max(0.0, 1 - (d["embed"] + d["clear"] + d["db"]) / total), 3),
        "auctions_per_kernel_call": round(
            (after["clearing_queries"] - before["clearing_queries"])
            / max(1, after["clearing_batches"] - before["clearing_batches"]),
            2,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaigns", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=3000, help="auctions with embeddings")
    ap.add_argument("--text-requests", type=int, default=1000)
    ap.add_argument("--distinct-texts", type=int, default=200)
    ap.add_argument("--billing", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=120.0, help="cap per phase")
    ap.add_argument(
        "--database-url",
        default=None,
        help="default: a fresh SQLite file in a temporary directory; for postgresql://..., a fresh database "
        "is created on that server (and dropped at the end)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="adspace-load-"))
    url, drop = args.database_url or f"sqlite:///{tmp / 'load.db'}", None
    if url.startswith(("postgres://", "postgresql")):
        url, drop = fresh_postgres_database(url)
    admin_key = "adsk_adm_" + secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    pub_key, centers = seed(url, admin_key, args.campaigns, rng)
    seed_s = time.perf_counter() - t0

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ADSPACE_ADMIN_KEY": admin_key,
        "ADSPACE_RATE_LIMIT_PER_SECOND": "0",
        "ADSPACE_PRELOAD_MODEL": "1",
        "ADSPACE_PUBLIC_URL": base,
    }
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "adspace.exchange", "--port", str(port), "--database-url", url],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                h = requests.get(base + "/healthz", timeout=1).json()
                if h["model_loaded"]:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - t0 > 300:
                raise SystemExit("server did not become ready")
            time.sleep(0.2)
        start_s = time.perf_counter() - t0
        auth = {"Authorization": f"Bearer {pub_key}"}
        admin = {"Authorization": f"Bearer {admin_key}"}
        stats = lambda: requests.get(base + "/v1/stats", headers=admin, timeout=30).json()  # noqa: E731

        # queries near random centers (so the top scores compete)
        nq = max(args.requests, 1)
        idx = rng.integers(0, args.campaigns, nq)
        queries = centers[idx] + 0.3 * rng.standard_normal((nq, DIM)) / np.sqrt(DIM)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        bodies = [json.dumps({"embedding": q.tolist()}) for q in queries]
        texts = [
            f"I'm looking into {TOPICS[i % len(TOPICS)]} (question {i}): what would you recommend?"
            for i in range(args.distinct_texts)
        ]
        hdr = {**auth, "content-type": "application/json"}

        def emb_req(sess, i):
            r = sess.post(base + "/v1/auctions", data=bodies[i % nq], headers=hdr, timeout=60)
            ok = r.status_code == 200
            return ok, (r.json()["auction_id"] if ok and r.json()["filled"] else None)

        text_order = rng.integers(0, len(texts), max(args.text_requests, 1))

        def text_req(sess, i):
            body = {"messages": [{"role": "user", "content": texts[int(text_order[i])]}]}
            r = sess.post(base + "/v1/auctions", json=body, headers=auth, timeout=60)
            return r.status_code == 200, None

        run_phase("warmup", emb_req, 50, 2, 60)
        s0 = stats()
        emb, won = run_phase("embedding", emb_req, args.requests, args.concurrency, args.max_seconds)
        s1 = stats()
        emb |= shares(s0, s1)
        txt, _ = run_phase("text", text_req, args.text_requests, args.concurrency, args.max_seconds)
        s2 = stats()
        txt |= shares(s1, s2)
        txt["embedding_cache"] = {
            "distinct_texts": args.distinct_texts,
            "hits": s2["embedding_cache"]["hits"] - s1["embedding_cache"]["hits"],
            "misses": s2["embedding_cache"]["misses"] - s1["embedding_cache"]["misses"],
        }
        won = [a for a in won if a][: args.billing]

        def bill_req(sess, i):
            r = sess.post(f"{base}/v1/auctions/{won[i]}/billing", headers=auth, timeout=60)
            return r.status_code == 200, None

        bill, _ = run_phase("billing", bill_req, len(won), args.concurrency, args.max_seconds)
        check = requests.get(base + "/v1/ledger/check", headers=admin, timeout=60).json()
        result = {
            "benchmark": "exchange_load",
            "database": url.split(":", 1)[0],
            "campaigns": args.campaigns,
            "concurrency": args.concurrency,
            "seed_seconds": round(seed_s, 2),
            "server_ready_seconds": round(start_s, 2),
            "phases": [emb, txt, bill],
            "ledger_balanced": check["balanced"],
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "notes": "client and server share this machine's cores; latencies are end to end over loopback HTTP",
        }
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if drop:
            drop()


def fresh_postgres_database(url: str):
    """Create an empty database on the server of ``url``; returns its URL and a function dropping it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from adspace.exchange.config import normalize_database_url

    base = make_url(normalize_database_url(url))
    conninfo = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"adspace_load_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.set(database=name).render_as_string(hide_password=False), drop


if __name__ == "__main__":
    main()
