"""The WebSocket layer under hostile input, and RFC 6455, over real sockets on 127.0.0.1.

A hand-made client (frames built byte by byte, several in one write) checks what the router sends
back and how it closes: ABORT then the close frame, never a TCP reset that would destroy them;
nothing processed or sent after the router's close frame; fragments bounded in number; close
codes and UTF-8 as the RFC requires; log levels. Then the Autobahn|Testsuite cases 1-10, run by
kosoku against a ``websocket-testee`` transport, which shares the WAMP transport's listener.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import RouterProcess, free_port, launch_router, router_config
from tests.rawclient import HELLO_ROLES
from tests.rawclient import ws_frame as frame

from cloverleaf.node.config import ConfigError, parse_config
from cloverleaf.transport.rfc6455 import max_fragments

MAX_MESSAGE = 65536  # conftest: max_message_size of the router's WebSocket transport
TIMEOUT = 3.0
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
HELLO, WELCOME, ABORT, CALL, REGISTER, REGISTERED = 1, 2, 3, 48, 64, 65


# -- a WebSocket client built by hand ---------------------------------------------------------


def wamp(message: list[Any]) -> bytes:
    return frame(orjson.dumps(message))


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return frame(b"" if code is None else struct.pack("!H", code) + reason, CLOSE)


def parse(data: bytes) -> list[tuple[int, bytes]]:
    """The server's frames (unmasked) in ``data``; a trailing partial frame is an error."""
    frames = []
    while data:
        assert len(data) >= 2, f"truncated frame header {data!r}"
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert data[1] & 0x80 == 0, "the server masked a frame"
        offset = 2
        if length == 126:
            length, offset = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            length, offset = struct.unpack("!Q", data[2:10])[0], 10
        assert len(data) >= offset + length, f"truncated frame: {data[:40]!r}"
        frames.append((opcode, data[offset : offset + length]))
        data = data[offset + length :]
    return frames


class RawWs:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str = "/ws", protocol: str | None = "wamp.2.json") -> RawWs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @classmethod
    async def joined(cls, port: int) -> RawWs:
        client = await cls.open(port)
        client.send(wamp([HELLO, "realm1", {"roles": HELLO_ROLES}]))
        opcode, payload = await client.recv_frame()
        assert opcode == TEXT and orjson.loads(payload)[0] == WELCOME, payload
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv_frame(self) -> tuple[int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def rest(self, answer_close: bool = True) -> list[tuple[int, bytes]]:
        """Everything the server sends until it closes the TCP connection; a reset fails the test.

        With ``answer_close``, the client's close frame goes out once the server's has arrived,
        and the server must then end the connection (it closes the TCP connection first).
        """
        data = b""
        answered = False
        deadline = time.monotonic() + TIMEOUT
        try:
            while chunk := await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - time.monotonic())):
                data += chunk
                if answer_close and not answered and any(op == CLOSE for op, _ in _complete(data)):
                    answered = True
                    self.writer.write(close_frame(1000))
        except ConnectionResetError:
            pytest.fail(f"the router reset the connection (received before: {parse_lenient(data)!r:.300})")
        except TimeoutError:
            pytest.fail(f"the router did not close the connection (received: {parse_lenient(data)!r:.300})")
        self.writer.close()
        return parse(data)

    def close(self) -> None:
        self.writer.close()


def _complete(data: bytes) -> list[tuple[int, bytes]]:
    try:
        return parse(data)
    except AssertionError:
        return []


def parse_lenient(data: bytes) -> list[tuple[int, bytes]] | bytes:
    try:
        return parse(data)
    except AssertionError:
        return data[:200]


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    """The code of the last frame, which must be the server's close frame (and the only one)."""
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert len(closes) == 1, f"expected exactly one close frame, got {frames!r:.300}"
    assert frames[-1][0] == CLOSE, f"the router sent frames after its close frame: {frames!r:.300}"
    payload = frames[-1][1]
    return struct.unpack("!H", payload[:2])[0] if payload else None


def wamp_messages(frames: list[tuple[int, bytes]]) -> list[Any]:
    return [orjson.loads(payload) for opcode, payload in frames if opcode == TEXT]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("rfc6455")
    process = launch_router(
        tmp,
        lambda ws, rs, unix: router_config(ws, rs, unix, ws_options={"ping_interval": 0.5, "ping_timeout": 0.4}),
    )
    yield process
    process.stop()


# -- 1. ABORT and the close frame are never lost to a reset -------------------------------------


@pytest.mark.parametrize("trailing", [1, 200, 5000], ids=lambda n: f"{n}-frames-behind")
async def test_abort_then_close_handshake_despite_frames_behind_the_violation(router: RouterProcess,
                                                                                trailing: int) -> None:
    """A protocol violation with more frames behind it in the same TCP segment(s): the client
    still reads ABORT, then the close frame, then the end of the connection; never a reset."""
    client = await RawWs.joined(router.ws_port)
    violation = wamp([WELCOME, 1, {"roles": {"broker": {}}}])  # a message only routers send
    behind = wamp([CALL, 1, {}, "com.example.nobody", ["x" * 100]]) * trailing
    client.send(violation + behind)
    frames = await client.rest()
    messages = wamp_messages(frames)
    assert len(messages) == 1 and messages[0][0] == ABORT, messages
    assert messages[0][2] == "wamp.error.protocol_violation", messages
    assert close_code(frames) == 1000


async def test_close_frame_not_lost_after_a_frame_error_with_input_behind(router: RouterProcess) -> None:
    """picows' own parser errors (a reserved opcode here) close without a reset too."""
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b"", opcode=0x3) + wamp([CALL, 1, {}, "com.example.nobody"]) * 2000)
    frames = await client.rest()
    assert wamp_messages(frames) == [], frames
    assert close_code(frames) == 1002


# -- 2. nothing after the router's close frame ----------------------------------------------------


@pytest.mark.parametrize("payload", [b"\x00garbage" * 9000, orjson.dumps([CALL, 1, {}, "x" * 70000])],
                         ids=["garbage", "valid-call"])
async def test_frame_over_the_limit_is_never_processed(router: RouterProcess, payload: bytes) -> None:
    """A frame over max_message_size, sent whole, with more behind it: close 1009 and nothing else
    (picows 2.3.1 went on to parse it after its close frame, and the router answered it)."""
    assert len(payload) > MAX_MESSAGE
    client = await RawWs.joined(router.ws_port)
    client.send(frame(payload) + wamp([CALL, 2, {}, "com.example.nobody"]))
    frames = await client.rest()
    assert wamp_messages(frames) == [], frames
    assert close_code(frames) == 1009


async def test_nothing_processed_after_the_clients_close(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(close_frame(1000) + wamp([CALL, 1, {}, "com.example.nobody"]))
    frames = await client.rest(answer_close=False)
    assert frames == [(CLOSE, struct.pack("!H", 1000))], frames


# -- 3. fragments per message are bounded -----------------------------------------------------------


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-bound", "one-over"])
async def test_fragments_per_message_are_bounded(router: RouterProcess, extra: int) -> None:
    bound = max_fragments(MAX_MESSAGE)
    assert bound == 1024
    client = await RawWs.joined(router.ws_port)
    call = orjson.dumps([CALL, 1, {}, "com.example.nobody"])
    empties = frame(b"", CONTINUATION, fin=False) * (bound - 2 + extra)
    client.send(frame(call, TEXT, fin=False) + empties + frame(b"", CONTINUATION, fin=True))
    if extra:
        frames = await client.rest()
        assert wamp_messages(frames) == [], frames
        assert close_code(frames) == 1008
    else:
        _opcode, payload = await client.recv_frame()
        assert orjson.loads(payload)[4] == "wamp.error.no_such_procedure", payload
        client.close()


async def test_a_million_empty_continuations_are_cut_short(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b"[", TEXT, fin=False))
    empty = frame(b"", CONTINUATION, fin=False)
    with_reset = False
    try:
        for _ in range(100):
            client.send(empty * 10_000)
            await client.writer.drain()
    except ConnectionError:
        with_reset = True  # the router closed long before: writing on may meet its RST
    if not with_reset:
        frames = await client.rest(answer_close=False)
        assert close_code(frames) == 1008


# -- 5. RFC 6455 on the WAMP transport ------------------------------------------------------------


async def test_invalid_utf8_in_a_json_session_gets_abort_and_1007(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b'[48, 1, {}, "com.example.\xff\xfe"]'))
    frames = await client.rest()
    messages = wamp_messages(frames)
    assert [m[0] for m in messages] == [ABORT] and messages[0][2] == "wamp.error.protocol_violation", messages
    assert close_code(frames) == 1007


async def test_invalid_utf8_split_across_fragments(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b'[48, 1, {}, "\xf0\x9f', TEXT, fin=False) + frame(b'\x98"]', CONTINUATION, fin=False))
    frames = await client.rest()
    assert close_code(frames) == 1007


async def test_valid_utf8_split_across_fragments(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b'[48, 1, {}, "com.example.\xf0\x9f', TEXT, fin=False) + frame(b'\x98\x80"]', CONTINUATION))
    _opcode, payload = await client.recv_frame()
    assert orjson.loads(payload)[4] == "wamp.error.no_such_procedure", payload
    client.close()


@pytest.mark.parametrize("rsv", [4, 2, 1], ids=["rsv1", "rsv2", "rsv3"])
async def test_reserved_bits_fail_the_connection(router: RouterProcess, rsv: int) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(orjson.dumps([CALL, 1, {}, "com.example.nobody"]), rsv=rsv))
    frames = await client.rest()
    assert wamp_messages(frames) == [], frames
    assert close_code(frames) == 1002


@pytest.mark.parametrize(("sent", "answer"), [
    (None, 1000), (1000, 1000), (1001, 1001), (1011, 1011), (3000, 3000), (4999, 4999),
    (0, 1002), (999, 1002), (1004, 1002), (1005, 1002), (1006, 1002), (1015, 1002), (2999, 1002),
    (5000, 1002), (65535, 1002),
], ids=lambda value: str(value))
async def test_close_codes(router: RouterProcess, sent: int | None, answer: int) -> None:
    """A valid close code is echoed, an empty close answered with 1000, an invalid code refused with 1002."""
    client = await RawWs.joined(router.ws_port)
    client.send(close_frame(sent))
    frames = await client.rest(answer_close=False)
    assert close_code(frames) == answer


@pytest.mark.parametrize("behind", [close_frame(1000), frame(b"", opcode=0x3)], ids=["second-close", "bad-opcode"])
async def test_close_followed_by_anything_is_answered(router: RouterProcess, behind: bytes) -> None:
    """picows parses a frame ahead and failed the connection (1002) on what followed the client's
    close, in the same segment, before the close was seen: the close must be answered (7.1.2)."""
    client = await RawWs.joined(router.ws_port)
    client.send(close_frame(3001) + behind)
    frames = await client.rest(answer_close=False)
    assert close_code(frames) == 3001


@pytest.mark.parametrize("payload", [b"\x03", b"\x03\xe8\xff\xfe"], ids=["one-byte", "reason-not-utf8"])
async def test_malformed_close_payloads(router: RouterProcess, payload: bytes) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(payload, CLOSE))
    frames = await client.rest(answer_close=False)
    assert close_code(frames) == (1002 if len(payload) == 1 else 1007)


@pytest.mark.parametrize("bad", [frame(b"x" * 126, PING), frame(b"x", PING, fin=False)],
                         ids=["126-bytes", "fragmented"])
async def test_bad_control_frames(router: RouterProcess, bad: bytes) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(bad)
    frames = await client.rest()
    assert close_code(frames) == 1002


# -- 4. log levels, ping timeout --------------------------------------------------------------------


async def test_client_framing_errors_are_not_router_errors(router: RouterProcess) -> None:
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b"", opcode=0xB))  # reserved control opcode: picows' own parser refuses it
    await client.rest()
    client = await RawWs.joined(router.ws_port)
    client.send(frame(b"x" * 200, PING))
    await client.rest()
    await asyncio.sleep(0.2)
    lines = router.log().splitlines()
    assert not [line for line in lines if " ERROR " in line], "\n".join(lines[-30:])
    assert any("INFO" in line and "cloverleaf.transport.picows" in line and "opcode" in line for line in lines), (
        "\n".join(lines[-30:])
    )


async def test_ping_timeout_is_named_in_the_sessions_log_line(router: RouterProcess) -> None:
    """ping_interval 0.5 s, ping_timeout 0.4 s: a client that never answers PING is dropped."""
    client = await RawWs.joined(router.ws_port)
    frames = []
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            opcode, _payload = await client.recv_frame()  # PING, unanswered; then close 1001
            frames.append(opcode)
            if opcode == CLOSE:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    assert PING in frames and CLOSE in frames, frames
    await asyncio.sleep(0.3)
    lines = [line for line in router.log().splitlines() if "ping timeout" in line]
    assert any("left realm" in line for line in lines), router.log()[-2000:]
    client.close()


# -- 6. the websocket-testee transport: config -------------------------------------------------------


def test_testee_config_is_validated() -> None:
    base: dict[str, Any] = {"realms": [{"name": "realm1"}]}
    good = {**base, "transports": [{"type": "websocket-testee", "endpoint": {"type": "tcp", "port": 9001},
                                    "max_message_size": 16 * 1024 * 1024, "ping_interval": 0}]}
    config = parse_config(good, "node.yaml")
    assert config.transports[0].type == "websocket-testee"
    bad = {**base, "transports": [{"type": "websocket-testee", "endpoint": {"type": "tcp", "port": 9001},
                                   "path": "/ws", "max_message_size": 100}]}
    with pytest.raises(ConfigError) as failure:
        parse_config(bad, "node.yaml")
    problems = "\n".join(failure.value.problems)
    assert "transports[0].path" in problems and "transports[0].max_message_size" in problems, problems


# -- 7. Autobahn|Testsuite 1-10 against the websocket-testee ----------------------------------------


#: run in a process of its own: kosoku's case files import ``autobahn.*`` (shims kosoku provides),
#: and Autobahn|Python, imported by other tests of this process, would stand in their place
#: It leaves through ``os._exit`` once its results are out: kosoku sometimes aborts (SIGABRT) in the
#: interpreter's teardown, after every case has run, which says nothing of the testee.
_KOSOKU = """
import asyncio, json, os, sys
import kosoku

async def main():
    cases = [f"{n}.*" for n in range(1, 11) if n != 8]  # the suite has no section 8
    try:
        results = await kosoku.run_fuzzingclient(sys.argv[1], cases=cases, concurrency=4)
    except kosoku.FailureError as failure:
        results = failure.results
    print(json.dumps([[r.case_id, r.behavior.value, r.behavior_close.value, r.passed,
                       f"{r.result} {r.result_close}"] for r in results]))

asyncio.run(main())
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.timeout(180)
def test_autobahn_testsuite_cases_1_to_10(tmp_path: Path) -> None:
    """Every case of 1-10 (301) is OK, NON-STRICT or INFORMATIONAL (kosoku runs the suite's own
    case files); the testee runs the WAMP WebSocket's listener with a 16 MiB message limit (case
    9.1.6 echoes 16 MiB)."""
    pytest.importorskip("kosoku")
    testee_port = free_port()

    def config(ws: int, rs: int, unix: str) -> dict[str, Any]:
        result = router_config(ws, rs, unix)
        result["transports"].append({"type": "websocket-testee", "max_message_size": 16 * 1024 * 1024,
                                     "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": testee_port}})
        return result

    process = launch_router(tmp_path, config, wait_ports=[testee_port])
    try:
        run = subprocess.run([sys.executable, "-c", _KOSOKU, f"ws://127.0.0.1:{testee_port}"],
                             capture_output=True, text=True, timeout=150, check=False)
    finally:
        process.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    verdicts = collections.Counter(behavior for _case, behavior, _close, _passed, _text in results)
    failed = [f"{case}: {behavior}/{close}: {text}" for case, behavior, close, passed, text in results if not passed]
    assert len(results) == 301, verdicts
    assert not failed, "\n".join(failed)
    assert set(verdicts) <= {"OK", "NON-STRICT", "INFORMATIONAL"}, verdicts
    assert "Traceback" not in process.log(), process.log()[-3000:]
