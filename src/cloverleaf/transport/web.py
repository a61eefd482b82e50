"""The web transport: one TCP port with path services (static files, WAMP over WebSocket, ...).

HTTP/1.1 requests are parsed with h11 (sans-I/O). A WebSocket upgrade on a WAMP path is handed,
bytes and all, to picows on the same connection (``transport.set_protocol``), so WAMP sessions on
the web port run on the same fast WebSocket stack as the dedicated WebSocket transport; everything
else (static files, redirects, node info, metrics, the HTTP bridge, long-poll) is answered here
or by the service a path names.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, mktime_tz, parsedate_tz
from http import HTTPStatus
from pathlib import Path, PurePath
from stat import S_ISREG
from typing import Any, Literal, cast

import h11
import orjson

from .. import __version__
from ..router.ratelimit import RateLimitedLog
from ..router.router import Router
from .archive import ZipArchive
from .link import describe_peer, linger_close
from .rawsocket import RawSocketProtocol, RawSocketSettings
from .rfc6455 import create_protocol
from .websocket import WebSocketSettings, negotiate

log = logging.getLogger("cloverleaf.transport.web")
#: refusals any browser page can cause again and again
limited_log = RateLimitedLog(log)
_TASKS: set[asyncio.Task[None]] = set()

#: the longest request head accepted (bytes); a request over it is answered 431 and closed
MAX_HEAD = 16 * 1024
#: bytes of pipelined requests buffered while a response is being computed; beyond, reading pauses
#: until it is sent (below it, reading goes on so a client that leaves is noticed at once)
MAX_PIPELINED = 64 * 1024
#: static files larger than this are sent in chunks of this size as the connection drains, never
#: read whole into memory
STREAM_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class StaticService:
    #: None: only ``files`` are served
    directory: Path | None
    index: tuple[str, ...] = ("index.html",)
    #: Cache-Control max-age in seconds
    max_age: int = 3600
    #: single files served under names of their own ("js/app.js" -> any file), looked up before the directory
    files: Mapping[str, Path] = field(default_factory=dict)
    #: extra response headers; they replace the defaults of the same name (e.g. Cache-Control)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: a folder without an index file is answered with a list of its entries (else 404)
    directory_listing: bool = False


@dataclass(frozen=True, slots=True)
class RedirectService:
    url: str
    status: int = 302


@dataclass(frozen=True, slots=True)
class NodeInfoService:
    pass


@dataclass(frozen=True, slots=True)
class FixedService:
    """Answers GET and HEAD with the same body and headers every time (a ``json`` path)."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ArchiveService:
    """Members of a ZIP archive (an ``archive`` path); ``archive`` None while it is not available
    (its download failed): 503."""

    archive: ZipArchive | None


@dataclass(frozen=True, slots=True)
class MetricsService:
    """Answers with ``render()``: (body, content type), e.g. Prometheus text."""

    render: Callable[[], tuple[bytes, str]]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    #: header names in lower case
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class PostService:
    """Requests (POST by default) answered by ``handle(request) -> (status, body, content type)``."""

    handle: Callable[[HttpRequest], Awaitable[tuple[int, bytes, str]]]
    max_body: int = 1024 * 1024
    methods: frozenset[str] = frozenset({"POST"})


@dataclass(frozen=True, slots=True)
class LongPollService:
    """WAMP over HTTP long-poll (``transport/longpoll.py``): every request under the path, any method,
    with its body read up to ``max_body``, is answered by ``handle(request, peer, lost) -> (status,
    body, headers)``; ``lost`` is done once the connection is gone (a held ``receive`` gives up).
    ``error_headers(request headers)``, if given, adds headers (CORS) to the errors answered here
    for a request on the path (a body over ``max_body``, malformed HTTP, a failing handler)."""

    handle: Callable[[HttpRequest, str, asyncio.Future[None]], Awaitable[tuple[int, bytes, dict[str, str]]]]
    max_body: int = 1024 * 1024
    error_headers: Callable[[Mapping[str, str]], dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class WampService:
    settings: WebSocketSettings
    #: refuse (403) a browser whose Origin is not the host the request was sent to (the Host header)
    same_origin: bool = False


Service = (
    StaticService | RedirectService | NodeInfoService | MetricsService | PostService | WampService | LongPollService
    | FixedService | ArchiveService
)


@dataclass(slots=True)
class WebSettings:
    #: URL path prefix -> service; the longest matching prefix serves a request
    paths: dict[str, Service] = field(default_factory=dict)
    handshake_timeout: float = 10.0

    def service_for(self, path: str) -> tuple[str, Service] | None:
        best: tuple[str, Service] | None = None
        for prefix, service in self.paths.items():
            root = prefix.rstrip("/") or "/"
            covers = root == "/" or path == root or path.startswith(root + "/")
            if covers and (best is None or len(root) > len(best[0])):
                best = (root, service)
        return best


class WebProtocol(asyncio.Protocol):
    """One HTTP connection: requests answered here, or handed to picows for WAMP."""

    def __init__(self, router: Router, settings: WebSettings) -> None:
        self._router = router
        self._settings = settings
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._raw: asyncio.Transport | None = None
        #: everything received on a connection that has not answered a request yet (for the hand-over)
        self._received = bytearray()
        self._answered = False
        #: a request body being read: (service, the request without its body, body parts, size so far)
        self._post: tuple[PostService | LongPollService, HttpRequest, list[bytes], int] | None = None
        #: done when the connection is lost (made for the first long-poll request)
        self._lost: asyncio.Future[None] | None = None
        self._busy = False  # a response is being computed: later events wait
        #: the request being answered is a HEAD: responses keep their Content-Length and drop their body
        self._head = False
        self._reading_paused = False
        #: the last answer is written and the connection is closing (input is dropped)
        self._closing = False
        #: set while the transport's write buffer is below its high-water mark (file streaming waits on it)
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # the last answer is out; what the client still sends is read and dropped
        if not self._answered:
            self._received += data
        self._http.receive_data(data)
        self._process()
        raw = self._raw
        if self._busy and raw is not None and not self._reading_paused:
            buffered, _closed = self._http.trailing_data
            if len(buffered) > MAX_PIPELINED:
                self._reading_paused = True
                raw.pause_reading()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._raw = None
        self._writable.set()  # a file being streamed notices the loss and stops
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)  # a held receive must not take messages it can no longer deliver

    def eof_received(self) -> bool | None:
        if self._closing:
            return None
        self._http.receive_data(b"")
        self._process()
        return None

    def _process(self) -> None:
        while self._raw is not None and not self._busy:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as exc:
                post = self._post
                self._error(exc.error_status_hint, str(exc), _error_headers(post[0], post[1]) if post else None)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self._http.our_state is h11.DONE and self._http.their_state is h11.DONE:
                    self._http.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._request(event)
            elif isinstance(event, h11.Data) and self._post is not None:
                service, head, parts, size = self._post
                size += len(event.data)
                if size > service.max_body:
                    self._post = None
                    self._error(413, "request body too large", _error_headers(service, head))
                    return
                parts.append(event.data)
                self._post = (service, head, parts, size)
            elif isinstance(event, h11.EndOfMessage) and self._post is not None:
                service, head, parts, _ = self._post
                self._post = None
                self._busy = True
                request = HttpRequest(head.method, head.path, head.query, head.headers, b"".join(parts))
                task = asyncio.get_running_loop().create_task(self._answer_post(service, request))
                _TASKS.add(task)
                task.add_done_callback(_TASKS.discard)
            elif isinstance(event, h11.ConnectionClosed):
                self._raw.close()
                return

    def _request(self, request: h11.Request) -> None:
        target = request.target.decode("latin-1")
        self._head = request.method == b"HEAD"
        path = target.split("?", 1)[0]
        found = self._settings.service_for(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if found is None:
            self._respond(404, b"not found\n")
            return
        root, service = found
        if isinstance(service, WampService):
            if headers.get("upgrade", "").lower() == "websocket" and not self._answered:
                if service.same_origin and not _same_origin(headers):
                    limited_log.info("origin refused", "refused WebSocket upgrade on %s from Origin %r", root,
                                     headers.get("origin"))  # fmt: skip
                    self._respond(403, b"origin not allowed\n")
                    return
                self._hand_over(service.settings, root)
            else:
                self._respond(426, b"this path speaks WAMP over WebSocket\n", {"Upgrade": "websocket"})
            return
        if isinstance(service, LongPollService):
            method = request.method.decode("latin-1")
            self._post = (service, HttpRequest(method, path, target.partition("?")[2], headers, b""), [], 0)
            return
        if isinstance(service, PostService):
            method = request.method.decode("latin-1")
            if method not in service.methods:
                self._respond(405, b"method not allowed\n", {"Allow": ", ".join(sorted(service.methods))})
            else:
                self._post = (service, HttpRequest(method, path, target.partition("?")[2], headers, b""), [], 0)
            return
        if request.method not in (b"GET", b"HEAD"):
            self._respond(405, b"method not allowed\n", {"Allow": "GET, HEAD"})
            return
        if isinstance(service, StaticService):
            self._static(service, path, path[len(root) :], request.method == b"HEAD", headers)
        elif isinstance(service, RedirectService):
            self._respond(service.status, b"", {"Location": service.url})
        elif isinstance(service, FixedService):
            self._respond(200, service.body, service.headers)
        elif isinstance(service, ArchiveService):
            if service.archive is None:
                self._respond(503, b"the archive is not available\n", {"Retry-After": "60"})
            else:
                self._respond(*service.archive.answer(path[len(root) :], headers))
        elif isinstance(service, MetricsService):
            body, content_type = service.render()
            self._respond(200, body, {"Content-Type": content_type, "Cache-Control": "no-store"})
        else:
            info = {"node": "cloverleaf", "version": __version__, "realms": self._router.stats().realms}
            self._respond(200, orjson.dumps(info), {"Content-Type": "application/json", "Cache-Control": "no-store"})

    async def _answer_post(self, service: PostService | LongPollService, request: HttpRequest) -> None:
        headers: dict[str, str]
        try:
            if isinstance(service, LongPollService):
                raw = self._raw
                if self._lost is None:
                    self._lost = asyncio.get_running_loop().create_future()
                    if raw is None:
                        self._lost.set_result(None)
                tls = raw is not None and raw.get_extra_info("ssl_object") is not None
                peer = describe_peer(raw, "tls" if tls else "tcp") if raw is not None else "tcp:?"
                status, answer, headers = await service.handle(request, peer, self._lost)
            else:
                status, answer, content_type = await service.handle(request)
                headers = {"Content-Type": content_type}
        except Exception:
            log.exception("POST handler failed")
            status, answer, headers = 500, b"internal error\n", {**_error_headers(service, request),
                                                                 "Content-Type": "text/plain"}  # fmt: skip
        self._busy = False
        self._respond(status, answer, headers)
        self._next_requests()

    def _next_requests(self) -> None:
        """A response is out: go on with requests that arrived meanwhile, and read again if paused."""
        self._process()
        if self._reading_paused and self._raw is not None and not self._busy:
            self._reading_paused = False
            self._raw.resume_reading()

    def _static(
        self, service: StaticService, path: str, relative: str, head_only: bool, headers: Mapping[str, str]
    ) -> None:
        from urllib.parse import unquote

        name = unquote(relative).lstrip("/")
        if name == "" and not path.endswith("/"):
            # the mount point itself: with the slash, relative links in its index page resolve below it
            self._respond(301, b"", {"Location": path + "/"})
            return
        candidate: Path | None = service.files.get(name)
        if candidate is None and (name == "" or name.endswith("/")):
            candidate = next((service.files[name + i] for i in service.index if name + i in service.files), None)
        #: where the file and its precompressed siblings must stay (a single file's: its own folder)
        confine: Path | None = None
        if candidate is None and service.directory is not None:
            root = confine = service.directory.resolve()
            candidate = (root / name).resolve()
            # no escape from the directory: "..", encoded or not, and symlinks pointing outside
            if candidate != root and root not in candidate.parents:
                self._respond(404, b"not found\n")
                return
            if candidate.is_dir() and not path.endswith("/"):
                self._respond(301, b"", {"Location": path + "/"})  # as for the mount point
                return
            if candidate.is_dir():
                folder = candidate
                index = (candidate / i for i in service.index if (candidate / i).is_file())
                candidate = next(index, candidate).resolve()  # an index file that is a symlink: checked too
                if candidate.is_dir() and service.directory_listing:
                    self._respond(200, _listing(folder, root, path), {
                        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
                        "X-Content-Type-Options": "nosniff", **service.headers})  # fmt: skip
                    return
                if root not in candidate.parents:
                    self._respond(404, b"not found\n")
                    return
        if candidate is None or not candidate.is_file():
            self._respond(404, b"not found\n")
            return
        stat = candidate.stat()
        siblings = _precompressed(candidate, stat, confine or candidate.resolve().parent)
        coding = _choose_coding(headers.get("accept-encoding"), siblings)
        file, file_stat = siblings[coding] if coding is not None else (candidate, stat)
        size = file_stat.st_size
        etag = f'"{file_stat.st_mtime_ns:x}-{size:x}{_ETAG_SUFFIX[coding] if coding is not None else ""}"'
        response_headers = {
            "Content-Type": _content_type(candidate.name), "ETag": etag,
            "Cache-Control": _cache_control(service.max_age),
            "Last-Modified": formatdate(file_stat.st_mtime, usegmt=True), "Accept-Ranges": "bytes",
            **({"Content-Encoding": coding} if coding is not None else {}),
            **({"Vary": "Accept-Encoding"} if siblings else {}), **service.headers,
        }  # fmt: skip
        if _not_modified(headers, etag, file_stat.st_mtime):
            kept = {k: v for k, v in response_headers.items() if k.lower() in _NOT_MODIFIED_KEEPS}
            self._respond(304, b"", kept, content_length=size)  # the length a 200 would have had
            return
        status, offset, length = 200, 0, size
        # Range is defined for GET only (RFC 9110 §14.2): a HEAD gets the whole file's head, Accept-Ranges included
        part = None if head_only else _byte_range(headers, etag, int(file_stat.st_mtime), size)
        if part == "unsatisfiable":
            unsatisfiable = {"Content-Range": f"bytes */{size}", "Content-Type": "text/plain; charset=utf-8",
                             "Accept-Ranges": "bytes", **({"Vary": "Accept-Encoding"} if siblings else {})}  # fmt: skip
            self._respond(416, b"range not satisfiable\n", unsatisfiable)
            return
        if part is not None:
            status, (offset, length) = 206, part
            response_headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
        if head_only:
            self._respond(status, b"", response_headers, content_length=length)
            return
        if length <= STREAM_CHUNK:
            try:
                with open(file, "rb") as opened:
                    opened.seek(offset)
                    body = opened.read(length)
            except OSError as exc:
                log.warning("cannot send %s: %s", file, exc)
                self._respond(404, b"not found\n")
                return
            if len(body) != length:  # the file shrank since its stat: nothing consistent can be said
                log.warning("%s changed while being read", file)
                self._respond(503, b"file changed while being read, try again\n", {"Retry-After": "1"})
                return
            self._respond(status, body, response_headers)
            return
        self._busy = True  # pipelined requests wait for the whole file
        task = asyncio.get_running_loop().create_task(self._stream_file(file, offset, length, status, response_headers))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _stream_file(self, path: Path, offset: int, size: int, status: int, headers: Mapping[str, str]) -> None:
        """Send ``size`` bytes of a file from ``offset`` (a large file, or a large part of one for a range
        request) chunk by chunk, each after the connection drained below its high-water mark."""
        try:
            with open(path, "rb") as file:
                file.seek(offset)
                if not self._start_response(status, headers, size):
                    return
                sent = 0
                while sent < size:
                    await self._writable.wait()
                    raw = self._raw
                    if raw is None:
                        return  # the client left
                    chunk = file.read(min(STREAM_CHUNK, size - sent))
                    if not chunk:  # the file shrank after its length was announced: only closing can say so
                        log.warning("%s shrank while being sent; closing the connection", path)
                        raw.close()
                        return
                    raw.write(self._http.send(h11.Data(data=chunk)))
                    sent += len(chunk)
                raw = self._raw
                if raw is None:
                    return
                raw.write(self._http.send(h11.EndOfMessage()))
                if self._http.our_state is h11.MUST_CLOSE:
                    self._close_after_answer()
        except OSError as exc:
            log.warning("cannot send %s: %s", path, exc)
            if self._http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self._respond(404, b"not found\n")
            elif self._raw is not None:
                self._raw.close()  # the head is out: the response cannot be completed
            return
        finally:
            self._busy = False
        self._next_requests()

    def _respond(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None, content_length: int | None = None
    ) -> None:
        if not self._start_response(status, headers or {}, len(body) if content_length is None else content_length):
            return
        if self._head:
            body = b""  # h11 frames a HEAD response as empty: the length above is what a GET would get
            self._head = False
        raw = self._raw
        assert raw is not None
        data = self._http.send(h11.Data(data=body)) if body else b""
        data += self._http.send(h11.EndOfMessage())
        raw.write(data)
        if self._http.our_state is h11.MUST_CLOSE:
            self._close_after_answer()

    def _close_after_answer(self) -> None:
        """Close once the answer is sent, without a reset destroying it: a client still uploading
        (a body over the limit, say) would otherwise get a TCP reset instead of the 413."""
        if self._raw is not None and not self._closing:
            self._closing = True
            linger_close(self._raw)

    def _start_response(self, status: int, headers: Mapping[str, str], content_length: int) -> bool:
        """Write the response head; False (and the connection closed) when it cannot be sent."""
        raw = self._raw
        if raw is None:
            return False
        all_headers = [("Server", f"cloverleaf/{__version__}"), ("Date", _date_now()),
                       ("Content-Length", str(content_length)), *headers.items()]  # fmt: skip
        try:
            head = self._http.send(h11.Response(status_code=status, headers=all_headers, reason=_reason(status)))
        except h11.LocalProtocolError as exc:
            log.info("cannot answer %s: %s", raw.get_extra_info("peername"), exc)
            raw.close()
            return False
        self._answered = True
        self._received.clear()
        raw.write(head)
        return True

    def _error(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        if self._http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._respond(status, text.encode() + b"\n", {**(headers or {}), "Connection": "close"})
        self._close_after_answer()

    def _hand_over(self, settings: WebSocketSettings, root: str) -> None:
        # settings.path is the service's root: picows' listener factory checks it as usual
        """Give the connection, with the upgrade request already received, to picows."""
        raw = self._raw
        assert raw is not None
        router = self._router
        protocol = create_protocol(lambda request: negotiate(request, router, settings), settings)
        self._raw = None
        raw.set_protocol(protocol)
        protocol.connection_made(raw)
        replay = bytes(self._received)
        self._received.clear()
        view = memoryview(replay)
        while view:
            buffer = protocol.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]


def _error_headers(service: PostService | LongPollService, request: HttpRequest) -> dict[str, str]:
    """What a service adds to an error answered for it here (a long-poll path's CORS headers)."""
    if not isinstance(service, LongPollService) or service.error_headers is None:
        return {}
    try:
        return service.error_headers(request.headers)
    except Exception:
        log.exception("error_headers failed")
        return {}


def _same_origin(headers: Mapping[str, str]) -> bool:
    """Whether the request's Origin (if any: non-browsers send none) names the host it was sent to."""
    from urllib.parse import urlsplit

    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


#: precompressed siblings looked for next to a static file, by content coding (at equal quality in
#: Accept-Encoding the first wins), and what each adds to the file's ETag
_SIBLINGS = {"br": ".br", "gzip": ".gz"}
_ETAG_SUFFIX = {"br": "-br", "gzip": "-gz"}
#: the type of a compressed file asked for by its own name ("app.js.gz"): its bytes, not what they unpack to
_ENCODED_TYPES = {"gzip": "application/gzip", "br": "application/x-brotli", "bzip2": "application/x-bzip2",
                  "xz": "application/x-xz", "compress": "application/x-compress"}  # fmt: skip
#: what a 304 repeats of the 200 it stands for (RFC 9110 §15.4.5)
_NOT_MODIFIED_KEEPS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})
_QVALUE = re.compile(r"[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def _listing(folder: Path, root: Path, path: str) -> bytes:
    """An HTML page listing ``folder``'s entries (a static path's ``directory_listing``): folders
    first, then files, by name; hidden entries (a leading dot) and links pointing out of ``root``
    are left out. Every name is escaped, every link percent-encoded."""
    from html import escape
    from urllib.parse import quote

    entries: list[tuple[bool, str]] = []
    try:
        for entry in folder.iterdir():
            if entry.name.startswith("."):
                continue
            target = entry.resolve()
            if target != root and root not in target.parents:
                continue
            entries.append((not target.is_dir(), entry.name))
    except OSError:
        entries = []
    rows = "".join(
        f'<li><a href="{quote(name)}{"" if is_file else "/"}">{escape(name)}{"" if is_file else "/"}</a></li>'
        for is_file, name in sorted(entries)
    )
    title = escape(path)
    up = '<li><a href="../">../</a></li>' if folder != root else ""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>"
            f"<body><h1>Index of {title}</h1><ul>{up}{rows}</ul></body></html>\n").encode()  # fmt: skip


def _content_type(name: str) -> str:
    content_type, encoding = mimetypes.guess_type(name)
    suffix = PurePath(name).suffix
    if encoding is not None and (suffix in mimetypes.encodings_map or suffix.lower() in mimetypes.encodings_map):
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    content_type = content_type or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
        content_type += "; charset=utf-8"
    return content_type


def _precompressed(file: Path, stat: os.stat_result, confine: Path) -> dict[str, tuple[Path, os.stat_result]]:
    """``file``'s precompressed siblings (NAME.br, NAME.gz) that can stand for it: regular files, not
    older than it, and (symlinks resolved) inside ``confine``. Small stat calls only."""
    found: dict[str, tuple[Path, os.stat_result]] = {}
    for coding, suffix in _SIBLINGS.items():
        sibling = file.with_name(file.name + suffix)
        try:
            sibling_stat = sibling.stat()
            if not S_ISREG(sibling_stat.st_mode) or sibling_stat.st_mtime_ns < stat.st_mtime_ns:
                continue  # a stale sibling (the file was changed after it was compressed) is not used
            resolved = sibling.resolve()
        except (OSError, RuntimeError):  # missing, unreadable, a symlink loop
            continue
        if confine in resolved.parents:
            found[coding] = (resolved, sibling_stat)
    return found


def _choose_coding(accept: str | None, available: Mapping[str, object]) -> str | None:
    """The content coding of ``available`` (br, gzip) that Accept-Encoding rates highest, q=0 meaning
    "not this one"; None for identity (no header, nothing acceptable, nothing available)."""
    if accept is None or not available:
        return None
    weights: dict[str, float] = {}
    for item in accept.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        weight: float | None = 1.0
        for param in params:
            if param[:1] in ("q", "Q"):
                quality = _QVALUE.fullmatch(param.replace(" ", ""))
                weight = float(quality.group(1)) if quality is not None else None
        if coding and weight is not None:  # an element with a malformed weight is left out
            weights[coding.lower()] = weight
    if "gzip" not in weights and "x-gzip" in weights:
        weights["gzip"] = weights["x-gzip"]
    best, best_weight = None, 0.0
    for coding in available:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


def _http_date(value: str) -> int | None:
    """An HTTP date as a Unix time, None when it is not one."""
    try:
        parsed = parsedate_tz(value.strip())
        return None if parsed is None else mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The Date header RFC 9110 (6.6.1) asks an origin server with a clock to send: now, to the
    second (formatted once per second)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _reason(status: int) -> bytes:
    """The reason phrase for ``status`` ("OK", "Not Found"; empty for a code Python does not know)."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _cache_control(max_age: int) -> str:
    """``max_age`` 0 is "ask every time": no-cache, so a browser revalidates (If-None-Match, a 304
    while the file is unchanged) instead of using its copy."""
    return "no-cache" if max_age == 0 else f"max-age={max_age}"


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    """Whether a GET or HEAD is answered 304: If-None-Match (weak comparison) when there is one, else
    If-Modified-Since (RFC 9110 §13.2.2)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return if_none_match.strip() == "*" or _opaque(etag) in {_opaque(tag) for tag in if_none_match.split(",")}
    since = _http_date(headers.get("if-modified-since", ""))
    # a date in the future is not a valid validator: ignored
    return since is not None and since <= time.time() and int(mtime) <= since


def _byte_number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18  # past any file size (and int()'s digit limit)


def _byte_range(
    headers: Mapping[str, str], etag: str, mtime: int, size: int
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The part of a ``size``-byte file a GET's Range asks for, as (offset, length); "unsatisfiable"
    (416); None for the whole file: no Range, a malformed one, several ranges (multipart/byteranges is
    not offered), or an If-Range that no longer holds (RFC 9110 §14)."""
    value = headers.get("range")
    if value is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None:
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            if if_range != etag:  # strong comparison: a weak tag never matches
                return None
        elif _http_date(if_range) != mtime:
            return None
    unit, equals, ranges = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    match = _RANGE_SPEC.fullmatch(specs[0]) if len(specs) == 1 else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = (_byte_number(number) if number else None for number in match.groups())
    if first is None:  # "-n": the last n bytes
        assert last is not None
        if last == 0:
            return "unsatisfiable"
        if size == 0:
            return None  # no bytes to take the last of: the (empty) whole
        length = min(last, size)
        return size - length, length
    if last is not None and last < first:
        return None  # an invalid range is ignored
    if first >= size:
        return "unsatisfiable"
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


class SniffingProtocol(asyncio.Protocol):
    """A port of a ``universal`` transport: the connection's first byte decides what it speaks.

    RawSocket opens with its magic byte 0x7F, which no HTTP request starts with; anything else is
    HTTP (static files, long-poll, WebSocket upgrades). The chosen protocol takes over the transport
    and gets that first data. A connection that sends nothing is closed after the handshake timeout.
    """

    def __init__(self, rawsocket: Callable[[], asyncio.Protocol], web: Callable[[], asyncio.Protocol],
                 timeout: float) -> None:  # fmt: skip
        self._rawsocket = rawsocket
        self._web = web
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._transport.close)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        chosen = self._rawsocket() if data[:1] == b"\x7f" else self._web()
        self._transport.set_protocol(chosen)
        chosen.connection_made(self._transport)
        chosen.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


async def serve_web(
    router: Router, settings: WebSettings, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None, rawsocket: RawSocketSettings | None = None,
) -> asyncio.Server:
    """Serve ``settings``' path services on a port; with ``rawsocket``, RawSocket on the same port."""
    loop = asyncio.get_running_loop()
    factory: Callable[[], asyncio.Protocol] = lambda: WebProtocol(router, settings)  # noqa: E731
    if rawsocket is not None:
        scheme = "tls" if ssl_context is not None else "tcp"
        web = factory
        factory = lambda: SniffingProtocol(  # noqa: E731
            lambda: RawSocketProtocol(router, rawsocket, scheme), web, settings.handshake_timeout
        )
    options: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    if ssl_context is not None:
        options.update(ssl=ssl_context, ssl_handshake_timeout=settings.handshake_timeout)
    return await loop.create_server(factory, **options)


__all__ = [
    "HttpRequest",
    "LongPollService",
    "MetricsService",
    "NodeInfoService",
    "PostService",
    "RedirectService",
    "StaticService",
    "WampService",
    "WebSettings",
    "serve_web",
]
