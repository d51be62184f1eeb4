"""``adspace demo`` and ``adspace clear``: clear conversations against a market, offline.

* ``adspace demo`` loads the market and conversations shipped in the package
  (``adspace/data/demo_market.json``, ``adspace/data/demo_conversations.json``), embeds them, clears
  every conversation with :func:`adspace.mechanisms.vcg.clear` and prints who wins, who comes second,
  the price and the score, with a line on why.
* ``adspace clear --market FILE --query TEXT`` does the same for a user's own market (JSON or CSV,
  see :mod:`adspace.marketfiles`) and one or more query texts.

Both add ``--json`` for machine-readable output. Heavy imports (torch, the model) happen inside the
commands, so ``adspace --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from adspace.cli import app
from adspace.marketfiles import DEFAULT_LAST_N, AdMarket, MarketError, MarketSpec
from adspace.mechanisms.vcg import Clearing


def _quiet_model_loading() -> None:
    """Keep model-loading progress bars and advisories out of the command's output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _demo_reserve() -> float:
    """The shipped demo market's reserve in currency units (read from the file, so --help cannot drift)."""
    from adspace.marketfiles import shipped_data

    raw = shipped_data("demo_market.json")
    return raw["reserve_micros"] / 1e6 if "reserve_micros" in raw else float(raw.get("reserve", 0.0))


def _money(x: float, currency: str) -> str:
    if x != 0 and abs(x) < 1e-4:
        num = f"{x:.2e}"
    else:
        num = f"{x:.4f}"
    return f"${num}" if currency == "USD" else f"{num} {currency}"


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _outcomes(market: AdMarket, queries: np.ndarray, out: Clearing) -> list[dict[str, object]]:
    """One record per query: winner, runner-up, price, score, and the values that explain them."""
    unfilled = np.flatnonzero(~out.filled)
    best: dict[int, tuple[int, float]] = {}
    if unfilled.size:
        # Who would have won without the reserve, to say why nothing was shown.
        open_ = market.clear(queries[unfilled], reserve=0.0)
        best = {int(q): (int(w), float(v)) for q, w, v in zip(unfilled, open_.winner, open_.value, strict=True)}
    records = []
    for q in range(len(out)):
        w, r = int(out.winner[q]), int(out.runner_up[q])
        rec: dict[str, object] = {
            "winner": market.names[w] if w >= 0 else None,
            "runner_up": market.names[r] if r >= 0 else None,
            "price": float(out.payment[q]),
            "score": _finite_or_none(float(out.score[q])),
            "value": float(out.value[q]),
            "runner_up_value": float(math.exp(out.runner_up_score[q])) if r >= 0 else 0.0,
            "filled": w >= 0,
        }
        if w < 0 and q in best:
            bw, bv = best[q]
            rec["best_unreserved"] = market.names[bw] if bw >= 0 else None
            rec["best_unreserved_value"] = bv
        records.append(rec)
    return records


def _why(rec: dict[str, object], reserve: float, currency: str) -> str:
    m = lambda x: _money(float(x), currency)  # noqa: E731
    if not rec["filled"]:
        if rec.get("best_unreserved"):
            return (
                f"best value {m(rec['best_unreserved_value'])} ({rec['best_unreserved']}) < reserve {m(reserve)}: no ad"
            )
        return "no ad: no eligible advertiser"
    value, rval = float(rec["value"]), float(rec["runner_up_value"])
    if rec["runner_up"] is not None and rval >= reserve:
        return f"value {m(value)} beats {rec['runner_up']} at {m(rval)}, which sets the price"
    if reserve > 0:
        return f"value {m(value)}, no rival above the reserve: pays the reserve {m(reserve)}"
    return f"value {m(value)}, unopposed; pays 0"


def _table(
    labels: Sequence[Text | str], records: Sequence[dict[str, object]], currency: str, title: str, first: str
) -> Table:
    table = Table(title=title, show_lines=True, title_justify="left")
    table.add_column(first, overflow="fold", ratio=3)
    table.add_column("Winner", style="bold green", overflow="fold", ratio=2)
    table.add_column("Runner-up", overflow="fold", ratio=2)
    table.add_column("Price", justify="right", no_wrap=True)
    table.add_column("Score", justify="right", no_wrap=True)
    for label, rec in zip(labels, records, strict=True):
        table.add_row(
            label,
            str(rec["winner"]) if rec["filled"] else Text("(no ad)", style="yellow"),
            str(rec["runner_up"]) if rec["runner_up"] is not None else "-",
            _money(float(rec["price"]), currency) if rec["filled"] else "-",
            f"{rec['score']:.2f}" if rec["score"] is not None else "-",
        )
    return table


def _print_result(
    console: Console,
    keys: Sequence[str],
    labels: Sequence[Text | str],
    records: Sequence[dict[str, object]],
    reserve: float,
    currency: str,
    title: str,
    first: str,
    last_n: int | None,
) -> None:
    console.print(_table(labels, records, currency, title, first))
    console.print("Why:", style="bold")
    for key, rec in zip(keys, records, strict=True):
        console.print(Text.assemble("  ", (key, "bold"), ": ", _why(rec, reserve, currency)))
    console.print(_footer(reserve, currency, last_n), style="dim")


def _footer(reserve: float, currency: str, last_n: int | None) -> str:
    lines = [
        "Winner: the highest reported value b·exp(−‖x−c‖²/σ²) at the query's embedding x (score = its log).",
        f"Price: the runner-up's reported value (VCG, Clarke pivot), raised to the reserve {_money(reserve, currency)}.",
    ]
    if last_n is not None:
        lines.append(
            f"Query text: the user's last {last_n} turns, most recent first (adspace.marketfiles.conversation_text)."
        )
    return "\n".join(lines)


def _snippet(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@app.command()
def demo(
    reserve: float | None = typer.Option(
        None,
        "--reserve",
        min=0.0,
        help=f"Reserve in currency units (default: the demo market's, ${_demo_reserve():g}).",
    ),
    last_n: int = typer.Option(DEFAULT_LAST_N, "--last-n", min=1, help="User turns that make each query."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Clear the shipped demo conversations against the shipped demo market (offline)."""
    _quiet_model_loading()
    from adspace.marketfiles import build_market, demo_conversations, demo_market_spec
    from adspace.mechanisms.vcg import clear
    from adspace.models.embedder import MODEL_NAME, get_embedder

    try:
        spec = demo_market_spec()
        conversations = demo_conversations()
        with Console(stderr=True).status(f"Embedding the demo market with {MODEL_NAME} (offline)…"):
            embedder = get_embedder()
            market = build_market(spec, embedder=embedder)
            texts = [c.text(last_n) for c in conversations]
            x = embedder.embed(texts)
        r = spec.reserve if reserve is None else reserve
        out = clear(x, market.centers, market.sigmas, market.bids, reserve=r)
    except (MarketError, ValueError) as exc:
        raise _fail(exc) from None
    records = _outcomes(market, x, out)
    if json_out:
        payload = _payload(
            spec, r, [{"id": c.id, "query": t} for c, t in zip(conversations, texts, strict=True)], records
        )
        payload["last_n"] = last_n
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    labels = []
    for c in conversations:
        last_user = next(m.content for m in reversed(c.messages) if m.role == "user" and m.content.strip())
        labels.append(Text.assemble((c.id, "bold"), "\n", (f"“{_snippet(last_user, 60)}”", "italic")))
    title = (
        f"adspace demo: {len(conversations)} conversations, {len(market)} advertisers "
        f"({spec.source}), reserve {_money(r, spec.currency)}"
    )
    _print_result(
        console, [c.id for c in conversations], labels, records, r, spec.currency, title, "Conversation", last_n
    )


def _payload(
    spec: MarketSpec, reserve: float, heads: Sequence[dict[str, object]], records: Sequence[dict[str, object]]
) -> dict[str, object]:
    return {
        "market": spec.source,
        "advertisers": len(spec),
        "currency": spec.currency,
        "reserve": reserve,
        "results": [{**h, **rec} for h, rec in zip(heads, records, strict=True)],
    }


@app.command("clear")
def clear_command(
    market_file: Path = typer.Option(
        ..., "--market", "-m", help="Market file: .json or .csv (name, description or embedding_*, sigma, bid)."
    ),
    query: list[str] = typer.Option(..., "--query", "-q", help="Query text to auction; repeat for several."),
    reserve: float | None = typer.Option(
        None, "--reserve", min=0.0, help="Reserve in currency units (default: the market file's, else 0)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Clear query texts against your own market file (offline)."""
    _quiet_model_loading()
    from adspace.marketfiles import build_market, read_market
    from adspace.mechanisms.vcg import clear
    from adspace.models.embedder import DIM, MODEL_NAME, get_embedder

    try:
        spec = read_market(market_file)  # validate before loading the model
        texts = []
        for i, q in enumerate(query):
            if not q.strip():
                raise ValueError(f"--query #{i + 1}: must not be empty")
            texts.append(q.strip())
        dims = {len(a.embedding) for a in spec.advertisers if a.embedding is not None}
        if dims and dims != {DIM}:
            raise MarketError(
                f"{spec.source}: embeddings have {dims.pop()} values but text queries embed to {DIM} ({MODEL_NAME})"
            )
        with Console(stderr=True).status(f"Embedding with {MODEL_NAME} (offline)…"):
            embedder = get_embedder()
            market = build_market(spec, embedder=embedder)
            x = embedder.embed(texts)
        r = spec.reserve if reserve is None else reserve
        out = clear(x, market.centers, market.sigmas, market.bids, reserve=r)
    except (MarketError, ValueError) as exc:
        raise _fail(exc) from None
    records = _outcomes(market, x, out)
    if json_out:
        typer.echo(json.dumps(_payload(spec, r, [{"query": t} for t in texts], records), indent=2))
        return
    console = Console()
    title = f"{len(texts)} quer{'y' if len(texts) == 1 else 'ies'}, {len(market)} advertisers ({spec.source}), reserve {_money(r, spec.currency)}"
    keys = [f"query {i + 1}" if len(texts) > 1 else "query" for i in range(len(texts))]
    labels = [_snippet(t) for t in texts]
    _print_result(console, keys, labels, records, r, spec.currency, title, "Query", None)
