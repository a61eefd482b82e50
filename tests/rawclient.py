"""A minimal hand-driven WAMP peer for tests that must send what no real client library would.

It speaks RawSocket (TCP or Unix) with asyncio streams, or WebSocket with the ``websockets``
library, and exposes raw ``send_bytes``/``send``/``recv`` so tests can build malformed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from typing import Any

import websockets

from cloverleaf.wamp.serializers import SERIALIZERS, Serializer

HELLO_ROLES = {
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True}},
    "callee": {"features": {"progressive_call_results": True, "call_canceling": True}},
    "publisher": {"features": {}},
    "subscriber": {"features": {}},
}


def ws_frame(payload: bytes, opcode: int = 0x1, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client WebSocket frame, built by hand: for frames no library would send, and for
    several frames in a single write."""
    mask = os.urandom(4)
    length = len(payload)
    head = bytes((0x80 * fin | rsv << 4 | opcode,))
    if length < 126:
        head += bytes((0x80 | length,))
    elif length < 65536:
        head += struct.pack("!BH", 0x80 | 126, length)
    else:
        head += struct.pack("!BQ", 0x80 | 127, length)
    keystream = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(length, "big")
    return head + mask + masked


class RawClient:
    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.session_id = 0
        self._next_request = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ws: Any = None

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    async def rawsocket(cls, port: int | None = None, serializer: str = "json", unix_path: str | None = None,
                        length_exponent: int = 15) -> RawClient:
        client = cls(SERIALIZERS[serializer])
        if unix_path:
            client._reader, client._writer = await asyncio.open_unix_connection(unix_path)
        else:
            client._reader, client._writer = await asyncio.open_connection("127.0.0.1", port)
        client._writer.write(bytes((0x7F, (length_exponent << 4) | client.serializer.RAWSOCKET_ID, 0, 0)))
        reply = await asyncio.wait_for(client._reader.readexactly(4), 5)
        if reply[0] != 0x7F or reply[1] & 0x0F != client.serializer.RAWSOCKET_ID:
            raise ConnectionError(f"RawSocket handshake refused: {reply.hex()}")
        return client

    @classmethod
    async def websocket(cls, url: str, serializer: str = "json") -> RawClient:
        client = cls(SERIALIZERS[serializer])
        client._ws = await websockets.connect(url, subprotocols=[client.serializer.subprotocol])
        return client

    # -- raw I/O ----------------------------------------------------------------------------

    async def send_bytes(self, payload: bytes, frame_type: int = 0) -> None:
        if self._ws is not None:
            if self.serializer.BINARY:
                await self._ws.send(payload)
            else:
                await self._ws.send(payload.decode("utf-8", errors="surrogateescape"))
            return
        assert self._writer is not None
        self._writer.write(struct.pack("!B", frame_type) + len(payload).to_bytes(3, "big") + payload)
        await self._writer.drain()

    async def send(self, message: list[Any]) -> None:
        await self.send_bytes(self.serializer.encode(message))

    async def recv_bytes(self, timeout: float = 5.0) -> bytes:
        if self._ws is not None:
            data = await asyncio.wait_for(self._ws.recv(), timeout)
            return data.encode() if isinstance(data, str) else bytes(data)
        assert self._reader is not None
        while True:
            header = await asyncio.wait_for(self._reader.readexactly(4), timeout)
            payload = await asyncio.wait_for(self._reader.readexactly(int.from_bytes(header[1:], "big")), timeout)
            if header[0] & 0x07 == 0:
                return payload

    async def recv(self, timeout: float = 5.0) -> list[Any]:
        result: list[Any] = self.serializer.decode(await self.recv_bytes(timeout))
        return result

    async def closed(self, timeout: float = 5.0) -> bool:
        """Wait until the router closes the connection; True if it did within ``timeout``."""
        try:
            if self._ws is not None:
                await asyncio.wait_for(self._ws.wait_closed(), timeout)
                return True
            assert self._reader is not None
            while True:
                data = await asyncio.wait_for(self._reader.read(65536), timeout)
                if not data:
                    return True
        except TimeoutError:
            return False
        except (ConnectionError, websockets.ConnectionClosed):
            return True

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        elif self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    # -- WAMP helpers -----------------------------------------------------------------------

    def request_id(self) -> int:
        self._next_request += 1
        return self._next_request

    async def join(self, realm: str = "realm1", roles: dict[str, Any] | None = None) -> list[Any]:
        await self.send([1, realm, {"roles": roles or HELLO_ROLES}])
        welcome = await self.recv()
        assert welcome[0] == 2, welcome
        self.session_id = welcome[1]
        return welcome

    async def request(self, message: list[Any]) -> list[Any]:
        """Send a request and return the next message received (its answer, in simple tests)."""
        await self.send(message)
        return await self.recv()
