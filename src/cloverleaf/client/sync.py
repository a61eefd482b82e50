"""A synchronous facade over the asyncio client, for scripts, notebooks and REPLs.

>>> import cloverleaf
>>> with cloverleaf.connect("ws://127.0.0.1:8080/ws", "realm1") as s:
...     s.register("com.example.add", lambda a, b: a + b)
...     print(s.call("com.example.add", 2, 3))
5

The asyncio :class:`~cloverleaf.client.Session` runs on an event loop in a daemon thread; every
method hands a coroutine to that loop (``asyncio.run_coroutine_threadsafe``) and waits for it at
most its timeout. Exceptions (:class:`ApplicationError`, ``ConnectionError``, ``TimeoutError``,
...) are raised in the calling thread. Handlers given to :meth:`SyncSession.register` and
:meth:`SyncSession.subscribe` run on the loop thread: keep them short, or hand the work to another
thread, and do not call the blocking methods of this facade from them (use ``s.session``, the
asyncio session, there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .session import Handler, Registration, Session, Subscription
from .session import connect as async_connect
from .types import CallOptions, Publication, PublishOptions, RegisterOptions, SubscribeOptions

__all__ = ["SyncRegistration", "SyncSession", "SyncSubscription", "connect"]

T = TypeVar("T")

#: seconds a blocking method waits beyond a call's own timeout for the loop to answer
_GRACE = 2.0


class SyncSession:
    """A :class:`Session` driven from synchronous code. Create it with :func:`connect`.

    ``timeout`` (seconds) bounds every method that does not take its own: connecting, registering,
    subscribing, publishing with acknowledgement, leaving, and calls without
    ``CallOptions(timeout=...)``.
    """

    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 timeout: float) -> None:  # fmt: skip
        self.session = session
        self.loop = loop
        self.timeout = timeout
        self._thread = thread
        self._closed = False

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("the session is closed")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "a blocking SyncSession method was called on its own loop thread (from a handler); "
                "use the asyncio session (s.session) there"
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # cancels the task on the loop (a call is canceled at the router)
            raise TimeoutError(f"no answer within {timeout}s") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting
            raise

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    @property
    def is_connected(self) -> bool:
        return self.session.is_connected

    @property
    def session_id(self) -> int:
        return self.session.session_id

    @property
    def details(self) -> dict[str, Any]:
        return self.session.details

    # -- the WAMP API -------------------------------------------------------------------------

    def call(self, procedure: str, *args: Any, options: CallOptions | None = None, **kwargs: Any) -> Any:
        """Call ``procedure`` and return its result (as :meth:`Session.call`).

        The call's timeout is ``options.timeout``, else the session's ``timeout``; when it passes,
        the call is canceled at the router and ``ApplicationError("wamp.error.timeout")`` raised.
        """
        options = options or CallOptions()
        if options.timeout is None:
            options = dataclasses.replace(options, timeout=self.timeout)
        assert options.timeout is not None
        return self._run(self.session.call(procedure, *args, options=options, **kwargs), options.timeout + _GRACE)

    def publish(
        self, topic: str, *args: Any, options: PublishOptions | None = None, **kwargs: Any
    ) -> Publication | None:
        """Publish an event (as :meth:`Session.publish`); with ``PublishOptions(acknowledge=True)``
        wait for the router and return the :class:`Publication`."""
        return self._run(self.session.publish(topic, *args, options=options, **kwargs), self.timeout)

    def register(
        self, procedure: str, handler: Handler, options: RegisterOptions | None = None, *, timeout: float | None = None
    ) -> SyncRegistration:
        """Register ``handler`` for ``procedure`` (as :meth:`Session.register`); it runs on the loop thread."""
        registration = self._run(self.session.register(procedure, handler, options), self._timeout(timeout))
        return SyncRegistration(self, registration)

    def subscribe(
        self, topic: str, handler: Handler, options: SubscribeOptions | None = None, *, timeout: float | None = None
    ) -> SyncSubscription:
        """Subscribe ``handler`` to ``topic`` (as :meth:`Session.subscribe`); it runs on the loop thread."""
        subscription = self._run(self.session.subscribe(topic, handler, options), self._timeout(timeout))
        return SyncSubscription(self, subscription)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run any coroutine on the session's loop (e.g. one using ``s.session``) and return its result."""
        return self._run(coroutine, self._timeout(timeout))

    def leave(self, timeout: float | None = None) -> None:
        """Leave the realm (GOODBYE), close the connection and stop the loop thread. Idempotent."""
        if self._closed:
            return
        wait = self._timeout(timeout)
        try:
            self._run(self.session.leave(timeout=wait), wait + _GRACE)
        finally:
            self._closed = True
            _stop_loop(self.loop, self._thread, wait)

    close = leave

    def __enter__(self) -> SyncSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.leave()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.is_connected else "disconnected")
        return f"<SyncSession {self.session.url} realm={self.session.realm} {state}>"


class SyncRegistration:
    """A procedure registered through a :class:`SyncSession`."""

    def __init__(self, owner: SyncSession, registration: Registration) -> None:
        self._owner = owner
        self.registration = registration

    @property
    def procedure(self) -> str:
        return self.registration.procedure

    @property
    def active(self) -> bool:
        return self.registration.active

    def unregister(self, timeout: float | None = None) -> None:
        self._owner._run(self.registration.unregister(), self._owner._timeout(timeout))


class SyncSubscription:
    """A handler subscribed through a :class:`SyncSession`."""

    def __init__(self, owner: SyncSession, subscription: Subscription) -> None:
        self._owner = owner
        self.subscription = subscription

    @property
    def topic(self) -> str:
        return self.subscription.topic

    @property
    def active(self) -> bool:
        return self.subscription.active

    def unsubscribe(self, timeout: float | None = None) -> None:
        self._owner._run(self.subscription.unsubscribe(), self._owner._timeout(timeout))


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread, timeout: float) -> None:
    async def shutdown() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        await loop.shutdown_asyncgens()
        loop.stop()

    if thread.is_alive():
        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout)
    if not thread.is_alive():
        loop.close()


def connect(url: str, realm: str, *, timeout: float = 10.0, **connect_kwargs: Any) -> SyncSession:
    """Connect to a router, join ``realm`` and return a :class:`SyncSession`.

    ``connect_kwargs`` are those of :func:`cloverleaf.client.connect` (serializer, authenticators,
    authid, authrole, reconnect, ssl_context); ``timeout`` bounds connecting and, by default, every
    later request. Use it as ``with connect(...) as s:`` to leave at the end.
    """
    connect_kwargs.setdefault("connect_timeout", timeout)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"cloverleaf-sync {url}", daemon=True)
    thread.start()
    future = asyncio.run_coroutine_threadsafe(async_connect(url, realm, **connect_kwargs), loop)
    try:
        session = future.result(timeout + _GRACE)
    except BaseException as exc:
        future.cancel()
        _stop_loop(loop, thread, timeout)
        if isinstance(exc, concurrent.futures.TimeoutError):
            raise TimeoutError(f"cannot connect to {url} within {timeout}s") from None
        raise
    return SyncSession(session, loop, thread, timeout)
