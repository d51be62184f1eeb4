"""The demo market and conversations shipped inside the package (``adspace/data/``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from adspace.marketfiles.conversations import Conversation, parse_conversations
from adspace.marketfiles.parsing import build_market, parse_market
from adspace.marketfiles.spec import AdMarket, MarketSpec

if TYPE_CHECKING:  # pragma: no cover
    from adspace.models.embedder import Embedder

__all__ = [
    "DEMO_CONVERSATIONS",
    "DEMO_MARKET",
    "demo_conversations",
    "demo_market_spec",
    "load_demo_market",
    "shipped_data",
]

DEMO_MARKET = "demo_market.json"
DEMO_CONVERSATIONS = "demo_conversations.json"


def shipped_data(name: str) -> Any:
    """A JSON file shipped in ``adspace/data/``, parsed."""
    return json.loads(resources.files("adspace").joinpath("data", name).read_text(encoding="utf-8"))


def demo_market_spec() -> MarketSpec:
    """The demo market shipped in ``adspace/data/demo_market.json`` (16 fictional advertisers)."""
    return parse_market(shipped_data(DEMO_MARKET), source=f"adspace/data/{DEMO_MARKET}")


def load_demo_market(*, embedder: Embedder | None = None) -> AdMarket:
    """The demo market, embedded."""
    return build_market(demo_market_spec(), embedder=embedder)


def demo_conversations() -> list[Conversation]:
    """The demo conversations shipped in ``adspace/data/demo_conversations.json``."""
    return parse_conversations(shipped_data(DEMO_CONVERSATIONS), source=f"adspace/data/{DEMO_CONVERSATIONS}")
