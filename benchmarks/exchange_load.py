"""Bounded load on loopback against ``adspace serve``, driven by wrk, against the stack's own ceiling; prints JSON.

What it does:

1. creates a fresh database (a SQLite file, or ``--database-url``), migrates it and bulk-inserts
   ``--campaigns`` embedding campaigns (unit-norm centers, σ ~ U[0.3, 1.0], bids log-normal around
   $2 per impression, budgets that never run out) for one advertiser, plus a publisher; on SQLite it
   first times the disk's flushes where the file lives (``benchmarks/fsync_probe.py``: the floor under
   every commit), recorded as ``machine.disk_flush_before_run``;
2. starts the real server (``adspace serve``, ``--workers`` processes, rate limit off, model preloaded,
   access log off) on a free 127.0.0.1 port, and the stack ceiling (``benchmarks/stack_ceiling.py``:
   the same FastAPI + uvicorn validating the same request bodies, answering a small JSON) on another;
3. for each concurrency in ``--concurrency`` (default 8 and 32) runs Debian's ``wrk`` (a native client,
   so the client does not eat the server's cores in Python) for ``--seconds`` per phase, with a Lua
   script cycling through pre-built request bodies:
   ``embedding``: ``POST /v1/auctions`` with query embeddings near random centers;
   ``text``: ``POST /v1/auctions`` with conversations drawn from ``--distinct-texts`` texts, each
   embedded once beforehand (the embedding cache is warm);
   ``billing``: ``POST /v1/auctions/{id}/billing``, each on a different auction won before (first
   charges, never repeats);
   and the same request shapes against the ceiling, both its ``async`` endpoints (no thread hop: the
   best the stack does) and its plain-function endpoints (FastAPI's thread pool: the ceiling's shape
   when the exchange was first measured);
4. prints, per phase and concurrency: throughput, p50/p90/p99 latency (wrk's), non-2xx count, the ratios
   exchange/ceiling, and the server's own time shares (embedding, clearing, database) with
   ``auctions_per_kernel_call`` and ``ops_per_commit`` (read from ``GET /v1/stats``).

Usage: ``python benchmarks/exchange_load.py [--campaigns 10000] [--concurrency 8 32] [--seconds 8]``.
Everything runs on this machine (loopback only); both servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests

import fsync_probe  # benchmarks/ (the script's own folder is on the path)

DIM = 384
#: Notices per second (per process) that a billing phase has distinct held auctions for: above the
#: stack ceiling's billing rate on the development machine (~6,000-6,500/s), so that every notice is a
#: first charge (at 5,000/s, 1.7-3% of the notices at 32 connections were repeats, read back slowly).
BILLING_RATE = 8000
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
    from adspace.exchange.container import Exchange
    from adspace.exchange.core.apikeys import new_id
    from adspace.exchange.core.common import vec_bytes as _vec_bytes
    from adspace.exchange.core.config import Settings
    from adspace.exchange.store.tables import Campaign

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


WRK_LUA = """
local bodies = {}
local paths = {}
local idx = 0
local method = "%(method)s"
local prefix = "%(prefix)s"
local headers = {["Authorization"] = "Bearer %(key)s", ["Content-Type"] = "application/json"}
for line in io.lines("%(file)s") do
  if method == "POST_BODY" then bodies[#bodies + 1] = line else paths[#paths + 1] = line end
end
local counter = 0
setup = function(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
init = function(args)
  -- each of the %(threads)d threads starts at its own share of the lines: no two send the same one
  -- until a thread has used up its share
  idx = offset * math.floor(math.max(#bodies, #paths) / %(threads)d)
end
request = function()
  idx = idx + 1
  if method == "POST_BODY" then
    return wrk.format("POST", prefix .. "/v1/auctions", headers, bodies[(idx %% #bodies) + 1])
  end
  return wrk.format("POST", prefix .. paths[(idx %% #paths) + 1], headers, "")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"seconds\\": %%.4f, \\"p50_ms\\": %%.3f, \\"p90_ms\\": %%.3f, " ..
    "\\"p99_ms\\": %%.3f, \\"max_ms\\": %%.3f, \\"non2xx\\": %%d, \\"socket_errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the server's workers)."""
    import psutil

    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def wrk(
    base: str,
    key: str,
    method: str,
    lines: list[str],
    concurrency: int,
    seconds: float,
    tmp: Path,
    pid: int,
    prefix: str = "",
) -> dict:
    """One wrk run: ``method`` POST_BODY (``lines`` are auction bodies) or POST_PATH (``lines`` are paths).

    Besides wrk's figures, the server's CPU milliseconds per request (``pid`` and its children): a
    measure of the work each request costs that a busy machine distorts far less than throughput.
    """
    data = tmp / f"wrk-{method}-{len(lines)}-{secrets.token_hex(3)}.txt"
    data.write_text("\n".join(lines) + "\n")
    script = tmp / f"{data.stem}.lua"
    threads = min(2, concurrency)
    script.write_text(WRK_LUA % {"method": method, "key": key, "file": str(data), "prefix": prefix, "threads": threads})
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    c0 = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    c1 = cpu_seconds(pid)
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON ") :])
    r["per_second"] = round(r["requests"] / r["seconds"], 1)
    r["server_cpu_ms_per_request"] = round(1000 * (c1 - c0) / max(1, r["requests"]), 3)
    return r


def profile_summary(raw: Path, top: int = 40) -> dict:
    """Summarise py-spy's collapsed stacks: the functions with the most samples, self and inclusive."""
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")" for f in stack.split(";")
        ]
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def best(d: dict) -> list:
        return [[k, round(v / total, 3)] for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self": best(self_n), "inclusive": best(incl)}


def wait_ready(base: str, proc: subprocess.Popen, log: Path, *, model: bool) -> float:
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-3000:]}")
        try:
            h = requests.get(base + "/healthz", timeout=1).json()
            if not model or h.get("model_loaded"):
                return time.perf_counter() - t0
        except requests.RequestException:
            pass
        if time.perf_counter() - t0 > 300:
            raise SystemExit("server did not become ready")
        time.sleep(0.2)


def shares(before: dict, after: dict) -> dict:
    """The server's counters between two ``/v1/stats`` reads: per auction, the pipeline's time clearing
    and waiting for its batch's commit, and the mean server latency; how many auctions each clearing
    kernel call and each commit carried."""
    sec = {k: after["seconds"][k] - before["seconds"][k] for k in after["seconds"]}
    n = after["auctions"] - before["auctions"]
    kb = after["clearing_batches"] - before["clearing_batches"]
    kq = after["clearing_queries"] - before["clearing_queries"]
    cb = after["commits"] - before["commits"]
    co = after["committed_ops"] - before["committed_ops"]
    ws = after["writer_seconds"] - before["writer_seconds"]

    def per(x):
        return round(1000 * x / n, 3) if n else None

    return {
        "server_auctions": n,
        "clear_ms_per_auction": per(sec["clear"]),
        "commit_ms_per_batch": round(1000 * ws / cb, 3) if cb else None,
        "mean_server_latency_ms": per(sec["latency"]),
        "auctions_per_kernel_call": round(kq / kb, 2) if kb else None,
        "auctions_per_commit": round(n / cb, 2) if cb and n else None,
        "ops_per_commit": round(co / cb, 2) if cb else None,
    }


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def held_auctions(url: str, limit: int) -> list[str]:
    """Ids of auctions won and still held (for first-charge billing requests)."""
    from sqlalchemy import create_engine, text

    from adspace.exchange.core.config import normalize_database_url

    eng = create_engine(normalize_database_url(url))
    with eng.connect() as c:
        ids = c.execute(text("SELECT id FROM auctions WHERE status = 'held' LIMIT :n"), {"n": limit}).scalars().all()
    eng.dispose()
    return list(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaigns", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--seconds", type=float, default=8.0, help="wrk duration of each phase")
    ap.add_argument("--distinct-texts", type=int, default=200)
    ap.add_argument("--phases", nargs="+", default=["embedding", "text", "billing"])
    ap.add_argument("--workers", type=int, default=1, help="exchange processes (PostgreSQL only for > 1)")
    ap.add_argument(
        "--database-url",
        default=None,
        help="default: a fresh SQLite file in a temporary directory; for postgresql://..., a fresh database "
        "is created on that server (and dropped at the end)",
    )
    ap.add_argument("--no-ceiling", action="store_true", help="skip the stack ceiling")
    ap.add_argument(
        "--py-spy", default=None, help="path to py-spy: profile the server during the first run of each profiled phase"
    )
    ap.add_argument("--py-spy-phases", nargs="+", default=["embedding"], help="phases to profile (default: embedding)")
    ap.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument(
        "--py-spy-idle", action="store_true", help="sample idle threads too (default: only the thread holding the GIL)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install Debian's wrk (apt-get install wrk)")

    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="adspace-load-"))
    url, drop = args.database_url or f"sqlite:///{tmp / 'load.db'}", None
    if url.startswith(("postgres://", "postgresql")):
        url, drop = fresh_postgres_database(url)
    # The disk's flush time where the SQLite file lives: a floor under every commit (fsync_probe.py).
    flush = fsync_probe.probe(tmp) if url.startswith("sqlite") else None
    sync_mode = (os.environ.get("ADSPACE_SQLITE_SYNCHRONOUS") or "FULL").strip().upper()
    admin_key = "adsk_adm_" + secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    pub_key, centers = seed(url, admin_key, args.campaigns, rng)
    seed_s = time.perf_counter() - t0

    port, cport = free_port(), free_port()
    base, cbase = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{cport}"
    env = {
        **os.environ,
        "ADSPACE_ADMIN_KEY": admin_key,
        "ADSPACE_RATE_LIMIT_PER_SECOND": "0",
        "ADSPACE_PRELOAD_MODEL": "1",
        "ADSPACE_PUBLIC_URL": base,
    }
    cmd = [sys.executable, "-m", "adspace.cli", "serve", "--port", str(port), "--database-url", url, "--no-access-log"]
    cmd += ["--workers", str(args.workers)]
    proc = start(cmd, env, tmp / "server.log")
    ceiling = None
    if not args.no_ceiling:
        here = Path(__file__).resolve().parent
        ceiling = start([sys.executable, str(here / "stack_ceiling.py"), "--port", str(cport)], env, tmp / "c.log")
    try:
        start_s = wait_ready(base, proc, tmp / "server.log", model=True)
        if ceiling is not None:
            wait_ready(cbase, ceiling, tmp / "c.log", model=False)
        admin = {"Authorization": f"Bearer {admin_key}"}
        auth = {"Authorization": f"Bearer {pub_key}"}

        def stats() -> dict:
            return requests.get(base + "/v1/stats", headers=admin, timeout=30).json()

        # queries near random centers (so the top scores compete)
        nq = 2000
        idx = rng.integers(0, args.campaigns, nq)
        queries = centers[idx] + 0.3 * rng.standard_normal((nq, DIM)) / np.sqrt(DIM)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        emb_bodies = [json.dumps({"embedding": q.tolist()}) for q in queries]
        texts = [
            f"I'm looking into {TOPICS[i % len(TOPICS)]} (question {i}): what would you recommend?"
            for i in range(args.distinct_texts)
        ]
        text_bodies = [json.dumps({"messages": [{"role": "user", "content": t}]}) for t in texts]
        for b in text_bodies:  # warm the embedding cache: each text embedded once
            requests.post(base + "/v1/auctions", data=b, headers={**auth, "content-type": "application/json"})
        if args.workers > 1 and "text" in args.phases:
            # Each process has its own cache, and a connection reaches whichever process accepts it:
            # many connections for a few seconds ask every process for every text many times.
            wrk(base, pub_key, "POST_BODY", text_bodies, 32, 4, tmp, proc.pid)
        wrk(base, pub_key, "POST_BODY", emb_bodies[:200], 2, 2, tmp, proc.pid)  # warm-up
        if ceiling is not None:
            wrk(cbase, pub_key, "POST_BODY", emb_bodies[:200], 2, 2, tmp, ceiling.pid)

        phases = []
        profiled: set[str] = set()
        for conc in args.concurrency:
            for phase in args.phases:
                if phase == "billing":
                    # enough distinct held auctions for every request of the phase to be a first charge
                    need = int(BILLING_RATE * args.seconds * args.workers)
                    held = held_auctions(url, need)
                    want = need  # each of wrk's two threads has half: any rate below BILLING_RATE
                    if len(held) < want:  # win more auctions first (not measured)
                        rate = max(100.0, max((r["exchange"]["per_second"] for r in phases), default=300.0))
                        fill = min(60.0, 1.2 * (want - len(held)) / rate)
                        wrk(base, pub_key, "POST_BODY", emb_bodies, 32, fill, tmp, proc.pid)
                        held = held_auctions(url, need)
                    paths = [f"/v1/auctions/{a}/billing" for a in held]
                    method, lines = "POST_PATH", paths
                else:
                    method, lines = "POST_BODY", emb_bodies if phase == "embedding" else text_bodies
                s0 = stats()
                spy = None
                if args.py_spy and phase in args.py_spy_phases and phase not in profiled:
                    raw = tmp / f"profile-{phase}.txt"
                    spy_cmd = [
                        args.py_spy,
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--rate",
                        str(args.py_spy_rate),
                        "--idle" if args.py_spy_idle else "--gil",
                    ]
                    spy_cmd += ["--subprocesses", "--duration", str(max(1, round(args.seconds) - 1)), "-o", str(raw)]
                    spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ex = wrk(base, pub_key, method, lines, conc, args.seconds, tmp, proc.pid)
                s1 = stats()
                row = {"phase": phase, "concurrency": conc, "exchange": ex}
                if args.workers == 1:  # with several processes /v1/stats answers for whichever one it reached
                    row["server"] = shares(s0, s1)
                if spy is not None:
                    spy.wait(timeout=60)
                    row["profile"] = profile_summary(raw)
                    if args.out:  # the collapsed stacks too, for a closer look
                        shutil.copy(raw, args.out.with_name(f"{args.out.stem}.{phase}.pyspy.txt"))
                    profiled.add(phase)
                if phase == "billing" and ex["requests"] > len(lines):
                    row["note"] = f"ran out of distinct auctions: {ex['requests'] - len(lines)} repeats"
                if ceiling is not None:
                    c = wrk(cbase, pub_key, method, lines, conc, args.seconds, tmp, ceiling.pid)
                    row["ceiling"] = c
                    row["ratio_cpu_per_request"] = round(
                        ex["server_cpu_ms_per_request"] / max(1e-9, c["server_cpu_ms_per_request"]), 3
                    )
                    cs = wrk(cbase, pub_key, method, lines, conc, args.seconds, tmp, ceiling.pid, prefix="/sync")
                    for name, run in (("ceiling", c), ("ceiling /sync", cs)):
                        if run["non2xx"] or run["socket_errors"]:  # a ratio against error answers means nothing
                            raise SystemExit(
                                f"{name} ({phase}, {conc} connections): {run['non2xx']} non-2xx answers and "
                                f"{run['socket_errors']} socket errors of {run['requests']}; see {tmp / 'c.log'}"
                            )
                    row["ceiling_sync_endpoint"] = cs
                    row["ratio_throughput_vs_sync_ceiling"] = round(ex["per_second"] / cs["per_second"], 3)
                    row["ratio_p99_vs_sync_ceiling"] = round(ex["p99_ms"] / cs["p99_ms"], 3)
                    row["ratio_throughput"] = round(ex["per_second"] / c["per_second"], 3)
                    row["ratio_p99"] = round(ex["p99_ms"] / c["p99_ms"], 3)
                phases.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        check = requests.get(base + "/v1/ledger/check", headers=admin, timeout=60).json()
        result = {
            "benchmark": "exchange_load",
            "client": "wrk",
            "database": url.split(":", 1)[0],
            "sqlite_synchronous": sync_mode if url.startswith("sqlite") else None,
            "workers": args.workers,
            "campaigns": args.campaigns,
            "seconds_per_phase": args.seconds,
            "seed_seconds": round(seed_s, 2),
            "server_ready_seconds": round(start_s, 2),
            "phases": phases,
            "ledger_balanced": check["balanced"],
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "platform": platform.platform(),
                "disk_flush_before_run": flush,
            },
            "notes": "client (wrk), exchange and ceiling share this machine's cores; latencies are wrk's, over "
            "loopback HTTP; the ceiling is measured right after the exchange for each phase",
        }
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        stop(proc)
        if ceiling is not None:
            stop(ceiling)
        if drop:
            drop()


def fresh_postgres_database(url: str):
    """Create an empty database on the server of ``url``; returns its URL and a function dropping it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from adspace.exchange.core.config import normalize_database_url

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
