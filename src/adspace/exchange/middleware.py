"""ASGI guards in front of the routers: request body limit (413) and per-key rate limit (429)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

__all__ = ["Guard"]

_EXEMPT = ("/healthz", "/docs", "/openapi.json", "/redoc")


class _Buckets:
    """Token buckets keyed by API key (or client address when there is none)."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._b: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._b.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._b[key] = (tokens - 1.0, now)
                if len(self._b) > 100_000:
                    self._b.clear()
                return 0.0
            self._b[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


async def _send_json(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, *, max_body_bytes: int, rate_per_second: float, burst: int):
        self.app = app
        self.max_body = max_body_bytes
        self.buckets = _Buckets(rate_per_second, burst) if rate_per_second > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(_EXEMPT):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.buckets is not None:
            auth = headers.get(b"authorization")
            if auth:
                key = "k:" + hashlib.sha256(auth).hexdigest()
            elif scope["path"].startswith("/openrtb2/notice/"):
                # Notices come from ad servers, many auctions per address: limit each notice URL instead.
                key = "n:" + scope["path"]
            else:
                key = "ip:" + str((scope.get("client") or ("?",))[0])
            wait = self.buckets.take(key)
            if wait > 0:
                retry = str(max(1, int(wait + 0.999))).encode()
                return await _send_json(
                    send, 429, "rate limit: too many requests for this API key", [(b"retry-after", retry)]
                )
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _send_json(send, 400, "content-length: not an integer")
            if too_big:
                return await _send_json(send, 413, f"body: larger than the limit of {self.max_body} bytes")
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        # Read the body here (bounded), so chunked uploads are limited too, then replay it.
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _send_json(send, 413, f"body: larger than the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
