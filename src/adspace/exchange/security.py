"""API keys: random (32 bytes of ``secrets``), shown once, stored as SHA-256.

A key has 256 bits of entropy, so a fast unsalted hash is the right tool: nothing can be
brute-forced, and lookup is one indexed equality. Keys look like ``adsk_adv_<43 chars>``; the role
part only helps people tell keys apart, authority comes from the database.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["new_key", "hash_key", "new_id", "new_auction_id"]

_ROLE_TAG = {"admin": "adm", "advertiser": "adv", "publisher": "pub"}


def new_key(kind: str) -> str:
    return f"adsk_{_ROLE_TAG[kind]}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_id(prefix: str) -> str:
    """A random id such as ``cmp_3f9c...`` (96 bits; ids are not secrets, but not sequential either)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_auction_id() -> str:
    """An unguessable auction id (128 random bits): knowing one id says nothing about another."""
    return f"auc_{secrets.token_urlsafe(16)}"
