"""Prometheus metrics of a running router, read from the realms' counters at scrape time.

The router keeps plain integer counters (no locks, no label lookups on the hot path); this
collector turns them into Prometheus families only when ``/metrics`` is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgpack
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..router.router import Router
from ..wamp.messages import MESSAGE_CLASSES

if TYPE_CHECKING:
    from ..cluster.backend import NatsCluster


class RouterCollector:
    """Sessions, messages by type, routed calls and events, errors, aborts and drops, per realm."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("cloverleaf_sessions", "Sessions joined to the realm", labels=["realm"])
        joins = CounterMetricFamily("cloverleaf_joins", "Sessions that joined the realm", labels=["realm"])
        received = CounterMetricFamily("cloverleaf_messages_received", "WAMP messages received from clients",
                                       labels=["realm", "type"])  # fmt: skip
        sent = CounterMetricFamily("cloverleaf_messages_sent", "WAMP messages the router sent to clients",
                                   labels=["realm", "type"])  # fmt: skip
        calls = CounterMetricFamily("cloverleaf_calls_routed", "CALLs routed to a callee", labels=["realm"])
        events = CounterMetricFamily("cloverleaf_events_delivered", "EVENTs delivered (one per subscriber)",
                                     labels=["realm"])  # fmt: skip
        errors = CounterMetricFamily("cloverleaf_errors_sent", "ERROR answers sent by the router", labels=["realm"])
        aborts = CounterMetricFamily("cloverleaf_aborts", "Sessions ended by ABORT", labels=["realm"])
        drops = CounterMetricFamily("cloverleaf_events_dropped", "EVENTs dropped for slow consumers",
                                    labels=["realm"])  # fmt: skip
        for name, realm in self._router.realms.items():
            stats = realm.stats
            sessions.add_metric([name], len(realm.sessions))
            joins.add_metric([name], stats.joins)
            for code, cls in MESSAGE_CLASSES.items():
                if stats.received[code]:
                    received.add_metric([name, cls.NAME], stats.received[code])
                if stats.sent[code]:
                    sent.add_metric([name, cls.NAME], stats.sent[code])
            calls.add_metric([name], stats.calls_routed)
            events.add_metric([name], stats.events_delivered)
            errors.add_metric([name], stats.errors_sent)
            aborts.add_metric([name], stats.aborts)
            drops.add_metric([name], stats.dropped_events)
        connections = GaugeMetricFamily("cloverleaf_connections", "Open client connections, joined or not")
        connections.add_metric([], len(self._router.sessions))
        yield from (sessions, joins, received, sent, calls, events, errors, aborts, drops, connections)


class ClusterCollector:
    """The node's view of its cluster: nodes seen, the NATS connection, traffic to and from other nodes."""

    def __init__(self, cluster: Callable[[], NatsCluster | None]) -> None:
        self._cluster = cluster  # (a fenced node's back end is replaced: always ask for the current one)

    def collect(self) -> Iterator[Metric]:
        cluster = self._cluster()
        if cluster is None:
            return
        stats = cluster.stats
        info = GaugeMetricFamily("cloverleaf_cluster_info", "This node in its cluster (value 1)",
                                 labels=["cluster", "node", "incarnation"])  # fmt: skip
        info.add_metric([cluster.settings.name, cluster.settings.node, cluster.incarnation], 1)
        nodes = GaugeMetricFamily("cloverleaf_cluster_nodes", "Live nodes seen by this node, itself included")
        nodes.add_metric([], len(cluster.peers) + 1)
        connected = GaugeMetricFamily("cloverleaf_cluster_nats_connected", "1 while the node is connected to NATS")
        connected.add_metric([], 1 if cluster.connected else 0)
        sent = CounterMetricFamily("cloverleaf_cluster_messages_sent", "Messages sent to other nodes")
        sent.add_metric([], stats.sent)
        received = CounterMetricFamily("cloverleaf_cluster_messages_received", "Messages received from other nodes")
        received.add_metric([], stats.received)
        dropped = CounterMetricFamily("cloverleaf_cluster_messages_dropped",
                                      "Messages to other nodes dropped (outbox full, NATS refused)")  # fmt: skip
        dropped.add_metric([], stats.dropped)
        lost = CounterMetricFamily("cloverleaf_cluster_nodes_lost", "Other nodes found dead or gone")
        lost.add_metric([], stats.nodes_lost)
        fenced = CounterMetricFamily("cloverleaf_cluster_fenced", "Times this node fenced itself")
        fenced.add_metric([], stats.fenced)
        yield from (info, nodes, connected, sent, received, dropped, lost, fenced)


def metrics_renderer(router: Router, cluster: Callable[[], NatsCluster | None] | None = None,
                     ) -> tuple[CollectorRegistry, str]:  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(router))
    if cluster is not None:
        registry.register(ClusterCollector(cluster))
    return registry, CONTENT_TYPE_LATEST


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of everything in ``registry``."""
    return generate_latest(registry)


# -- a node with several workers: every worker's metrics, labelled by worker -------------------------


def snapshot(registry: CollectorRegistry) -> list[list[Any]]:
    """The families of ``registry`` as plain lists: [name, documentation, type, unit, samples]."""
    return [[family.name, family.documentation, family.type, family.unit,
             [[sample.name, sample.labels, sample.value] for sample in family.samples]]
            for family in registry.collect()]  # fmt: skip


class WorkersCollector:
    """This worker's families and the latest snapshot of every other worker of the node, each
    sample labelled ``worker``; a worker silent for ``stale_after`` seconds is left out."""

    def __init__(self, own: CollectorRegistry, name: str, stale_after: float = 5.0) -> None:
        self._own = own
        self._name = name
        self._stale_after = stale_after
        #: worker name -> (monotonic time received, snapshot)
        self.peers: dict[str, tuple[float, list[list[Any]]]] = {}

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        merged: dict[str, Metric] = {}
        sources = [(self._name, snapshot(self._own))]
        sources += sorted((name, families) for name, (seen, families) in self.peers.items()
                          if now - seen < self._stale_after)  # fmt: skip
        for worker, families in sources:
            for name, documentation, kind, unit, samples in families:
                family = merged.get(name)
                if family is None:
                    family = merged[name] = Metric(name, documentation, kind, unit)
                for sample_name, labels, value in samples:
                    family.add_sample(sample_name, {**labels, "worker": worker}, value)
        yield from merged.values()


class WorkerMetricsExchange:
    """Each worker publishes its metrics every ``interval`` seconds on a subject of its node and
    keeps the others' latest (:meth:`received`, subscribed to that subject by the node), so that
    ``/metrics`` on any worker shows the whole node (the HTTP request cannot wait for the other
    workers: it is answered from these snapshots)."""

    def __init__(self, collector: WorkersCollector, own: CollectorRegistry, name: str, subject: str,
                 nats: Callable[[], Any], interval: float = 1.0) -> None:  # fmt: skip
        self.collector = collector
        self._own = own
        self._name = name
        self._subject = subject
        self._nats = nats  # the current nats-py client (a fenced worker's cluster is replaced)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # a cancel of stop() itself still ends it

    async def _run(self) -> None:
        while True:
            client = self._nats()
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.publish(self._subject, msgpack.packb([self._name, snapshot(self._own)]))
            await asyncio.sleep(self._interval)

    async def received(self, msg: Any) -> None:
        """A snapshot of another worker's (or this one's own, ignored)."""
        with contextlib.suppress(Exception):
            name, families = msgpack.unpackb(msg.data, raw=False)
            if name != self._name and type(families) is list:
                self.collector.peers[str(name)] = (time.monotonic(), families)
