"""API keys: random (32 bytes of ``secrets``), shown once, stored as SHA-256.

A key has 256 bits of entropy, so a fast unsalted hash is the right tool: nothing can be
brute-forced, and lookup is one indexed equality. Keys look like ``adsk_adv_<43 chars>``; the role
part only helps people tell keys apart, authority comes from the database.
"""

from __future__ import annotations

import hashlib
import secrets
import time

__all__ = ["new_key", "hash_key", "new_id", "new_auction_id"]

_ROLE_TAG = {"admin": "adm", "advertiser": "adv", "publisher": "pub"}


def new_key(kind: str) -> str:
    return f"adsk_{_ROLE_TAG[kind]}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_id(prefix: str) -> str:
    """A random id such as ``cmp_3f9c...`` (96 bits; ids are not secrets, but not sequential either)."""
    return f"{prefix}_{secrets.token_hex(12)}"


#: Crockford's base32: its digits sort in ASCII order, so the time prefix sorts as its value.
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _time_prefix(ms: int) -> str:
    """``ms`` (milliseconds since the epoch) as 9 base32 digits (45 bits: until the year 3084)."""
    return "".join(_B32[(ms >> shift) & 31] for shift in range(40, -1, -5))


def new_auction_id(now_ms: int | None = None) -> str:
    """An unguessable auction id: a time prefix, then 128 random bits (knowing one id says nothing
    about another). The prefix makes ids of one moment neighbours in the database's index on them, so
    a batch of new auctions writes one or two index pages instead of one page per auction at random."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return f"auc_{_time_prefix(ms)}{secrets.token_urlsafe(16)}"
