"""What every service shares: errors, the authenticated caller, time and vector helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

__all__ = [
    "Conflict",
    "Gone",
    "Invalid",
    "NotFound",
    "Principal",
    "ServiceError",
    "Unavailable",
    "as_utc",
    "conversation_text",
    "utcnow",
    "vec",
    "vec_bytes",
]

#: The ledger account of the exchange itself.
EXCHANGE_OWNER = "exchange"


class ServiceError(Exception):
    """A use case refused: ``detail`` names the field and what is allowed; ``status`` is its HTTP code."""

    status = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Invalid(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Gone(ServiceError):
    status = 410


class Unavailable(ServiceError):
    status = 503


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    account_id: str
    kind: str  # admin | advertiser | publisher
    name: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def vec_bytes(v) -> bytes:
    """A vector as stored (little-endian float64 bytes)."""
    return np.asarray(v, dtype="<f8").tobytes()


def vec(b: bytes) -> np.ndarray:
    """A stored vector back as float64."""
    return np.frombuffer(b, dtype="<f8").astype(np.float64)


def conversation_text(messages: list[dict[str, str]]) -> str:
    """The text embedded for a conversation: :func:`adspace.marketfiles.conversation_text` (the project's one
    definition: the last user turns, most recent first). Raises :class:`ServiceError` naming
    ``messages`` when there is no user turn to auction."""
    from adspace.marketfiles import conversation_text as _text

    try:
        return _text(messages)[-2000:]
    except ValueError as exc:
        raise Invalid(f"messages: {exc}".replace("messages: messages", "messages")) from None


class Forbidden(ServiceError):
    status = 403
