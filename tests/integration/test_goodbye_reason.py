"""The reply to a client's GOODBYE: the spec's wamp.close.goodbye_and_out by default, or the
client's own reason with ``echo_goodbye_reason`` (what Crossbar answers; Autobahn|Python logs a
warning for any reason but wamp.close.normal, issue 11 item 7)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import AutobahnSessions, autobahn_transport, start_router
from tests.rawclient import RawClient

GOODBYE = 6


async def test_goodbye_reply_reason(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    router = start_router(tmp_path, ws_options={"echo_goodbye_reason": True})
    try:
        for client, expected in (
            (await RawClient.rawsocket(router.rs_port), "wamp.close.goodbye_and_out"),  # the default: the spec's
            (await RawClient.websocket(router.ws_url), "wamp.close.normal"),  # echoed
        ):
            await client.join()
            await client.send([GOODBYE, {}, "wamp.close.normal"])
            assert await client.recv() == [GOODBYE, {}, expected]
            assert await client.closed()
        # Autobahn|Python on the echoing transport leaves with the reason it gave, hence no warning
        session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
        left: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        session.on("leave", lambda _session, details: left.done() or left.set_result(details))
        await session.leave()
        assert (await asyncio.wait_for(left, 5)).reason == "wamp.close.normal"
    finally:
        assert router.stop() == 0
