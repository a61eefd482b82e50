"""Helpers shared by the Advanced Profile integration tests (test_advanced.py, test_meta_api.py).

Raw-client shortcuts that check the exact shape of each answer, and small Autobahn|Python helpers
(leaving cleanly, dropping the transport, waiting for a 'leave').
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import RouterProcess
from tests.rawclient import RawClient

# message type codes
GOODBYE, ERROR = 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, EVENT = 16, 17, 32, 33, 34, 35, 36
CALL, CANCEL, RESULT = 48, 49, 50
REGISTER, REGISTERED, UNREGISTER, UNREGISTERED, INVOCATION, INTERRUPT, YIELD = 64, 65, 66, 67, 68, 69, 70

#: HELLO roles of a raw peer that supports every client feature the router implements
ADVANCED_ROLES: dict[str, Any] = {
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True,
                            "caller_identification": True}},
    "callee": {"features": {"progressive_call_results": True, "call_canceling": True,
                            "caller_identification": True, "pattern_based_registration": True,
                            "shared_registration": True}},
    "publisher": {"features": {"publisher_exclusion": True, "publisher_identification": True,
                               "subscriber_blackwhite_listing": True}},
    "subscriber": {"features": {"pattern_based_subscription": True, "publisher_identification": True}},
}

#: the same, but a callee that knows nothing of call canceling
NO_CANCEL_ROLES: dict[str, Any] = {
    **ADVANCED_ROLES,
    "callee": {"features": {"progressive_call_results": True, "caller_identification": True}},
}


class Peer(RawClient):
    """A raw client that remembers its WELCOME and offers one-line requests with shape checks."""

    welcome: list[Any]
    #: messages that arrived while a helper waited for another answer, returned first by recv()
    stash: list[list[Any]]

    async def recv(self, timeout: float = 5.0) -> list[Any]:
        if getattr(self, "stash", None):
            return self.stash.pop(0)
        return await super().recv(timeout)

    async def answer(self, kind: int, request: int) -> list[Any]:
        """The next message of type ``kind`` for ``request``; EVENTs arriving first are stashed."""
        while True:
            message = await super().recv()
            if message[0] == kind and message[1] == request:
                return message
            assert message[0] == 36, message
            self.stash.append(message)

    @property
    def authid(self) -> str:
        return str(self.welcome[2]["authid"])

    @property
    def authrole(self) -> str:
        return str(self.welcome[2]["authrole"])

    async def subscribe(self, topic: str, **options: Any) -> int:
        request = self.request_id()
        answer = await self.request([SUBSCRIBE, request, options, topic])
        assert answer[:2] == [SUBSCRIBED, request] and len(answer) == 3, answer
        return int(answer[2])

    async def unsubscribe(self, subscription: int) -> None:
        request = self.request_id()
        assert await self.request([UNSUBSCRIBE, request, subscription]) == [UNSUBSCRIBED, request]

    async def register(self, procedure: str, **options: Any) -> int:
        request = self.request_id()
        answer = await self.request([REGISTER, request, options, procedure])
        assert answer[:2] == [REGISTERED, request] and len(answer) == 3, answer
        return int(answer[2])

    async def unregister(self, registration: int) -> None:
        request = self.request_id()
        assert await self.request([UNREGISTER, request, registration]) == [UNREGISTERED, request]

    async def publish(self, topic: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
                      **options: Any) -> int:
        """PUBLISH with acknowledge=true; return the publication ID."""
        request = self.request_id()
        await self.send(_with_payload([PUBLISH, request, {**options, "acknowledge": True}, topic], args, kwargs))
        answer = await self.answer(PUBLISHED, request)
        assert len(answer) == 3, answer
        return int(answer[2])

    async def send_call(self, procedure: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
                        **options: Any) -> int:
        """Send a CALL without waiting; return its request ID."""
        request = self.request_id()
        await self.send(_with_payload([CALL, request, options, procedure], args, kwargs))
        return request

    async def call(self, procedure: str, *args: Any, **kwargs: Any) -> list[Any]:
        """CALL (no options) and return the answer message (RESULT or ERROR)."""
        request = await self.send_call(procedure, list(args) or None, kwargs or None)
        answer = await self.recv()
        assert answer[0] in (RESULT, ERROR), answer
        assert answer[1 if answer[0] == RESULT else 2] == request, answer
        return answer

    async def meta(self, procedure: str, *args: Any, **kwargs: Any) -> Any:
        """Call a meta procedure that must succeed; return its single positional result (or None)."""
        answer = await self.call(procedure, *args, **kwargs)
        assert answer[0] == RESULT and answer[2] == {}, answer
        assert len(answer) in (3, 4), answer
        if len(answer) == 3:
            return None
        assert len(answer[3]) == 1, answer
        return answer[3][0]

    async def meta_error(self, procedure: str, *args: Any, **kwargs: Any) -> str:
        """Call a meta procedure that must fail; return the error URI."""
        answer = await self.call(procedure, *args, **kwargs)
        assert answer[:2] == [ERROR, CALL] and answer[3] == {}, answer
        return str(answer[4])

    async def nothing(self, within: float = 0.2) -> None:
        """Assert that no message arrives within ``within`` seconds."""
        try:
            message = await self.recv(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")


def _with_payload(message: list[Any], args: list[Any] | None, kwargs: dict[str, Any] | None) -> list[Any]:
    if args is not None or kwargs is not None:
        message.append(args or [])
    if kwargs is not None:
        message.append(kwargs)
    return message


async def peer(router: RouterProcess, kind: str = "rawsocket", serializer: str = "json",
               roles: dict[str, Any] | None = None, realm: str = "realm1") -> Peer:
    """A joined raw peer over ``kind`` ("websocket", "rawsocket" or "unix")."""
    if kind == "websocket":
        client = await Peer.websocket(router.ws_url, serializer)
    elif kind == "unix":
        client = await Peer.rawsocket(unix_path=router.unix_path, serializer=serializer)
    else:
        client = await Peer.rawsocket(router.rs_port, serializer)
    assert isinstance(client, Peer)
    client.stash = []
    client.welcome = await client.join(realm, roles or ADVANCED_ROLES)
    return client


# -- Autobahn|Python ------------------------------------------------------------------------------


def left(session: Any) -> asyncio.Future[Any]:
    """A future for the CloseDetails of the session's next 'leave'."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_leave(_session: Any, details: Any) -> None:
        if not future.done():
            future.set_result(details)

    session.on("leave", on_leave)
    return future


async def leave(session: Any) -> None:
    """Leave with GOODBYE and wait for the router's reply (the router has detached the session by then)."""
    gone = left(session)
    session.leave()
    await asyncio.wait_for(gone, 5)


def drop(session: Any) -> None:
    """Cut the session's transport without any WAMP closing handshake."""
    session._transport.transport.abort()


async def collect(queue: asyncio.Queue[Any], until: Any, timeout: float = 5.0) -> list[Any]:
    """Items from ``queue`` up to and including the first one equal to ``until``."""
    items = []
    while True:
        item = await asyncio.wait_for(queue.get(), timeout)
        items.append(item)
        if item == until:
            return items
