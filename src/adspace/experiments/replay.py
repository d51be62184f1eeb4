"""Replay a query log against a market snapshot on Ray: outcomes per campaign, and counterfactual bids.

A **query log** is a Parquet file with an ``embedding`` column (a list of ``d`` floats per query) and
optionally an ``id`` column. A **market snapshot** is a Parquet file with columns ``name`` (optional),
``embedding`` (``d`` floats), ``sigma`` and ``bid``, or a JSON market file (the format of
``adspace clear --market``, docs/markets.md; advertisers with explicit embeddings are read directly,
descriptions are embedded through :mod:`adspace.marketfiles`).

:func:`replay` splits the log into chunks and clears them on Ray actors, each holding the market as a
prepared :class:`adspace.mechanisms.vcg.Market` (the arrays travel once, through Ray's object store).
Every number is the exact kernel's: a replay equals single-process :func:`adspace.mechanisms.vcg.clear`
query by query (the tests check it).

Counterfactuals ("what would campaign k win and pay at bid b'?") are exact too, and cost one extra
clearing per campaign, not one per bid: the market splits into two shards, ``{k}`` and everyone else
(:mod:`adspace.index.shards`). The other shard's top 2 per query is cleared once with ``k`` made
ineligible; for each bid ``b'`` campaign ``k``'s own score ``log b' − ‖x − c_k‖²/σ_k²`` and value are
evaluated by the kernel's formulas and :func:`adspace.index.shards.merge` applies the auction rule,
which is what clearing the whole market with ``bids[k] = b'`` gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adspace.index.shards import ShardTop2, merge, shard_top2
from adspace.mechanisms.vcg import Market, reported_value, score

__all__ = [
    "Counterfactual",
    "RayUnavailable",
    "ReplayResult",
    "Snapshot",
    "clear_chunk",
    "connect",
    "read_queries",
    "read_snapshot",
    "replay",
    "write_queries",
    "write_snapshot",
]


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A market snapshot: names and the kernel's arrays (bids in currency units)."""

    names: tuple[str, ...]
    centers: NDArray[np.float64]
    sigmas: NDArray[np.float64]
    bids: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, key: str | int) -> int:
        """A campaign by name, or by index when the key is an integer (or its decimal text)."""
        if isinstance(key, int | np.integer):
            k = int(key)
        elif key in self.names:
            return self.names.index(key)
        elif str(key).lstrip("-").isdigit():
            k = int(key)
        else:
            raise ValueError(f"campaign: no campaign named {key!r}")
        if not 0 <= k < len(self.names):
            raise ValueError(f"campaign: index {k} out of range (0..{len(self.names) - 1})")
        return k


def _matrix(table, column: str, source: str) -> NDArray[np.float64]:
    """A list-of-floats Parquet column as an ``(n, d)`` float64 array."""
    import pyarrow as pa

    if column not in table.column_names:
        raise ValueError(f"{source}: missing column {column!r} (have {table.column_names})")
    col = table.column(column).combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0))
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise ValueError(f"{source}: column {column!r} must hold lists of numbers, got {col.type}")
    if col.null_count:
        raise ValueError(f"{source}: column {column!r} has {col.null_count} missing rows")
    lengths = np.asarray(pa.compute.list_value_length(col))
    if lengths.min() != lengths.max() or lengths[0] == 0:
        raise ValueError(f"{source}: column {column!r}: every row needs the same number (>= 1) of values")
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    out = flat.reshape(n, int(lengths[0]))
    if not np.isfinite(out).all():
        raise ValueError(f"{source}: column {column!r} holds a non-finite value")
    return out


def _read_parquet(path: str | Path):
    """A Parquet table, or ``FileNotFoundError`` / ``ValueError`` naming the file (never a bare Arrow error)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None


def read_queries(path: str | Path) -> tuple[NDArray[np.float64], list[Any] | None]:
    """``(Q, d)`` query embeddings (and ids, when the log has an ``id`` column) from a Parquet log."""
    table = _read_parquet(path)
    x = _matrix(table, "embedding", str(path))
    ids = table.column("id").to_pylist() if "id" in table.column_names else None
    return x, ids


def write_queries(path: str | Path, queries: NDArray[np.floating], ids: Sequence[Any] | None = None) -> None:
    """Write a query log (``embedding`` as a list column of float32, optional ``id``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    q = np.asarray(queries)
    cols = {"embedding": pa.FixedSizeListArray.from_arrays(pa.array(q.astype(np.float32).ravel()), q.shape[1])}
    if ids is not None:
        cols = {"id": pa.array(list(ids)), **cols}
    pq.write_table(pa.table(cols), path)


def write_snapshot(path: str | Path, snap: Snapshot) -> None:
    """Write a market snapshot as Parquet (``.parquet``) or as a JSON market file (``.json``)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        ads = [
            {"name": n, "embedding": c.tolist(), "sigma": float(s), "bid": float(b)}
            for n, c, s, b in zip(snap.names, snap.centers, snap.sigmas, snap.bids, strict=True)
        ]
        path.write_text(json.dumps({"advertisers": ads}))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = snap.centers
    table = pa.table(
        {
            "name": pa.array(list(snap.names)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(c.ravel()), c.shape[1]),
            "sigma": pa.array(snap.sigmas),
            "bid": pa.array(snap.bids),
        }
    )
    pq.write_table(table, path)


def read_snapshot(path: str | Path) -> Snapshot:
    """A market snapshot from Parquet, or from a JSON market file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON market file ({exc})") from None
        ads = obj.get("advertisers") if isinstance(obj, dict) else obj
        if isinstance(ads, list) and ads and all(isinstance(a, dict) and "embedding" in a for a in ads):
            try:
                names = tuple(str(a.get("name", i)) for i, a in enumerate(ads))
                centers = np.asarray([a["embedding"] for a in ads], dtype=np.float64)
                sigmas = np.asarray([a["sigma"] for a in ads], dtype=np.float64)
                bids = np.asarray([a["bid"] if "bid" in a else a["bid_micros"] / 1e6 for a in ads], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: advertisers need embedding, sigma and bid ({exc})") from None
            return Snapshot(names, centers, sigmas, bids)
        from adspace.marketfiles import load_market  # descriptions: embedded by the market-file reader

        m = load_market(path)
        return Snapshot(tuple(m.names), m.centers, m.sigmas, m.bids)
    table = _read_parquet(path)
    centers = _matrix(table, "embedding", str(path))
    for col in ("sigma", "bid"):
        if col not in table.column_names:
            raise ValueError(f"{path}: missing column {col!r} (have {table.column_names})")
    n = centers.shape[0]
    names = (
        tuple(str(v) for v in table.column("name").to_pylist())
        if "name" in table.column_names
        else tuple(str(i) for i in range(n))
    )
    return Snapshot(
        names,
        centers,
        table.column("sigma").to_numpy().astype(np.float64),
        table.column("bid").to_numpy().astype(np.float64),
    )


# --------------------------------------------------------------------------------------------------
# Clearing a chunk (what each Ray actor runs)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterfactual:
    """Campaign ``campaign`` (an index) bidding each of ``bids`` instead of its own bid."""

    campaign: int
    bids: tuple[float, ...]


def _counterfactual_outcomes(market: Market, x, cf: Counterfactual, reserve: float) -> dict[str, NDArray]:
    """Per query and bid: did ``k`` win, what it pays, its reported value; ``(len(bids), q)`` arrays."""
    k, n, q = cf.campaign, market.n, x.shape[0]
    others = np.ones(n, dtype=bool)
    others[k] = False
    rest = shard_top2(market, x, eligible=others)  # everyone but k: local index = global index
    ck = market.centers[k][None, :]
    won = np.zeros((len(cf.bids), q), dtype=bool)
    pay = np.zeros((len(cf.bids), q))
    val = np.zeros((len(cf.bids), q))
    for i, b in enumerate(cf.bids):
        s = score(x, ck, market.sigmas[k], b)
        v = reported_value(x, ck, market.sigmas[k], b)
        own = ShardTop2(
            index=np.tile(np.array([k, -1], dtype=np.int64), (q, 1)),
            score=np.stack([s, np.full(q, -np.inf)], axis=1),
            value=np.stack([v, np.zeros(q)], axis=1),
        )
        out = merge([rest, own], reserve=reserve)
        won[i] = out.winner == k
        pay[i] = np.where(won[i], out.payment, 0.0)
        val[i] = np.where(won[i], out.value, 0.0)
    return {"won": won, "payment": pay, "value": val}


def clear_chunk(
    market: Market, x: NDArray[np.float64], reserve: float, counterfactuals: Sequence[Counterfactual] = ()
) -> dict[str, Any]:
    """Clear one chunk of the log: per-query winner, runner-up, payment, value, and counterfactuals."""
    out = market.clear(x, reserve=reserve)
    return {
        "winner": out.winner,
        "runner_up": out.runner_up,
        "payment": out.payment,
        "value": out.value,
        "counterfactuals": [_counterfactual_outcomes(market, x, cf, reserve) for cf in counterfactuals],
    }


# --------------------------------------------------------------------------------------------------
# The replay
# --------------------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """Per-query outcomes, per-campaign totals and counterfactual totals of one replay."""

    names: tuple[str, ...]
    winner: NDArray[np.int64]
    runner_up: NDArray[np.int64]
    payment: NDArray[np.float64]
    value: NDArray[np.float64]
    wins: NDArray[np.int64]
    spend: NDArray[np.float64]
    won_value: NDArray[np.float64]
    counterfactuals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # clearing, once the market is prepared on every worker
    setup_seconds: float = 0.0  # starting Ray (if needed), shipping the market, preparing it
    workers: int = 0
    requested_workers: int = 0

    @property
    def queries(self) -> int:
        return int(self.winner.shape[0])

    def campaigns(self) -> list[dict[str, Any]]:
        """Per-campaign outcomes (campaigns that won at least once), most spend first."""
        rows = [
            {
                "campaign": int(i),
                "name": self.names[i],
                "wins": int(self.wins[i]),
                "spend": float(self.spend[i]),
                "value": float(self.won_value[i]),
            }
            for i in np.flatnonzero(self.wins)
        ]
        return sorted(rows, key=lambda r: (-r["spend"], r["campaign"]))

    def zero_win_campaigns(self) -> list[str]:
        """Names of the campaigns that won no query (they have no row in :meth:`campaigns`)."""
        return [self.names[i] for i in np.flatnonzero(self.wins == 0)]

    def to_json(self) -> dict[str, Any]:
        filled = int((self.winner >= 0).sum())
        zero = self.zero_win_campaigns()
        return {
            "queries": self.queries,
            "filled": filled,
            "spend": float(self.payment.sum()),
            "value": float(self.value.sum()),
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "queries_per_second": self.queries / self.seconds if self.seconds > 0 else None,
            "workers": self.workers,
            "requested_workers": self.requested_workers,
            "campaigns_total": len(self.names),
            "campaigns_with_wins": len(self.names) - len(zero),
            "campaigns_without_wins": len(zero),
            "zero_win_campaigns": zero,
            "campaigns": self.campaigns(),
            "counterfactuals": self.counterfactuals,
        }


def _aggregate(n: int, names, parts: list[dict[str, Any]], cfs: Sequence[Counterfactual], snap_bids) -> ReplayResult:
    winner = np.concatenate([p["winner"] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    runner = np.concatenate([p["runner_up"] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    payment = np.concatenate([p["payment"] for p in parts]) if parts else np.zeros(0)
    value = np.concatenate([p["value"] for p in parts]) if parts else np.zeros(0)
    f = winner >= 0
    wins = np.bincount(winner[f], minlength=n).astype(np.int64)
    spend = np.bincount(winner[f], weights=payment[f], minlength=n)
    won_value = np.bincount(winner[f], weights=value[f], minlength=n)
    cf_out = []
    for j, cf in enumerate(cfs):
        won = np.concatenate([p["counterfactuals"][j]["won"] for p in parts], axis=1)
        pay = np.concatenate([p["counterfactuals"][j]["payment"] for p in parts], axis=1)
        val = np.concatenate([p["counterfactuals"][j]["value"] for p in parts], axis=1)
        k = cf.campaign
        cf_out.append(
            {
                "campaign": k,
                "name": names[k],
                "actual": {
                    "bid": float(snap_bids[k]),
                    "wins": int(wins[k]),
                    "spend": float(spend[k]),
                    "value": float(won_value[k]),
                },
                "at": [
                    {
                        "bid": float(b),
                        "wins": int(won[i].sum()),
                        "spend": float(pay[i].sum()),
                        "value": float(val[i].sum()),
                    }
                    for i, b in enumerate(cf.bids)
                ],
            }
        )
    return ReplayResult(names, winner, runner, payment, value, wins, spend, won_value, cf_out)


class RayUnavailable(RuntimeError):
    """Ray could not be started or joined (no cluster at ``--address``, Ray client missing, ...)."""


def _ray_log_capture():
    """Context manager: Ray's log records (e.g. its token-authentication warning) collected as lines
    instead of printed, so a caller can show them before a progress bar starts, never inside it."""
    import contextlib
    import logging

    @contextlib.contextmanager
    def capture():
        lines: list[str] = []

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(f"ray {record.levelname.lower()}: {record.getMessage()}")

        logger = logging.getLogger("ray")
        saved, saved_prop = list(logger.handlers), logger.propagate
        handler = _Collect(level=logging.WARNING)
        logger.handlers = [handler]
        logger.propagate = False
        try:
            yield lines
        finally:
            logger.handlers = saved
            logger.propagate = saved_prop

    return capture()


def connect(
    workers: int,
    *,
    address: str | None = None,
    ray_init: dict[str, Any] | None = None,
    notify: Callable[[str], None] | None = None,
) -> int:
    """Start (or join) Ray and return how many workers can actually run: ``min(workers, Ray's CPUs)``.

    Each replay actor reserves one CPU; asking for more actors than Ray has CPUs would leave the extra
    ones pending forever (a silent hang at 0 chunks). The cap is announced through ``notify``, as are
    Ray's own warnings during start-up. Raises :class:`RayUnavailable` with a one-line reason when
    Ray cannot be started or the cluster at ``address`` cannot be reached, and ``ValueError`` when Ray
    has no CPU to give.
    """
    import ray

    say = notify or (lambda _s: None)
    if workers < 1:
        raise ValueError(f"workers: must be >= 1 to use Ray, got {workers}")
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        kw.update(ray_init or {})
        with _ray_log_capture() as lines:
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                where = f"--address {address}" if address else "local Ray"
                raise RayUnavailable(f"{where}: {first}") from None
        for line in lines:
            say(line)
    # The cluster's CPUs, not the momentarily free ones: actors beyond the total can never start (the
    # hang), while CPUs held by a finishing replay's actors are freed within moments.
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 1:
        raise ValueError("workers: Ray has no CPU for a replay worker (each worker needs one CPU)")
    if workers > cpus:
        say(f"--workers {workers}: Ray has {cpus} CPU{'s' if cpus != 1 else ''} available; using {cpus} workers")
        return cpus
    return workers


def _actor_class():
    import ray

    @ray.remote(num_cpus=1)
    class ReplayWorker:
        def __init__(self, centers, sigmas, bids):
            self.market = Market(centers, sigmas, bids)

        def ready(self) -> bool:
            return True

        def run(self, lo: int, x, reserve: float, cfs) -> tuple[int, dict[str, Any]]:
            return lo, clear_chunk(self.market, x, reserve, cfs)

    return ReplayWorker


def replay(
    snapshot: Snapshot,
    queries: NDArray[np.float64],
    *,
    reserve: float = 0.0,
    counterfactuals: Sequence[Counterfactual] = (),
    workers: int = 2,
    chunk: int = 1024,
    address: str | None = None,
    ray_init: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Clear ``queries`` against ``snapshot`` on ``workers`` Ray actors (``workers=0``: in this process).

    Ray is started locally (``ray.init()``) unless it is running already or ``address`` names a
    cluster (``"auto"`` or ``"ray://host:10001"``); ``workers`` is capped by the CPUs Ray has
    (:func:`connect`, which says so through ``notify``). ``progress(done, total)`` is called as chunks
    finish. Results are in log order whatever the order chunks finish in.
    """
    x = np.ascontiguousarray(np.asarray(queries, dtype=np.float64))
    if x.ndim != 2:
        raise ValueError(f"queries: must be 2-D (Q, d), got shape {x.shape}")
    if x.shape[0] and x.shape[1] != snapshot.centers.shape[1]:
        raise ValueError(
            f"queries: dimension {x.shape[1]} does not match the market's dimension {snapshot.centers.shape[1]}"
        )
    if chunk < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk}")
    if workers < 0:
        raise ValueError(f"workers: must be >= 0, got {workers}")
    for cf in counterfactuals:
        if not 0 <= cf.campaign < len(snapshot):
            raise ValueError(f"counterfactuals: campaign {cf.campaign} out of range")
        if not cf.bids or not all(np.isfinite(b) and b > 0 for b in cf.bids):
            raise ValueError(f"counterfactuals: bids must be finite and > 0, got {cf.bids}")
    bounds = [(lo, min(x.shape[0], lo + chunk)) for lo in range(0, x.shape[0], chunk)]
    total = len(bounds)
    t_setup = time.perf_counter()
    requested = workers
    parts: dict[int, dict[str, Any]] = {}
    if workers == 0:
        market = Market(snapshot.centers, snapshot.sigmas, snapshot.bids)
        t0 = time.perf_counter()
        for i, (lo, hi) in enumerate(bounds):
            parts[lo] = clear_chunk(market, x[lo:hi], reserve, counterfactuals)
            if progress:
                progress(i + 1, total)
    else:
        import ray

        workers = connect(workers, address=address, ray_init=ray_init, notify=notify)
        refs = [ray.put(snapshot.centers), ray.put(snapshot.sigmas), ray.put(snapshot.bids)]
        worker_cls = _actor_class()
        actors = [worker_cls.remote(*refs) for _ in range(workers)]
        ray.get([a.ready.remote() for a in actors])
        t0 = time.perf_counter()
        xref = [ray.put(x[lo:hi]) for lo, hi in bounds]
        pending = [
            actors[i % workers].run.remote(lo, xref[i], reserve, list(counterfactuals))
            for i, (lo, _hi) in enumerate(bounds)
        ]
        done = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                lo, part = ray.get(ready[0])
                parts[lo] = part
                done += 1
                if progress:
                    progress(done, total)
        finally:
            for a in actors:
                ray.kill(a)
    result = _aggregate(len(snapshot), snapshot.names, [parts[lo] for lo, _ in bounds], counterfactuals, snapshot.bids)
    result.seconds = time.perf_counter() - t0
    result.setup_seconds = t0 - t_setup
    result.workers = workers
    result.requested_workers = requested
    return result
