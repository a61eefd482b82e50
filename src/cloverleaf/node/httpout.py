"""Outgoing HTTP: the HTTP bridge's other two directions, as node components (Crossbar's shapes).

An **http-subscriber** (Crossbar's ``MessageForwarder``) subscribes to topics and turns each event
into an HTTP request to the topic's URL, with ``{"args": [...], "kwargs": {...}}`` as the JSON body.
Events wait in a bounded queue for one of ``max_in_flight`` request slots; an event that finds the
queue full is dropped (counted, logged at most once per :data:`LOG_INTERVAL` with a count of the
rest). A request that fails on a connection error, a timeout, a 5xx or a 429 answer is sent again
after a backoff (``retry_delay``, doubled each time up to ``retry_max_delay``), at most ``retries``
times; one the receiver answers with any other status it does not accept is not. Delivery is
at least once when retries are on: a receiver that timed out may have acted on the first request.

An **http-callee** (Crossbar's ``RESTCallee``) registers a procedure that performs one HTTP request
below its ``base_url`` per call: keyword arguments (or positional ones, in Crossbar's order)
``method``, ``url`` (relative to ``base_url``), ``body``, ``headers``, ``params``; the result is
``{"code": status, "headers": {name: [values]}, "content": text}``. A url that would leave the base
URL (absolute, scheme-relative, a dot segment, encoded or not) is refused before anything is sent,
redirects are returned, never followed, and no cookies are kept between calls. HTTP failures answer
WAMP errors (``cloverleaf.error.http_*``, below); the callee never retries (the caller decides).

Each component has its own :class:`aiohttp.ClientSession` (connection pool), opened when it starts
and closed when the node stops it, and its own in-memory WAMP session (:func:`connect_component`).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from .. import __version__
from ..client.types import SubscribeOptions
from ..router.ratelimit import RateLimitedLog
from ..wamp.errors import INVALID_ARGUMENT, ApplicationError
from .components import _cause, connect_component
from .config import HttpCalleeComponent, HttpSubscriberComponent

if TYPE_CHECKING:
    from ..client.session import Registration, Session
    from ..router.router import Router

log = logging.getLogger("cloverleaf.components")

#: the request took longer than the component's ``timeout``
HTTP_TIMEOUT = "cloverleaf.error.http_timeout"
#: no response: the connection was refused or broke, TLS failed, the response was not HTTP
HTTP_REQUEST_FAILED = "cloverleaf.error.http_request_failed"
#: a response with a status the callee's ``expected_code`` does not list (its code, headers and
#: content are the error's kwargs)
HTTP_STATUS = "cloverleaf.error.http_status"
#: ``max_in_flight`` requests run and ``max_queue`` calls wait already
HTTP_BUSY = "cloverleaf.error.http_busy"
#: the response body is larger than ``max_response_size``
HTTP_RESPONSE_TOO_LARGE = "cloverleaf.error.http_response_too_large"
#: the call's url is not below the callee's ``base_url``
HTTP_URL_NOT_ALLOWED = "cloverleaf.error.http_url_not_allowed"

#: seconds between two log lines of the same kind of trouble (dropped events, failed deliveries)
LOG_INTERVAL = 10.0
#: seconds a component's session may take to join, subscribe or register
JOIN_TIMEOUT = 10.0
#: seconds a component's session may take to leave on shutdown
LEAVE_TIMEOUT = 2.0
#: characters of an unaccepted response's body shown in the subscriber's log line
LOGGED_BODY = 200
#: headers a call may not set: the connection's framing and the target host are the callee's
FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
    "proxy-authorization", "proxy-connection",
})  # fmt: skip
#: a call's arguments, in the order of Crossbar's RESTCallee (positional arguments are taken so)
CALL_ARGUMENTS = ("method", "url", "body", "headers", "params")


def _binary_as_wamp_json(value: Any) -> Any:
    """orjson's fallback: binary values as WAMP's JSON serialization has them (NUL + base64)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\0" + base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _HttpComponentRunner:
    """What both components share: the in-memory session and the HTTP client."""

    kind = ""

    def __init__(self, config: HttpSubscriberComponent | HttpCalleeComponent, router: Router) -> None:
        self.name = config.label
        self._base_config = config
        self._router = router
        self.session: Session | None = None
        self.http: aiohttp.ClientSession | None = None

    def _open_http(self) -> aiohttp.ClientSession:
        config = self._base_config
        # the component's headers are defaults a request's own never replace (see _call_headers)
        headers = {"User-Agent": f"cloverleaf/{__version__}", **config.headers}
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.max_in_flight),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=config.timeout),  # asyncio.timeout below is the one that counts
            cookie_jar=aiohttp.DummyCookieJar(),  # a cookie one request got is not sent with the next
        )

    async def start(self) -> bool:
        """Open the HTTP client, join, then :meth:`_set_up` (subscribe or register); on failure
        log one ERROR line, undo what was done and return False."""
        self.http = self._open_http()
        try:
            self.session = await self._join()
            await self._set_up(self.session)
        except Exception as exc:
            log.error("%s %s: cannot start: %s", self.kind, self.name, _cause(exc))
            log.debug("%s %s: start failed", self.kind, self.name, exc_info=True)
            await self._close()
            await self._close_http()
            return False
        self._started()
        return True

    async def _set_up(self, session: Session) -> None:
        """What the component does on its session once joined (raises when it cannot)."""
        raise NotImplementedError

    def _started(self) -> None:
        """Once set up: start what runs beside the session, say so in the log."""
        raise NotImplementedError

    async def _join(self) -> Session:
        config = self._base_config
        authid = config.authid or f"component:{self.name}"
        return await asyncio.wait_for(connect_component(self._router, config.realm, config.role, authid, self.name),
                                      JOIN_TIMEOUT)  # fmt: skip

    async def _close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                await session.leave(timeout=LEAVE_TIMEOUT)
            except Exception as exc:
                log.warning("%s %s: leaving failed: %s", self.kind, self.name, _cause(exc))

    async def _close_http(self) -> None:
        http, self.http = self.http, None
        if http is not None:
            await http.close()


# -- http-subscriber --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Delivery:
    topic: str
    url: str
    body: bytes
    #: the URL as log lines show it (without a password)
    shown: str


class HttpSubscriberRunner(_HttpComponentRunner):
    """One http-subscriber: subscriptions feeding a bounded queue, ``max_in_flight`` workers."""

    kind = "http-subscriber"

    def __init__(self, config: HttpSubscriberComponent, router: Router) -> None:
        super().__init__(config, router)
        self.config = config
        self.queue: asyncio.Queue[_Delivery] = asyncio.Queue(config.max_queue)
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._accepted = set(config.expected_code) if config.expected_code is not None else None
        self._content_type = {} if any(h.lower() == "content-type" for h in config.headers) else {
            "Content-Type": "application/json"}  # fmt: skip
        self._limited = RateLimitedLog(log, burst=1, interval=LOG_INTERVAL)
        self._shown = {subscription.url: _shown(URL(subscription.url)) for subscription in config.subscriptions}
        #: events delivered (accepted by the receiver); delivery failed after all attempts; dropped
        #: (the queue was full, or still held them when the node stopped); attempts made again
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.retried = 0

    async def _set_up(self, session: Session) -> None:
        for subscription in self.config.subscriptions:
            match = None if subscription.match == "exact" else subscription.match
            await asyncio.wait_for(
                session.subscribe(subscription.topic, self._handler(subscription.topic, subscription.url),
                                  SubscribeOptions(match=match)),
                JOIN_TIMEOUT,
            )  # fmt: skip

    def _started(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work(), name=f"{self.kind} {self.name} {n}")
                         for n in range(config.max_in_flight)]  # fmt: skip
        log.info("%s %s: forwarding %d subscription(s) on realm %s as %s", self.kind, self.name,
                 len(config.subscriptions), config.realm, config.role or "the trusted role")  # fmt: skip

    def _handler(self, topic: str, url: str) -> Any:
        def on_event(*args: Any, **kwargs: Any) -> None:
            self._enqueue(topic, url, args, kwargs)

        return on_event

    def _enqueue(self, topic: str, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.queue.full():
            self.dropped += 1
            self._limited.warning(f"{self.kind} {self.name}: queue full",
                                  "%s %s: %d events wait already (max_queue): an event on %s was dropped "
                                  "(%d dropped so far)", self.kind, self.name, self.queue.qsize(), topic,
                                  self.dropped)  # fmt: skip
            return
        try:
            body = orjson.dumps({"args": list(args), "kwargs": kwargs}, default=_binary_as_wamp_json)
        except TypeError as exc:  # not from a router (it checks the data model): kept for safety
            self.failed += 1
            log.warning("%s %s: an event on %s cannot be sent as JSON: %s", self.kind, self.name, topic, exc)
            return
        self.queue.put_nowait(_Delivery(topic, url, body, self._shown[url]))

    async def _work(self) -> None:
        while True:
            delivery = await self.queue.get()
            self._in_flight += 1
            try:
                await self._deliver(delivery)
            except Exception:  # a bug here must not end the worker
                self.failed += 1
                log.exception("%s %s: delivery to %s failed", self.kind, self.name, delivery.shown)
            finally:
                self._in_flight -= 1
                self.queue.task_done()

    async def _deliver(self, delivery: _Delivery) -> None:
        config = self.config
        delay = config.retry_delay
        attempt = 0
        while True:
            attempt += 1
            problem, again = await self._attempt(delivery)
            if problem is None:
                self.delivered += 1
                return
            if not again or attempt > config.retries:
                break
            self.retried += 1
            log.debug("%s %s: %s: %s; attempt %d in %.2fs", self.kind, self.name, delivery.shown, problem,
                      attempt + 1, delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.retry_max_delay)
        self.failed += 1
        self._limited.warning(f"{self.kind} {self.name}: delivery failed",
                              "%s %s: an event on %s was not delivered to %s: %s (%d attempt%s; %d failed so far)",
                              self.kind, self.name, delivery.topic, delivery.shown, problem, attempt,
                              "" if attempt == 1 else "s", self.failed)  # fmt: skip

    async def _attempt(self, delivery: _Delivery) -> tuple[str | None, bool]:
        """One request: (None, _) when delivered, else (what went wrong, whether to try again)."""
        assert self.http is not None
        config = self.config
        try:
            async with asyncio.timeout(config.timeout):
                request = self.http.request(config.method, delivery.url, data=delivery.body,
                                            headers=self._content_type, allow_redirects=False)  # fmt: skip
                async with request as response:
                    status = response.status
                    if (200 <= status < 300) if self._accepted is None else (status in self._accepted):
                        return None, False
                    start = await response.content.read(LOGGED_BODY)
        except TimeoutError:
            return f"no response within {config.timeout:g}s", True
        except aiohttp.ClientError as exc:
            return _client_error(exc), True
        shown = start.decode("utf-8", "replace").strip()
        problem = f"HTTP {status} {response.reason or ''}".rstrip() + (f": {shown!r}" if shown else "")
        return problem, status >= 500 or status == 429

    async def stop(self) -> None:
        """Leave (no more events), let the queue drain for up to ``stop_timeout``, close the HTTP client."""
        await self._close()
        if self._workers:
            try:
                await asyncio.wait_for(self.queue.join(), self.config.stop_timeout)
            except TimeoutError:
                left = self.queue.qsize() + self._in_flight
                self.dropped += left
                log.warning("%s %s: %d event(s) not delivered within stop_timeout (%gs): dropped", self.kind,
                            self.name, left, self.config.stop_timeout)  # fmt: skip
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
            log.info("%s %s: stopped (delivered %d, failed %d, dropped %d, retried %d)", self.kind, self.name,
                     self.delivered, self.failed, self.dropped, self.retried)  # fmt: skip
        await self._close_http()


def _shown(url: URL) -> str:
    """``url`` for log lines and error messages: without its user and password, if it has them."""
    return str(url.with_user(None)) if url.user is not None or url.password is not None else str(url)


def _client_error(exc: aiohttp.ClientError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- http-callee ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    method: str
    url: URL
    headers: CIMultiDict[str]
    params: list[tuple[str, str]]
    body: bytes | None


class HttpCalleeRunner(_HttpComponentRunner):
    """One http-callee: a registered procedure, ``max_in_flight`` requests at once, ``max_queue`` waiting."""

    kind = "http-callee"

    def __init__(self, config: HttpCalleeComponent, router: Router) -> None:
        super().__init__(config, router)
        self.config = config
        self.base = URL(config.base_url)
        self._configured_headers = {name.lower() for name in config.headers}
        self._accepted = set(config.expected_code) if config.expected_code is not None else None
        self._slots = asyncio.Semaphore(config.max_in_flight)
        #: calls waiting for a slot; calls accepted and not yet answered (waiting or running)
        self._waiting = 0
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.registration: Registration | None = None
        #: calls answered with a response; with an error (refused arguments and URLs, HTTP failures,
        #: busy); refused as busy
        self.answered = 0
        self.errors = 0
        self.busy = 0

    async def _set_up(self, session: Session) -> None:
        self.registration = await asyncio.wait_for(session.register(self.config.procedure, self._on_call),
                                                   JOIN_TIMEOUT)  # fmt: skip

    def _started(self) -> None:
        config = self.config
        log.info("%s %s: %s calls %s on realm %s as %s", self.kind, self.name, config.procedure, _shown(self.base),
                 config.realm, config.role or "the trusted role")  # fmt: skip

    async def _on_call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            request = self._request_of(args, kwargs)
            if self._slots.locked() and self._waiting >= self.config.max_queue:
                self.busy += 1
                raise ApplicationError(HTTP_BUSY, f"{self.config.max_in_flight} requests run and "
                                       f"{self._waiting} calls wait already: try again later")  # fmt: skip
            self._calls += 1
            self._idle.clear()
            try:
                self._waiting += 1
                try:
                    await self._slots.acquire()
                finally:
                    self._waiting -= 1
                try:
                    result = await self._perform(request)
                finally:
                    self._slots.release()
            finally:
                self._calls -= 1
                if not self._calls:
                    self._idle.set()
        except ApplicationError:
            self.errors += 1
            raise
        self.answered += 1
        return result

    async def _perform(self, request: _Request) -> dict[str, Any]:
        config = self.config
        if self.http is None:  # stopped while the call waited
            raise ApplicationError(HTTP_REQUEST_FAILED, "the node is stopping")
        what = f"{request.method} {_shown(request.url)}"
        try:
            async with asyncio.timeout(config.timeout):
                async with self.http.request(request.method, request.url, params=request.params, data=request.body,
                                             headers=request.headers, allow_redirects=False) as response:  # fmt: skip
                    content = await self._read(response, what)
                    result = {"code": response.status, "headers": _response_headers(response),
                              "content": _text(content, response.charset)}  # fmt: skip
        except TimeoutError:
            raise ApplicationError(HTTP_TIMEOUT, f"{what}: no complete response within {config.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise ApplicationError(HTTP_REQUEST_FAILED, f"{what}: {_client_error(exc)}") from None
        if self._accepted is not None and result["code"] not in self._accepted:
            expected = ", ".join(str(code) for code in sorted(self._accepted))
            raise ApplicationError(HTTP_STATUS, f"{what}: HTTP {result['code']} (expected {expected})", **result)
        return result

    async def _read(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        limit = self.config.max_response_size
        too_large = ApplicationError(HTTP_RESPONSE_TOO_LARGE, f"{what}: the response body is larger than "
                                     f"max_response_size ({limit} bytes)")  # fmt: skip
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    # -- the call's arguments -------------------------------------------------------------------

    def _request_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Request:
        """The request a call asks for (ApplicationError for arguments it cannot have)."""
        if len(args) > len(CALL_ARGUMENTS):
            raise _invalid(f"at most {len(CALL_ARGUMENTS)} positional arguments ({', '.join(CALL_ARGUMENTS)})")
        given = dict(zip(CALL_ARGUMENTS, args, strict=False))
        for key, value in kwargs.items():
            if key not in CALL_ARGUMENTS:
                raise _invalid(f"unknown argument {key!r} (expected {', '.join(CALL_ARGUMENTS)})")
            if key in given:
                raise _invalid(f"{key} given twice (positionally and by name)")
            given[key] = value
        method = given.get("method") or "GET"
        if not isinstance(method, str) or method.upper() not in self.config.methods:
            raise _invalid(f"method: one of {', '.join(self.config.methods)} (got {method!r:.40})")
        url = self._resolve(given.get("url") or "")
        headers = self._call_headers(given.get("headers"))
        params = _params(given.get("params"))
        body = given.get("body")
        data: bytes | None
        if body is None or body == "":
            data = None
        elif isinstance(body, str):
            data = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:  # a JSON value: sent as JSON
            data = orjson.dumps(body, default=_binary_as_wamp_json)
            if "content-type" not in headers:
                headers["Content-Type"] = "application/json"
        return _Request(method.upper(), url, headers, params, data)

    def _resolve(self, relative: Any) -> URL:
        """``relative`` joined to the base URL; refused unless the result is below the base URL."""
        if not isinstance(relative, str):
            raise _invalid(f"url: a URL relative to the base URL (got {type(relative).__name__})")
        if any(c < " " or c in "\\\x7f" for c in relative):
            raise _refused(relative, "control characters and backslashes are not allowed")
        parts = urlsplit(relative)
        if parts.scheme or parts.netloc or relative.startswith("//"):
            raise _refused(relative, "an absolute URL (only URLs relative to the base URL are allowed)")
        # (a segment such as "..;x" is ".." to servers that drop path parameters, Tomcat's say)
        if any(segment.partition(";")[0] in (".", "..") for segment in unquote(parts.path).split("/")):
            raise _refused(relative, "dot segments ('.', '..', encoded or not) are not allowed")
        url = URL(urljoin(self.config.base_url, relative))
        base = self.base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.raw_path.startswith(
            base.raw_path
        ):
            raise _refused(relative, f"not below the base URL {_shown(base)}")
        return url

    def _call_headers(self, headers: Any) -> CIMultiDict[str]:
        result: CIMultiDict[str] = CIMultiDict()
        if headers is None:
            return result
        if not isinstance(headers, dict):
            raise _invalid("headers: an object of header names and values (a value may be a list of values)")
        for name, value in headers.items():
            values = value if isinstance(value, list) else [value]
            if not _is_token(name) or not all(isinstance(v, str) and not any(c in v for c in "\r\n\0")
                                              for v in values):  # fmt: skip
                raise _invalid(f"headers: {name!r:.40}: a header name with text values on one line")
            if name.lower() in FORBIDDEN_HEADERS:
                raise _invalid(f"headers: {name} is set by the callee, not by a call")
            if name.lower() in self._configured_headers:
                continue  # the component's own header (credentials, say) stands
            for text in values:
                result.add(name, text)
        return result

    async def stop(self) -> None:
        """Unregister (no new calls), let the calls in flight finish for up to ``stop_timeout``,
        leave, close the HTTP client (what still runs is answered with an error)."""
        registration, self.registration = self.registration, None
        if registration is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(registration.unregister(), LEAVE_TIMEOUT)
            try:
                await asyncio.wait_for(self._idle.wait(), self.config.stop_timeout)
            except TimeoutError:
                log.warning("%s %s: %d call(s) still running after stop_timeout (%gs): ended", self.kind, self.name,
                            self._calls, self.config.stop_timeout)  # fmt: skip
            log.info("%s %s: stopped (answered %d, errors %d, busy %d)", self.kind, self.name, self.answered,
                     self.errors, self.busy)  # fmt: skip
        await self._close()
        await self._close_http()


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(INVALID_ARGUMENT, message)


def _refused(url: str, why: str) -> ApplicationError:
    return ApplicationError(HTTP_URL_NOT_ALLOWED, f"url {url!r:.200}: {why}")


_TOKEN_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and all(c in _TOKEN_CHARACTERS for c in name)


def _params(params: Any) -> list[tuple[str, str]]:
    """A call's ``params`` ({name: value or [values]}) as query pairs (values: text, numbers, true/false)."""
    if params is None:
        return []
    if not isinstance(params, dict):
        raise _invalid("params: an object of query parameter names and values (a value may be a list)")
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                pairs.append((name, "true" if item else "false"))
            elif isinstance(item, (str, int, float)):
                pairs.append((name, str(item)))
            else:
                raise _invalid(f"params: {name!r:.40}: text, numbers or true/false (or a list of them)")
    return pairs


def _response_headers(response: aiohttp.ClientResponse) -> dict[str, list[str]]:
    """The response's headers as Crossbar's RESTCallee gives them: each name with a list of values."""
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        headers.setdefault(name, []).append(value)
    return headers


def _text(content: bytes, charset: str | None) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = "utf-8"
    return content.decode(charset or "utf-8", "replace")


HttpComponentRunner = HttpSubscriberRunner | HttpCalleeRunner


def http_runner(config: HttpSubscriberComponent | HttpCalleeComponent, router: Router) -> HttpComponentRunner:
    """The runner of an http-subscriber or http-callee component."""
    if isinstance(config, HttpSubscriberComponent):
        return HttpSubscriberRunner(config, router)
    return HttpCalleeRunner(config, router)

__all__ = [
    "HTTP_BUSY", "HTTP_REQUEST_FAILED", "HTTP_RESPONSE_TOO_LARGE", "HTTP_STATUS", "HTTP_TIMEOUT",
    "HTTP_URL_NOT_ALLOWED", "HttpCalleeRunner", "HttpComponentRunner", "HttpSubscriberRunner", "http_runner",
]  # fmt: skip
