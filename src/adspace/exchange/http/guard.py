"""ASGI guards in front of the routers: who is calling, the rate limit (429) and the body limit (413).

Identity. The ``Authorization`` header is parsed once (:mod:`adspace.exchange.core.identity`) and the key
resolved to its account through :meth:`AccountService.authenticate
<adspace.exchange.services.accounts.AccountService.authenticate>` (cached per key hash: a known key
costs no database query). The result is left in the ASGI scope, where the routers' ``current``
dependency and the fast lane read it, so authentication and the limiter cannot disagree about who called.
Refusals have the form of every error of the API (:mod:`adspace.exchange.http.errors`).

Rate limit. Token buckets keyed by the **authenticated account** (limits per account kind), else by
the **client address** (no key, a malformed key or an unknown one), and for the OpenRTB notice URLs
(fired by ad servers without a key) by the notice URL. A key that is not yet in the cache takes a
token from its address's bucket before it is looked up, so a flood of random keys costs one lookup
per token of that address, never one per request. Each class of bucket lives in its own table,
bounded: when full, the least recently used bucket is dropped (it comes back full). No table is ever
cleared wholesale, and junk addresses or notice URLs cannot push out the accounts' buckets.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool

from adspace.exchange.core.identity import SCOPE_KEY, UNKNOWN, AuthHeaderError, Identity, parse_authorization
from adspace.exchange.http.errors import send_error

__all__ = ["Guard", "RateLimits", "TokenBuckets", "replaying"]

_EXEMPT = ("/healthz", "/docs", "/openapi.json", "/redoc")


class TokenBuckets:
    """Token buckets of one class (fixed rate and burst), at most ``size`` of them (LRU eviction)."""

    def __init__(self, rate: float, burst: int, size: int):
        self.rate, self.burst, self.size = float(rate), int(burst), int(size)
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def take(self, key: str) -> float:
        """0 when allowed (a token is taken), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            got = self._b.get(key)
            if got is None:
                tokens = float(self.burst)
                if len(self._b) >= self.size:
                    self._b.popitem(last=False)  # the least recently used bucket
                    self.evicted += 1
            else:
                tokens = min(float(self.burst), got[0] + (now - got[1]) * self.rate)
            if tokens >= 1.0:
                self._b[key] = (tokens - 1.0, now)
                self._b.move_to_end(key)
                return 0.0
            self._b[key] = (tokens, now)
            self._b.move_to_end(key)
            return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._b)


class RateLimits:
    """One :class:`TokenBuckets` per class: ``admin``, ``advertiser``, ``publisher`` (per account),
    ``address`` (per client address) and ``notice`` (per notice URL). A class with rate 0 is unlimited."""

    def __init__(self, limits: dict[str, tuple[float, int]], size: int):
        self.tables = {k: TokenBuckets(r, b, size) for k, (r, b) in limits.items() if r > 0}

    def take(self, kind: str, key: str) -> float:
        t = self.tables.get(kind)
        return 0.0 if t is None else t.take(key)


def replaying(body: bytes, receive):
    """An ASGI ``receive`` that gives ``body`` (already read) as the request's one message, then defers
    to ``receive`` (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_many(send, wait: float) -> None:
    retry = str(max(1, int(wait + 0.999))).encode()
    await send_error(send, 429, "rate limit: too many requests from this caller", [(b"retry-after", retry)])


class Guard:
    def __init__(self, app, *, max_body_bytes: int, limits: RateLimits | None):
        self.app = app
        self.max_body = max_body_bytes
        self.limits = limits

    async def _identify(self, scope) -> Identity | float:
        """The caller (left in the scope for the routers), or the seconds to wait when rate limited."""
        key, problem = parse_authorization(scope.get("headers") or ())
        addr = str((scope.get("client") or ("?",))[0])
        limits = self.limits
        if key is None:
            if limits is not None:
                if scope["path"].startswith("/openrtb2/notice/"):
                    # Notices come from ad servers, many auctions per address: limit each notice URL instead.
                    wait = limits.take("notice", scope["path"])
                else:
                    wait = limits.take("address", addr)
                if wait > 0:
                    return wait
            return Identity(None, problem)
        accounts = scope["app"].state.exchange.accounts
        who = accounts.cached(key)
        if who is None:
            # Not in the cache: a lookup in the database. It costs a token of the address first.
            if limits is not None:
                wait = limits.take("address", addr)
                if wait > 0:
                    return wait
            who = await run_in_threadpool(accounts.authenticate, key)
            if who is None:
                return Identity(None, UNKNOWN)
        if limits is not None:
            wait = limits.take(who.kind, who.account_id)
            if wait > 0:
                return wait
        return Identity(who, None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(_EXEMPT):
            return await self.app(scope, receive, send)
        try:
            ident = await self._identify(scope)
        except AuthHeaderError as exc:
            return await send_error(send, 400, str(exc))
        if not isinstance(ident, Identity):
            return await _too_many(send, ident)
        scope[SCOPE_KEY] = ident
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")

        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await send_error(send, 400, "content-length: not an integer")
            if too_big:
                return await send_error(send, 413, f"body: larger than the limit of {self.max_body} bytes")
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
                return await send_error(send, 413, f"body: larger than the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return await self.app(scope, replaying(b"".join(chunks), receive), send)
