"""The router's own sessions: how dynamic authenticators and authorizers call WAMP procedures.

A :class:`ServiceSession` is a real router session on an in-memory link (no socket): it joins a
realm under the trusted internal role, calls procedures like any caller, and is answered through
the same dealer, so a dynamic authenticator is simply a procedure some component registered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..wamp.errors import ApplicationError
from ..wamp.messages import Call, Cancel, Error, Goodbye, Hello, Message, Publish, Published, Result, parse_message
from ..wamp.serializers import MSGPACK, Serializer
from .auth import Accept, HelloInfo, Identity, MaybeAwaitable, Reject
from .realm import TRUSTED_ROLE
from .session import SessionOptions

if TYPE_CHECKING:
    from .router import Router
    from .session import RouterSession


class TrustedAuthenticator:
    """Admits the router's own service sessions and the node's embedded components (only ever
    offered on in-memory links)."""

    method = "cloverleaf-internal"

    def __init__(self, authid: str = "cloverleaf") -> None:
        self.authid = authid

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        return Accept(Identity(self.authid, TRUSTED_ROLE, self.method, "router"))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return Reject()


class FixedRoleAuthenticator:
    """Admits a service session under a configured authid and role (the HTTP bridge's identity, an
    embedded component's); unlike the trusted role, it passes authorization like any client.

    ``method`` is the authentication method it answers to: a class component on its private
    socket offers none, which HELLO reads as "anonymous"."""

    def __init__(self, authid: str, role: str, method: str = "cloverleaf-service") -> None:
        self.authid = authid
        self.role = role
        self.method = method

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        return Accept(Identity(self.authid, self.role, self.method, "router"))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return Reject()


class InternalLink:
    """A TransportLink in memory: what the router sends is decoded and handed to the service session."""

    kind = "internal"
    peer = "internal"
    peer_max_message_size = 0

    def __init__(self, service: ServiceSession) -> None:
        self.serializer: Serializer = MSGPACK
        self._service = service
        self.closed = False

    def write(self, payload: bytes) -> None:
        if not self.closed:
            self._service.on_message(parse_message(self.serializer.decode(payload)))

    def backlog(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        self.closed = True
        self._service.on_closed()

    def abort(self, reason: str) -> None:
        self.close(reason)


class ServiceSession:
    """A router-internal caller on one realm."""

    def __init__(self, router: Router, realm: str, role: str | None = None, authid: str = "cloverleaf") -> None:
        self._router = router
        self._realm = realm
        #: None: the trusted internal role; else this role, authorized like any client
        self._role = role
        self._authid = authid
        self._session: RouterSession | None = None
        self._link: InternalLink | None = None
        self._next_request = 0
        self._pending: dict[int, asyncio.Future[Message]] = {}

    def _joined(self) -> RouterSession:
        session = self._session
        if session is not None and session.is_open:
            return session
        self._link = InternalLink(self)
        authenticator: TrustedAuthenticator | FixedRoleAuthenticator = (
            TrustedAuthenticator() if self._role is None else FixedRoleAuthenticator(self._authid, self._role)
        )
        session = self._router.open_session(self._link, SessionOptions([authenticator], True, hello_timeout=0))
        self._session = session
        self._next_request = 0
        session.receive(MSGPACK.encode(Hello(self._realm, {"roles": {"caller": {"features": {
            "call_canceling": True}}, "publisher": {"features": {}}},
            "authmethods": [authenticator.method]}).marshal()))  # fmt: skip
        if not session.is_open:
            self._session = None
            raise ApplicationError("wamp.error.no_such_realm", f"cannot join realm '{self._realm}'")
        return session

    async def call(self, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout: float) -> Any:
        """Call ``procedure``; return its single result (or None, or the whole args list)."""
        result = await self.call_result(procedure, args, kwargs, timeout)
        values = result.args or []
        return values[0] if len(values) == 1 and not result.kwargs else (values or result.kwargs or None)

    async def call_result(self, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout: float) -> Result:
        """Call ``procedure``; return the RESULT (raise :class:`ApplicationError` for an ERROR)."""
        answer = await self._request(lambda request: Call(request, {}, procedure, args or None, kwargs or None),
                                     timeout)  # fmt: skip
        assert isinstance(answer, Result)
        return answer

    async def publish(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> int:
        """Publish (acknowledged); return the publication ID."""
        answer = await self._request(
            lambda request: Publish(request, {**options, "acknowledge": True}, topic, args or None, kwargs or None),
            timeout,
        )
        assert isinstance(answer, Published)
        return answer.publication

    async def _request(self, build: Callable[[int], Message], timeout: float) -> Message:
        session = self._joined()
        self._next_request += 1
        request = self._next_request
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request] = future
        message = build(request)
        session.receive(MSGPACK.encode(message.marshal()))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            if isinstance(message, Call) and session.is_open and request in self._pending:
                session.receive(MSGPACK.encode(Cancel(request, {"mode": "killnowait"}).marshal()))
            raise
        finally:
            self._pending.pop(request, None)

    def on_message(self, message: Message) -> None:
        if isinstance(message, (Result, Published)):
            future = self._pending.pop(message.request, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Error):
            future = self._pending.pop(message.request, None)
            if future is not None and not future.done():
                future.set_exception(ApplicationError(message.error, *(message.args or ()), **(message.kwargs or {})))
        elif isinstance(message, Goodbye) and self._link is not None:
            # the router is shutting down (or killed the session): answer at once, as a client
            # would, rather than leave the node's shutdown to wait out its timeout for us; from
            # the next loop pass, not from inside the router's send
            asyncio.get_running_loop().call_soon(self._answer_goodbye, self._link)

    def _answer_goodbye(self, link: InternalLink) -> None:
        session = self._session
        if session is not None and self._link is link and not link.closed:
            session.receive(MSGPACK.encode(Goodbye({}, "wamp.close.goodbye_and_out").marshal()))

    def on_closed(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the service session was closed"))
        self._pending.clear()
        self._session = None


class ServiceSessions:
    """One service session per realm, created on first use."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._sessions: dict[str, ServiceSession] = {}

    async def call(self, realm: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout: float) -> Any:
        service = self._sessions.get(realm)
        if service is None:
            service = self._sessions[realm] = ServiceSession(self._router, realm)
        return await service.call(procedure, args, kwargs, timeout)

    def close(self) -> None:
        for service in self._sessions.values():
            with contextlib.suppress(Exception):
                service.on_closed()
        self._sessions.clear()
