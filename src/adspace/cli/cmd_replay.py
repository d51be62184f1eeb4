"""``adspace replay``: clear a query log against a market snapshot on Ray (see :mod:`adspace.experiments.replay`).

    adspace replay --log queries.parquet --market snapshot.parquet
    adspace replay --log q.parquet --market m.json --workers 4 --address auto \\
        --counterfactual "acme:0.5,1,2" --out result.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from adspace.cli import app


def _parse_counterfactual(text: str, snap) -> object:
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


@app.command("replay")
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
    from adspace.experiments.replay import RayUnavailable, connect, read_queries, read_snapshot, replay

    err = Console(stderr=True)

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code=1)

    for option, path in (("--market", market), ("--log", log)):
        if not path.is_file():
            raise fail(f"{option}: no such file: {path}")
    try:
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
    except RayUnavailable as exc:
        raise fail(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None

    columns = (
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=as_json) as bar:
        task = bar.add_task("replay", total=max(1, -(-x.shape[0] // chunk)))
        try:
            result = replay(
                snap,
                x,
                reserve=reserve,
                counterfactuals=cfs,
                workers=workers,
                chunk=chunk,
                address=address,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (ValueError, RayUnavailable) as exc:
            raise fail(str(exc)) from None

    doc = result.to_json()
    if out is not None:
        out.write_text(json.dumps(doc, indent=2))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    qps = doc["queries_per_second"]
    console.print(
        f"{doc['queries']} queries, {doc['filled']} filled, spend {doc['spend']:.4f}, value {doc['value']:.4f}"
        f" — {doc['seconds']:.2f} s clearing after {doc['setup_seconds']:.1f} s setup"
        + (f" ({qps:,.0f} queries/s, {result.workers} workers)" if qps else "")
    )
    table = Table(title=f"Campaigns (top {top} by spend)")
    for col in ("campaign", "name", "wins", "spend", "value"):
        table.add_column(col, justify="right" if col in ("wins", "spend", "value", "campaign") else "left")
    for row in doc["campaigns"][:top]:
        table.add_row(str(row["campaign"]), row["name"], str(row["wins"]), f"{row['spend']:.4f}", f"{row['value']:.4f}")
    zero = doc["zero_win_campaigns"]
    console.print(table)
    console.print(
        f"{doc['campaigns_with_wins']} of {doc['campaigns_total']} campaigns won at least once"
        + (f"; {len(zero)} won nothing: {', '.join(zero[:10])}{' …' if len(zero) > 10 else ''}" if zero else ""),
        markup=False,
    )
    for cf in doc["counterfactuals"]:
        t = Table(title=f"Counterfactual: {cf['name']} (campaign {cf['campaign']})")
        for col in ("bid", "wins", "spend", "value"):
            t.add_column(col, justify="right")
        a = cf["actual"]
        t.add_row(f"{a['bid']:.4f} (actual)", str(a["wins"]), f"{a['spend']:.4f}", f"{a['value']:.4f}")
        for r in cf["at"]:
            t.add_row(f"{r['bid']:.4f}", str(r["wins"]), f"{r['spend']:.4f}", f"{r['value']:.4f}")
        console.print(t)
