"""Markets and conversations from files: the I/O edge between people's text and the clearing kernel.

* :mod:`~adspace.marketfiles.spec` -- what a market file holds (its format), validated, and the market
  ready to clear;
* :mod:`~adspace.marketfiles.parsing` -- reading JSON and CSV market files, embedding descriptions;
* :mod:`~adspace.marketfiles.conversations` -- conversation files and the query text of a conversation;
* :mod:`~adspace.marketfiles.shipped` -- the demo market and conversations shipped in the package.

Examples
--------
>>> conversation_text([{"role": "user", "content": "I run marathons."},
...                    {"role": "assistant", "content": "Nice!"},
...                    {"role": "user", "content": "Which shoes?"}])
'Which shoes?\\nI run marathons.'
>>> spec = parse_market({"advertisers": [
...     {"name": "A", "embedding": [1.0, 0.0], "sigma": 0.5, "bid": 2.0},
...     {"name": "B", "embedding": [0.0, 1.0], "sigma": 0.5, "bid_micros": 1500000}]})
>>> m = build_market(spec)
>>> m.names, m.bids.tolist()
(('A', 'B'), [2.0, 1.5])
>>> int(m.clear([[0.9, 0.1]]).winner[0])
0
"""

from adspace.marketfiles.conversations import (
    DEFAULT_LAST_N,
    Conversation,
    Message,
    conversation_text,
    parse_conversations,
    read_conversations,
)
from adspace.marketfiles.parsing import build_market, load_market, parse_market, parse_market_csv, read_market
from adspace.marketfiles.shipped import demo_conversations, demo_market_spec, load_demo_market, shipped_data
from adspace.marketfiles.spec import MICROS, AdMarket, AdvertiserSpec, Creative, MarketError, MarketSpec

__all__ = [
    "AdMarket",
    "AdvertiserSpec",
    "Conversation",
    "Creative",
    "DEFAULT_LAST_N",
    "MICROS",
    "MarketError",
    "MarketSpec",
    "Message",
    "build_market",
    "conversation_text",
    "demo_conversations",
    "demo_market_spec",
    "load_demo_market",
    "load_market",
    "parse_conversations",
    "parse_market",
    "parse_market_csv",
    "read_conversations",
    "read_market",
    "shipped_data",
]
