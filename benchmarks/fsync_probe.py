"""How long this machine's disk takes to make a small write durable; prints JSON.

A SQLite commit with ``synchronous=FULL`` (the exchange's default) in WAL mode appends the
transaction's pages to the write-ahead log and waits for ``fdatasync`` before it returns, and the
exchange acknowledges nothing before its commit. So every auction and billing notice waits for at
least one such flush, and a slow flush holds every request of its batch: the figures here are a floor
under the exchange's latency that no code above the disk can remove (``benchmarks/exchange_load.py``
records them next to its own).

The probe appends ``--bytes`` (default 8 KiB: two pages, about one small batch's WAL frames) to a file
in ``--dir`` and flushes it, ``--count`` times, and reports the distribution of the flushes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def probe(directory: Path, *, count: int = 400, size: int = 8192) -> dict:
    """Time ``count`` appends of ``size`` bytes, each followed by ``fdatasync``, in ``directory``."""
    if count < 1:
        raise ValueError(f"count: must be >= 1, got {count}")
    if size < 1:
        raise ValueError(f"size: must be >= 1, got {size}")
    sync = getattr(os, "fdatasync", os.fsync)
    block = os.urandom(size)
    times = np.empty(count)
    fd, name = tempfile.mkstemp(prefix="fsync-probe-", dir=directory)
    try:
        for i in range(count):
            t0 = time.perf_counter()
            os.write(fd, block)
            sync(fd)
            times[i] = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(name)
    ms = times * 1e3
    q = np.percentile(ms, [50, 90, 99, 99.9])
    return {
        "flushes": count,
        "bytes_per_flush": size,
        "call": sync.__name__,
        "p50_ms": round(float(q[0]), 3),
        "p90_ms": round(float(q[1]), 3),
        "p99_ms": round(float(q[2]), 3),
        "p999_ms": round(float(q[3]), 3),
        "max_ms": round(float(ms.max()), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to write (default: TMPDIR)")
    ap.add_argument("--count", type=int, default=400, help="flushes to time")
    ap.add_argument("--bytes", type=int, default=8192, help="bytes appended before each flush")
    args = ap.parse_args()
    out = probe(args.dir, count=args.count, size=args.bytes)
    out["dir"] = str(args.dir)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
