"""The asyncio WAMP client session: call, register, publish, subscribe, with automatic reconnection.

A :class:`Session` is the user's stable handle: it survives reconnections (registrations and
subscriptions are made again on every new connection), while each connection's protocol state
lives in a :class:`~cloverleaf.wamp.client.ClientSessionCore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..wamp import errors
from ..wamp.client import ClientSessionCore
from ..wamp.errors import ApplicationError, ProtocolError
from ..wamp.messages import (
    Abort,
    Authenticate,
    Call,
    Cancel,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Interrupt,
    Invocation,
    Message,
    Publish,
    Published,
    Register,
    Registered,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
)
from ..wamp.messages import (
    Result as ResultMessage,
)
from ..wamp.serializers import SERIALIZERS, Serializer
from ..wamp.session import Phase
from .auth import ClientAuthenticator
from .transports import ClientLink, LinkOpener, open_link
from .types import (
    CallDetails,
    CallOptions,
    EventDetails,
    NotConnected,
    Publication,
    PublishOptions,
    ReconnectPolicy,
    RegisterOptions,
    Result,
    SessionClosed,
    SubscribeOptions,
    TransportLost,
)

log = logging.getLogger("cloverleaf.client")

#: the roles and features this client implements, announced in HELLO
CLIENT_ROLES: dict[str, Any] = {
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True, "call_timeout": True,
                            "caller_identification": True}},
    "callee": {"features": {"progressive_call_results": True, "call_canceling": True, "caller_identification": True,
                            "pattern_based_registration": True, "shared_registration": True}},
    "publisher": {"features": {"publisher_exclusion": True, "publisher_identification": True,
                               "subscriber_blackwhite_listing": True}},
    "subscriber": {"features": {"pattern_based_subscription": True, "publisher_identification": True}},
}  # fmt: skip

Handler = Callable[..., Any]
JoinCallback = Callable[["Session"], Awaitable[None] | None]


def _wants_details(handler: Handler) -> bool:
    try:
        parameters = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False
    return "details" in parameters


@dataclass(eq=False)
class Registration:
    """A procedure registered through a session; it is registered again after every reconnect."""

    session: Session
    procedure: str
    handler: Handler
    options: RegisterOptions
    #: the router's registration ID on the current connection (0 while not registered)
    id: int = 0
    wants_details: bool = False
    active: bool = True

    async def unregister(self) -> None:
        await self.session._unregister(self)


@dataclass(eq=False)
class Subscription:
    """A handler subscribed through a session; it is subscribed again after every reconnect."""

    session: Session
    topic: str
    handler: Handler
    options: SubscribeOptions
    id: int = 0
    wants_details: bool = False
    active: bool = True

    async def unsubscribe(self) -> None:
        await self.session._unsubscribe(self)


@dataclass(eq=False)
class _PendingCall:
    future: asyncio.Future[Result]
    on_progress: Callable[[Result], Any] | None = None
    progress_queue: asyncio.Queue[Result | BaseException] | None = None


@dataclass(eq=False)
class _Connection:
    """One transport connection and its protocol state."""

    link: ClientLink
    core: ClientSessionCore
    session_id: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: request ID -> future of a REGISTER/UNREGISTER/SUBSCRIBE/UNSUBSCRIBE/PUBLISH in flight
    requests: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    #: INVOCATION request ID -> task running the handler
    invocations: dict[int, asyncio.Task[Any]] = field(default_factory=dict)
    registrations: dict[int, Registration] = field(default_factory=dict)
    subscriptions: dict[int, list[Subscription]] = field(default_factory=dict)
    #: REGISTER / SUBSCRIBE request ID -> what it registers or subscribes, mapped as soon as the
    #: answer arrives (an INVOCATION or EVENT may follow in the same read)
    registering: dict[int, Registration] = field(default_factory=dict)
    subscribing: dict[int, Subscription] = field(default_factory=dict)
    joined: asyncio.Future[None] | None = None
    left: asyncio.Future[str] | None = None


class Session:
    """A WAMP session to one router and realm. Create it with :func:`connect`.

    Requests made while the connection is down wait for the next connection (up to
    ``reconnect.wait_for_connection`` seconds) or fail with :class:`NotConnected`.
    """

    def __init__(
        self,
        url: str,
        realm: str,
        *,
        serializer: str | Serializer = "json",
        authenticators: Sequence[ClientAuthenticator] = (),
        authid: str | None = None,
        authrole: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        opener: LinkOpener | None = None,
    ) -> None:
        self.url = url
        self.realm = realm
        self.serializer = SERIALIZERS[serializer] if isinstance(serializer, str) else serializer
        self.authenticators = list(authenticators)
        self.authid = authid
        self.authrole = authrole
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        #: opens each connection instead of ``url`` (which then only names it in log lines)
        self.opener = opener
        self._connection: _Connection | None = None
        self._connected = asyncio.Event()
        self._registrations: list[Registration] = []
        self._subscriptions: list[Subscription] = []
        self._on_join: list[JoinCallback] = []
        self._on_leave: list[Callable[[Session, str], Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._reconnector: asyncio.Task[None] | None = None
        self._closing = False
        self._rng = random.Random()
        #: why the last connection ended (a close reason URI or a transport error)
        self.last_close_reason: str | None = None
        #: set once the session is over for good: left, lost without reconnection, or given up
        self._over = asyncio.Event()

    # -- state --------------------------------------------------------------------------------

    @property
    def session_id(self) -> int:
        """The router-assigned session ID of the current connection (0 when disconnected)."""
        return self._connection.session_id if self._connection else 0

    @property
    def details(self) -> dict[str, Any]:
        """WELCOME.Details of the current connection (authid, authrole, roles, ...)."""
        return self._connection.details if self._connection else {}

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_join(self, callback: JoinCallback) -> JoinCallback:
        """Run ``callback(session)`` after every join (the first and each reconnect)."""
        self._on_join.append(callback)
        return callback

    def on_leave(self, callback: Callable[[Session, str], Any]) -> Callable[[Session, str], Any]:
        """Run ``callback(session, reason)`` whenever a connection's session ends."""
        self._on_leave.append(callback)
        return callback

    # -- connecting ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and join once; raise ``ConnectionError`` or :class:`ApplicationError` (ABORT)."""
        self._closing = False
        self._over.clear()
        await self._connect_once()

    async def wait_closed(self) -> str | None:
        """Wait until the session is over for good: :meth:`leave`, a lost connection without
        reconnection, or reconnection given up (``max_attempts``); return the last close reason."""
        await self._over.wait()
        return self.last_close_reason

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        core = ClientSessionCore(self.serializer)
        holder: list[_Connection] = []

        def on_message(payload: bytes) -> None:
            self._on_payload(holder[0], payload)

        def on_lost(exc: BaseException | None) -> None:
            self._on_lost(holder[0], exc)

        if self.opener is not None:
            try:
                link = await asyncio.wait_for(self.opener(self.serializer, on_message, on_lost), self.connect_timeout)
            except TimeoutError:
                raise ConnectionError(f"cannot connect to {self.url}: timed out") from None
        else:
            link = await open_link(self.url, self.serializer, on_message, on_lost, ssl_context=self.ssl_context,
                                   timeout=self.connect_timeout)  # fmt: skip
        connection = _Connection(link, core, joined=loop.create_future())
        holder.append(connection)
        details: dict[str, Any] = {"roles": CLIENT_ROLES}
        if self.authenticators:
            details["authmethods"] = [a.method for a in self.authenticators]
            authid = self.authid or next((a.authid for a in self.authenticators if a.authid), None)
            if authid:
                details["authid"] = authid
            authextra: dict[str, Any] = {}
            for authenticator in self.authenticators:
                authextra.update(authenticator.authextra())
            if authextra:
                details["authextra"] = authextra
        elif self.authid:
            details["authid"] = self.authid
        if self.authrole:
            details["authrole"] = self.authrole
        link.send(core.encode(Hello(self.realm, details)))
        core.hello_sent()
        assert connection.joined is not None
        try:
            await asyncio.wait_for(asyncio.shield(connection.joined), self.connect_timeout)
        except BaseException:
            link.close()
            raise
        self._connection = connection
        log.info("joined realm %s as session %d (%s)", self.realm, connection.session_id, self.url)
        # Requests waiting for the connection go out only after everything is registered and
        # subscribed again: a held call must find its procedure.
        await self._restore(connection)
        if self._connection is not connection:
            return  # lost again while restoring
        self._connected.set()
        for callback in list(self._on_join):
            # A failing callback must not look like a failed connection attempt: the reconnect
            # loop would open another connection and leave this one joined.
            try:
                result = callback(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_join callback %r failed", callback)

    async def _restore(self, connection: _Connection) -> None:
        """Register and subscribe again everything this session held before a reconnect."""
        for registration in list(self._registrations):
            try:
                await self._send_register(connection, registration)
            except Exception as exc:
                log.warning("could not register %s again after reconnecting: %s", registration.procedure, exc)
        for subscription in list(self._subscriptions):
            try:
                await self._send_subscribe(connection, subscription)
            except Exception as exc:
                log.warning("could not subscribe to %s again after reconnecting: %s", subscription.topic, exc)

    def _on_lost(self, connection: _Connection, exc: BaseException | None) -> None:
        reason = self.last_close_reason or (f"transport lost: {exc}" if exc else "transport lost")
        if connection.joined is not None and not connection.joined.done():
            connection.joined.set_exception(ConnectionError(f"connection lost while joining: {reason}"))
        if connection.left is not None and not connection.left.done():
            connection.left.set_result(reason)
        self._fail_pending(connection, TransportLost(f"connection to {self.url} lost with the request in flight"))
        if self._connection is not connection:
            return
        self._connection = None
        self._connected.clear()
        log.info("session %d ended: %s", connection.session_id, reason)
        for callback in list(self._on_leave):
            self._run_callback(callback, self, reason)
        if not self._closing and self.reconnect.enabled:
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect_loop())
        else:
            self._over.set()

    def _fail_pending(self, connection: _Connection, exc: BaseException) -> None:
        for future in connection.requests.values():
            if not future.done():
                future.set_exception(exc)
        connection.requests.clear()
        for pending in connection.calls.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
            if pending.progress_queue is not None:
                pending.progress_queue.put_nowait(exc)
        connection.calls.clear()
        for task in connection.invocations.values():
            task.cancel()
        connection.invocations.clear()

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while not self._closing:
            attempt += 1
            if self.reconnect.max_attempts is not None and attempt > self.reconnect.max_attempts:
                log.warning("giving up reconnecting to %s after %d attempts", self.url, attempt - 1)
                self._over.set()
                return
            await asyncio.sleep(self.reconnect.delay(attempt, self._rng))
            if self._closing:
                return
            try:
                await self._connect_once()
                return
            except (TimeoutError, ConnectionError, ApplicationError) as exc:
                log.info("reconnecting to %s failed (attempt %d): %s", self.url, attempt, exc)

    async def _ready(self) -> _Connection:
        connection = self._connection
        if connection is not None and self._connected.is_set():
            return connection
        if self._closing:
            raise SessionClosed("the session has left")
        if self._over.is_set():
            raise NotConnected(f"not connected to {self.url}, and reconnecting has ended")
        wait = self.reconnect.wait_for_connection
        if connection is not None:  # joined, registering and subscribing again: a moment
            wait = max(wait or 0.0, self.connect_timeout)
        elif not wait or not self.reconnect.enabled:
            raise NotConnected(f"not connected to {self.url}")
        try:
            await asyncio.wait_for(self._connected.wait(), wait)
        except TimeoutError:
            raise NotConnected(f"not connected to {self.url} after waiting {wait}s") from None
        if self._connection is None:
            raise NotConnected(f"not connected to {self.url}")
        return self._connection

    async def leave(self, reason: str = errors.CLOSE_NORMAL, timeout: float = 5.0) -> None:
        """Say GOODBYE, wait for the router's reply (bounded), close; no reconnection after it."""
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        connection = self._connection
        if connection is None:
            self._over.set()
            return
        connection.left = asyncio.get_running_loop().create_future()
        connection.link.send(connection.core.encode(Goodbye({}, reason)))
        connection.core.goodbye_sent()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(connection.left), timeout)
        connection.link.close()
        self._on_lost(connection, None)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.leave()

    # -- receiving ----------------------------------------------------------------------------

    def _on_payload(self, connection: _Connection, payload: bytes) -> None:
        try:
            message = connection.core.receive(payload)
        except ProtocolError as exc:
            self._protocol_violation(connection, exc.message)
            return
        if message is None:
            return
        try:
            self._dispatch(connection, message)
        except ProtocolError as exc:
            self._protocol_violation(connection, exc.message)

    def _protocol_violation(self, connection: _Connection, text: str) -> None:
        log.warning("protocol violation by the router: %s", text)
        self.last_close_reason = errors.PROTOCOL_VIOLATION
        with contextlib.suppress(Exception):
            connection.link.send(connection.core.encode(Abort({"message": text}, errors.PROTOCOL_VIOLATION)))
        connection.link.close()

    def _dispatch(self, connection: _Connection, message: Message) -> None:
        if isinstance(message, ResultMessage):
            self._on_result(connection, message)
        elif isinstance(message, Event):
            self._on_event(connection, message)
        elif isinstance(message, Invocation):
            self._on_invocation(connection, message)
        elif isinstance(message, Error):
            self._on_error(connection, message)
        elif isinstance(message, Registered):
            registration = connection.registering.pop(message.request, None)
            if registration is not None:
                registration.id = message.registration
                registration.active = True
                connection.registrations[message.registration] = registration
            self._resolve(connection, message.request, message)
        elif isinstance(message, Subscribed):
            subscription = connection.subscribing.pop(message.request, None)
            if subscription is not None:
                subscription.id = message.subscription
                subscription.active = True
                connection.subscriptions.setdefault(message.subscription, []).append(subscription)
            self._resolve(connection, message.request, message)
        elif isinstance(message, Published):
            self._resolve(connection, message.request, message)
        elif isinstance(message, (Unregistered, Unsubscribed)):
            if message.request == 0:
                self._on_revocation(connection, message)
            else:
                self._resolve(connection, message.request, message)
        elif isinstance(message, Interrupt):
            task = connection.invocations.get(message.request)
            if task is not None:
                task.cancel(msg=str(message.options.get("mode", "killnowait")))
        elif isinstance(message, Welcome):
            if not self._welcome_accepted(connection, message):
                return
            connection.session_id = message.session
            connection.details = message.details
            self.last_close_reason = None
            if connection.joined is not None and not connection.joined.done():
                connection.joined.set_result(None)
        elif isinstance(message, Challenge):
            self._on_challenge(connection, message)
        elif isinstance(message, Goodbye):
            self.last_close_reason = message.reason
            if connection.left is None:  # the router closes: acknowledge, then the link ends
                connection.link.send(connection.core.encode(Goodbye({}, errors.CLOSE_GOODBYE_AND_OUT)))
            connection.link.close()
        elif isinstance(message, Abort):
            self.last_close_reason = message.reason
            if connection.joined is not None and not connection.joined.done():
                text = message.details.get("message")
                connection.joined.set_exception(ApplicationError(message.reason, *([text] if text else [])))
            connection.link.close()

    def _resolve(self, connection: _Connection, request: int, message: Message) -> None:
        future = connection.requests.pop(request, None)
        if future is None:
            raise ProtocolError(f"{message.NAME} answers request {request}, which is not pending")
        if not future.done():
            future.set_result(message)

    def _on_challenge(self, connection: _Connection, challenge: Challenge) -> None:
        authenticator = next((a for a in self.authenticators if a.method == challenge.method), None)
        if authenticator is None:
            raise ProtocolError(f"CHALLENGE for method {challenge.method!r}, which this client did not offer")
        try:
            signature, extra = authenticator.on_challenge(challenge.extra)
        except Exception as exc:
            self._abort_authentication(connection, f"{challenge.method} CHALLENGE refused: {exc}")
            return
        connection.link.send(connection.core.encode(Authenticate(signature, extra)))

    def _welcome_accepted(self, connection: _Connection, welcome: Welcome) -> bool:
        """Mutual authentication: the authenticator of the WELCOME's authmethod, if it has
        ``on_welcome``, must accept WELCOME.Details (e.g. WAMP-SCRAM's server signature)."""
        method = welcome.details.get("authmethod")
        authenticator = next((a for a in self.authenticators if a.method == method), None)
        on_welcome = getattr(authenticator, "on_welcome", None)
        if on_welcome is None:
            return True
        try:
            accepted = bool(on_welcome(welcome.details))
        except Exception as exc:
            log.warning("%s on_welcome failed: %r", method, exc)
            accepted = False
        if not accepted:
            self._abort_authentication(connection, f"the router failed {method} authentication (WELCOME refused)")
        return accepted

    def _abort_authentication(self, connection: _Connection, text: str) -> None:
        log.warning("authentication aborted: %s", text)
        self.last_close_reason = errors.AUTHENTICATION_FAILED
        with contextlib.suppress(Exception):
            connection.link.send(connection.core.encode(Abort({"message": text}, errors.AUTHENTICATION_FAILED)))
        if connection.joined is not None and not connection.joined.done():
            connection.joined.set_exception(ApplicationError(errors.AUTHENTICATION_FAILED, text))
        connection.link.close()

    def _on_error(self, connection: _Connection, message: Error) -> None:
        exc = ApplicationError(message.error, *(message.args or ()), **(message.kwargs or {}))
        if message.request_type == Call.MESSAGE_TYPE:
            pending = connection.calls.pop(message.request, None)
            if pending is None:
                return  # a canceled call's late answer
            if not pending.future.done():
                pending.future.set_exception(exc)
            if pending.progress_queue is not None:
                pending.progress_queue.put_nowait(exc)
            return
        future = connection.requests.pop(message.request, None)
        if future is None:
            raise ProtocolError(f"ERROR answers request {message.request}, which is not pending")
        if not future.done():
            future.set_exception(exc)

    def _on_result(self, connection: _Connection, message: ResultMessage) -> None:
        result = Result(message.args or [], message.kwargs or {}, message.details)
        if result.progress:
            pending = connection.calls.get(message.request)
            if pending is None:
                return
            if pending.on_progress is not None:
                self._run_callback(pending.on_progress, result)
            if pending.progress_queue is not None:
                pending.progress_queue.put_nowait(result)
            return
        pending = connection.calls.pop(message.request, None)
        if pending is None:
            return  # a canceled call's late answer
        if not pending.future.done():
            pending.future.set_result(result)
        if pending.progress_queue is not None:
            pending.progress_queue.put_nowait(result)

    def _on_revocation(self, connection: _Connection, message: Unregistered | Unsubscribed) -> None:
        details = message.details or {}
        if isinstance(message, Unregistered):
            registration = connection.registrations.pop(int(details.get("registration", 0)), None)
            if registration is not None:
                registration.active = False
                with contextlib.suppress(ValueError):
                    self._registrations.remove(registration)
        else:
            for subscription in connection.subscriptions.pop(int(details.get("subscription", 0)), []):
                subscription.active = False
                with contextlib.suppress(ValueError):
                    self._subscriptions.remove(subscription)

    def _on_event(self, connection: _Connection, message: Event) -> None:
        subscriptions = connection.subscriptions.get(message.subscription)
        if not subscriptions:
            return  # unsubscribed meanwhile
        args = message.args or ()
        kwargs = message.kwargs or {}
        for subscription in subscriptions:
            if subscription.wants_details:
                details = message.details
                event_details = EventDetails(
                    message.subscription, message.publication, details.get("topic", subscription.topic),
                    details.get("publisher"), details.get("publisher_authid"), details.get("publisher_authrole"),
                    details.get("retained") is True,
                )  # fmt: skip
                self._run_callback(subscription.handler, *args, details=event_details, **kwargs)
            else:
                self._run_callback(subscription.handler, *args, **kwargs)

    def _run_callback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call a user handler; run it as a task if it is a coroutine; log what it raises."""
        try:
            result = callback(*args, **kwargs)
        except Exception:
            log.exception("handler %r raised", callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._background.add(task)
            task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("handler failed", exc_info=task.exception())

    # -- invocations (callee side) -----------------------------------------------------------------

    def _on_invocation(self, connection: _Connection, message: Invocation) -> None:
        registration = connection.registrations.get(message.registration)
        if registration is None:
            self._send_invocation_error(connection, message.request, errors.NO_SUCH_REGISTRATION, [])
            return
        details = message.details
        receive_progress = details.get("receive_progress") is True
        args = message.args or ()
        kwargs = dict(message.kwargs or {})
        if registration.wants_details:
            progress = None
            if receive_progress:

                def progress(*p_args: Any, **p_kwargs: Any) -> None:
                    connection.link.send(
                        connection.core.encode(Yield(message.request, {"progress": True}, list(p_args), p_kwargs))
                    )

            kwargs["details"] = CallDetails(
                message.registration, details.get("procedure", registration.procedure), details.get("caller"),
                details.get("caller_authid"), details.get("caller_authrole"), progress,
            )  # fmt: skip
        handler = registration.handler
        if inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler):
            task = asyncio.get_running_loop().create_task(
                self._run_invocation(connection, message.request, handler, args, kwargs, receive_progress)
            )
            connection.invocations[message.request] = task
            task.add_done_callback(lambda _t: connection.invocations.pop(message.request, None))
            return
        # A plain function runs inline: no task, no extra loop pass.
        try:
            value = handler(*args, **kwargs)
        except Exception as exc:
            self._send_exception(connection, message.request, exc)
            return
        if inspect.isawaitable(value):  # e.g. a function returning a coroutine
            task = asyncio.get_running_loop().create_task(self._finish_awaitable(connection, message.request, value))
            connection.invocations[message.request] = task
            task.add_done_callback(lambda _t: connection.invocations.pop(message.request, None))
            return
        try:
            self._send_yield(connection, message.request, value)
        except Exception as exc:  # the result cannot be encoded or is too big: answer with an error
            self._send_exception(connection, message.request, exc)

    async def _finish_awaitable(self, connection: _Connection, request: int, awaitable: Awaitable[Any]) -> None:
        try:
            value = await awaitable
        except asyncio.CancelledError:
            self._send_invocation_error(connection, request, errors.CANCELED, ["the call was canceled"])
            raise
        except Exception as exc:
            self._send_exception(connection, request, exc)
            return
        self._send_yield(connection, request, value)

    async def _run_invocation(
        self,
        connection: _Connection,
        request: int,
        handler: Handler,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        receive_progress: bool,
    ) -> None:
        try:
            if inspect.isasyncgenfunction(handler):
                # Each yielded value is a progressive result when the caller asked for them;
                # otherwise only the last one is sent, as the final result.
                last: Any = None
                async for item in handler(*args, **kwargs):
                    if receive_progress:
                        self._send_yield(connection, request, item, progress=True)
                    last = item
                self._send_yield(connection, request, None if receive_progress else last)
            else:
                self._send_yield(connection, request, await handler(*args, **kwargs))
        except asyncio.CancelledError:
            self._send_invocation_error(connection, request, errors.CANCELED, ["the call was canceled"])
            raise
        except Exception as exc:
            self._send_exception(connection, request, exc)

    def _send_yield(self, connection: _Connection, request: int, value: Any, progress: bool = False) -> None:
        if connection.link.closed:
            return
        options = {"progress": True} if progress else {}
        if isinstance(value, Result):
            message = Yield(request, options, value.args, value.kwargs)
        elif value is None:
            message = Yield(request, options)
        else:
            message = Yield(request, options, [value])
        connection.link.send(connection.core.encode(message))

    def _send_exception(self, connection: _Connection, request: int, exc: Exception) -> None:
        if isinstance(exc, ApplicationError):
            self._send_invocation_error(connection, request, exc.error, list(exc.args), exc.kwargs)
        else:
            log.warning("procedure raised %s: %s", type(exc).__name__, exc)
            self._send_invocation_error(connection, request, "wamp.error.runtime_error", [str(exc)])

    def _send_invocation_error(
        self, connection: _Connection, request: int, error: str, args: list[Any], kwargs: dict[str, Any] | None = None
    ) -> None:
        if connection.link.closed:
            return
        message = Error(Invocation.MESSAGE_TYPE, request, {}, error, args or None, kwargs or None)
        try:
            connection.link.send(connection.core.encode(message))
        except Exception as exc:  # the error's payload cannot be encoded or is too big: send it without
            log.warning("cannot send the payload of error %s: %s", error, exc)
            message = Error(Invocation.MESSAGE_TYPE, request, {}, error, [f"the error's payload cannot be sent: {exc}"])
            connection.link.send(connection.core.encode(message))

    # -- calling ------------------------------------------------------------------------------

    async def call(self, procedure: str, *args: Any, options: CallOptions | None = None, **kwargs: Any) -> Any:
        """Call a procedure and return its result.

        Returns None when the result carries no payload, the value itself for exactly one
        positional result, and a :class:`Result` otherwise. Raises :class:`ApplicationError` with
        the error URI, args and kwargs on an ERROR, and ``wamp.error.timeout`` when
        ``options.timeout`` passes. Canceling the awaiting task cancels the call at the router with
        ``options.cancel_mode``.
        """
        result = await self.call_result(procedure, *args, options=options, **kwargs)
        return result.simplified()

    async def call_result(
        self, procedure: str, *args: Any, options: CallOptions | None = None, **kwargs: Any
    ) -> Result:
        """Like :meth:`call`, but always return the whole :class:`Result`."""
        options = options or CallOptions()
        connection = await self._ready()
        request, pending = self._send_call(connection, procedure, args, kwargs, options, None)
        try:
            if options.timeout is None:
                return await pending.future
            try:
                return await asyncio.wait_for(asyncio.shield(pending.future), self._local_timeout(options.timeout))
            except TimeoutError:
                self._cancel_call(connection, request, options.cancel_mode)
                raise ApplicationError(errors.TIMEOUT, f"no result within {options.timeout}s") from None
        except asyncio.CancelledError:
            self._cancel_call(connection, request, options.cancel_mode)
            raise

    async def call_progressive(
        self, procedure: str, *args: Any, options: CallOptions | None = None, **kwargs: Any
    ) -> AsyncIterator[Result]:
        """Call with progressive results: yield each progressive :class:`Result`, then the final one.

        Leaving the loop early cancels the call.
        """
        options = options or CallOptions()
        connection = await self._ready()
        queue: asyncio.Queue[Result | BaseException] = asyncio.Queue()
        request, pending = self._send_call(connection, procedure, args, kwargs, options, queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._local_timeout(options.timeout) if options.timeout is not None else None
        finished = False
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    raise ApplicationError(errors.TIMEOUT, f"no result within {options.timeout}s") from None
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
                if not item.progress:
                    finished = True
                    return
        finally:
            if not finished:
                self._cancel_call(connection, request, options.cancel_mode)
            pending.future.cancel()

    def _local_timeout(self, timeout: float) -> float:
        """When the router enforces call timeouts (feature call_timeout) its ERROR decides, and the
        local timer is only a safety net; otherwise the client enforces the timeout itself."""
        features = self.details.get("roles", {}).get("dealer", {}).get("features", {})
        return timeout + 1.0 if features.get("call_timeout") is True else timeout

    def _send_request(self, connection: _Connection, request: int, message: Message) -> None:
        """Encode and send a request. If its payload cannot be encoded or is too big for the router,
        give its ID back and forget it before raising: the router requires request IDs 1, 2, 3, ...
        and would ABORT the session at the next request after a gap."""
        try:
            connection.link.send(connection.core.encode(message))
        except BaseException:
            connection.core.request_ids.give_back(request)
            connection.calls.pop(request, None)
            connection.requests.pop(request, None)
            connection.registering.pop(request, None)
            connection.subscribing.pop(request, None)
            raise

    async def _request(self, connection: _Connection, build: Callable[[int], Message]) -> Any:
        """Send the request ``build(request_id)`` and wait for its answer (or its ERROR)."""
        request = connection.core.next_request()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        connection.requests[request] = future
        self._send_request(connection, request, build(request))
        try:
            return await future
        finally:  # answered, refused or lost: nothing stays mapped to this request
            connection.registering.pop(request, None)
            connection.subscribing.pop(request, None)

    def _send_call(
        self,
        connection: _Connection,
        procedure: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: CallOptions,
        queue: asyncio.Queue[Result | BaseException] | None,
    ) -> tuple[int, _PendingCall]:
        request = connection.core.next_request()
        pending = _PendingCall(asyncio.get_running_loop().create_future(), options.on_progress, queue)
        connection.calls[request] = pending
        message = Call(request, options.to_wamp(receive_progress=queue is not None), procedure,
                       list(args) if args else None, kwargs or None)  # fmt: skip
        self._send_request(connection, request, message)
        return request, pending

    def _cancel_call(self, connection: _Connection, request: int, mode: str) -> None:
        pending = connection.calls.pop(request, None)
        if pending is None or connection.link.closed:
            return
        if not pending.future.done():
            pending.future.cancel()
        connection.link.send(connection.core.encode(Cancel(request, {"mode": mode})))

    # -- registering --------------------------------------------------------------------------

    async def register(self, procedure: str, handler: Handler, options: RegisterOptions | None = None) -> Registration:
        """Register ``handler`` (plain function, coroutine function or async generator) for ``procedure``.

        Its positional and keyword arguments are the call's; a parameter named ``details`` receives
        :class:`CallDetails`. Raising :class:`ApplicationError` answers with that error; returning
        a :class:`Result` answers with several args and kwargs.
        """
        registration = Registration(self, procedure, handler, options or RegisterOptions(),
                                    wants_details=_wants_details(handler))  # fmt: skip
        connection = await self._ready()
        await self._send_register(connection, registration)
        self._registrations.append(registration)
        return registration

    async def _send_register(self, connection: _Connection, registration: Registration) -> None:
        def register(request: int) -> Register:
            # mapped as soon as REGISTERED arrives: an INVOCATION may follow in the same read
            connection.registering[request] = registration
            return Register(request, registration.options.to_wamp(), registration.procedure)

        await self._request(connection, register)

    async def _unregister(self, registration: Registration) -> None:
        if not registration.active:
            return
        registration.active = False
        with contextlib.suppress(ValueError):
            self._registrations.remove(registration)
        connection = self._connection
        if connection is None or connection.registrations.pop(registration.id, None) is None:
            return
        await self._request(connection, lambda request: Unregister(request, registration.id))

    # -- publishing and subscribing -----------------------------------------------------------

    async def publish(
        self, topic: str, *args: Any, options: PublishOptions | None = None, **kwargs: Any
    ) -> Publication | None:
        """Publish an event. With ``PublishOptions(acknowledge=True)`` wait for the router and
        return the :class:`Publication` (or raise its ERROR); otherwise return None once sent."""
        options = options or PublishOptions()
        connection = await self._ready()
        request = connection.core.next_request()
        future: asyncio.Future[Published] | None = None
        if options.acknowledge:
            future = asyncio.get_running_loop().create_future()
            connection.requests[request] = future
        message = Publish(request, options.to_wamp(), topic, list(args) if args else None, kwargs or None)
        self._send_request(connection, request, message)
        if future is None:
            return None
        published = await future
        return Publication(published.publication)

    async def subscribe(self, topic: str, handler: Handler, options: SubscribeOptions | None = None) -> Subscription:
        """Subscribe ``handler`` (plain or coroutine function) to ``topic``; it receives the
        event's args and kwargs, and :class:`EventDetails` in a parameter named ``details``."""
        subscription = Subscription(self, topic, handler, options or SubscribeOptions(),
                                    wants_details=_wants_details(handler))  # fmt: skip
        connection = await self._ready()
        await self._send_subscribe(connection, subscription)
        self._subscriptions.append(subscription)
        return subscription

    async def _send_subscribe(self, connection: _Connection, subscription: Subscription) -> None:
        def subscribe(request: int) -> Subscribe:
            # mapped as soon as SUBSCRIBED arrives: an EVENT may follow in the same read
            connection.subscribing[request] = subscription
            return Subscribe(request, subscription.options.to_wamp(), subscription.topic)

        await self._request(connection, subscribe)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        if not subscription.active:
            return
        subscription.active = False
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)
        connection = self._connection
        if connection is None:
            return
        handlers = connection.subscriptions.get(subscription.id, [])
        with contextlib.suppress(ValueError):
            handlers.remove(subscription)
        if handlers:
            return  # other handlers still use the router-side subscription
        connection.subscriptions.pop(subscription.id, None)
        await self._request(connection, lambda request: Unsubscribe(request, subscription.id))

    @property
    def phase(self) -> Phase | None:
        return self._connection.core.phase if self._connection else None


async def connect(
    url: str,
    realm: str,
    *,
    serializer: str | Serializer = "json",
    authenticators: Sequence[ClientAuthenticator] = (),
    authid: str | None = None,
    authrole: str | None = None,
    reconnect: ReconnectPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    opener: LinkOpener | None = None,
) -> Session:
    """Connect to a router, join ``realm`` and return the :class:`Session`.

    ``url`` is ``ws://``, ``wss://``, ``rs://``, ``rss://`` or ``unix:///path``. The first connection
    must succeed (``ConnectionError``; an ABORT raises :class:`ApplicationError` with its reason);
    later losses are repaired by ``reconnect`` (on by default; pass ``NO_RECONNECT`` to disable).
    Use ``async with await connect(...) as session:`` to leave cleanly at the end.

    ``opener`` (a :data:`~cloverleaf.client.transports.LinkOpener`) opens every connection instead
    of ``url``, which then only names the connection in log lines: that is how the node runs an
    App in its own process, over an in-memory link.
    """
    session = Session(
        url, realm, serializer=serializer, authenticators=authenticators, authid=authid, authrole=authrole,
        reconnect=reconnect, ssl_context=ssl_context, connect_timeout=connect_timeout, opener=opener,
    )  # fmt: skip
    await session.start()
    return session
