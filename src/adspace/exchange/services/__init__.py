"""The exchange's services, one per domain; :class:`Exchange` wires them together (see ``exchange.py``)."""

from adspace.exchange.services.common import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    Principal,
    ServiceError,
    Unavailable,
    conversation_text,
)
from adspace.exchange.services.exchange import Exchange

__all__ = [
    "Conflict",
    "Exchange",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "Principal",
    "ServiceError",
    "Unavailable",
    "conversation_text",
]
