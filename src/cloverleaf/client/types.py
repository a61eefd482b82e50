"""Options, results, details and errors of the Cloverleaf client API."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..wamp.errors import ApplicationError

__all__ = [
    "ApplicationError",
    "CallDetails",
    "CallOptions",
    "EventDetails",
    "NotConnected",
    "Publication",
    "PublishOptions",
    "ReconnectPolicy",
    "RegisterOptions",
    "Result",
    "SessionClosed",
    "SubscribeOptions",
    "TransportLost",
]


class SessionClosed(Exception):
    """The session has left (or was never joined); nothing more can be sent through it."""


class NotConnected(SessionClosed):
    """No connection to the router right now, and waiting for one was not allowed or timed out."""


class TransportLost(ConnectionError):
    """The connection dropped while a request was in flight; its outcome is unknown."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    #: seconds; sent to the router in milliseconds (spec: Options.timeout) and enforced locally too
    timeout: float | None = None
    #: called with a :class:`Result` for each progressive result (implies receive_progress)
    on_progress: Callable[[Result], Any] | None = None
    #: ask the router to disclose our identity to the callee
    disclose_me: bool | None = None
    #: how a canceled call (its task canceled, or its timeout passed) is canceled at the router:
    #: "skip", "kill" or "killnowait"
    cancel_mode: str = "killnowait"

    def to_wamp(self, receive_progress: bool = False) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.timeout is not None:
            options["timeout"] = max(1, round(self.timeout * 1000))
        if receive_progress or self.on_progress is not None:
            options["receive_progress"] = True
        if self.disclose_me is not None:
            options["disclose_me"] = self.disclose_me
        return options


@dataclass(frozen=True, slots=True)
class RegisterOptions:
    #: "exact" (default), "prefix" or "wildcard"
    match: str | None = None
    #: "single" (default), "roundrobin", "random", "first" or "last"
    invoke: str | None = None
    #: ask the router to disclose every caller to this procedure
    disclose_caller: bool | None = None

    def to_wamp(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.match is not None and self.match != "exact":
            options["match"] = self.match
        if self.invoke is not None and self.invoke != "single":
            options["invoke"] = self.invoke
        if self.disclose_caller is not None:
            options["disclose_caller"] = self.disclose_caller
        return options


@dataclass(frozen=True, slots=True)
class PublishOptions:
    #: wait for the router's PUBLISHED (or ERROR) and return the :class:`Publication`
    acknowledge: bool = False
    #: False to receive our own event when subscribed to the topic
    exclude_me: bool | None = None
    exclude: list[int] | None = None
    eligible: list[int] | None = None
    exclude_authid: list[str] | None = None
    exclude_authrole: list[str] | None = None
    eligible_authid: list[str] | None = None
    eligible_authrole: list[str] | None = None
    #: ask the router to keep this event for subscribers that ask for retained events
    retain: bool | None = None
    disclose_me: bool | None = None

    def to_wamp(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.acknowledge:
            options["acknowledge"] = True
        for key in (
            "exclude_me", "exclude", "eligible", "exclude_authid", "exclude_authrole", "eligible_authid",
            "eligible_authrole", "retain", "disclose_me",
        ):  # fmt: skip
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        return options


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    #: "exact" (default), "prefix" or "wildcard"
    match: str | None = None
    #: ask the router for the last retained event right away
    get_retained: bool | None = None

    def to_wamp(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.match is not None and self.match != "exact":
            options["match"] = self.match
        if self.get_retained is not None:
            options["get_retained"] = self.get_retained
        return options


@dataclass(slots=True)
class Result:
    """A call's result (or one progressive result) with its whole payload."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> bool:
        return self.details.get("progress") is True

    @property
    def value(self) -> Any:
        """The first positional result, or None."""
        return self.args[0] if self.args else None

    def simplified(self) -> Any:
        """What ``Session.call`` returns: None for no payload, the value for exactly one
        positional result without keywords, else this Result."""
        if not self.kwargs:
            if not self.args:
                return None
            if len(self.args) == 1:
                return self.args[0]
        return self


@dataclass(frozen=True, slots=True)
class Publication:
    id: int


@dataclass(slots=True)
class CallDetails:
    """What a procedure handler may learn about the call (declare a ``details`` parameter)."""

    registration: int
    procedure: str | None = None
    caller: int | None = None
    caller_authid: str | None = None
    caller_authrole: str | None = None
    #: send a progressive result (None when the caller did not ask for them)
    progress: Callable[..., None] | None = None


@dataclass(slots=True)
class EventDetails:
    """What an event handler may learn about the event (declare a ``details`` parameter)."""

    subscription: int
    publication: int
    topic: str | None = None
    publisher: int | None = None
    publisher_authid: str | None = None
    publisher_authrole: str | None = None
    retained: bool = False


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Automatic reconnection: exponential backoff with jitter, then everything is re-joined,
    re-registered and re-subscribed."""

    enabled: bool = True
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    #: each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    jitter: float = 0.2
    #: give up after this many failed attempts in a row (None: never)
    max_attempts: int | None = None
    #: how long a request made while disconnected waits for the connection (None: fail at once)
    wait_for_connection: float | None = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        try:
            base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        except OverflowError:  # thousands of attempts: the cap applies
            base = self.max_delay
        return max(0.0, base * rng.uniform(1 - self.jitter, 1 + self.jitter))


NO_RECONNECT = ReconnectPolicy(enabled=False, wait_for_connection=None)
