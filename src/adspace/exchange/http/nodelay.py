"""uvicorn's HTTP protocol with ``TCP_NODELAY`` on every connection, however the socket was made.

asyncio disables Nagle's algorithm only on sockets it recognises as TCP (``proto == IPPROTO_TCP``).
With ``--workers N > 1`` uvicorn binds the listening socket itself as ``socket.socket(AF_INET)``
(``proto == 0``) and hands it to the worker processes, so their connections keep Nagle's algorithm on:
an answer written in two pieces (headers, then body) waits for the client's delayed ACK, about 40 ms
on Linux. Measured on PostgreSQL with two workers: 44 ms for ``GET /healthz`` and 49 ms per auction,
against 0.7 ms and 4.8 ms with one process. Setting ``TCP_NODELAY`` when a connection is made removes
the stall in every mode.
"""

from __future__ import annotations

import contextlib
import socket

try:  # the protocol uvicorn's "auto" picks: httptools when installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the installed extras
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base

__all__ = ["NoDelayHTTPProtocol"]


class NoDelayHTTPProtocol(_Base):
    """uvicorn's HTTP protocol; each connection's socket gets ``TCP_NODELAY``."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
