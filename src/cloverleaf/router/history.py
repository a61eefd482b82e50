"""Event history (spec: advanced/pubsub_event_history): events kept per configured topic or pattern.

Each history-enabled (uri, match) gets a subscription of its own held by a :class:`HistoryRecorder`
(the spec's "dummy subscription"), so events are stored from the router's start even before anyone
subscribes, and a subscriber of the same (uri, match) shares that subscription's ID, which is what
``wamp.subscription.get_events`` takes. Events are kept in memory (the default) or in SQLite, where
the history survives a restart because it is stored by (uri, match), not by subscription ID.

Writes to SQLite happen on the event loop (WAL, synchronous=NORMAL: tens of microseconds each); keep
persistent history to topics where that is acceptable.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..wamp import errors
from ..wamp.errors import ApplicationError
from ..wamp.messages import Event

if TYPE_CHECKING:
    from .outgoing import OutgoingMessage

# Recorders need session IDs no real session can have: real ones are in [1, 2^53].
_recorder_ids = itertools.count(2**53 + 1)


@dataclass(slots=True)
class StoredEvent:
    timestamp: str
    topic: str
    publication: int
    details: dict[str, Any]
    args: list[Any] | None
    kwargs: dict[str, Any] | None


class EventStore(Protocol):
    def append(self, key: str, event: StoredEvent, limit: int) -> None:
        """Store an event under ``key``, keeping at most ``limit`` events for it."""

    def events(self, key: str, limit: int) -> list[StoredEvent]:
        """The newest ``limit`` events kept for ``key``, oldest first."""

    def close(self) -> None: ...


class MemoryEventStore:
    """History in memory, bounded per key; gone when the router stops."""

    def __init__(self) -> None:
        self._events: dict[str, deque[StoredEvent]] = {}

    def append(self, key: str, event: StoredEvent, limit: int) -> None:
        queue = self._events.get(key)
        if queue is None or queue.maxlen != limit:
            queue = self._events[key] = deque(queue or (), maxlen=limit)
        queue.append(event)

    def events(self, key: str, limit: int) -> list[StoredEvent]:
        return list(self._events.get(key, ()))[-limit:]

    def close(self) -> None:
        self._events.clear()


class SqliteEventStore:
    """History in an SQLite file, bounded per key; survives restarts."""

    def __init__(self, path: str) -> None:
        import sqlite3  # only when configured: it costs start-up time and memory otherwise

        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, "
            "timestamp TEXT NOT NULL, topic TEXT NOT NULL, publication INTEGER NOT NULL, details TEXT NOT NULL, "
            "args TEXT, kwargs TEXT)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS events_key ON events (key, id)")

    def append(self, key: str, event: StoredEvent, limit: int) -> None:
        try:
            args = None if event.args is None else json.dumps(event.args)
            kwargs = None if event.kwargs is None else json.dumps(event.kwargs)
            details = json.dumps(event.details)
        except (TypeError, ValueError):
            return  # a payload JSON cannot carry (bytes): not kept in the persistent store
        cursor = self._db.execute(
            "INSERT INTO events (key, timestamp, topic, publication, details, args, kwargs) VALUES (?,?,?,?,?,?,?)",
            (key, event.timestamp, event.topic, event.publication, details, args, kwargs),
        )
        newest = cursor.lastrowid or 0
        if newest % 64 == 0:  # trimming costs a query: do it now and then (reads apply the limit exactly)
            self._trim(key, limit)

    def _trim(self, key: str, limit: int) -> None:
        self._db.execute(
            "DELETE FROM events WHERE key = ? AND id NOT IN "
            "(SELECT id FROM events WHERE key = ? ORDER BY id DESC LIMIT ?)",
            (key, key, limit),
        )

    def events(self, key: str, limit: int) -> list[StoredEvent]:
        rows = self._db.execute(
            "SELECT timestamp, topic, publication, details, args, kwargs FROM "
            "(SELECT * FROM events WHERE key = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (key, limit),
        ).fetchall()
        return [
            StoredEvent(ts, topic, publication, json.loads(details), None if args is None else json.loads(args),
                        None if kwargs is None else json.loads(kwargs))
            for ts, topic, publication, details, args, kwargs in rows
        ]  # fmt: skip

    def close(self) -> None:
        self._db.close()


def history_key(uri: str, match: str) -> str:
    return f"{match}:{uri}"


class HistoryRecorder:
    """The member of a history-enabled subscription that stores every event it is sent."""

    __slots__ = ("key", "limit", "match", "session_id", "store", "uri")

    identity = None

    def __init__(self, store: EventStore, uri: str, match: str, limit: int) -> None:
        self.session_id = next(_recorder_ids)
        self.store = store
        self.uri = uri
        self.match = match
        self.limit = limit
        self.key = history_key(uri, match)

    def send_outgoing(self, outgoing: OutgoingMessage, droppable: bool) -> None:
        event = outgoing.message
        if not isinstance(event, Event):
            return
        details = dict(event.details)
        topic = details.pop("topic", self.uri)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.store.append(self.key, StoredEvent(stamp, topic, event.publication, details, event.args, event.kwargs),
                          self.limit)  # fmt: skip

    def query(self, subscription_id: int, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """The spec's ``wamp.subscription.get_events`` filters over the kept events."""
        events = self.store.events(self.key, self.limit)
        topic = filters.get("topic")
        if topic is not None:
            events = [e for e in events if e.topic == topic]
        events = _filter_publications(events, filters)
        events = _filter_times(events, filters)
        if filters.get("reverse") is True:
            events.reverse()
        limit = filters.get("limit")
        if limit is not None:
            if type(limit) is not int or limit < 1:
                raise ApplicationError(errors.INVALID_ARGUMENT, "limit must be a positive integer")
            events = events[:limit]
        result = []
        for e in events:
            item: dict[str, Any] = {
                "timestamp": e.timestamp,
                "subscription": subscription_id,
                "publication": e.publication,
                "details": dict(e.details, topic=e.topic),
            }
            if e.args is not None:
                item["args"] = e.args
            if e.kwargs is not None:
                item["kwargs"] = e.kwargs
            result.append(item)
        return result


def _filter_publications(events: list[StoredEvent], filters: dict[str, Any]) -> list[StoredEvent]:
    def position(key: str) -> int | None:
        value = filters.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise ApplicationError(errors.INVALID_ARGUMENT, f"{key} must be a publication ID")
        for index, event in enumerate(events):
            if event.publication == value:
                return index
        raise ApplicationError(errors.INVALID_ARGUMENT, f"{key}: no such publication in the history")

    start, end = 0, len(events)
    if (index := position("from_publication")) is not None:
        start = max(start, index)
    if (index := position("after_publication")) is not None:
        start = max(start, index + 1)
    if (index := position("before_publication")) is not None:
        end = min(end, index)
    if (index := position("until_publication")) is not None:
        end = min(end, index + 1)
    return events[start:end]


def _parse_time(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise ApplicationError(errors.INVALID_ARGUMENT, f"{key} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApplicationError(errors.INVALID_ARGUMENT, f"{key} must be an RFC 3339 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filter_times(events: list[StoredEvent], filters: dict[str, Any]) -> list[StoredEvent]:
    checks: list[tuple[Callable[[datetime, datetime], bool], datetime]] = []
    for key, keep in (("from_time", operator.ge), ("after_time", operator.gt), ("before_time", operator.lt),
                      ("until_time", operator.le)):  # fmt: skip
        if filters.get(key) is not None:
            checks.append((keep, _parse_time(filters[key], key)))
    if not checks:
        return events
    return [e for e in events if all(keep(_parse_time(e.timestamp, "timestamp"), bound) for keep, bound in checks)]
