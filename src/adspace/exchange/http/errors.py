"""The exchange's one error model: every refusal is a JSON body ``{"detail": ...}`` with its status.

* A request that fails validation (its body, a path or query parameter): 422, ``detail`` a list of
  ``{"loc", "msg", "type"}``, one per error. The offending input is not echoed back: it may be large,
  or not representable in JSON, such as NaN.
* A service's refusal (:class:`~adspace.exchange.core.common.ServiceError`): its ``status``, and
  its ``detail`` naming the field and what is allowed.
* An HTTP error (the caller is unknown: 401, has the wrong kind of key: 403, no such path: 404, ...):
  its status, detail and headers; the guard's own refusals (400, 413, 429) have the same form.

The app's exception handlers (:func:`install`), the guard and the fast lane all answer through
:func:`answer_of`; the guard and the fast lane send on the raw ASGI ``send`` (:func:`send_json`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException

from adspace.exchange.core.common import ServiceError

__all__ = ["answer_of", "error_body", "install", "send_error", "send_exception", "send_json", "validation_detail"]

#: Raw ASGI headers.
Headers = Sequence[tuple[bytes, bytes]]


def validation_detail(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``detail`` of a 422: location, message and type of each validation error."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in errors]


def error_body(detail: Any) -> bytes:
    """``{"detail": detail}`` as the exchange sends it (compact UTF-8 JSON)."""
    return json.dumps({"detail": detail}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def answer_of(exc: Exception) -> tuple[int, bytes | None, list[tuple[bytes, bytes]]]:
    """The answer to an error: status, body (``None`` for a status that has none) and extra headers.

    Raises ``TypeError`` for an exception that is not one of the exchange's errors (a bug: a 500)."""
    if isinstance(exc, RequestValidationError):
        return 422, error_body(validation_detail(exc.errors())), []
    if isinstance(exc, ServiceError):
        return exc.status, error_body(exc.detail), []
    if isinstance(exc, HTTPException):
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
        if not is_body_allowed_for_status_code(exc.status_code):
            return exc.status_code, None, headers
        return exc.status_code, error_body(exc.detail), headers
    raise TypeError(f"not an error of the exchange's API: {exc!r}")


async def send_json(send, status: int, body: bytes, headers: Headers = ()) -> None:
    """Answer with a JSON ``body`` (bytes, already serialised) on the raw ASGI ``send``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send, status: int, detail: str, headers: Headers = ()) -> None:
    """Answer ``{"detail": detail}`` with ``status`` on the raw ASGI ``send``."""
    await send_json(send, status, error_body(detail), headers)


async def send_exception(send, exc: Exception) -> None:
    """Answer an error (:func:`answer_of`) on the raw ASGI ``send``."""
    status, body, headers = answer_of(exc)
    if body is None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send_json(send, status, body, headers)


async def _handle(_req: Request, exc: Exception) -> Response:
    status, body, headers = answer_of(exc)
    extra = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
    if body is None:
        return Response(status_code=status, headers=extra)
    return Response(body, status_code=status, headers=extra, media_type="application/json")


def install(app: FastAPI) -> None:
    """Answer validation errors, services' refusals and HTTP errors of the routes as above."""
    for exc in (RequestValidationError, ServiceError, HTTPException):
        app.add_exception_handler(exc, _handle)
