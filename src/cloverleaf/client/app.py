"""A declarative WAMP application: procedures and event handlers declared with decorators.

>>> app = App("calculator")
>>> @app.register("com.example.add")
... def add(a, b):
...     return a + b
>>> app.run("ws://127.0.0.1:8080/ws", "realm1")  # blocks until SIGINT/SIGTERM

``cloverleaf run module:app --url URL --realm REALM`` does the same from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .session import Handler, Session
from .types import RegisterOptions, SubscribeOptions, TransportLost

__all__ = ["App"]

log = logging.getLogger("cloverleaf.client.app")

F = TypeVar("F", bound=Callable[..., Any])
JoinHook = Callable[[Session], Awaitable[None] | None]
LeaveHook = Callable[[Session, str], Awaitable[None] | None]

#: how often a request interrupted by a lost connection is tried again while starting
_START_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Procedure:
    uri: str
    handler: Handler
    options: RegisterOptions | None


@dataclass(frozen=True, slots=True)
class _Handler:
    topic: str
    handler: Handler
    options: SubscribeOptions | None


class App:
    """Procedures, event handlers and join/leave hooks, declared before connecting.

    ``await app.start(url, realm)`` connects a :class:`Session`, registers and subscribes everything,
    then runs the ``on_join`` hooks; the session makes the registrations and subscriptions again
    after every reconnect, and runs the hooks again. ``app.run(url, realm)`` does the same and
    blocks until SIGINT or SIGTERM, then leaves cleanly.

    Handlers are those :meth:`Session.register` and :meth:`Session.subscribe` accept (plain
    functions, coroutine functions, async generators for progressive results; a parameter named
    ``details`` receives the call or event details). Inside them, :attr:`session` is the session.
    """

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.procedures: list[_Procedure] = []
        self.handlers: list[_Handler] = []
        self._on_join: list[JoinHook] = []
        self._on_leave: list[LeaveHook] = []
        self._session: Session | None = None

    def __repr__(self) -> str:
        return f"App({self.name!r}, {len(self.procedures)} procedures, {len(self.handlers)} event handlers)"

    # -- declaring ----------------------------------------------------------------------------

    def register(self, procedure: str, *, options: RegisterOptions | None = None) -> Callable[[F], F]:
        """Decorator: register the function as ``procedure`` (the function is returned unchanged)."""

        def decorate(handler: F) -> F:
            match = options.match if options is not None else None
            for declared in self.procedures:
                if declared.uri == procedure and (declared.options.match if declared.options else None) == match:
                    raise ValueError(f"{self.name}: procedure {procedure!r} is declared twice")
            self.procedures.append(_Procedure(procedure, handler, options))
            return handler

        return decorate

    def subscribe(self, topic: str, *, options: SubscribeOptions | None = None) -> Callable[[F], F]:
        """Decorator: subscribe the function to ``topic`` (the function is returned unchanged)."""

        def decorate(handler: F) -> F:
            self.handlers.append(_Handler(topic, handler, options))
            return handler

        return decorate

    def on_join(self, hook: F) -> F:
        """Decorator: run ``hook(session)`` (plain or async) after every join, once everything
        is registered and subscribed."""
        self._on_join.append(hook)
        return hook

    def on_leave(self, hook: F) -> F:
        """Decorator: run ``hook(session, reason)`` (plain or async) whenever a connection's session ends."""
        self._on_leave.append(hook)
        return hook

    # -- running ------------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The session of the running app (``RuntimeError`` before :meth:`start`)."""
        if self._session is None:
            raise RuntimeError(f"{self.name}: the app is not started")
        return self._session

    async def start(self, url: str, realm: str, **connect_kwargs: Any) -> Session:
        """Connect, register every procedure and subscribe every handler, run the join hooks.

        ``connect_kwargs`` are those of :func:`cloverleaf.client.connect` (serializer,
        authenticators, reconnect, ``opener`` for a connection without a URL, ...). If anything
        fails (a refused connection, an ABORT, a registration the router refuses, a join hook that
        raises), the session leaves and the error is raised.
        """
        session = Session(url, realm, **connect_kwargs)
        for leave_hook in self._on_leave:
            session.on_leave(leave_hook)
        await session.start()
        try:
            for procedure in self.procedures:
                await _register(session, procedure)
            for handler in self.handlers:
                await _subscribe(session, handler)
            self._session = session
            for join_hook in self._on_join:
                result = join_hook(session)
                if inspect.isawaitable(result):
                    await result
        except BaseException:
            self._session = None
            with contextlib.suppress(Exception):
                await session.leave(timeout=2.0)
            raise
        # From now on the session itself registers and subscribes again after a reconnect,
        # then runs these hooks (a failing hook is logged: it must not fail the reconnection).
        for join_hook in self._on_join:
            session.on_join(_logging_failures(join_hook))
        log.info(
            "%s: joined %s on %s (procedures: %d, event handlers: %d)",
            self.name, realm, url, len(self.procedures), len(self.handlers),
        )  # fmt: skip
        return session

    async def stop(self, timeout: float = 5.0) -> None:
        """Leave the session :meth:`start` opened (GOODBYE, waiting up to ``timeout`` seconds for the
        router's reply); nothing happens when the app is not started."""
        session, self._session = self._session, None
        if session is not None:
            await session.leave(timeout=timeout)

    async def serve(self, url: str, realm: str, *, stop: asyncio.Event | None = None, **connect_kwargs: Any) -> int:
        """Start, then serve until ``stop`` is set (or SIGINT/SIGTERM arrives); leave and return
        the exit code: 0 after a clean stop, 1 when the app could not start or lost its
        connection for good (reconnection disabled or given up)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                pass
        try:
            starting = loop.create_task(self.start(url, realm, **connect_kwargs))
            stopping = loop.create_task(stop.wait())
            try:
                await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not starting.done():  # stopped while connecting: give up quietly
                starting.cancel()
                await asyncio.wait((starting,))  # it closes what it opened
                if not starting.cancelled() and starting.exception() is None:
                    await starting.result().leave()  # it had just finished
                return 0
            try:
                session = starting.result()
            except (ConnectionError, TimeoutError, OSError) as exc:
                log.error("%s: %s", self.name, exc)
                return 1
            except Exception as exc:
                log.error("%s: cannot start: %s", self.name, exc)
                return 1
            stopping = loop.create_task(stop.wait())
            over = loop.create_task(session.wait_closed())
            try:
                await asyncio.wait((stopping, over), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                over.cancel()
            if not stop.is_set():  # lost without reconnection, or reconnection given up
                log.error("%s: connection to %s lost for good: %s", self.name, url, session.last_close_reason)
                return 1
            log.info("%s: leaving", self.name)
            await session.leave()
            return 0
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            self._session = None

    def run(self, url: str, realm: str, **connect_kwargs: Any) -> int:
        """Run the app until SIGINT or SIGTERM (on uvloop where installed); return the exit code.

        Use it as ``sys.exit(app.run(url, realm))``. Logging is set up at INFO unless the
        program configured it already.
        """
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        return run_with_best_loop(self.serve(url, realm, **connect_kwargs))


def run_with_best_loop(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run ``coroutine`` to completion on a new uvloop loop (asyncio's where uvloop is missing)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


def _logging_failures(hook: JoinHook) -> JoinHook:
    async def run(session: Session) -> None:
        try:
            result = hook(session)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_join hook %s failed after a reconnect", getattr(hook, "__qualname__", hook))

    return run


# A request the lost connection interrupted is made again (the router forgot it with the session);
# Session.register/subscribe wait for the next connection.


async def _register(session: Session, procedure: _Procedure) -> None:
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            await session.register(procedure.uri, procedure.handler, procedure.options)
            return
        except TransportLost:
            if attempt == _START_ATTEMPTS:
                raise


async def _subscribe(session: Session, handler: _Handler) -> None:
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            await session.subscribe(handler.topic, handler.handler, handler.options)
            return
        except TransportLost:
            if attempt == _START_ATTEMPTS:
                raise
