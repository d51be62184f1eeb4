"""``adspace reach``: propose a campaign's center and σ from example conversations, and preview it.

Against a running exchange (``--url``, with an advertiser key) it calls ``POST /v1/campaigns/reach``
through :mod:`adspace.client`, so the preview is the live market's. Offline it fits locally and, with
``--market FILE``, previews against that market file. The fit and the preview are
:mod:`adspace.mechanisms.reach` either way, and both answer with the endpoint's own
:class:`~adspace.exchange.core.schemas.ReachResult`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from adspace.cli.console import fail, money, quiet_model_loading

if TYPE_CHECKING:  # pragma: no cover
    from adspace.exchange.core.schemas import ReachResult

__all__ = ["ReachReport", "reach"]


@dataclass(frozen=True)
class ReachReport:
    """The proposed center and σ (with a bid, the preview), and the market previewed: the exchange's
    URL, the market file, or ``None`` (no preview)."""

    market: str | None
    result: ReachResult

    def to_json(self) -> dict[str, Any]:
        return {"market": self.market, **self.result.model_dump(mode="json")}


@dataclass(frozen=True)
class _Evidence:
    """The conversations read from the files the options name."""

    customers: list[str]
    non_customers: list[str] | None
    queries: list[str] | None


def _read_texts(path: Path, option: str) -> list[str]:
    """One conversation per line (blank lines and lines starting with # skipped), or a JSON list of strings."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{option} {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, list) or not all(isinstance(t, str) and t.strip() for t in data):
            raise ValueError(f"{option} {path}: must be a JSON list of non-empty strings")
        return [t.strip() for t in data]
    texts = [line.strip() for line in raw.splitlines()]
    return [t for t in texts if t and not t.startswith("#")]


def _evidence(customers: Path, non_customers: Path | None, queries: Path | None) -> _Evidence:
    return _Evidence(
        _read_texts(customers, "--customers"),
        _read_texts(non_customers, "--non-customers") if non_customers else None,
        _read_texts(queries, "--queries") if queries else None,
    )


def _bid_micros(url: str | None, key: str | None, market: Path | None, bid: float | None, sigma: float | None):
    """The options checked together; the preview's bid in micros (``None``: no preview)."""
    if url and market:
        raise ValueError("--url | --market: preview against one of them, not both")
    if url and not key:
        raise ValueError("--key: an advertiser API key is needed with --url (or set ADSPACE_API_KEY)")
    bid_micros = None if bid is None else round(bid * 1e6)
    if bid_micros is not None and bid_micros < 1:
        raise ValueError("--bid: must be > 0")
    if sigma is not None and not sigma > 0:
        raise ValueError("--sigma: must be > 0")
    return bid_micros


def reach(
    customers: Path = typer.Option(
        ..., "--customers", help="Conversations of your customers: one per line, or a JSON list."
    ),
    non_customers: Path | None = typer.Option(
        None, "--non-customers", help="Conversations of people who are not your customers (σ by maximum likelihood)."
    ),
    queries: Path | None = typer.Option(None, "--queries", help="Conversations to preview on (default: the examples)."),
    bid: float | None = typer.Option(
        None, "--bid", min=0.0, help="Preview at this bid (currency units): value at the center."
    ),
    sigma: float | None = typer.Option(None, "--sigma", min=0.0, help="Preview with this σ instead of the fitted one."),
    reserve: float = typer.Option(0.0, "--reserve", min=0.0, help="Reserve for the preview (currency units)."),
    url: str | None = typer.Option(
        None, "--url", help="A running exchange, e.g. http://127.0.0.1:8000 (live preview)."
    ),
    key: str | None = typer.Option(
        None, "--key", envvar="ADSPACE_API_KEY", help="Advertiser API key for --url (or $ADSPACE_API_KEY)."
    ),
    market: Path | None = typer.Option(None, "--market", help="Offline: preview against this market file."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Propose a center and reach σ from example conversations, and preview what the campaign would win."""
    quiet_model_loading()
    try:
        texts = _evidence(customers, non_customers, queries)
        bid_micros = _bid_micros(url, key, market, bid, sigma)
        report = (
            _remote(url, key, texts, bid_micros, sigma, round(reserve * 1e6))
            if url
            else _local(texts, bid_micros, sigma, reserve, market)
        )
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line naming the field
        from adspace.client import ApiError, TransportError

        if isinstance(exc, ValueError | ApiError | TransportError):
            raise fail(exc) from None
        raise
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    _print(report)


def _remote(url: str, key: str, texts: _Evidence, bid_micros, sigma, reserve_micros) -> ReachReport:
    """The live market's answer: ``POST /v1/campaigns/reach``."""
    from adspace.client import Client

    with Client(url, key) as c:
        res = c.reach(
            texts.customers,
            non_customers=texts.non_customers,
            queries=texts.queries,
            bid_micros=bid_micros,
            sigma=sigma,
            reserve_micros=reserve_micros,
        )
    return ReachReport(url, res)


def _local(texts: _Evidence, bid_micros, sigma, reserve: float, market_file: Path | None) -> ReachReport:
    """The same answer computed here: the fit, and with a bid and a market file, the preview against it."""
    import numpy as np

    from adspace.exchange.core.schemas import ReachPreviewOut, ReachQuery, ReachResult
    from adspace.marketfiles import build_market, read_market
    from adspace.mechanisms.reach import fit_reach, preview
    from adspace.models.embedder import get_embedder

    spec = read_market(market_file) if market_file else None  # validate before loading the model
    cust, others = texts.customers, texts.non_customers
    if len(cust) < 2:
        raise ValueError(f"--customers: give at least 2 example conversations, got {len(cust)}")
    emb = get_embedder()
    fit = fit_reach(emb.embed(cust), emb.embed(others) if others else None)
    result = ReachResult(center=fit.center.tolist(), sigma=fit.sigma, fit=fit.as_dict(), preview=None)
    if bid_micros is None or spec is None:
        return ReachReport(None, result)
    m = build_market(spec, embedder=emb)
    qs = texts.queries if texts.queries is not None else list(dict.fromkeys(cust + (others or [])))
    s = sigma or fit.sigma
    pv = preview(emb.embed(qs), fit.center, s, bid_micros / 1e6, m.centers, m.sigmas, m.bids, reserve=reserve)
    rows = []
    for k, t in enumerate(qs):
        w = int(pv.winner[k])
        need = float(pv.bid_to_win[k])
        rows.append(
            ReachQuery(
                text=t,
                won=bool(pv.won[k]),
                price_micros=math.floor(pv.payment[k] * 1e6) if pv.won[k] else 0,
                value_micros=float(pv.value[k] * 1e6),
                sqdist=float(pv.sqdist[k]),
                winner="this campaign" if pv.won[k] else (None if w < 0 else m.names[w]),
                bid_to_win_micros=math.floor(need * 1e6) + 1 if np.isfinite(need) and need < 1e6 else None,
            )
        )
    result.preview = ReachPreviewOut(
        bid_micros=bid_micros,
        sigma=s,
        reserve_micros=round(reserve * 1e6),
        wins=int(pv.won.sum()),
        queries=rows,
        rivals=len(m),
    )
    return ReachReport(str(market_file), result)


def _print(report: ReachReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    res = report.result
    fit = res.fit
    cs, ns = fit["customer_sqdist"], fit["non_customer_sqdist"]
    how = (
        "maximum likelihood of the Gaussian value model (customers and non-customers)"
        if fit["method"] == "likelihood"
        else "median rule: the median customer is worth half the bid (give --non-customers for the likelihood fit)"
    )
    console.print(f"[bold]Proposed σ = {res.sigma:.4f}[/] by {how}.")
    console.print(
        f"Customers ({fit['customers']}): ‖x − c‖² median {cs['median']:.3f}, keeping "
        f"{fit['customer_value_share']['median']:.1%} of the bid."
        + (
            f" Non-customers ({fit['non_customers']}): median {ns['median']:.3f}, keeping "
            f"{fit['non_customer_value_share']['median']:.1%}."
            if ns
            else ""
        )
    )
    pv = res.preview
    if pv is None:
        console.print("No preview: give --bid and --url (the live market) or --market FILE.")
        return
    t = Table(title=f"Preview at bid {pv.bid_micros / 1e6:.2f}, σ {pv.sigma:.3f}: {pv.wins} of {len(pv.queries)} won")
    for col in ("Conversation", "‖x − c‖²", "Won", "Price", "Winner", "Bid to win"):
        t.add_column(col, justify="right" if col in ("‖x − c‖²", "Price", "Bid to win") else "left")
    for q in pv.queries:
        need = q.bid_to_win_micros
        t.add_row(
            q.text[:60],
            f"{q.sqdist:.3f}",
            "yes" if q.won else "no",
            money(q.price_micros / 1e6) if q.won else "",
            q.winner or "no fill",
            "out of reach" if need is None else money(need / 1e6),
        )
    console.print(t)
