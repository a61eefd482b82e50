"""Retained events cluster-wide: a JetStream KV bucket holds each topic's retained events, every
node watches it into its broker, so a subscriber asking for the retained event gets it on any node,
also on a node started after the publication (docs/cluster.md).

The node that retains an event writes the topic's whole list (the broker keeps at most 16 per
topic); the last write wins, and every node, the writer included, applies what the bucket says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from ..router.broker import Audience, RetainedEvent
from ..router.ratelimit import RateLimitedLog
from .keys import kv_key

if TYPE_CHECKING:
    import nats.js.kv

    from .backend import NatsCluster

log = logging.getLogger("cloverleaf.cluster")
limited_log = RateLimitedLog(log)


def _lists(audience: Audience) -> list[Any]:
    return [None if x is None else sorted(x) for x in (
        audience.exclude, audience.eligible, audience.exclude_authid, audience.exclude_authrole,
        audience.eligible_authid, audience.eligible_authrole)]  # fmt: skip


def _encode(realm: str, topic: str, events: list[RetainedEvent]) -> bytes:
    packed: bytes = msgpack.packb([realm, topic, [
        [e.publication, e.details, e.args, e.kwargs, e.audience.publisher, e.audience.exclude_me, _lists(e.audience)]
        for e in events
    ]])
    return packed


def _decode(value: bytes) -> tuple[str, str, list[RetainedEvent]]:
    realm, topic, raw = msgpack.unpackb(value, raw=False)
    events = []
    for publication, details, args, kwargs, publisher, exclude_me, lists in raw:
        frozen = [None if x is None else frozenset(x) for x in lists]
        events.append(RetainedEvent(publication, details, args, kwargs, Audience(publisher, exclude_me, *frozen)))
    return realm, topic, events


class RetainedEvents:
    """The cluster's retained events (a :class:`~cloverleaf.cluster.backend.ClusterService`)."""

    def __init__(self) -> None:
        self.cluster: NatsCluster | None = None
        self.kv: nats.js.kv.KeyValue | None = None
        self.bucket = ""
        self._watcher: Any = None
        self._dirty: dict[str, tuple[str, str, list[RetainedEvent], list[Callable[[], None]]]] = {}
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: KV key -> (realm, topic), to apply deletions
        self._known: dict[str, tuple[str, str]] = {}

    async def start(self, cluster: NatsCluster) -> None:
        self.cluster = cluster
        self.bucket = cluster.bucket_name("retained")
        self.kv = await cluster.open_bucket("retained")
        self._watcher, follow = await cluster.watch_bucket(self.kv, self._apply, "a retained entry")
        loop = asyncio.get_running_loop()
        for work in (follow, self._write()):
            task = loop.create_task(work)
            self._tasks.add(task)

    async def stop(self) -> None:
        from .backend import NatsCluster

        await NatsCluster.wind_down(lambda: bool(self._dirty), 1.0, self._tasks, self._watcher)

    def changed(self, realm: str, topic: str, events: list[RetainedEvent], then: Callable[[], None] | None) -> None:
        """Schedule writing ``topic``'s retained events; ``then`` once every node has them."""
        key = kv_key(realm, topic)
        pending = self._dirty.pop(key, None)
        waiting = pending[3] if pending is not None else []
        if then is not None:
            waiting.append(then)
        self._dirty[key] = (realm, topic, list(events), waiting)
        self._ready.set()

    async def _write(self) -> None:
        assert self.kv is not None and self.cluster is not None
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                realm, topic, events, waiting = self._dirty.pop(key)
                try:
                    revision = await self.kv.put(key, _encode(realm, topic, events))
                except Exception as exc:
                    limited_log.warning("cluster retained", "cluster: sharing the retained events of %s failed: %s",
                                        topic, exc)  # fmt: skip
                    revision = 0
                if revision:
                    await self.cluster.barrier(self.bucket, revision)
                for then in waiting:
                    try:
                        then()
                    except Exception:
                        limited_log.log("cluster retained", logging.ERROR, "cluster: answering a PUBLISH failed",
                                        exc_info=True)  # fmt: skip

    def _apply(self, entry: Any) -> None:
        assert self.cluster is not None
        try:
            if entry.operation in ("DEL", "PURGE"):
                known = self._known.pop(entry.key, None)
                if known is not None:
                    self._set(known[0], known[1], [])
                return
            realm, topic, events = _decode(entry.value)
            self._known[entry.key] = (realm, topic)
            self._set(realm, topic, events)
        except Exception:
            limited_log.warning("cluster retained", "cluster: unreadable retained entry %s", entry.key)
        finally:
            if entry.revision is not None:
                self.cluster.applied(self.bucket, entry.revision)

    def _set(self, realm_name: str, topic: str, events: list[RetainedEvent]) -> None:
        assert self.cluster is not None
        realm = self.cluster.router.realms.get(realm_name)
        if realm is not None:
            realm.broker.set_retained(topic, events)
