"""``adspace reach``: propose a campaign's center and σ from example conversations, and preview it.

Against a running exchange (``--url``, with an advertiser key) it calls ``POST /v1/campaigns/reach``
through :mod:`adspace.client`, so the preview is the live market's. Offline it fits locally and, with
``--market FILE``, previews against that market file. The fit and the preview are
:mod:`adspace.mechanisms.reach` either way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from adspace.cli import app


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


@app.command()
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
    from adspace.cli.cmd_market import _fail, _quiet_model_loading

    _quiet_model_loading()
    try:
        cust = _read_texts(customers, "--customers")
        others = _read_texts(non_customers, "--non-customers") if non_customers else None
        qs = _read_texts(queries, "--queries") if queries else None
        if url and market:
            raise ValueError("--url | --market: preview against one of them, not both")
        if url and not key:
            raise ValueError("--key: an advertiser API key is needed with --url (or set ADSPACE_API_KEY)")
        bid_micros = None if bid is None else round(bid * 1e6)
        if bid_micros is not None and bid_micros < 1:
            raise ValueError("--bid: must be > 0")
        if sigma is not None and not sigma > 0:
            raise ValueError("--sigma: must be > 0")
        out = (
            _remote(url, key, cust, others, qs, bid_micros, sigma, round(reserve * 1e6))
            if url
            else _local(cust, others, qs, bid_micros, sigma, reserve, market)
        )
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line naming the field
        from adspace.client import ApiError, TransportError

        if isinstance(exc, ValueError | ApiError | TransportError):
            raise _fail(exc) from None
        raise
    if json_out:
        typer.echo(json.dumps(out, indent=2))
        return
    _print(out)


def _remote(url, key, cust, others, qs, bid_micros, sigma, reserve_micros) -> dict:
    from adspace.client import Client

    with Client(url, key) as c:
        res = c.reach(
            cust, non_customers=others, queries=qs, bid_micros=bid_micros, sigma=sigma, reserve_micros=reserve_micros
        )
    return {"market": url, **res.model_dump(mode="json")}


def _local(cust, others, qs, bid_micros, sigma, reserve, market_file) -> dict:
    import numpy as np

    from adspace.marketfiles import build_market, read_market
    from adspace.mechanisms.reach import fit_reach, preview
    from adspace.models.embedder import get_embedder

    spec = read_market(market_file) if market_file else None  # validate before loading the model
    if len(cust) < 2:
        raise ValueError(f"--customers: give at least 2 example conversations, got {len(cust)}")
    emb = get_embedder()
    fit = fit_reach(emb.embed(cust), emb.embed(others) if others else None)
    out = {"market": None, "center": fit.center.tolist(), "sigma": fit.sigma, "fit": fit.as_dict(), "preview": None}
    if bid_micros is None or spec is None:
        return out
    m = build_market(spec, embedder=emb)
    texts = qs if qs is not None else list(dict.fromkeys(cust + (others or [])))
    s = sigma or fit.sigma
    bid_units = bid_micros / 1e6
    pv = preview(emb.embed(texts), fit.center, s, bid_units, m.centers, m.sigmas, m.bids, reserve=reserve)
    rows = []
    for k, t in enumerate(texts):
        w = int(pv.winner[k])
        need = float(pv.bid_to_win[k])
        rows.append(
            {
                "text": t,
                "won": bool(pv.won[k]),
                "price_micros": math.floor(pv.payment[k] * 1e6) if pv.won[k] else 0,
                "value_micros": float(pv.value[k] * 1e6),
                "sqdist": float(pv.sqdist[k]),
                "winner": "this campaign" if pv.won[k] else (None if w < 0 else m.names[w]),
                "bid_to_win_micros": math.floor(need * 1e6) + 1 if np.isfinite(need) and need < 1e6 else None,
            }
        )
    out["market"] = str(market_file)
    out["preview"] = {
        "bid_micros": bid_micros,
        "sigma": s,
        "reserve_micros": round(reserve * 1e6),
        "wins": int(pv.won.sum()),
        "queries": rows,
        "rivals": len(m),
    }
    return out


def _print(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    fit = out["fit"]
    cs, ns = fit["customer_sqdist"], fit["non_customer_sqdist"]
    how = (
        "maximum likelihood of the Gaussian value model (customers and non-customers)"
        if fit["method"] == "likelihood"
        else "median rule: the median customer is worth half the bid (give --non-customers for the likelihood fit)"
    )
    console.print(f"[bold]Proposed σ = {out['sigma']:.4f}[/] by {how}.")
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
    pv = out["preview"]
    if pv is None:
        console.print("No preview: give --bid and --url (the live market) or --market FILE.")
        return
    t = Table(
        title=f"Preview at bid {pv['bid_micros'] / 1e6:.2f}, σ {pv['sigma']:.3f}: {pv['wins']} of {len(pv['queries'])} won"
    )
    for col in ("Conversation", "‖x − c‖²", "Won", "Price", "Winner", "Bid to win"):
        t.add_column(col, justify="right" if col in ("‖x − c‖²", "Price", "Bid to win") else "left")
    for q in pv["queries"]:
        need = q["bid_to_win_micros"]
        t.add_row(
            q["text"][:60],
            f"{q['sqdist']:.3f}",
            "yes" if q["won"] else "no",
            f"{q['price_micros'] / 1e6:.4f}" if q["won"] else "",
            q["winner"] or "no fill",
            "out of reach" if need is None else f"{need / 1e6:.4f}",
        )
    console.print(t)
