"""The core NATS client protocol, sans I/O: bytes from a NATS server in, events out; the commands a
client sends as bytes (https://docs.nats.io/reference/reference-protocols/nats-protocol).

Only what the cluster's data plane needs (:mod:`cloverleaf.cluster.dataplane`): INFO, MSG/HMSG,
PING/PONG, +OK/-ERR from the server; CONNECT, SUB, PUB, PING/PONG to it. No sockets, no clocks.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import orjson

#: a control line longer than this (an INFO with a huge server list included) is a protocol error
MAX_CONTROL_LINE = 1024 * 1024
PING = b"PING\r\n"
PONG = b"PONG\r\n"


class NatsProtocolError(Exception):
    """The server sent bytes that are not the NATS protocol (the connection is unusable)."""


@dataclass(slots=True)
class Msg:
    """A message delivered to one of the client's subscriptions (``headers``: the raw NATS/1.0
    header block of an HMSG, else empty)."""

    subject: str
    sid: int
    reply: str
    payload: bytes
    headers: bytes = b""


@dataclass(slots=True)
class Info:
    """The server's INFO: its settings (``max_payload``, ``nonce``, ``tls_required``,
    ``connect_urls``, ...), at connect time and whenever the cluster's topology changes."""

    options: dict[str, Any]


@dataclass(slots=True)
class Ping:
    """The server checks that the client is alive: answer PONG."""


@dataclass(slots=True)
class Pong:
    """The answer to a PING of the client's."""


@dataclass(slots=True)
class Ok:
    """+OK (only sent in verbose mode)."""


@dataclass(slots=True)
class Err:
    """-ERR: what the server refused (authorization, a bad subject, ...); most close the connection."""

    message: str


Event = Msg | Info | Ping | Pong | Ok | Err
_PING, _PONG, _OK = Ping(), Pong(), Ok()


class NatsParser:
    """Reads a server's byte stream into :data:`Event` s. ``feed`` takes any split of the stream."""

    __slots__ = ("_buffer", "_waiting", "max_payload")

    def __init__(self, max_payload: int = 64 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        #: (subject, sid, reply, header length, total length) of a MSG/HMSG whose payload is awaited
        self._waiting: tuple[str, int, str, int, int] | None = None
        #: a payload announced larger than this is a protocol error (nothing is buffered for it)
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[Event]:
        """The events complete once ``data`` is added; raises :class:`NatsProtocolError` on bytes
        that are not the protocol."""
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        position = 0
        size = len(buffer)
        while True:
            waiting = self._waiting
            if waiting is not None:
                subject, sid, reply, header_length, total = waiting
                end = position + total
                if size < end + 2:
                    break
                if buffer[end : end + 2] != b"\r\n":
                    raise NatsProtocolError("a message payload not followed by CRLF")
                if header_length:
                    events.append(Msg(subject, sid, reply, bytes(buffer[position + header_length : end]),
                                      bytes(buffer[position : position + header_length])))  # fmt: skip
                else:
                    events.append(Msg(subject, sid, reply, bytes(buffer[position:end])))
                position = end + 2
                self._waiting = None
                continue
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                if size - position > MAX_CONTROL_LINE:
                    raise NatsProtocolError(f"a control line longer than {MAX_CONTROL_LINE} bytes")
                break
            line = bytes(buffer[position:line_end])
            position = line_end + 2
            self._control(line, events)
        del buffer[:position]
        return events

    def _control(self, line: bytes, events: list[Event]) -> None:
        op = line[:5].upper()
        if op.startswith(b"MSG "):
            parts = line.split()
            if len(parts) == 4:
                subject, sid, reply, total = parts[1], parts[2], b"", parts[3]
            elif len(parts) == 5:
                subject, sid, reply, total = parts[1], parts[2], parts[3], parts[4]
            else:
                raise NatsProtocolError(f"a malformed MSG line: {line[:200]!r}")
            self._expect(subject, sid, reply, b"0", total)
        elif op == b"HMSG ":
            parts = line.split()
            if len(parts) == 5:
                subject, sid, reply, headers, total = parts[1], parts[2], b"", parts[3], parts[4]
            elif len(parts) == 6:
                subject, sid, reply, headers, total = parts[1], parts[2], parts[3], parts[4], parts[5]
            else:
                raise NatsProtocolError(f"a malformed HMSG line: {line[:200]!r}")
            self._expect(subject, sid, reply, headers, total)
        elif op == b"PING":
            events.append(_PING)
        elif op == b"PONG":
            events.append(_PONG)
        elif op.startswith(b"+OK"):
            events.append(_OK)
        elif op.startswith(b"-ERR"):
            events.append(Err(line[4:].strip().strip(b"'").decode("utf-8", "replace")))
        elif op.startswith(b"INFO"):
            try:
                options = orjson.loads(line[4:])
            except orjson.JSONDecodeError as exc:
                raise NatsProtocolError(f"an INFO that is not JSON: {exc}") from None
            if type(options) is not dict:
                raise NatsProtocolError("an INFO that is not a JSON object")
            events.append(Info(options))
        else:
            raise NatsProtocolError(f"an unknown operation: {line[:40]!r}")

    def _expect(self, subject: bytes, sid: bytes, reply: bytes, headers: bytes, total: bytes) -> None:
        try:
            sid_number, header_length, total_length = int(sid), int(headers), int(total)
        except ValueError:
            raise NatsProtocolError("a MSG/HMSG line with a non-numeric sid or size") from None
        if not 0 <= header_length <= total_length or total_length > self.max_payload:
            raise NatsProtocolError(f"a MSG/HMSG with sizes {header_length}/{total_length}")
        self._waiting = (subject.decode(), sid_number, reply.decode(), header_length, total_length)


# -- what a client sends ------------------------------------------------------------------------------

_SUBJECT = re.compile(r"[^\s]+")


def connect(options: dict[str, Any]) -> bytes:
    """The CONNECT command with ``options`` (verbose, pedantic, name, user/pass, auth_token, jwt,
    sig, ...)."""
    return b"CONNECT " + orjson.dumps(options) + b"\r\n"


def subscribe(subject: str, sid: int) -> bytes:
    """SUB ``subject`` as subscription ``sid``."""
    if not _SUBJECT.fullmatch(subject):
        raise ValueError(f"not a NATS subject: {subject!r}")
    return f"SUB {subject} {sid}\r\n".encode()


def publish_header(subject: str, size: int) -> bytes:
    """The PUB line of a message of ``size`` bytes to ``subject`` (the payload and CRLF follow).
    The subject is not checked here: the data plane only publishes to subjects it built."""
    return f"PUB {subject} {size}\r\n".encode()


# -- credentials (a .creds file: a user JWT and the nkey seed that signs the server's nonce) ------------

_CREDS_BLOCK = re.compile(r"-{3,}[^\n]*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}[^\n]*-{3,}")


def read_credentials(text: str) -> tuple[str, bytes]:
    """The user JWT and the nkey seed of a NATS credentials file; ValueError if it has not both."""
    blocks = _CREDS_BLOCK.findall(text)
    if len(blocks) < 2:
        raise ValueError("a NATS credentials file has a user JWT block and a user nkey seed block")
    return blocks[0], blocks[1].encode()


def sign_nonce(seed: bytes, nonce: str) -> str:
    """The signature of the server's nonce with an nkey seed, as CONNECT's ``sig`` carries it."""
    import nkeys  # the NATS project's nkey package (decoding a seed is its job)

    keys = nkeys.from_seed(bytearray(seed))
    try:
        return base64.b64encode(keys.sign(nonce.encode())).decode()
    finally:
        keys.wipe()
