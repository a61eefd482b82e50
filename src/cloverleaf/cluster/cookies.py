"""Tracking cookies shared by every node of a cluster (and every worker of a node): a browser whose
next WebSocket lands on another node is recognized there by the cookie it authenticated with
(docs/cluster.md, "What is consistent").

Each binding a node makes (:meth:`CookieStore.remember`) is written to the cluster's ``cookies``
KV bucket under ``<scope>.<digest of the cookie>`` (the cookie itself, a bearer secret, never
leaves the node); every node watches the bucket into its stores. A scope is one cookie-tracking
transport, named by its place in the config: nodes of one cluster are expected to run the same
config. The bucket's entries expire with the longest cookie ``max_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import msgpack

from ..router.auth import Identity
from ..router.authenticators import CookieStore
from ..router.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from .backend import NatsCluster

log = logging.getLogger("cloverleaf.cluster")
limited_log = RateLimitedLog(log)

#: KV writes in flight at most; past it a binding stays on its own node (and is counted in the log)
MAX_PENDING_WRITES = 1_000


class SharedCookies:
    """A :class:`~cloverleaf.cluster.backend.ClusterService` for cookie stores; it outlives the
    cluster back ends of a node that fences itself and rejoins (stores stay attached)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.stores: dict[str, CookieStore] = {}
        #: bindings seen for scopes whose store is not attached yet: scope -> digest -> value
        self._early: dict[str, dict[str, list[Any]]] = {}
        self._cluster: NatsCluster | None = None
        self._kv: Any = None
        self._watcher: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, scope: str, store: CookieStore) -> None:
        """Share ``store`` as ``scope`` (a name of letters, digits, '_' and '-')."""
        self.stores[scope] = store
        store.on_remember = lambda digest, identity: self._publish(scope, digest, identity)
        for digest, value in self._early.pop(scope, {}).items():
            self._learn(store, digest, value)

    async def start(self, cluster: NatsCluster) -> None:
        self._cluster = cluster
        self._kv = await cluster.open_bucket("cookies", ttl=self.ttl)
        self._watcher, follow = await cluster.watch_bucket(self._kv, self._apply, "a shared cookie")
        task = asyncio.get_running_loop().create_task(follow)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # a cancel of stop() itself still ends it
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._watcher.stop(), 1.0)
        self._cluster = self._kv = self._watcher = None

    def _publish(self, scope: str, digest: str, identity: Identity) -> None:
        kv = self._kv
        if kv is None:
            return
        if len(self._tasks) >= MAX_PENDING_WRITES:
            limited_log.warning("cookie writes", "cluster: %d cookie writes pending: a binding stays on this node",
                                len(self._tasks))  # fmt: skip
            return
        value = msgpack.packb([identity.authid, identity.authrole, identity.authmethod, identity.authprovider,
                               identity.authextra, time.time()])  # fmt: skip

        async def put() -> None:
            try:
                await kv.put(f"{scope}.{digest}", value)
            except Exception as exc:
                limited_log.warning("cookie put", "cluster: sharing a cookie failed: %s", exc)

        task = asyncio.get_running_loop().create_task(put())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply(self, entry: Any) -> None:
        if not entry.value:
            return  # deleted or purged: it expires locally with its max_age
        scope, _, digest = entry.key.partition(".")
        value = msgpack.unpackb(entry.value, raw=False)
        store = self.stores.get(scope)
        if store is None:
            early = self._early.setdefault(scope, {})
            if len(early) < 100_000:
                early[digest] = value
            return
        self._learn(store, digest, value)

    @staticmethod
    def _learn(store: CookieStore, digest: str, value: list[Any]) -> None:
        authid, authrole, authmethod, authprovider, authextra, issued_wall = value
        age = max(0.0, time.time() - float(issued_wall))
        identity = Identity(authid, authrole, authmethod, authprovider, dict(authextra or {}))
        store.learn(digest, identity, time.monotonic() - age)
