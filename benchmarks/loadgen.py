#!/usr/bin/env python3
"""Cloverleaf benchmark load generator: raw WAMP v2 clients, no Autobahn.

Transports: WebSocket through picows (subprotocols ``wamp.2.json`` /
``wamp.2.msgpack``), RawSocket over plain asyncio (handshake ``0x7F``, then
4-byte frame headers) and HTTP long-poll (``http://host:port/lp``, json; raw
HTTP/1.1 on asyncio streams, see ``_LongPoll``). Event loop: uvloop.

The module has two faces:

* a library used in-process by ``run.py`` (``connect()``, ``wait_for_welcome()``);
* a *worker* process, ``loadgen.py worker '<json spec>'``, started by ``run.py``.
  A worker plays one role (``callee``, ``callers``, ``subscribers``,
  ``publisher``, ``sessions``), prints ``READY`` on stdout once it is set up,
  then obeys one-line commands on stdin:

    GO <t0_ns> <t1_ns>   start the load now; count operations completed in the
                         CLOCK_MONOTONIC window [t0, t1) (the orchestrator
                         meters the router's CPU over the same window)
    STOP                 stop and report (callee, subscribers)
    CLOSE                close the held sessions and report (sessions)

  and prints its report as one ``RESULT {json}`` line. Every worker also has a
  hard deadline (``hard_s`` in the spec) after which it exits by itself.

It can also be run standalone as a quick functional check::

    python benchmarks/loadgen.py smoke ws://127.0.0.1:8080/ws [--serializer msgpack]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import os
import resource
import socket
import sys
import time
from urllib.parse import urlparse

import msgspec
import orjson
import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

now_ns = time.monotonic_ns  # CLOCK_MONOTONIC: one clock for every process on the host

# WAMP v2 message codes (Basic Profile)
HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED = 16, 17, 32, 33
EVENT, CALL, RESULT, REGISTER, REGISTERED = 36, 48, 50, 64, 65
INVOCATION, YIELD = 68, 70

HELLO_DETAILS = {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}

MAX_LAT_SAMPLES = 20000  # per worker report


# ----------------------------------------------------------------------------------------
# Serializers
class Codec:
    """WAMP serializer: json (orjson) or msgpack (msgspec)."""

    def __init__(self, name: str):
        self.name = name
        self.subprotocol = "wamp.2." + name
        if name == "json":
            self.dumps = orjson.dumps
            self.loads = orjson.loads  # accepts memoryview
            self.binary = False
            self.rawsocket_id = 1
        elif name == "msgpack":
            self.dumps = msgspec.msgpack.Encoder().encode
            self.loads = msgspec.msgpack.Decoder().decode  # accepts memoryview
            self.binary = True
            self.rawsocket_id = 2
        else:
            raise ValueError(f"unknown serializer {name!r} (json|msgpack)")
        self.ws_type = WSMsgType.BINARY if self.binary else WSMsgType.TEXT


# ----------------------------------------------------------------------------------------
# Session core (transport independent)
class Session:
    """One WAMP session. Subclasses put their hot message types in ``on_message``."""

    def __init__(self, codec: Codec, realm: str):
        self.codec = codec
        self.realm = realm
        self.dumps = codec.dumps
        self.loads = codec.loads
        self.req = 0
        self.session_id = None
        self.errors = 0
        self.closed = False
        self.pending: dict[int, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        self.welcome = loop.create_future()
        self.write = None  # bytes -> None, set by the transport
        self._close_transport = lambda: None

    # plumbing
    def send(self, msg) -> None:
        self.write(self.dumps(msg))

    def opened(self) -> None:
        self.send([HELLO, self.realm, HELLO_DETAILS])

    def lost(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        exc = ConnectionError("connection lost " + why)
        if not self.welcome.done():
            self.welcome.set_exception(exc)
        for f in self.pending.values():
            if not f.done():
                f.set_exception(exc)
        self.pending.clear()

    def payload(self, data) -> None:
        self.on_message(self.loads(data))

    def on_message(self, msg) -> None:
        self.control(msg)

    def control(self, msg) -> None:
        t = msg[0]
        if t == WELCOME:
            self.session_id = msg[1]
            if not self.welcome.done():
                self.welcome.set_result(msg[2])
        elif t in (REGISTERED, SUBSCRIBED, PUBLISHED):
            f = self.pending.pop(msg[1], None)
            if f is not None and not f.done():
                f.set_result(msg[2])
        elif t == ERROR:
            self.errors += 1
            f = self.pending.pop(msg[2], None)
            if f is not None and not f.done():
                f.set_exception(RuntimeError(f"WAMP ERROR {msg!r}"))
        elif t == ABORT:
            if not self.welcome.done():
                self.welcome.set_exception(RuntimeError(f"ABORT {msg!r}"))
            self._close_transport()
        elif t == GOODBYE:
            with contextlib.suppress(Exception):
                self.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
            self._close_transport()

    # requests answered by the router
    def request(self, build) -> asyncio.Future:
        self.req += 1
        rid = self.req
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.send(build(rid))
        return fut

    def register(self, procedure: str, options: dict | None = None):
        return self.request(lambda r: [REGISTER, r, options or {}, procedure])

    def subscribe(self, topic: str):
        return self.request(lambda r: [SUBSCRIBE, r, {}, topic])

    def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self.send([GOODBYE, {}, "wamp.close.normal"])
        self._close_transport()


# ----------------------------------------------------------------------------------------
# WebSocket transport (picows)
class _WSListener(WSListener):
    def __init__(self, session: Session):
        self.s = session
        self.t = None
        self.frag = None

    def on_ws_connected(self, transport):
        self.t = transport
        s = self.s
        mtype = s.codec.ws_type
        send = transport.send
        s.write = lambda b: send(mtype, b)
        s._close_transport = self._close

    def _close(self):
        t = self.t
        if t is None:
            return
        with contextlib.suppress(Exception):
            t.send_close(WSCloseCode.OK)
        t.disconnect()

    def on_ws_frame(self, transport, frame):
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            if frame.fin:
                self.s.payload(frame.get_payload_as_memoryview())
            else:
                self.frag = bytearray(frame.get_payload_as_memoryview())
        elif mt == WSMsgType.CONTINUATION:
            if self.frag is not None:
                self.frag += frame.get_payload_as_memoryview()
                if frame.fin:
                    data, self.frag = bytes(self.frag), None
                    self.s.payload(data)
        elif mt == WSMsgType.CLOSE:
            with contextlib.suppress(Exception):
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.s.lost("(websocket)")


# ----------------------------------------------------------------------------------------
# RawSocket transport (asyncio protocol; uvloop makes plain Protocol cheap)
class _RawSocketProtocol(asyncio.Protocol):
    def __init__(self, session: Session, handshake: asyncio.Future):
        self.s = session
        self.hs = handshake
        self.buf = bytearray()
        self.t = None
        self.ready = False

    def connection_made(self, transport):
        self.t = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # 0x7F magic, max message length 2**(9+15) = 16 MiB << 4 | serializer id, 2 reserved bytes
        transport.write(bytes((0x7F, 0xF0 | self.s.codec.rawsocket_id, 0, 0)))
        write = transport.write

        def framed(b, write=write):
            n = len(b)
            write(bytes((0, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)) + b)

        self.s.write = framed
        self.s._close_transport = transport.close

    def data_received(self, data):
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        if not self.ready:
            if n < 4:
                return
            if buf[0] != 0x7F or (buf[1] & 0x0F) == 0:
                if not self.hs.done():
                    self.hs.set_exception(RuntimeError(f"RawSocket handshake refused: {bytes(buf[:4])!r}"))
                self.t.close()
                return
            self.ready = True
            pos = 4
            if not self.hs.done():
                self.hs.set_result(True)
        s = self.s
        while n - pos >= 4:
            ln = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if n - pos - 4 < ln:
                break
            kind = buf[pos] & 0x07
            start = pos + 4
            pos = start + ln
            if kind == 0:
                s.payload(bytes(buf[start:pos]))
            elif kind == 1:  # PING -> PONG with the same payload
                self.t.write(bytes((2, (ln >> 16) & 0xFF, (ln >> 8) & 0xFF, ln & 0xFF)) + bytes(buf[start:pos]))
        if pos:
            del buf[:pos]

    def connection_lost(self, exc):
        if not self.hs.done():
            self.hs.set_exception(ConnectionError("RawSocket connection lost during handshake"))
        self.s.lost("(rawsocket)")


# ----------------------------------------------------------------------------------------
# HTTP long-poll transport (spec: advanced/transport_http_longpoll), raw HTTP/1.1 on asyncio streams
_JSON_SEPS = (b"\x1e", b"\x18")  # the spec's record separator; Autobahn/Crossbar write "\30" (octal) = 0x18


class _HttpConn:
    """One keep-alive HTTP/1.1 connection: POST, read the answer (Content-Length, chunked, or until close)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.r = self.w = None
        self.head = f"Host: {host}:{port}\r\nContent-Type: application/json\r\nAccept: */*\r\n".encode()

    async def _connect(self):
        self.r, self.w = await asyncio.open_connection(self.host, self.port)
        sock = self.w.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.w is None:
            await self._connect()
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (path.encode(), self.head, len(body))
        self.w.write(head + body)
        r = self.r
        lines = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        hdrs = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        keep = parts[0] == "HTTP/1.1" and hdrs.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            data = b""
        elif "content-length" in hdrs:
            data = await r.readexactly(int(hdrs["content-length"]))
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                n = int((await r.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if n == 0:
                    while (await r.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                chunks.append(await r.readexactly(n))
                await r.readexactly(2)
            data = b"".join(chunks)
        else:
            data = await r.read()
            keep = False
        if not keep:
            self.close()
        return status, data

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


class _LongPoll:
    """WAMP over HTTP long-poll for one session.

    ``open`` offers ``wamp.2.json.batched`` then ``wamp.2.json``. Two keep-alive connections:
    one carries sends (one request at a time, so messages stay in order; with a batched protocol
    everything queued meanwhile goes in one request), the other the held ``receive``, re-posted
    as soon as it is answered, so a held receive never delays a send. A batch is split on its
    final byte (0x1e or Crossbar's 0x18); batches are sent with the separator the server uses:
    0x1e until the server has answered with a batch, and if the first batch is refused with 400
    (Crossbar splits on 0x18 only) it is re-sent with 0x18.
    """

    def __init__(self, sess: Session, host: str, port: int, root: str):
        if sess.codec.name != "json":
            raise ValueError("long-poll: json only")
        self.s = sess
        self.root = root
        self.tx = _HttpConn(host, port)
        self.rx = _HttpConn(host, port)
        self.batched = False
        self.sep = b"\x1e"
        self.sep_known = False
        self.queue: list[bytes] = []
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.closing = False

    async def open(self) -> None:
        body = orjson.dumps({"protocols": ["wamp.2.json.batched", "wamp.2.json"]})
        status, data = await self.tx.post(self.root + "/open", body)
        if status != 200:
            raise RuntimeError(f"long-poll open answered {status}: {data[:200]!r}")
        ans = orjson.loads(data)
        self.batched = ans["protocol"] == "wamp.2.json.batched"
        self.base = f"{self.root}/{ans['transport']}/"
        s = self.s
        s.write = self.write
        s._close_transport = self.close
        self.tasks = [asyncio.ensure_future(self._sender()), asyncio.ensure_future(self._receiver())]

    def write(self, b: bytes) -> None:
        if self.closing:
            return
        self.queue.append(b)
        self.wake.set()

    async def _sender(self) -> None:
        try:
            while True:
                if not self.queue:
                    if self.closing:
                        break
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                if self.batched:
                    msgs, self.queue = self.queue, []
                    while True:
                        sep = self.sep
                        status, data = await self.tx.post(self.base + "send", sep.join(msgs) + sep)
                        if status == 400 and not self.sep_known and sep == b"\x1e":
                            self.sep, self.sep_known = b"\x18", True  # Autobahn's dialect: try it
                            continue
                        break
                else:
                    status, data = await self.tx.post(self.base + "send", self.queue.pop(0))
                if status not in (200, 202, 204):
                    raise RuntimeError(f"long-poll send answered {status}: {data[:200]!r}")
                self.sep_known = True
            await self.tx.post(self.base + "close", b"")
        except (Exception, asyncio.CancelledError) as e:
            if not self.closing:
                self.s.lost(f"(long-poll send: {e!r})")
        finally:
            self.tx.close()
            for t in self.tasks:
                if t is not asyncio.current_task():
                    t.cancel()

    async def _receiver(self) -> None:
        s = self.s
        try:
            while True:
                status, data = await self.rx.post(self.base + "receive", b"")
                if status == 204:
                    continue  # held for request_timeout, nothing came
                if status != 200:
                    raise RuntimeError(f"long-poll receive answered {status}: {data[:200]!r}")
                if not self.batched:
                    s.payload(data)
                    continue
                sep = data[-1:]
                if sep not in _JSON_SEPS:
                    raise RuntimeError(f"long-poll batch without a separator: {data[-20:]!r}")
                if not self.sep_known or sep != self.sep:
                    self.sep, self.sep_known = sep, True
                for m in data[:-1].split(sep):
                    s.payload(m)
        except (Exception, asyncio.CancelledError) as e:
            s.lost(f"(long-poll receive: {e!r})")
        finally:
            self.rx.close()

    def close(self) -> None:
        """Flush what is queued (GOODBYE), then POST close; the receive is dropped."""
        if self.closing:
            return
        self.closing = True
        self.wake.set()
        self.s.closed = True
        for t in self.tasks[1:]:
            t.cancel()


async def connect(url: str, realm: str, codec: Codec, cls=Session, timeout: float = 10.0, **kw) -> Session:
    """Open ws://host:port/path or rs://host:port and join ``realm``; returns the session (WELCOME
    received). A fragment (``ws://host:port/ws#w1``) asks for a session on that worker of a node
    with several: connections are opened until one is WELCOMEd with ``x_cb_worker`` w1."""
    url, _, worker = url.partition("#")
    if not worker:
        return await _connect_once(url, realm, codec, cls, timeout, **kw)
    for _attempt in range(400):
        sess = await _connect_once(url, realm, codec, cls, timeout, **kw)
        if sess.welcome.result().get("x_cb_worker") == worker:
            return sess
        sess._close_transport()
    raise RuntimeError(f"no connection to {url} landed on worker {worker}")


async def _connect_once(url: str, realm: str, codec: Codec, cls, timeout: float, **kw) -> Session:
    sess = cls(codec, realm, **kw)
    u = urlparse(url)
    if u.scheme == "ws":
        transport, _ = await ws_connect(
            lambda: _WSListener(sess),
            url,
            extra_headers={"Sec-WebSocket-Protocol": codec.subprotocol},
            websocket_handshake_timeout=timeout,
            enable_auto_pong=True,
            read_buffer_init_size=4096,
        )
        got = transport.response.headers.get("Sec-WebSocket-Protocol")
        if got != codec.subprotocol:
            transport.disconnect()
            raise RuntimeError(f"router did not accept subprotocol {codec.subprotocol} (got {got!r})")
    elif u.scheme == "rs":
        loop = asyncio.get_running_loop()
        hs = loop.create_future()
        await asyncio.wait_for(
            loop.create_connection(lambda: _RawSocketProtocol(sess, hs), u.hostname, u.port), timeout
        )
        await asyncio.wait_for(hs, timeout)
    elif u.scheme == "http":
        lp = _LongPoll(sess, u.hostname, u.port or 80, u.path.rstrip("/"))
        await asyncio.wait_for(lp.open(), timeout)
    else:
        raise ValueError(f"unsupported URL {url!r} (ws://host:port/path, rs://host:port or http://host:port/lp)")
    sess.opened()
    try:
        await asyncio.wait_for(sess.welcome, timeout)
    except BaseException:
        sess._close_transport()
        raise
    return sess


async def wait_for_welcome(
    url: str, realm: str, codec_name: str = "json", deadline_s: float = 60.0, retry_s: float = 0.02, give_up=None
) -> tuple[int, int]:
    """Retry connecting until a WELCOME arrives. Returns (monotonic ns of WELCOME, attempts).
    ``give_up()`` (optional) is checked before each attempt, e.g. "has the router process exited?"."""
    codec = Codec(codec_name)
    end = time.monotonic() + deadline_s
    attempts = 0
    last = None
    while time.monotonic() < end:
        if give_up is not None and give_up():
            raise RuntimeError(f"gave up waiting for WELCOME from {url} (last error: {last!r})")
        attempts += 1
        try:
            s = await connect(url, realm, codec, timeout=min(5.0, max(0.1, end - time.monotonic())))
        except Exception as e:  # refused, 404 before the path is mounted, timeout, ABORT ...: retry
            last = e
            await asyncio.sleep(retry_s)
            continue
        t = now_ns()
        s.close()
        await asyncio.sleep(0.01)
        return t, attempts
    raise RuntimeError(f"no WELCOME from {url} within {deadline_s:.0f} s ({attempts} attempts, last error: {last!r})")


# ----------------------------------------------------------------------------------------
# Worker plumbing
def cpu_self_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def subsample(vals: list, n: int = MAX_LAT_SAMPLES) -> list:
    if len(vals) <= n:
        return vals
    step = len(vals) / n
    return [vals[int(i * step)] for i in range(n)]


class Control:
    """Line commands from the orchestrator on stdin (non-blocking, via the event loop)."""

    def __init__(self):
        self.q: asyncio.Queue = asyncio.Queue()
        self.buf = b""
        loop = asyncio.get_running_loop()
        self.fd = sys.stdin.fileno()
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._readable)

    def _readable(self):
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not data:  # orchestrator went away
            asyncio.get_running_loop().remove_reader(self.fd)
            self.q.put_nowait(["EOF"])
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.q.put_nowait(line.decode().split())

    async def expect(self, *names: str) -> list:
        while True:
            cmd = await self.q.get()
            if cmd[0] in names or cmd[0] == "EOF":
                return cmd


async def sleep_until_ns(t: int) -> None:
    d = (t - now_ns()) / 1e9
    if d > 0:
        await asyncio.sleep(d)


class Window:
    """The measurement window [t0, t1) and this process's CPU time over it."""

    def __init__(self, cmd: list):
        self.t0 = int(cmd[1])
        self.t1 = int(cmd[2])
        self.cpu0 = self.cpu1 = None

    async def run(self) -> None:
        await sleep_until_ns(self.t0)
        self.cpu0 = cpu_self_s()
        await sleep_until_ns(self.t1)
        self.cpu1 = cpu_self_s()

    def cpu_s(self):
        if self.cpu0 is None or self.cpu1 is None:
            return None
        return round(self.cpu1 - self.cpu0, 4)


async def open_many(url, realm, codec, n, cls=Session, concurrency=100, **kw):
    """Open n sessions, at most ``concurrency`` handshakes at a time. Returns (ok, failures, open latencies ns)."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[int] = []

    async def one():
        async with sem:
            t = now_ns()
            s = await connect(url, realm, codec, cls, **kw)
            lat.append(now_ns() - t)
            return s

    res = await asyncio.gather(*[one() for _ in range(n)], return_exceptions=True)
    ok = [s for s in res if isinstance(s, Session)]
    fails = [r for r in res if not isinstance(r, Session)]
    return ok, fails, lat


# ----------------------------------------------------------------------------------------
# Role: callee (echoes its positional args)
class Callee(Session):
    def __init__(self, codec, realm):
        super().__init__(codec, realm)
        self.invocations = 0

    def on_message(self, msg):
        if msg[0] == INVOCATION:
            # [INVOCATION, Request, Registration, Details, Arguments?] -> [YIELD, Request, Options, Arguments?]
            self.invocations += 1
            if len(msg) > 4:
                self.write(self.dumps([YIELD, msg[1], {}, msg[4]]))
            else:
                self.write(self.dumps([YIELD, msg[1], {}]))
        else:
            self.control(msg)


async def role_callee(spec, ctl: Control) -> dict:
    codec = Codec(spec["serializer"])
    s = await connect(spec["url"], spec["realm"], codec, Callee)
    # ("invoke": a shared registration, e.g. one callee per worker of a node)
    options = {"invoke": spec["invoke"]} if spec.get("invoke") else None
    await asyncio.wait_for(s.register(spec["procedure"], options), 10)
    out("READY")
    w = None
    cmd = await ctl.expect("GO", "STOP")
    if cmd[0] == "GO":  # optional: meter this process over the window too
        w = Window(cmd)
        await w.run()
        await ctl.expect("STOP")
    res = {
        "invocations": s.invocations,
        "errors": s.errors,
        "lost_sessions": int(s.closed),
        "cpu_s": None if w is None else w.cpu_s(),
    }
    s.close()
    return res


# ----------------------------------------------------------------------------------------
# Role: callers (N sessions x K calls in flight each)
class CallerState:
    def __init__(self):
        self.running = False
        self.t0 = 0
        self.t1 = 0
        self.done = 0
        self.bad = 0
        self.lat: list[int] = []
        #: open loop (``rate``): calls are fired by the pacer, not by each RESULT
        self.paced = False
        #: paced calls not fired because the session had ``inflight`` calls unanswered already
        self.skipped = 0


class Caller(Session):
    def __init__(self, codec, realm, st: CallerState, procedure: str, args: list):
        super().__init__(codec, realm)
        self.st = st
        self.proc = procedure
        self.args = args
        self.sent: dict[int, int] = {}

    def fire(self):
        self.req += 1
        rid = self.req
        self.sent[rid] = now_ns()
        self.write(self.dumps([CALL, rid, {}, self.proc, self.args]))

    def on_message(self, msg):
        t = msg[0]
        if t == RESULT:
            t_sent = self.sent.pop(msg[1], None)
            st = self.st
            if t_sent is not None:
                t_now = now_ns()
                if st.t0 <= t_now < st.t1:
                    st.done += 1
                    st.lat.append(t_now - t_sent)
                    if len(msg) < 4 or msg[3] != self.args:
                        st.bad += 1
            if st.running and not st.paced:
                self.fire()
        elif t == ERROR and msg[1] == CALL:
            self.errors += 1
            self.sent.pop(msg[2], None)
            if self.st.running and not self.st.paced:
                self.fire()
        else:
            self.control(msg)


async def _pace(callers: list, st: CallerState, rate: float, cap: int) -> None:
    """Fire calls at ``rate`` per second (in small bursts every 2 ms) while ``st.running``."""
    start = time.monotonic()
    fired = turn = 0
    while st.running:
        due = int((time.monotonic() - start) * rate)
        while fired < due:
            caller = callers[turn % len(callers)]
            turn += 1
            fired += 1
            if len(caller.sent) < cap:
                caller.fire()
            else:
                st.skipped += 1
        await asyncio.sleep(0.002)


async def role_callers(spec, ctl: Control) -> dict:
    codec = Codec(spec["serializer"])
    st = CallerState()
    args = [1, "hello"]
    callers = await asyncio.gather(
        *[
            connect(spec["url"], spec["realm"], codec, Caller, st=st, procedure=spec["procedure"], args=args)
            for _ in range(spec["sessions"])
        ]
    )
    out("READY")
    cmd = await ctl.expect("GO")
    if cmd[0] != "GO":
        return {"error": "orchestrator went away"}
    w = Window(cmd)
    st.t0, st.t1 = w.t0, w.t1
    st.running = True
    pacer = None
    if spec.get("rate"):
        # open loop: ``rate`` calls per second from this process, spread over its sessions, each
        # holding at most ``inflight`` unanswered (past it a call is skipped and counted)
        st.paced = True
        pacer = asyncio.ensure_future(_pace(callers, st, float(spec["rate"]), spec["inflight"]))
    else:
        for c in callers:
            for _ in range(spec["inflight"]):
                c.fire()
    await w.run()
    st.running = False
    if pacer is not None:
        await pacer
    # drain (bounded)
    end = time.monotonic() + 5
    while any(c.sent for c in callers) and time.monotonic() < end:
        await asyncio.sleep(0.01)
    res = {
        "ops": st.done,
        "bad_results": st.bad,
        "errors": sum(c.errors for c in callers),
        "undrained": sum(len(c.sent) for c in callers),
        "skipped": st.skipped,
        "lost_sessions": sum(1 for c in callers if c.closed),
        "cpu_s": w.cpu_s(),
        "lat_ns": subsample(st.lat),
    }
    for c in callers:
        c.close()
    return res


# ----------------------------------------------------------------------------------------
# Roles: subscribers and publisher. Delivery counts are shared through an mmap'd file of
# int64 slots (one per process), so the publisher can bound the undelivered window.
class SubState:
    def __init__(self, counters, slot: int, sample_every: int):
        self.counters = counters
        self.slot = slot
        self.received = 0
        self.t0 = 1 << 62
        self.t1 = 1 << 62
        self.in_window = 0
        self.sample_every = sample_every
        self.lat: list[int] = []
        self.on_event = None  # publisher hook


class Subscriber(Session):
    def __init__(self, codec, realm, st: SubState):
        super().__init__(codec, realm)
        self.st = st

    def on_message(self, msg):
        if msg[0] == EVENT:
            # [EVENT, Subscription, Publication, Details, Arguments] with Arguments = [t_publish_ns, "hello"]
            st = self.st
            st.received += 1
            st.counters[st.slot] = st.received
            t_now = now_ns()
            if st.t0 <= t_now < st.t1:
                st.in_window += 1
                if st.in_window % st.sample_every == 0:
                    st.lat.append(t_now - msg[4][0])
            cb = st.on_event
            if cb is not None:
                cb()
        else:
            self.control(msg)


def open_counters(path: str):
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
    return mm, memoryview(mm).cast("q")


async def role_subscribers(spec, ctl: Control) -> dict:
    codec = Codec(spec["serializer"])
    _mm, counters = open_counters(spec["counters"])
    st = SubState(counters, spec["slot"], spec.get("sample_every", 1))
    subs, fails, _ = await open_many(spec["url"], spec["realm"], codec, spec["sessions"], Subscriber, 50, st=st)
    if fails:
        raise RuntimeError(f"{len(fails)} subscriber sessions failed: {fails[0]!r}")
    await asyncio.wait_for(asyncio.gather(*[s.subscribe(spec["topic"]) for s in subs]), 20)
    out("READY")
    cmd = await ctl.expect("GO")
    if cmd[0] != "GO":
        return {"error": "orchestrator went away"}
    w = Window(cmd)
    st.t0, st.t1 = w.t0, w.t1
    await w.run()
    await ctl.expect("STOP")
    res = {
        "ops": st.in_window,
        "received": st.received,
        "errors": sum(s.errors for s in subs),
        "lost_sessions": sum(1 for s in subs if s.closed),
        "cpu_s": w.cpu_s(),
        "lat_ns": subsample(st.lat),
        "sample_every": st.sample_every,
    }
    for s in subs:
        s.close()
    return res


async def role_publisher(spec, ctl: Control) -> dict:
    """Publishes [t_ns, "hello"] as fast as deliveries allow, with at most ``window`` publications
    undelivered (counted over all subscriber sessions of all processes). Optionally hosts
    ``local_subscribers`` subscriber sessions itself (slot ``slot``)."""
    codec = Codec(spec["serializer"])
    _mm, counters = open_counters(spec["counters"])
    nslots = spec["nslots"]
    st = SubState(counters, spec["slot"], spec.get("sample_every", 1))
    subs = []
    if spec.get("local_subscribers"):
        subs, fails, _ = await open_many(
            spec["url"], spec["realm"], codec, spec["local_subscribers"], Subscriber, 50, st=st
        )
        if fails:
            raise RuntimeError(f"{len(fails)} subscriber sessions failed: {fails[0]!r}")
        await asyncio.wait_for(asyncio.gather(*[s.subscribe(spec["topic"]) for s in subs]), 20)
    pub = await connect(spec["url"], spec["realm"], codec)
    out("READY")
    cmd = await ctl.expect("GO")
    if cmd[0] != "GO":
        return {"error": "orchestrator went away"}
    w = Window(cmd)
    st.t0, st.t1 = w.t0, w.t1
    nsubs = spec["total_subscribers"]
    window = spec["window"]
    low = max(1, window // 2)  # refill when at most half the window is outstanding
    topic = spec["topic"]
    write, dumps = pub.write, pub.dumps
    state = {"published": 0, "running": True, "pub_in_window": 0}

    def delivered() -> int:
        return sum(counters[i] for i in range(nslots))

    def pump():
        if not state["running"]:
            return
        outstanding = state["published"] - delivered() // nsubs
        if outstanding > low:
            return
        n = window - outstanding
        t0, t1 = st.t0, st.t1
        for _ in range(n):
            pub.req += 1
            t = now_ns()
            write(dumps([PUBLISH, pub.req, {}, topic, [t, "hello"]]))
            if t0 <= t < t1:
                state["pub_in_window"] += 1
        state["published"] += n

    every = max(1, spec.get("local_subscribers", 0))
    cnt = [0]

    def on_local_event():
        cnt[0] += 1
        if cnt[0] >= every:
            cnt[0] = 0
            pump()

    st.on_event = on_local_event
    timer_task = asyncio.ensure_future(w.run())
    while not timer_task.done():
        pump()
        await asyncio.sleep(0.001)
    state["running"] = False
    st.on_event = None
    # let the last publications arrive (bounded)
    end = time.monotonic() + 5
    while delivered() < state["published"] * nsubs and time.monotonic() < end:
        await asyncio.sleep(0.01)
    res = {
        "published": state["published"],
        "published_in_window": state["pub_in_window"],
        "undelivered": state["published"] * nsubs - delivered(),
        "ops": st.in_window,  # deliveries to the local subscribers
        "errors": pub.errors + sum(s.errors for s in subs),
        "lost_sessions": sum(1 for s in [*subs, pub] if s.closed),
        "cpu_s": w.cpu_s(),
        "lat_ns": subsample(st.lat),
    }
    pub.close()
    for s in subs:
        s.close()
    return res


# ----------------------------------------------------------------------------------------
# Role: sessions (open N idle sessions, hold them until CLOSE)
async def role_sessions(spec, ctl: Control) -> dict:
    codec = Codec(spec["serializer"])
    out("READY")
    cmd = await ctl.expect("GO")
    if cmd[0] != "GO":
        return {"error": "orchestrator went away"}
    cpu0 = cpu_self_s()
    t0 = now_ns()
    ok, fails, lat = await open_many(
        spec["url"], spec["realm"], codec, spec["count"], Session, spec.get("concurrency", 100)
    )
    t1 = now_ns()
    out(
        "OPENED "
        + json.dumps(
            {
                "opened": len(ok),
                "failed": len(fails),
                "t0": t0,
                "t1": t1,
                "cpu_s": round(cpu_self_s() - cpu0, 4),
                "first_failure": repr(fails[0])[:300] if fails else None,
            }
        )
    )
    await ctl.expect("CLOSE")
    alive = sum(1 for s in ok if not s.closed)
    for s in ok:
        s.close()
    await asyncio.sleep(0.2)
    return {"opened": len(ok), "failed": len(fails), "alive_at_close": alive, "ops": len(ok), "lat_ns": subsample(lat)}


ROLES = {
    "callee": role_callee,
    "callers": role_callers,
    "subscribers": role_subscribers,
    "publisher": role_publisher,
    "sessions": role_sessions,
}


async def worker_main(spec: dict) -> int:
    ctl = Control()
    try:
        res = await asyncio.wait_for(ROLES[spec["role"]](spec, ctl), spec.get("hard_s", 120))
    except Exception as e:  # report, the orchestrator decides
        res = {"error": f"{type(e).__name__}: {e}"}
    out("RESULT " + json.dumps(res))
    await asyncio.sleep(0.05)
    return 0 if "error" not in res else 1


# ----------------------------------------------------------------------------------------
# Standalone smoke check: one session registers, calls, subscribes and publishes to itself
class _Smoke(Session):
    def __init__(self, codec, realm):
        super().__init__(codec, realm)
        self.event = asyncio.get_running_loop().create_future()

    def on_message(self, msg):
        t = msg[0]
        if t == INVOCATION:
            self.send([YIELD, msg[1], {}, [sum(msg[4])]])
        elif t == RESULT:
            f = self.pending.pop(msg[1], None)
            if f is not None and not f.done():
                f.set_result(msg[3] if len(msg) > 3 else [])
        elif t == EVENT:
            if not self.event.done():
                self.event.set_result(msg[4] if len(msg) > 4 else [])
        else:
            self.control(msg)


async def smoke(url: str, realm: str, serializer: str) -> dict:
    s = await connect(url, realm, Codec(serializer), _Smoke)
    await asyncio.wait_for(s.register("com.bench.smoke.add"), 5)
    result = await asyncio.wait_for(s.request(lambda r: [CALL, r, {}, "com.bench.smoke.add", [2, 3]]), 5)
    await asyncio.wait_for(s.subscribe("com.bench.smoke.topic"), 5)
    s.req += 1  # request IDs must run 1, 2, 3, ... within a session
    s.send([PUBLISH, s.req, {"exclude_me": False}, "com.bench.smoke.topic", ["hello", 42]])
    ev = await asyncio.wait_for(s.event, 5)
    s.close()
    await asyncio.sleep(0.05)
    return {"ok": result == [5] and ev == ["hello", 42], "call_result": result, "event_args": ev}


def main(argv: list[str]) -> int:
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    if len(argv) >= 2 and argv[0] == "worker":
        return uvloop.run(worker_main(json.loads(argv[1])))
    if len(argv) >= 2 and argv[0] == "smoke":
        import argparse

        p = argparse.ArgumentParser(prog="loadgen.py smoke")
        p.add_argument("url")
        p.add_argument("--realm", default="realm1")
        p.add_argument("--serializer", default="json", choices=["json", "msgpack"])
        a = p.parse_args(argv[1:])
        res = uvloop.run(smoke(a.url, a.realm, a.serializer))
        print(json.dumps(res))
        return 0 if res["ok"] else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
