"""The Cloverleaf asyncio WAMP client, on the same sans-I/O core as the router.

>>> session = await connect("ws://127.0.0.1:8080/ws", "realm1")
>>> await session.register("com.example.add", lambda a, b: a + b)
>>> await session.call("com.example.add", 2, 3)
5

``App`` declares an application with decorators (run it with ``cloverleaf run module:app``);
``cloverleaf.connect`` (in :mod:`cloverleaf.client.sync`) is the synchronous facade.
"""

from .app import App
from .auth import AuthenticationFailed, ClientAuthenticator, CryptosignAuth, ScramAuth, TicketAuth, WampCraAuth
from .session import Registration, Session, Subscription, connect
from .types import (
    NO_RECONNECT,
    ApplicationError,
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

__all__ = [
    "NO_RECONNECT",
    "App",
    "ApplicationError",
    "AuthenticationFailed",
    "CallDetails",
    "CallOptions",
    "ClientAuthenticator",
    "CryptosignAuth",
    "EventDetails",
    "NotConnected",
    "Publication",
    "PublishOptions",
    "ReconnectPolicy",
    "RegisterOptions",
    "Registration",
    "Result",
    "ScramAuth",
    "Session",
    "SessionClosed",
    "SubscribeOptions",
    "Subscription",
    "TicketAuth",
    "TransportLost",
    "WampCraAuth",
    "connect",
]
