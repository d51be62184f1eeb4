"""Reading market files (JSON and CSV, formats in :mod:`adspace.marketfiles.spec`) into a validated
:class:`~adspace.marketfiles.spec.MarketSpec`, and building the clearing arrays from it.

Every error is a :class:`~adspace.marketfiles.spec.MarketError` naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adspace.marketfiles.spec import (
    MICROS,
    AdMarket,
    AdvertiserSpec,
    Creative,
    MarketError,
    MarketSpec,
    read_json,
    read_text,
)

if TYPE_CHECKING:  # pragma: no cover
    from adspace.models.embedder import Embedder

__all__ = ["build_market", "load_market", "parse_market", "parse_market_csv", "read_market"]

_ADVERTISER_KEYS = ("name", "description", "embedding", "sigma", "bid", "bid_micros", "creative")
_CREATIVE_KEYS = ("title", "body", "url")
_MARKET_KEYS = ("advertisers", "currency", "reserve", "reserve_micros", "about")
_CSV_COLUMNS = ("name", "description", "sigma", "bid", "bid_micros", "title", "body", "url")
_EMBEDDING_COLUMN = re.compile(r"embedding_(\d+)")
_CURRENCY = re.compile(r"[A-Z]{3}")


# --------------------------------------------------------------------------------------------------
# Field parsing (one helper per kind of value; every error names where and which field)
# --------------------------------------------------------------------------------------------------


def _fail(source: str, where: str, name: str | None, fld: str | None, problem: str) -> MarketError:
    parts = [source]
    if where:
        parts.append(f"{where} ({name!r})" if name else where)
    if fld:
        parts.append(f"field {fld!r}")
    return MarketError(": ".join(parts) + ": " + problem)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, err) -> str:
    if not isinstance(value, str):
        raise err(f"must be a string, got {type(value).__name__}")
    out = value.strip()
    if not out:
        raise err("must not be empty")
    return out


def _number(value: Any, err, *, from_text: bool) -> float:
    if from_text and isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise err(f"must be a number, got {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise err(f"must be a number, got {type(value).__name__} {value!r}")
    else:
        out = float(value)
    if not math.isfinite(out):
        raise err(f"must be finite, got {value!r}")
    return out


def _positive(value: Any, err, *, from_text: bool) -> float:
    out = _number(value, err, from_text=from_text)
    if out <= 0:
        raise err(f"must be > 0, got {value!r}")
    return out


def _micros(value: Any, err, *, from_text: bool, positive: bool = True) -> float:
    if from_text and isinstance(value, str):
        try:
            n = int(value.strip())
        except ValueError:
            raise err(f"must be an integer number of micros, got {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, int):
        raise err(f"must be an integer number of micros, got {type(value).__name__} {value!r}")
    else:
        n = value
    if n < 0 or (positive and n == 0):
        raise err(f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return n / MICROS


def _bid(raw: Mapping[str, Any], err, *, from_text: bool) -> float:
    has_bid, has_micros = not _is_missing(raw.get("bid")), not _is_missing(raw.get("bid_micros"))
    if has_bid and has_micros:
        raise err("bid", "give either 'bid' (currency units) or 'bid_micros' (integer micros), not both")
    if has_bid:
        return _positive(raw["bid"], lambda m: err("bid", m), from_text=from_text)
    if has_micros:
        return _micros(raw["bid_micros"], lambda m: err("bid_micros", m), from_text=from_text)
    raise err("bid", "missing (give 'bid' in currency units or 'bid_micros' in integer micros)")


def _check_names(advertisers: Sequence[AdvertiserSpec], source: str) -> None:
    seen: dict[str, str] = {}
    for a in advertisers:
        if a.name in seen:
            raise _fail(source, a.origin, a.name, "name", f"duplicate name (also at {seen[a.name]})")
        seen[a.name] = a.origin
    if not advertisers:
        raise MarketError(f"{source}: the market has no advertisers")


def _check_dims(advertisers: Sequence[AdvertiserSpec], source: str) -> None:
    first = next((a for a in advertisers if a.embedding is not None), None)
    if first is None:
        return
    for a in advertisers:
        if a.embedding is not None and len(a.embedding) != len(first.embedding):
            raise _fail(
                source,
                a.origin,
                a.name,
                "embedding",
                f"has {len(a.embedding)} values but {first.origin} ({first.name!r}) has {len(first.embedding)}",
            )


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------


def _parse_advertiser_json(raw: Any, i: int, source: str) -> AdvertiserSpec:
    where = f"advertisers[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(source, where, None, None, f"must be an object, got {type(raw).__name__}")
    label = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name", "").strip() else None

    def err(fld: str | None, problem: str) -> MarketError:
        return _fail(source, where, label, fld, problem)

    unknown = [k for k in raw if k not in _ADVERTISER_KEYS]
    if unknown:
        raise err(str(unknown[0]), f"unknown field (allowed: {', '.join(_ADVERTISER_KEYS)})")
    for required in ("name", "sigma"):
        if _is_missing(raw.get(required)):
            raise err(required, "missing")
    name = _text(raw["name"], lambda m: err("name", m))
    sigma = _positive(raw["sigma"], lambda m: err("sigma", m), from_text=False)
    bid = _bid(raw, err, from_text=False)

    description = None
    if raw.get("description") is not None:
        description = _text(raw["description"], lambda m: err("description", m))
    embedding = None
    if raw.get("embedding") is not None:
        emb = raw["embedding"]
        if not isinstance(emb, list | tuple) or not emb:
            raise err("embedding", "must be a non-empty list of numbers")
        embedding = tuple(
            _number(v, lambda m, k=k: err(f"embedding[{k}]", m), from_text=False) for k, v in enumerate(emb)
        )
    if description is None and embedding is None:
        raise err("description", "missing (give a 'description' of the advertiser's customer, or an 'embedding')")

    creative = None
    if raw.get("creative") is not None:
        cr = raw["creative"]
        if not isinstance(cr, Mapping):
            raise err("creative", f"must be an object with {', '.join(_CREATIVE_KEYS)}, got {type(cr).__name__}")
        bad = [k for k in cr if k not in _CREATIVE_KEYS]
        if bad:
            raise err(f"creative.{bad[0]}", f"unknown field (allowed: {', '.join(_CREATIVE_KEYS)})")
        for k, v in cr.items():
            if not isinstance(v, str):
                raise err(f"creative.{k}", f"must be a string, got {type(v).__name__}")
        creative = Creative(**{k: cr[k].strip() for k in cr})
    return AdvertiserSpec(name, sigma, bid, description, embedding, creative, origin=where)


def parse_market(obj: Any, source: str = "<market>") -> MarketSpec:
    """Validate a JSON-like market (an object with ``advertisers``, or a bare list of advertisers).

    Raises :class:`MarketError` naming ``source``, the advertiser and the field.
    """
    currency, reserve = "USD", 0.0
    if isinstance(obj, Mapping):
        unknown = [k for k in obj if k not in _MARKET_KEYS]
        if unknown:
            raise _fail(
                source, "", None, str(unknown[0]), f"unknown top-level field (allowed: {', '.join(_MARKET_KEYS)})"
            )
        if "advertisers" not in obj:
            raise _fail(source, "", None, "advertisers", "missing (the list of advertisers)")
        if "currency" in obj:
            currency = obj["currency"]
            if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
                raise _fail(
                    source, "", None, "currency", f"must be a three-letter ISO 4217 code like 'USD', got {currency!r}"
                )
        if "reserve" in obj and "reserve_micros" in obj:
            raise _fail(source, "", None, "reserve", "give either 'reserve' or 'reserve_micros', not both")
        if "reserve" in obj:
            reserve = _number(obj["reserve"], lambda m: _fail(source, "", None, "reserve", m), from_text=False)
            if reserve < 0:
                raise _fail(source, "", None, "reserve", f"must be >= 0, got {obj['reserve']!r}")
        if "reserve_micros" in obj:
            reserve = _micros(
                obj["reserve_micros"],
                lambda m: _fail(source, "", None, "reserve_micros", m),
                from_text=False,
                positive=False,
            )
        if "about" in obj and not isinstance(obj["about"], str):
            raise _fail(source, "", None, "about", f"must be a string, got {type(obj['about']).__name__}")
        items = obj["advertisers"]
    else:
        items = obj
    if not isinstance(items, list):
        raise _fail(
            source, "", None, "advertisers", f"must be a list of advertiser objects, got {type(items).__name__}"
        )
    advertisers = tuple(_parse_advertiser_json(raw, i, source) for i, raw in enumerate(items))
    _check_names(advertisers, source)
    _check_dims(advertisers, source)
    return MarketSpec(advertisers, currency=currency, reserve=reserve, source=source)


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------


def _csv_header(header: Sequence[str] | None, source: str) -> int:
    """Check the header; return the number of embedding columns."""
    if not header:
        raise MarketError(f"{source}: empty file (expected a header row: name, description, sigma, bid)")
    seen: set[str] = set()
    emb: list[int] = []
    for col in header:
        if col in seen:
            raise MarketError(f"{source}: line 1: column {col!r} appears twice")
        seen.add(col)
        m = _EMBEDDING_COLUMN.fullmatch(col)
        if m:
            emb.append(int(m.group(1)))
        elif col not in _CSV_COLUMNS:
            raise MarketError(
                f"{source}: line 1: unknown column {col!r} "
                f"(allowed: {', '.join(_CSV_COLUMNS)}, embedding_0 ... embedding_<d-1>)"
            )
    if emb and sorted(emb) != list(range(len(emb))):
        missing = min(set(range(max(emb) + 1)) - set(emb))
        raise MarketError(
            f"{source}: line 1: embedding columns must run embedding_0 ... embedding_{max(emb)} "
            f"without gaps; embedding_{missing} is missing"
        )
    for required in ("name", "sigma"):
        if required not in seen:
            raise MarketError(f"{source}: line 1: missing column {required!r}")
    if "bid" not in seen and "bid_micros" not in seen:
        raise MarketError(f"{source}: line 1: missing column 'bid' (or 'bid_micros')")
    if "description" not in seen and not emb:
        raise MarketError(f"{source}: line 1: missing column 'description' (or embedding_0 ... embedding_<d-1>)")
    return len(emb)


def parse_market_csv(text: str, source: str = "<market.csv>") -> MarketSpec:
    """Validate a CSV market (see the module docstring for the columns)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    dim = _csv_header(reader.fieldnames, source)
    advertisers = []
    for row in reader:
        where = f"line {reader.line_num}"
        label = row.get("name").strip() if isinstance(row.get("name"), str) and row.get("name").strip() else None

        def err(fld: str | None, problem: str, where=where, label=label) -> MarketError:
            return _fail(source, where, label, fld, problem)

        if None in row:
            raise err(
                None,
                f"has {len(reader.fieldnames) + len(row[None])} values but the header has {len(reader.fieldnames)} columns",
            )
        short = [k for k, v in row.items() if v is None]
        if short:
            raise err(
                short[0], f"missing (the row has fewer values than the header's {len(reader.fieldnames)} columns)"
            )
        for required in ("name", "sigma"):
            if _is_missing(row.get(required)):
                raise err(required, "missing")
        name = _text(row["name"], lambda m, err=err: err("name", m))
        sigma = _positive(row["sigma"], lambda m, err=err: err("sigma", m), from_text=True)
        bid = _bid(row, err, from_text=True)
        description = row["description"].strip() if not _is_missing(row.get("description")) else None
        embedding = None
        if dim:
            cells = [row[f"embedding_{k}"] for k in range(dim)]
            empty = [k for k, v in enumerate(cells) if _is_missing(v)]
            if len(empty) < dim:
                if empty:
                    raise err(f"embedding_{empty[0]}", "missing (give all embedding columns or none)")
                embedding = tuple(
                    _number(v, lambda m, k=k, err=err: err(f"embedding_{k}", m), from_text=True)
                    for k, v in enumerate(cells)
                )
        if description is None and embedding is None:
            raise err("description", "missing (give a description of the advertiser's customer, or embedding_0 ...)")
        creative = None
        if any(not _is_missing(row.get(k)) for k in _CREATIVE_KEYS):
            creative = Creative(**{k: (row.get(k) or "").strip() for k in _CREATIVE_KEYS})
        advertisers.append(AdvertiserSpec(name, sigma, bid, description, embedding, creative, origin=where))
    advertisers = tuple(advertisers)
    _check_names(advertisers, source)
    _check_dims(advertisers, source)
    return MarketSpec(advertisers, source=source)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def read_market(path: str | Path) -> MarketSpec:
    """Read and validate a market file (``.json`` or ``.csv``) without embedding anything."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return parse_market(read_json(path), source=str(path))
    if suffix == ".csv":
        return parse_market_csv(read_text(path), source=str(path))
    raise MarketError(f"{path}: unknown file type {path.suffix or '(none)'!r}; a market file ends in .json or .csv")


def build_market(spec: MarketSpec, *, embedder: Embedder | None = None) -> AdMarket:
    """Turn a validated spec into clearing arrays, embedding descriptions where no embedding was given.

    The embedder (default: the process-wide :func:`adspace.models.embedder.get_embedder`) is loaded
    only when some advertiser has no embedding. Given embeddings must then have the embedder's
    dimension.
    """
    ads = spec.advertisers
    todo = [i for i, a in enumerate(ads) if a.embedding is None]
    given = next((a for a in ads if a.embedding is not None), None)
    if todo:
        if embedder is None:
            from adspace.models.embedder import get_embedder

            embedder = get_embedder()
        if given is not None and len(given.embedding) != embedder.dim:
            raise _fail(
                spec.source,
                given.origin,
                given.name,
                "embedding",
                f"has {len(given.embedding)} values but descriptions embed to {embedder.dim} "
                f"({embedder.model_name}); give {embedder.dim}-d embeddings or descriptions only",
            )
        dim = embedder.dim
    else:
        dim = len(given.embedding)
    centers = np.empty((len(ads), dim), dtype=np.float64)
    for i, a in enumerate(ads):
        if a.embedding is not None:
            centers[i] = a.embedding
    if todo:
        centers[todo] = embedder.embed([ads[i].description for i in todo])
    return AdMarket(
        spec=spec,
        names=tuple(a.name for a in ads),
        centers=centers,
        sigmas=np.array([a.sigma for a in ads], dtype=np.float64),
        bids=np.array([a.bid for a in ads], dtype=np.float64),
    )


def load_market(path: str | Path, *, embedder: Embedder | None = None) -> AdMarket:
    """:func:`read_market` then :func:`build_market`."""
    return build_market(read_market(path), embedder=embedder)
