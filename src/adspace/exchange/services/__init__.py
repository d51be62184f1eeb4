"""The exchange's services, one per job; :class:`adspace.exchange.container.Exchange` wires them together."""

from adspace.exchange.core.common import (
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

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "Principal",
    "ServiceError",
    "Unavailable",
    "conversation_text",
]
