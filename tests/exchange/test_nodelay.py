"""Every HTTP connection gets TCP_NODELAY, also on a listening socket made without ``IPPROTO_TCP``
(uvicorn's own, with ``--workers N > 1``), where asyncio leaves Nagle's algorithm on."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.server import ServerState

from adspace.exchange.http.nodelay import NoDelayHTTPProtocol


async def _app(scope, receive, send):  # pragma: no cover - never called
    pass


class _Transport(asyncio.Transport):
    def __init__(self, sock: socket.socket):
        super().__init__()
        self._sock = sock

    def get_extra_info(self, name, default=None):
        return {"socket": self._sock, "peername": self._sock.getpeername(), "sockname": self._sock.getsockname()}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return False


def test_connections_get_tcp_nodelay_on_a_proto_0_listener():
    listener = socket.socket(socket.AF_INET)  # as uvicorn binds it for several workers: proto 0
    assert listener.proto == 0
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # what asyncio would leave

        async def made() -> None:
            config = uvicorn.Config(_app, http=NoDelayHTTPProtocol, log_level="warning")
            config.load()
            protocol = NoDelayHTTPProtocol(config=config, server_state=ServerState(), app_state={})
            protocol.connection_made(_Transport(conn))

        asyncio.run(made())
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()
        conn.close()
        listener.close()
