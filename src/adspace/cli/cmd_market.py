"""``adspace demo`` and ``adspace clear``: clear conversations against a market, offline.

* ``adspace demo`` loads the market and conversations shipped in the package
  (``adspace/data/demo_market.json``, ``adspace/data/demo_conversations.json``), embeds them, clears
  every conversation with :func:`adspace.mechanisms.vcg.clear` and prints who wins, who comes second,
  the price and the score, with a line on why.
* ``adspace clear --market FILE --query TEXT`` does the same for a user's own market (JSON or CSV,
  see :mod:`adspace.marketfiles`) and one or more query texts.

Both add ``--json`` for machine-readable output (:meth:`ClearingReport.to_json`). Heavy imports
(torch, the model) happen inside the commands, so ``adspace --help`` stays fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from adspace.cli.console import fail, money, quiet_model_loading
from adspace.marketfiles import DEFAULT_LAST_N, MarketError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from adspace.marketfiles import AdMarket, MarketSpec
    from adspace.mechanisms.vcg import Clearing

__all__ = ["ClearingReport", "Outcome", "clear_command", "demo"]


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One query's clearing: who wins, who comes second, the price, and the values that explain them.

    ``score`` is the winner's score (the log of its value), ``None`` where no ad is shown; where no ad
    is shown but one would be without the reserve, ``best_unreserved`` and ``best_unreserved_value``
    name that advertiser and its value.
    """

    query: str
    winner: str | None
    runner_up: str | None
    price: float
    score: float | None
    value: float
    runner_up_value: float
    filled: bool
    id: str | None = None  # the conversation's id (``adspace demo``)
    best_unreserved: str | None = None
    best_unreserved_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {"id": self.id} if self.id is not None else {}
        out = {
            **head,
            "query": self.query,
            "winner": self.winner,
            "runner_up": self.runner_up,
            "price": self.price,
            "score": self.score,
            "value": self.value,
            "runner_up_value": self.runner_up_value,
            "filled": self.filled,
        }
        if self.best_unreserved_value is not None:
            out["best_unreserved"] = self.best_unreserved
            out["best_unreserved_value"] = self.best_unreserved_value
        return out


@dataclass(frozen=True)
class ClearingReport:
    """The queries cleared against one market: the market, its reserve, and one :class:`Outcome` each."""

    market: str
    advertisers: int
    currency: str
    reserve: float
    results: tuple[Outcome, ...]
    last_n: int | None = None  # user turns per query (conversations only)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "market": self.market,
            "advertisers": self.advertisers,
            "currency": self.currency,
            "reserve": self.reserve,
            "results": [r.to_json() for r in self.results],
        }
        if self.last_n is not None:
            out["last_n"] = self.last_n
        return out


# --------------------------------------------------------------------------------------------------
# Running: embed, clear, explain
# --------------------------------------------------------------------------------------------------


def _demo_reserve() -> float:
    """The shipped demo market's reserve in currency units (read from the file, so --help cannot drift)."""
    from adspace.marketfiles import shipped_data

    raw = shipped_data("demo_market.json")
    return raw["reserve_micros"] / 1e6 if "reserve_micros" in raw else float(raw.get("reserve", 0.0))


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _clear_texts(
    spec: MarketSpec,
    texts: Sequence[str],
    reserve: float | None,
    *,
    ids: Sequence[str] | None = None,
    last_n: int | None = None,
    what: str = "",
) -> ClearingReport:
    """Embed ``spec``'s advertisers and ``texts``, and clear every text at ``reserve`` (default: the
    market's); ``ids`` and ``last_n`` name the conversations the texts come from, ``what`` the status line's."""
    from adspace.marketfiles import build_market
    from adspace.mechanisms.vcg import clear
    from adspace.models.embedder import MODEL_NAME, get_embedder

    with Console(stderr=True).status(f"Embedding {what}with {MODEL_NAME} (offline)…"):
        embedder = get_embedder()
        market = build_market(spec, embedder=embedder)
        x = embedder.embed(list(texts))
    r = spec.reserve if reserve is None else reserve
    out = clear(x, market.centers, market.sigmas, market.bids, reserve=r)
    results = _outcomes(market, x, out, texts, ids)
    return ClearingReport(spec.source, len(spec), spec.currency, r, results, last_n)


def _outcomes(
    market: AdMarket, queries: np.ndarray, out: Clearing, texts: Sequence[str], ids: Sequence[str] | None
) -> tuple[Outcome, ...]:
    """One :class:`Outcome` per query: winner, runner-up, price, score, and the values that explain them."""
    import numpy as np

    unfilled = np.flatnonzero(~out.filled)
    best: dict[int, tuple[int, float]] = {}
    if unfilled.size:
        # Who would have won without the reserve, to say why nothing was shown.
        open_ = market.clear(queries[unfilled], reserve=0.0)
        best = {int(q): (int(w), float(v)) for q, w, v in zip(unfilled, open_.winner, open_.value, strict=True)}
    records = []
    for q in range(len(out)):
        w, r = int(out.winner[q]), int(out.runner_up[q])
        bw, bv = best.get(q, (-1, None))  # only unfilled queries have an entry
        records.append(
            Outcome(
                query=texts[q],
                winner=market.names[w] if w >= 0 else None,
                runner_up=market.names[r] if r >= 0 else None,
                price=float(out.payment[q]),
                score=_finite_or_none(float(out.score[q])),
                value=float(out.value[q]),
                runner_up_value=float(math.exp(out.runner_up_score[q])) if r >= 0 else 0.0,
                filled=w >= 0,
                id=None if ids is None else ids[q],
                best_unreserved=market.names[bw] if bw >= 0 else None,
                best_unreserved_value=bv,
            )
        )
    return tuple(records)


def _why(rec: Outcome, reserve: float, currency: str) -> str:
    m = lambda x: money(float(x), currency)  # noqa: E731
    if not rec.filled:
        if rec.best_unreserved:
            return f"best value {m(rec.best_unreserved_value)} ({rec.best_unreserved}) < reserve {m(reserve)}: no ad"
        return "no ad: no eligible advertiser"
    if rec.runner_up is not None and rec.runner_up_value >= reserve:
        return f"value {m(rec.value)} beats {rec.runner_up} at {m(rec.runner_up_value)}, which sets the price"
    if reserve > 0:
        return f"value {m(rec.value)}, no rival above the reserve: pays the reserve {m(reserve)}"
    return f"value {m(rec.value)}, unopposed; pays 0"


# --------------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------------


def _table(labels: Sequence[Text | str], report: ClearingReport, title: str, first: str) -> Table:
    table = Table(title=title, show_lines=True, title_justify="left")
    table.add_column(first, overflow="fold", ratio=3)
    table.add_column("Winner", style="bold green", overflow="fold", ratio=2)
    table.add_column("Runner-up", overflow="fold", ratio=2)
    table.add_column("Price", justify="right", no_wrap=True)
    table.add_column("Score", justify="right", no_wrap=True)
    for label, rec in zip(labels, report.results, strict=True):
        table.add_row(
            label,
            str(rec.winner) if rec.filled else Text("(no ad)", style="yellow"),
            str(rec.runner_up) if rec.runner_up is not None else "-",
            money(rec.price, report.currency) if rec.filled else "-",
            f"{rec.score:.2f}" if rec.score is not None else "-",
        )
    return table


def _footer(reserve: float, currency: str, last_n: int | None) -> str:
    lines = [
        "Winner: the highest reported value b·exp(−‖x−c‖²/σ²) at the query's embedding x (score = its log).",
        f"Price: the runner-up's reported value (VCG, Clarke pivot), raised to the reserve {money(reserve, currency)}.",
    ]
    if last_n is not None:
        lines.append(
            f"Query text: the user's last {last_n} turns, most recent first (adspace.marketfiles.conversation_text)."
        )
    return "\n".join(lines)


def _print_report(
    report: ClearingReport, keys: Sequence[str], labels: Sequence[Text | str], title: str, first: str
) -> None:
    """The table of outcomes, one line on why for each, and what the columns mean."""
    console = Console()
    console.print(_table(labels, report, title, first))
    console.print("Why:", style="bold")
    for key, rec in zip(keys, report.results, strict=True):
        console.print(Text.assemble("  ", (key, "bold"), ": ", _why(rec, report.reserve, report.currency)))
    console.print(_footer(report.reserve, report.currency, report.last_n), style="dim")


def _snippet(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --------------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------------


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
    quiet_model_loading()
    from adspace.marketfiles import demo_conversations, demo_market_spec

    try:
        spec = demo_market_spec()
        conversations = demo_conversations()
        texts = [c.text(last_n) for c in conversations]
        ids = [c.id for c in conversations]
        report = _clear_texts(spec, texts, reserve, ids=ids, last_n=last_n, what="the demo market ")
    except (MarketError, ValueError) as exc:
        raise fail(exc) from None
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    labels = []
    for c in conversations:
        last_user = next(m.content for m in reversed(c.messages) if m.role == "user" and m.content.strip())
        labels.append(Text.assemble((c.id, "bold"), "\n", (f"“{_snippet(last_user, 60)}”", "italic")))
    title = (
        f"adspace demo: {len(conversations)} conversations, {report.advertisers} advertisers "
        f"({report.market}), reserve {money(report.reserve, report.currency)}"
    )
    _print_report(report, [c.id for c in conversations], labels, title, "Conversation")


def _query_texts(spec: MarketSpec, query: Sequence[str]) -> list[str]:
    """The ``--query`` texts, checked, and the market's embeddings checked against the text embedder's size."""
    from adspace.models.embedder import DIM, MODEL_NAME

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
    return texts


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
    quiet_model_loading()
    from adspace.marketfiles import read_market

    try:
        spec = read_market(market_file)  # validate before loading the model
        texts = _query_texts(spec, query)
        report = _clear_texts(spec, texts, reserve)
    except (MarketError, ValueError) as exc:
        raise fail(exc) from None
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    n = len(texts)
    title = (
        f"{n} quer{'y' if n == 1 else 'ies'}, {report.advertisers} advertisers ({report.market}), "
        f"reserve {money(report.reserve, report.currency)}"
    )
    keys = [f"query {i + 1}" if n > 1 else "query" for i in range(n)]
    _print_report(report, keys, [_snippet(t) for t in texts], title, "Query")
