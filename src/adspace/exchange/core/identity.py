"""Who is calling: the one parse of the ``Authorization`` header.

Authentication (:mod:`adspace.exchange.http.deps`) and the rate limiter
(:mod:`adspace.exchange.http.guard`) both read the caller from here, so a key cannot be spelled one
way for one and another way for the other. The header must be exactly one ``Authorization`` header
holding ``Bearer <key>``: the scheme in any case, surrounded by any whitespace. Several
``Authorization`` headers are refused (400): which one counts would otherwise depend on who reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adspace.exchange.core.common import Principal

__all__ = ["AuthHeaderError", "Identity", "SCOPE_KEY", "parse_authorization"]

#: Where the guard leaves the caller's :class:`Identity` in the ASGI scope for the routers.
SCOPE_KEY = "adspace.identity"


class AuthHeaderError(ValueError):
    """The request's ``Authorization`` header(s) cannot be read as one credential (answered 400)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller as resolved once per request: its principal, or why there is none."""

    principal: Principal | None
    #: ``None`` when authenticated, else the 401 message (missing, malformed, or unknown key).
    problem: str | None


MISSING = "Authorization: missing bearer API key"
MALFORMED = "Authorization: expected `Bearer <key>`"
UNKNOWN = "Authorization: unknown or revoked API key"


def parse_authorization(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """``(key, problem)`` from raw ASGI headers (names are lowercase there).

    ``key`` is the bearer key, canonical (no surrounding whitespace); ``problem`` says why there is no
    key (missing or malformed). Raises :class:`AuthHeaderError` for several ``Authorization`` headers.
    """
    values = [v for k, v in headers if k == b"authorization"]
    if not values:
        return None, MISSING
    if len(values) > 1:
        raise AuthHeaderError(f"Authorization: send one header, not {len(values)}")
    parts = values[0].decode("latin-1").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None, MALFORMED
    return parts[1], None
