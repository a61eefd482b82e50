"""The ``websocket-testee`` transport: a WebSocket echo endpoint for conformance test suites.

It runs the router's own WebSocket stack: the same picows protocol (:class:`GuardedProtocol`),
the same frame checks and limits (:class:`CheckedListener`, ``max_message_size``, fragment bound),
the same pings and handshake timeout; only what is done with a whole message differs: it is sent
back as it came (text as text, binary as binary). Any path, any subprotocol (the first offered is
accepted) or none. Off unless configured; meant for the Autobahn|Testsuite cases (Crossbar.io's
``websocket.testee``), never for production.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

from picows import (
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from .rfc6455 import CheckedListener, serve


@dataclass(slots=True, frozen=True)
class TesteeSettings:
    max_message_size: int = 1024 * 1024
    handshake_timeout: float = 10.0
    ping_interval: float = 30.0
    ping_timeout: float = 10.0


class EchoListener(CheckedListener):
    def deliver(self, transport: WSTransport, payload: bytes, text: bool) -> None:
        transport.send(WSMsgType.TEXT if text else WSMsgType.BINARY, payload)


def _accept(request: WSUpgradeRequest, settings: TesteeSettings) -> WSUpgradeResponseWithListener:
    offered = [
        item.strip() for value in request.headers.getall("Sec-WebSocket-Protocol", []) for item in value.split(",")
    ]
    headers = {"Sec-WebSocket-Protocol": offered[0]} if offered and offered[0] else {}
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_101_response(headers), EchoListener(settings.max_message_size)
    )


async def serve_testee(
    settings: TesteeSettings, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    return await serve(lambda request: _accept(request, settings), settings, host, port, ssl_context, sock)
