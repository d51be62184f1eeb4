"""``adspace replay``: clear a query log against a market snapshot on Ray (see :mod:`adspace.experiments.replay`).

    adspace replay --log queries.parquet --market snapshot.parquet
    adspace replay --log q.parquet --market m.json --workers 4 --address auto \\
        --counterfactual "acme:0.5,1,2" --out result.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from adspace.cli.console import fail, money

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from adspace.experiments.replay import Counterfactual, ReplayResult, Snapshot

__all__ = ["replay_command"]


def _parse_counterfactual(text: str, snap: Snapshot) -> Counterfactual:
    """``CAMPAIGN:BID[,BID...]`` (``--counterfactual``) against the snapshot's campaigns."""
    from adspace.experiments.replay import Counterfactual

    key, sep, bids = text.rpartition(":")
    if not sep or not key:
        raise ValueError(f"--counterfactual: expected CAMPAIGN:BID[,BID...], got {text!r}")
    try:
        values = tuple(float(b) for b in bids.split(",") if b.strip())
    except ValueError:
        raise ValueError(f"--counterfactual: bids must be numbers, got {bids!r}") from None
    if not values or not all(v > 0 and v < float("inf") for v in values):
        raise ValueError(f"--counterfactual: bids must be finite and > 0, got {bids!r}")
    return Counterfactual(snap.index_of(key), values)


def replay_command(
    log: Path = typer.Option(..., "--log", help="Query log: Parquet with an 'embedding' list column (and 'id')."),
    market: Path = typer.Option(
        ..., "--market", help="Market snapshot: Parquet (name, embedding, sigma, bid) or JSON."
    ),
    workers: int = typer.Option(
        2, "--workers", help="Ray actors clearing in parallel, capped by Ray's CPUs (0: no Ray, this process)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster to join ('auto', 'ray://host:10001'); default: start Ray locally."
    ),
    chunk: int = typer.Option(1024, "--chunk", help="Queries per task."),
    reserve: float = typer.Option(0.0, "--reserve", help="Reserve in bid units (a phantom bidder)."),
    counterfactual: list[str] = typer.Option(
        [],
        "--counterfactual",
        "-c",
        help="CAMPAIGN:BID[,BID...]: what would the campaign (name or index) win and pay at these bids.",
    ),
    top: int = typer.Option(
        20, "--top", help="Campaigns shown in the table (by spend); those with no win are counted below it."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the full result as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of tables."),
) -> None:
    """Replay a query log against a market snapshot: per-campaign outcomes and counterfactual bids."""
    from adspace.experiments.replay import RayUnavailable

    err = Console(stderr=True)
    try:
        job = _job(log, market, workers, address, chunk, reserve, counterfactual, err)
        result = _run(job, err, transient=as_json)
    except (OSError, ValueError, RayUnavailable) as exc:
        raise fail(exc) from None
    doc = result.to_json()
    if out is not None:
        out.write_text(json.dumps(doc, indent=2))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    _print(result, top)


@dataclass(frozen=True)
class _Job:
    """A replay the options describe, its inputs read and checked."""

    snapshot: Snapshot
    queries: np.ndarray
    counterfactuals: list[Counterfactual]
    reserve: float
    workers: int  # as Ray allows (0: in this process)
    chunk: int
    address: str | None


def _job(log, market, workers, address, chunk, reserve, counterfactual, err: Console) -> _Job:
    """Read the snapshot and the log, check the options; with workers, join or start Ray."""
    from adspace.experiments.replay import connect, read_queries, read_snapshot

    for option, path in (("--market", market), ("--log", log)):
        if not path.is_file():
            raise ValueError(f"{option}: no such file: {path}")
    try:
        snap = read_snapshot(market)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--market: {exc}") from None
    try:
        x, _ids = read_queries(log)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--log: {exc}") from None
    cfs = [_parse_counterfactual(c, snap) for c in counterfactual]
    if reserve < 0 or reserve != reserve:
        raise ValueError(f"--reserve: must be >= 0, got {reserve}")
    if workers < 0:
        raise ValueError(f"--workers: must be >= 0, got {workers}")
    if chunk < 1:
        raise ValueError(f"--chunk: must be >= 1, got {chunk}")
    # Ray starts before the progress bar: its start-up warnings and the worker cap print as plain
    # lines above the bar, never inside it.
    if workers > 0:
        workers = connect(workers, address=address, notify=lambda line: err.print(line, markup=False))
    return _Job(snap, x, cfs, reserve, workers, chunk, address)


def _run(job: _Job, err: Console, *, transient: bool) -> ReplayResult:
    """The replay, with a progress bar of chunks on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from adspace.experiments.replay import replay

    columns = (
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=transient) as bar:
        task = bar.add_task("replay", total=max(1, -(-job.queries.shape[0] // job.chunk)))
        return replay(
            job.snapshot,
            job.queries,
            reserve=job.reserve,
            counterfactuals=job.counterfactuals,
            workers=job.workers,
            chunk=job.chunk,
            address=job.address,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _print(result: ReplayResult, top: int) -> None:
    """Totals, the campaigns with most spend, those that won nothing, and each counterfactual."""
    from rich.table import Table

    console = Console()
    doc = result.to_json()
    qps = doc["queries_per_second"]
    console.print(
        f"{result.queries} queries, {doc['filled']} filled, spend {money(doc['spend'])}, value {money(doc['value'])}"
        f" — {result.seconds:.2f} s clearing after {result.setup_seconds:.1f} s setup"
        + (f" ({qps:,.0f} queries/s, {result.workers} workers)" if qps else "")
    )
    table = Table(title=f"Campaigns (top {top} by spend)")
    for col in ("campaign", "name", "wins", "spend", "value"):
        table.add_column(col, justify="right" if col in ("wins", "spend", "value", "campaign") else "left")
    for row in result.campaigns()[:top]:
        table.add_row(str(row["campaign"]), row["name"], str(row["wins"]), money(row["spend"]), money(row["value"]))
    zero = result.zero_win_campaigns()
    console.print(table)
    console.print(
        f"{len(result.names) - len(zero)} of {len(result.names)} campaigns won at least once"
        + (f"; {len(zero)} won nothing: {', '.join(zero[:10])}{' …' if len(zero) > 10 else ''}" if zero else ""),
        markup=False,
    )
    for cf in result.counterfactuals:
        t = Table(title=f"Counterfactual: {cf['name']} (campaign {cf['campaign']})")
        for col in ("bid", "wins", "spend", "value"):
            t.add_column(col, justify="right")
        a = cf["actual"]
        t.add_row(f"{money(a['bid'])} (actual)", str(a["wins"]), money(a["spend"]), money(a["value"]))
        for r in cf["at"]:
            t.add_row(money(r["bid"]), str(r["wins"]), money(r["spend"]), money(r["value"]))
        console.print(t)
