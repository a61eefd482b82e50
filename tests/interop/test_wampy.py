"""wampy.js (npm `wampy`) as a real peer: its automatic reconnect keeps counting request IDs, so the
new session's first request is not ID 1 (issue 11, item 2). The router accepts any request ID in
[1, 2^53] by default, as Crossbar does; the spec's sequential check is an option.

The JS side is tests/js/wampy_reconnect.mjs; the connection is cut by a TCP relay between it and
the router, which wampy answers by reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.types import PublishOptions
from tests.conftest import JS_DIR, AutobahnSessions, RouterProcess, autobahn_transport, free_port, start_router


class Relay:
    """A TCP relay to the router that can cut every connection it carries."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def _line(process: asyncio.subprocess.Process, stage: str) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), 10)
        assert raw, f"wampy_reconnect.mjs ended before {stage!r}"
        line = json.loads(raw)
        if line["stage"] == stage:
            return dict(line)
        assert line["stage"] == "error", line  # wampy reports the dropped connection, nothing else


async def _echo_with_retries(session: Any) -> Any:
    # wampy renews its registration right after reconnecting: give it a moment
    for _ in range(50):
        with contextlib.suppress(Exception):
            return await session.call("com.example.wampy.echo", 1)
        await asyncio.sleep(0.1)
    return await session.call("com.example.wampy.echo", 1)


@pytest.mark.parametrize("sequential", [None, True], ids=["default", "sequential_request_ids"])
async def test_wampy_reconnects_and_keeps_counting_request_ids(node: str, tmp_path: Path, autobahn: AutobahnSessions,
                                                               sequential: bool | None) -> None:
    options = {} if sequential is None else {"sequential_request_ids": sequential}
    router: RouterProcess = start_router(tmp_path, ws_options=options)
    relay = Relay(router.ws_port)
    await relay.start()
    process = await asyncio.create_subprocess_exec(
        node, "wampy_reconnect.mjs", f"ws://127.0.0.1:{relay.port}/ws", "realm1", cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        first = await _line(process, "ready")
        session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
        assert list((await session.call("com.example.wampy.echo", 1)).results) == ["echo", 1]
        relay.cut()
        second = await _line(process, "reconnected")
        assert second["session"] != first["session"]
        if sequential:
            # the spec's rule, kept as an option: wampy's next request ID is not 1, so it is aborted
            await asyncio.sleep(1.0)
            assert "is not the next in sequence" in router.log()
            return
        assert list((await _echo_with_retries(session)).results) == ["echo", 1]
        replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        await session.subscribe(lambda *args: replies.put_nowait(args), "com.example.wampy.reply")
        await session.publish("com.example.wampy.topic", "ping", options=PublishOptions(acknowledge=True))
        assert await asyncio.wait_for(replies.get(), 5) == ("got", "ping")
        assert process.stdin is not None
        process.stdin.write(b"done\n")
        await _line(process, "left")
        assert await asyncio.wait_for(process.wait(), 5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await relay.stop()
        assert router.stop() == 0
