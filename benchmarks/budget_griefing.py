"""Budget griefing, measured: a publisher runs auctions it never bills; how much of an advertiser's
budget does it lock, how fast, for how long, and does any other publisher still get the campaign?

Starts the real server (``python -m adspace.cli serve``) on a fresh SQLite file on a free 127.0.0.1 port,
once per setting of ``ADSPACE_PUBLISHER_HOLD_CAP_BPS`` (10000 = no cap;
1000 = the default cap of 10 % of the budget). In each: a victim campaign (bid 3, budget 30 units) and a
twin of another advertiser at the same point (bid 2 units, so every win holds a price of 2 units);
the attacker runs ``--auctions`` auctions at that point and bills none; then an honest publisher runs
one. Prints JSON: per setting, the attacker's wins of the victim, the victim's held budget, the
auctions and seconds it took to take the victim out of every other publisher's auctions (if it did),
and whom the honest publisher's auction went to. Holds last ``ADSPACE_HOLD_SECONDS`` (900 s by
default): that is how long a lock lasts.

Usage: ``python benchmarks/budget_griefing.py [--auctions 40]``. Bounded: ``--auctions`` requests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

DIM = 384
ADMIN = "adsk_adm_bench_" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db: Path, cap_bps: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "ADSPACE_ADMIN_KEY": ADMIN,
        "ADSPACE_PRELOAD_MODEL": "0",
        "ADSPACE_RATE_LIMIT_PER_SECOND": "0",
        "ADSPACE_PUBLISHER_HOLD_CAP_BPS": str(cap_bps),
    }
    cmd = [sys.executable, "-m", "adspace.cli", "serve", "--port", str(port), "--database-url", f"sqlite:///{db}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def run(cap_bps: int, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = serve(Path(tmp) / "grief.db", cap_bps)
        try:
            s = requests.Session()

            def call(method, path, key, **kw):
                r = s.request(method, base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)
                r.raise_for_status()
                return r.json()

            def account(kind, name):
                return call("POST", f"/v1/{kind}s", ADMIN, json={"name": name})

            x = [0.0] * DIM
            x[7] = 1.0
            creative = {"title": "t", "body": "b", "url": "https://example.com/"}
            victim_adv, twin_adv = account("advertiser", "victim"), account("advertiser", "twin")
            attacker, honest = account("publisher", "attacker"), account("publisher", "honest")
            body = {"embedding": x, "sigma": 1.0, "creative": creative}
            victim = call(
                "POST", "/v1/campaigns", victim_adv["api_key"],
                json={**body, "name": "victim", "bid_micros": 3_000_000, "budget_micros": 30_000_000},
            )["id"]  # fmt: skip
            call(
                "POST", "/v1/campaigns", twin_adv["api_key"],
                json={**body, "name": "twin", "bid_micros": 2_000_000, "budget_micros": 10**12},
            )  # fmt: skip
            wins, locked_after, t0 = 0, None, time.perf_counter()
            locked_seconds = None
            for i in range(n):
                out = call("POST", "/v1/auctions", attacker["api_key"], json={"embedding": x})
                wins += bool(out["ad"] and out["ad"]["campaign_id"] == victim)
                c = call("GET", f"/v1/campaigns/{victim}", victim_adv["api_key"])
                if locked_after is None and c["remaining_micros"] < 3_000_000:
                    locked_after, locked_seconds = i + 1, time.perf_counter() - t0
            c = call("GET", f"/v1/campaigns/{victim}", victim_adv["api_key"])
            out = call("POST", "/v1/auctions", honest["api_key"], json={"embedding": x})
            return {
                "publisher_hold_cap_bps": cap_bps,
                "attacker_auctions": n,
                "attacker_wins_of_victim": wins,
                "victim_budget_micros": 30_000_000,
                "victim_held_micros": c["held_micros"],
                "held_share": c["held_micros"] / 30_000_000,
                "locked_out_after_auctions": locked_after,
                "locked_out_after_seconds": None if locked_seconds is None else round(locked_seconds, 3),
                "honest_publisher_gets_victim": bool(out["ad"] and out["ad"]["campaign_id"] == victim),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--auctions", type=int, default=40)
    args = ap.parse_args()
    out = {
        "load_average": os.getloadavg(),
        "hold_seconds": int(os.environ.get("ADSPACE_HOLD_SECONDS", "900")),
        "runs": [run(cap, args.auctions) for cap in (10_000, 1_000)],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
