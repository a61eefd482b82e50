"""Routing state: who subscribed to which topic and who registered which procedure.

The broker and dealer reach this state only through :class:`SubscriptionStore` and
:class:`RegistrationStore`, so a cluster back end (NATS) can stand behind the same interface. The
in-process stores here keep everything in dictionaries; a subscriber or callee is any object with a
``session_id`` (a local session or, in a cluster, a handle for a session on another node).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ..wamp.ids import random_id
from .patterns import PatternIndex


class Member(Protocol):
    """A subscriber or callee as the routing state sees it."""

    @property
    def session_id(self) -> int: ...


M = TypeVar("M", bound=Member)


@dataclass(slots=True, eq=False)
class Subscription(Generic[M]):
    id: int
    topic: str
    match: str
    #: subscribers by session ID, in subscription order
    subscribers: dict[int, M] = field(default_factory=dict)
    #: seconds since the epoch, set by the broker (meta API "created")
    created: str = ""


@dataclass(slots=True, eq=False)
class Registration(Generic[M]):
    id: int
    procedure: str
    match: str
    invoke: str
    #: callees by session ID, in registration order
    callees: dict[int, M] = field(default_factory=dict)
    created: str = ""
    #: position of the next callee for the roundrobin policy
    next_index: int = 0
    #: REGISTER options the dealer honours for every call (disclose_caller, forward_timeout)
    options: dict[str, Any] = field(default_factory=dict)


class SubscriptionStore(Protocol[M]):
    def subscribe(self, topic: str, match: str, member: M) -> tuple[Subscription[M], bool]:
        """Add ``member`` to the subscription for (topic, match); return it and whether it is new."""

    def unsubscribe(self, subscription_id: int, member: M) -> tuple[Subscription[M], bool] | None:
        """Remove ``member``; return the subscription and whether it was deleted, or None if
        ``member`` was not subscribed to it."""

    def matching(self, topic: str) -> tuple[Subscription[M], ...]:
        """Subscriptions that receive an event published to ``topic`` (exact and patterns)."""

    def get(self, subscription_id: int) -> Subscription[M] | None: ...

    def lookup(self, topic: str, match: str) -> Subscription[M] | None:
        """The subscription for exactly this (topic, match), if any."""

    def all(self) -> list[Subscription[M]]: ...

    def remove_member(self, member: M) -> list[tuple[Subscription[M], bool]]:
        """Drop ``member`` from everything; return each subscription touched and whether it was deleted."""


class RegistrationStore(Protocol[M]):
    def register(self, procedure: str, match: str, invoke: str, member: M) -> tuple[Registration[M], bool]:
        """Add ``member`` as a callee; return the registration and whether it is new. Raise
        :class:`AlreadyRegistered` if (procedure, match) is taken under an incompatible policy."""

    def unregister(self, registration_id: int, member: M) -> tuple[Registration[M], bool] | None: ...

    def best(self, procedure: str) -> Registration[M] | None:
        """The registration a CALL to ``procedure`` is routed to: exact, longest prefix, best wildcard."""

    def get(self, registration_id: int) -> Registration[M] | None: ...

    def lookup(self, procedure: str, match: str) -> Registration[M] | None: ...

    def matching(self, procedure: str) -> list[Registration[M]]: ...

    def all(self) -> list[Registration[M]]: ...

    def remove_member(self, member: M) -> list[tuple[Registration[M], bool]]: ...


class AlreadyRegistered(Exception):
    """The procedure already has a registration whose policy does not admit this callee.

    ``different_policy``: the registration is shared under another invocation policy than the one
    asked for (rather than taken by a ``single`` callee, or by this very callee).
    """

    def __init__(self, procedure: str, different_policy: bool = False) -> None:
        super().__init__(procedure)
        self.different_policy = different_policy


_MATCH_CACHE_LIMIT = 10_000


class LocalSubscriptionStore(Generic[M]):
    """In-process subscription state: exact, prefix and wildcard subscriptions.

    Matching results are cached per topic (bounded) and the cache is cleared whenever a
    subscription is created or deleted, so with pattern subscriptions present an event to a
    topic seen before costs one dictionary lookup, as without them.
    """

    __slots__ = ("_by_id", "_cache", "_id_for", "_index", "_member_subscriptions", "_new_id")

    def __init__(self, new_id: Callable[[], int] = random_id, id_for: Callable[[str, str], int] | None = None) -> None:
        """``id_for(topic, match)``, when given, names each subscription instead of ``new_id``: the
        nodes of a cluster all compute the same ID for one topic and match policy."""
        self._index: PatternIndex[Subscription[M]] = PatternIndex()
        self._by_id: dict[int, Subscription[M]] = {}
        self._member_subscriptions: dict[int, set[int]] = {}
        self._cache: dict[str, tuple[Subscription[M], ...]] = {}
        self._new_id = new_id
        self._id_for = id_for

    def subscribe(self, topic: str, match: str, member: M) -> tuple[Subscription[M], bool]:
        subscription = self._index.get(topic, match)
        created = subscription is None
        if subscription is None:
            wanted = self._id_for(topic, match) if self._id_for is not None else 0
            # (a 53-bit hash of two different topics colliding: a random ID, unique on this node)
            subscription_id = wanted if wanted and wanted not in self._by_id else _unused_id(self._new_id, self._by_id)
            subscription = Subscription(subscription_id, topic, match)
            self._index.add(topic, match, subscription)
            self._by_id[subscription.id] = subscription
            self._cache.clear()
        subscription.subscribers[member.session_id] = member
        self._member_subscriptions.setdefault(member.session_id, set()).add(subscription.id)
        return subscription, created

    def unsubscribe(self, subscription_id: int, member: M) -> tuple[Subscription[M], bool] | None:
        subscription = self._by_id.get(subscription_id)
        if subscription is None or subscription.subscribers.pop(member.session_id, None) is None:
            return None
        mine = self._member_subscriptions.get(member.session_id)
        if mine is not None:
            mine.discard(subscription_id)
        return subscription, self._delete_if_empty(subscription)

    def matching(self, topic: str) -> tuple[Subscription[M], ...]:
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        found = tuple(value for _, _, value in self._index.matching(topic))
        if len(self._cache) >= _MATCH_CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def get(self, subscription_id: int) -> Subscription[M] | None:
        return self._by_id.get(subscription_id)

    def lookup(self, topic: str, match: str) -> Subscription[M] | None:
        return self._index.get(topic, match)

    def all(self) -> list[Subscription[M]]:
        return list(self._by_id.values())

    def remove_member(self, member: M) -> list[tuple[Subscription[M], bool]]:
        touched = []
        for subscription_id in self._member_subscriptions.pop(member.session_id, ()):
            subscription = self._by_id.get(subscription_id)
            if subscription is not None and subscription.subscribers.pop(member.session_id, None) is not None:
                touched.append((subscription, self._delete_if_empty(subscription)))
        return touched

    def _delete_if_empty(self, subscription: Subscription[M]) -> bool:
        if subscription.subscribers:
            return False
        del self._by_id[subscription.id]
        self._index.remove(subscription.topic, subscription.match)
        self._cache.clear()
        return True

    def __len__(self) -> int:
        return len(self._by_id)


def _unused_id(new_id: Callable[[], int], taken: Container[int]) -> int:
    while (value := new_id()) in taken:
        pass
    return value


class LocalRegistrationStore(Generic[M]):
    """In-process registration state: exact, prefix and wildcard registrations, shared or single."""

    __slots__ = ("_by_id", "_id_for", "_index", "_member_registrations", "_new_id")

    def __init__(self, new_id: Callable[[], int] = random_id, id_for: Callable[[str, str], int] | None = None) -> None:
        """``id_for(procedure, match)``, when given, names each registration instead of ``new_id``:
        the nodes of a cluster all compute the same ID for one procedure and match policy."""
        self._index: PatternIndex[Registration[M]] = PatternIndex()
        self._by_id: dict[int, Registration[M]] = {}
        self._member_registrations: dict[int, set[int]] = {}
        self._new_id = new_id
        self._id_for = id_for

    def _id(self, procedure: str, match: str) -> int:
        wanted = self._id_for(procedure, match) if self._id_for is not None else 0
        # (a 53-bit hash of two different procedures colliding: a random ID, unique on this node)
        return wanted if wanted and wanted not in self._by_id else _unused_id(self._new_id, self._by_id)

    def register(self, procedure: str, match: str, invoke: str, member: M) -> tuple[Registration[M], bool]:
        registration = self._index.get(procedure, match)
        if registration is not None:
            # Several callees share a registration only when all ask for the same non-single policy
            # (spec: advanced/rpc_shared_registration).
            if invoke == "single" or registration.invoke != invoke or member.session_id in registration.callees:
                raise AlreadyRegistered(procedure, registration.invoke not in ("single", invoke))
            registration.callees[member.session_id] = member
            self._member_registrations.setdefault(member.session_id, set()).add(registration.id)
            return registration, False
        registration = Registration(self._id(procedure, match), procedure, match, invoke, {member.session_id: member})
        self._index.add(procedure, match, registration)
        self._by_id[registration.id] = registration
        self._member_registrations.setdefault(member.session_id, set()).add(registration.id)
        return registration, True

    def replace(
        self, procedure: str, match: str, invoke: str, options: dict[str, Any], members: list[M]
    ) -> tuple[Registration[M] | None, bool]:
        """Make (procedure, match) have exactly ``members``, in this order, as its callees (none:
        delete it); return the registration (None once deleted) and whether it was created. For a
        replica of state kept elsewhere (a cluster's registry), which has already applied the rules
        that :meth:`register` checks."""
        registration = self._index.get(procedure, match)
        created = registration is None and bool(members)
        if registration is None:
            if not members:
                return None, False
            registration = Registration(self._id(procedure, match), procedure, match, invoke, {})
            self._index.add(procedure, match, registration)
            self._by_id[registration.id] = registration
        for session_id in registration.callees:
            mine = self._member_registrations.get(session_id)
            if mine is not None:
                mine.discard(registration.id)
        registration.invoke = invoke
        registration.options = options
        registration.callees = {member.session_id: member for member in members}
        for session_id in registration.callees:
            self._member_registrations.setdefault(session_id, set()).add(registration.id)
        if not members:
            self._delete_if_empty(registration)
            return None, False
        return registration, created

    def unregister(self, registration_id: int, member: M) -> tuple[Registration[M], bool] | None:
        registration = self._by_id.get(registration_id)
        if registration is None or registration.callees.pop(member.session_id, None) is None:
            return None
        mine = self._member_registrations.get(member.session_id)
        if mine is not None:
            mine.discard(registration_id)
        return registration, self._delete_if_empty(registration)

    def best(self, procedure: str) -> Registration[M] | None:
        found = self._index.best(procedure)
        return None if found is None else found[2]

    def get(self, registration_id: int) -> Registration[M] | None:
        return self._by_id.get(registration_id)

    def lookup(self, procedure: str, match: str) -> Registration[M] | None:
        return self._index.get(procedure, match)

    def matching(self, procedure: str) -> list[Registration[M]]:
        return [value for _, _, value in self._index.matching(procedure)]

    def all(self) -> list[Registration[M]]:
        return list(self._by_id.values())

    def remove_member(self, member: M) -> list[tuple[Registration[M], bool]]:
        touched = []
        for registration_id in self._member_registrations.pop(member.session_id, ()):
            registration = self._by_id.get(registration_id)
            if registration is not None and registration.callees.pop(member.session_id, None) is not None:
                touched.append((registration, self._delete_if_empty(registration)))
        return touched

    def _delete_if_empty(self, registration: Registration[M]) -> bool:
        if registration.callees:
            return False
        del self._by_id[registration.id]
        self._index.remove(registration.procedure, registration.match)
        return True

    def __len__(self) -> int:
        return len(self._by_id)
