"""A market file's contents, validated: advertisers, currency and reserve, and the market ready to clear.

A *market file* lists advertisers, each with

``name``
    Unique display name.
``description`` *or* ``embedding``
    Who the advertiser wants to reach. A description (words about its customer) is embedded with the
    project's sentence embedder (:mod:`adspace.models.embedder`, 384-d unit vectors) to give the
    advertiser's center ``c``; an embedding gives ``c`` directly. When both are given the embedding is
    the center and the description is kept as documentation.
``sigma``
    The reach ``σ > 0``: the embedding distance over which the advertiser's value decays.
``bid`` *or* ``bid_micros``
    The value of one ad shown in a conversation exactly at ``c``: ``bid`` as a number in currency units
    (e.g. ``2.4``), or ``bid_micros`` as an integer number of millionths of the currency
    (e.g. ``2400000``; the exchange's ledger counts money in integer micros). Clearing works in
    currency units, so prices come back in currency units: a conversation ``x`` is worth
    ``bid · exp(−‖x − c‖²/σ²)`` to the advertiser (:func:`adspace.mechanisms.vcg.reported_value`).
``creative`` (optional)
    The ad an exchange would show: ``title``, ``body``, ``url``.

Two formats are read:

* **JSON**: an object ``{"advertisers": [...], "currency": "USD", "reserve": 0.01, "about": "..."}``
  (only ``advertisers`` is required; ``reserve_micros`` may replace ``reserve``) or a bare list of
  advertiser objects. Each advertiser is an object with the keys above; ``embedding`` is a list of
  numbers and ``creative`` an object.
* **CSV**: a header row, then one advertiser per row. Columns: ``name``, ``sigma``, ``bid`` or
  ``bid_micros``, and ``description`` and/or ``embedding_0 … embedding_{d−1}`` (all ``d`` of them,
  no gaps); optionally ``title``, ``body``, ``url``. Empty cells count as missing. A CSV file carries
  no currency or reserve (USD and 0; pass a reserve on the command line).

Anything else (an unknown key or column, a missing field, σ or a bid that is not a finite number
> 0, a duplicate name) raises :class:`MarketError` naming the file, the row and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms.vcg import Clearing, clear

__all__ = ["MICROS", "AdMarket", "AdvertiserSpec", "Creative", "MarketError", "MarketSpec", "read_json", "read_text"]

MICROS = 1_000_000
"""Micros per currency unit."""


class MarketError(ValueError):
    """A market or conversation file is malformed; the message names the file, the row and the field."""


@dataclass(frozen=True)
class Creative:
    """The ad an exchange would show for an advertiser."""

    title: str = ""
    body: str = ""
    url: str = ""


@dataclass(frozen=True)
class AdvertiserSpec:
    """One advertiser as read from a file (validated, not yet embedded).

    ``bid`` is in currency units whether the file gave ``bid`` or ``bid_micros``.
    ``origin`` says where it came from (``"advertisers[3]"`` or ``"line 5"``), for error messages.
    """

    name: str
    sigma: float
    bid: float
    description: str | None = None
    embedding: tuple[float, ...] | None = None
    creative: Creative | None = None
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class MarketSpec:
    """A validated market file: advertisers, currency and reserve (in currency units)."""

    advertisers: tuple[AdvertiserSpec, ...]
    currency: str = "USD"
    reserve: float = 0.0
    source: str = field(default="<market>", compare=False)

    def __len__(self) -> int:
        return len(self.advertisers)


@dataclass(frozen=True, eq=False)
class AdMarket:
    """A market ready to clear: names, ``(N, d)`` centers, ``(N,)`` sigmas and bids (currency units).

    :meth:`clear` calls :func:`adspace.mechanisms.vcg.clear` with the market's reserve unless another
    is given.
    """

    spec: MarketSpec
    names: tuple[str, ...]
    centers: NDArray[np.float64]
    sigmas: NDArray[np.float64]
    bids: NDArray[np.float64]

    @property
    def reserve(self) -> float:
        return self.spec.reserve

    @property
    def currency(self) -> str:
        return self.spec.currency

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    def __len__(self) -> int:
        return len(self.names)

    def clear(self, queries: ArrayLike, *, reserve: float | None = None, eligible: ArrayLike | None = None) -> Clearing:
        """Clear query embeddings ``(Q, d)`` or ``(d,)`` against this market."""
        return clear(
            queries,
            self.centers,
            self.sigmas,
            self.bids,
            reserve=self.reserve if reserve is None else reserve,
            eligible=eligible,
        )


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MarketError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MarketError(f"{path}: is a directory, expected a .json or .csv file") from None
    except UnicodeDecodeError as exc:
        raise MarketError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise MarketError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
