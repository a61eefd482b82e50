"""The NATS back end: one node's link to the other nodes of its cluster (docs/cluster.md).

:class:`NatsCluster` connects to NATS, announces this node with heartbeats, keeps a view of the
other nodes' subscription interest (a JetStream KV bucket, watched), forwards publications to the
nodes that need them and hands the publications other nodes forward to the local broker. Each realm
gets a :class:`RealmLink`, the :class:`~cloverleaf.router.interfaces.ClusterRealm` the broker calls.

Everything sent to other nodes, and the heartbeats, go through the data plane
(:mod:`cloverleaf.cluster.dataplane`): one lean NATS connection whose messages are handled as they
are read, and whose sends to one node in one event-loop pass leave as one NATS message. The broker
never waits for NATS, and a node's messages to another node keep their order. nats-py's connection
carries the JetStream KV buckets and the read-your-writes requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from ..router.broker import Audience, RetainedEvent
from ..router.history import HistoryRecorder
from ..router.ratelimit import RateLimitedLog
from ..router.registry import LocalSubscriptionStore, Registration, Subscription
from . import wire
from .dataplane import DataPlane
from .ids import incarnation_id, scoped_id
from .keys import key_token, kv_key
from .retained import RetainedEvents
from .rpc import ClusterRegistry
from .stats import ClusterStats

if TYPE_CHECKING:
    import nats.aio.client
    import nats.js.kv
    from nats.js.kv import KeyValue

    from ..router.realm import Realm
    from ..router.router import Router
    from ..router.session import RouterSession

log = logging.getLogger("cloverleaf.cluster")

#: seconds a starting node keeps asking JetStream for a bucket that it answers late or not at all
#: (a leader election, slow replica disks) before its start fails
BUCKET_PATIENCE = 30.0
#: JetStream's error code for "no suitable peers for placement": too few of the servers a stream's
#: replicas need are known to be up, which passes once they have (re)joined
NO_PEERS_FOR_PLACEMENT = 10005
limited_log = RateLimitedLog(log)

#: messages queued for other nodes at most; past it new ones are dropped and counted (a node that
#: cannot reach NATS for long fences itself anyway)
MAX_OUTBOX = 100_000
#: seconds a node whose peers went silent waits at most for JetStream to take a write before it
#: fences itself (the majority side of a partition may need seconds to elect new leaders)
STANDING_TIMEOUT = 10.0
#: seconds a node waits at most for the others to apply a registry change before it answers the
#: client anyway (their watches lag while JetStream elects a new leader: seconds)
SYNC_TIMEOUT = 10.0
#: dead incarnations remembered (each is ignored if it speaks again)
MAX_DEAD = 10_000


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """What a node needs to join its cluster (the node config's ``cluster:`` section)."""

    name: str
    node: str
    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    credentials: str | None = None
    tls: ssl.SSLContext | None = None
    #: seconds between two heartbeats of a node
    heartbeat_interval: float = 0.25
    #: a node silent this long is dead (its peers drop its state); one that could not confirm its
    #: own heartbeat this long fences itself
    failure_timeout: float = 1.5
    #: JetStream replicas of the cluster's KV buckets (3 in production: survives a NATS server)
    replicas: int = 1


class NodeMember:
    """Another node, as a member of a subscription in a realm's interest view."""

    __slots__ = ("incarnation", "session_id")
    identity = None

    def __init__(self, incarnation: str) -> None:
        self.incarnation = incarnation
        # the store keys members by an integer: one derived from the incarnation (only nodes are
        # members of the interest store, so it cannot clash with a session ID there)
        self.session_id = int.from_bytes(hashlib.blake2b(incarnation.encode(), digest_size=7).digest(), "big")


@dataclass(slots=True)
class _InterestEntry:
    realm: str
    match: str
    topic: str
    incarnation: str


class RealmLink:
    """One realm's :class:`~cloverleaf.router.interfaces.ClusterRealm`: forwards publications to
    the nodes with matching subscriptions, publishes this node's interest."""

    __slots__ = ("cluster", "interest", "realm", "subscribers")

    def __init__(self, cluster: NatsCluster, realm: Realm) -> None:
        self.cluster = cluster
        self.realm = realm
        secret, name = cluster.secret, realm.name
        #: the other nodes' subscriptions: members are :class:`NodeMember` s; the IDs are the
        #: cluster-wide ones
        self.interest: LocalSubscriptionStore[NodeMember] = LocalSubscriptionStore(
            id_for=lambda topic, match: scoped_id(secret, "subscription", name, match, topic)
        )
        #: (subscription ID, incarnation) -> that node's subscriber session IDs
        self.subscribers: dict[tuple[int, str], list[int]] = {}

    # -- the subscription meta API across nodes ---------------------------------------------------

    def remote_subscriptions(self) -> list[Subscription[Any]]:
        return self.interest.all()

    def remote_subscription(self, subscription_id: int) -> Subscription[Any] | None:
        return self.interest.get(subscription_id)

    def remote_lookup(self, topic: str, match: str) -> Subscription[Any] | None:
        return self.interest.lookup(topic, match)

    def remote_matching(self, topic: str) -> tuple[Subscription[Any], ...]:
        return self.interest.matching(topic)

    def remote_subscribers(self, subscription_id: int) -> list[int]:
        """The session IDs subscribed on other nodes to the subscription with this ID."""
        found = self.interest.get(subscription_id)
        if found is None:
            return []
        return [sid for member in found.subscribers.values()
                for sid in self.subscribers.get((subscription_id, member.incarnation), ())]  # fmt: skip

    def retained_changed(self, topic: str, events: list[RetainedEvent], then: Callable[[], None] | None = None) -> None:
        self.cluster.retained.changed(self.realm.name, topic, events, then)

    def subscription_elsewhere(self, topic: str, match: str) -> bool:
        return self.interest.lookup(topic, match) is not None

    def forward_publication(
        self,
        topic: str,
        publication: int,
        details: dict[str, Any],
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        audience: Audience,
    ) -> None:
        targets: set[str] = set()
        for subscription in self.interest.matching(topic):
            for member in subscription.subscribers.values():
                targets.add(member.incarnation)
        if not targets:
            return
        lists = None if audience.unrestricted else [
            _listed(audience.exclude), _listed(audience.eligible), _listed(audience.exclude_authid),
            _listed(audience.exclude_authrole), _listed(audience.eligible_authid), _listed(audience.eligible_authrole),
        ]  # fmt: skip
        payload = wire.encode(
            wire.Publication(
                self.realm.name,
                topic,
                publication,
                details,
                args,
                kwargs,
                audience.publisher,
                audience.exclude_me,
                lists or [None] * 6,
            )
        )
        for incarnation in targets:
            self.cluster.send(incarnation, payload)

    def interest_changed(self, subscription: Subscription[Any], then: Callable[[], None] | None = None) -> None:
        self.cluster.publish_interest(self.realm.name, subscription, then)

    def register(
        self, session: RouterSession, request: int, procedure: str, match: str, invoke: str, options: dict[str, Any]
    ) -> None:
        self.cluster.rpc.register(self.realm, session, request, procedure, match, invoke, options)

    def callees_changed(self, registration: Registration[Any], then: Callable[[], None] | None = None) -> None:
        self.cluster.rpc.callees_changed(self.realm, registration, then)

    def subscribers_gone(self, removed: list[tuple[Subscription[NodeMember], bool]],
                         sessions: dict[int, list[int]]) -> None:  # fmt: skip
        """A dead node's subscriptions left this realm's view (``removed``: each with whether no
        other node has it left; ``sessions``: its subscriber session IDs per subscription): tell
        this node's subscribers, as a single router tells of each leaving session's subscriptions
        (each survivor tells its own, so each subscriber hears it once)."""
        meta = self.realm.meta
        local = self.realm.broker.subscriptions
        for subscription, deleted in removed:
            ids = sessions.get(subscription.id, [])
            if subscription.topic.startswith("wamp.") or not ids:
                continue  # (no meta events about the router's own topics, as on one node)
            for session_id in ids:
                meta.publish_local("wamp.subscription.on_unsubscribe", session_id, subscription.id)
            if deleted and local.lookup(subscription.topic, subscription.match) is None:
                meta.publish_local("wamp.subscription.on_delete", ids[-1], subscription.id)

    def deliver(self, message: wire.Publication) -> None:
        """A publication another node forwarded: to this node's subscribers."""
        audience = Audience(message.publisher, message.exclude_me, *(_frozen(x) for x in message.lists))
        self.realm.broker.deliver(message.topic, message.publication, message.details, message.args,
                                  message.kwargs, audience)  # fmt: skip


def _listed(values: frozenset[Any] | None) -> list[Any] | None:
    return None if values is None else sorted(values)


def _frozen(values: list[Any] | None) -> frozenset[Any] | None:
    return None if values is None else frozenset(values)


class ClusterService(Protocol):
    """A part of the cluster back end with state of its own (sessions, registrations): started once
    the node is connected (it may create KV buckets, add ``handlers`` and ``on_node_down``
    callbacks), stopped before the connection closes."""

    async def start(self, cluster: NatsCluster) -> None: ...

    async def stop(self) -> None: ...


def _batches(payloads: list[bytes], limit: int) -> list[bytes]:
    """``payloads`` (for one node, in order) as NATS message bodies: one alone as it is, several
    in :class:`~cloverleaf.cluster.wire.Batch` es of at most about ``limit`` bytes."""
    if len(payloads) == 1:
        return payloads
    bodies: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for payload in payloads:
        if chunk and size + len(payload) > limit:
            bodies.append(chunk[0] if len(chunk) == 1 else wire.encode_batch(chunk))
            chunk, size = [], 0
        chunk.append(payload)
        size += len(payload) + 8
    if chunk:
        bodies.append(chunk[0] if len(chunk) == 1 else wire.encode_batch(chunk))
    return bodies


@dataclass(slots=True)
class _Peer:
    node: str
    last_seen: float
    sequence: int = 0


def _cleaning_up(step: Callable[[Any], None], argument: Any, dead: str) -> None:
    """One step of the clean-up after the dead node ``dead``: a failure is logged and the other
    steps go on."""
    try:
        step(argument)
    except Exception:
        limited_log.log("cluster node down", logging.ERROR, "cluster: cleaning up after %s failed", dead,
                        exc_info=True)  # fmt: skip


@dataclass(slots=True)
class _Duty:
    """A dead node's janitor work that another survivor was to do (kept in case it dies too)."""

    found_at: float
    janitor: str
    works: list[Callable[[bool], None]]


@dataclass
class NatsCluster:
    """This node's membership in a cluster on NATS. ``start()`` before the node accepts clients,
    ``stop()`` after its sessions are gone."""

    settings: ClusterSettings
    router: Router
    incarnation: str = field(default_factory=incarnation_id)
    stats: ClusterStats = field(default_factory=ClusterStats)

    def __post_init__(self) -> None:
        self.prefix = f"cloverleaf.{key_token(self.settings.name)}"
        self.links: dict[str, RealmLink] = {}
        self.peers: dict[str, _Peer] = {}
        self.secret = hashlib.blake2b(f"cloverleaf cluster {self.settings.name}".encode(), digest_size=32).digest()
        self._nc: nats.aio.client.Client | None = None
        self._subscriptions_kv: nats.js.kv.KeyValue | None = None
        self._dataplane: DataPlane | None = None
        #: inbox subject -> what this event-loop pass sends to that node, in order
        self._outbox: dict[str, list[bytes]] = {}
        self._outbox_count = 0
        self._outbox_scheduled = False
        self._interest_dirty: dict[str, tuple[str, Subscription[Any], list[Callable[[], None]]]] = {}
        self._interest_ready = asyncio.Event()
        #: KV key -> what it says, for every interest entry seen (so a deletion can be undone locally)
        self._interest_entries: dict[str, _InterestEntry] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: Any = None
        self._last_own_heartbeat = 0.0
        self.on_fence: Callable[[str], None] | None = None
        self._members: dict[str, NodeMember] = {}
        #: this node fenced itself: it routes nothing more through the cluster until replaced
        self.fenced = False
        self._standing: asyncio.Task[bool] | None = None
        self._nodes_kv: nats.js.kv.KeyValue | None = None
        #: bucket -> the highest revision this node's watcher of it has applied
        self._applied: dict[str, int] = {}
        self._sync_waiters: list[tuple[str, int, asyncio.Future[None]]] = []
        self._sync_tasks: set[asyncio.Task[None]] = set()
        #: janitor work waiting for its failure timeout (cancelled when the node stops)
        self._later: set[asyncio.TimerHandle] = set()
        self._stopping = False
        self._interest_bucket = ""
        #: message kind -> what handles it when it arrives in this node's inbox
        self.handlers: dict[int, Callable[[Any], None]] = {wire.Publication.KIND: self._on_publication}
        #: called with the incarnation of each node found dead, after its interest is dropped
        self.on_node_down: list[Callable[[str], None]] = []
        #: incarnations found dead or gone (a dead incarnation never comes back: what a thawed one
        #: still says is ignored), the latest at most MAX_DEAD
        self.dead: dict[str, None] = {}
        #: dead incarnation -> the janitor work another survivor was to do for it, for a while
        self._duties: dict[str, _Duty] = {}
        #: while the on_node_down callbacks run: the node dropped and whether its departure is told
        self._dropping: tuple[str, bool] | None = None
        #: registrations cluster-wide and the RPC traffic
        self.rpc = ClusterRegistry(self)
        #: retained events cluster-wide
        self.retained = RetainedEvents()
        #: parts of the back end started after the connection and stopped before it closes, in order
        self.services: list[ClusterService] = [self.rpc, self.retained]

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def nats(self) -> nats.aio.client.Client:
        """The NATS connection (once started)."""
        if self._nc is None:
            raise RuntimeError("the cluster back end is not started")
        return self._nc

    @property
    def max_payload(self) -> int:
        """The largest message the NATS server takes, in bytes."""
        return self._dataplane.max_payload if self._dataplane is not None else 1024 * 1024

    def bucket_name(self, kind: str) -> str:
        """The name of the cluster's KV bucket for ``kind`` (sessions, registrations, ...)."""
        return f"cloverleaf-{key_token(self.settings.name)}-{kind}"

    async def open_bucket(self, kind: str, ttl: float = 0) -> KeyValue:
        """The cluster's KV bucket for ``kind``, created (with the configured replicas) by the
        first node that needs it.

        JetStream answers late or "temporarily unavailable" while its servers elect a meta or
        stream leader, and an R3 stream's creation waits for its replicas' disks: such answers are
        retried, with backoff, for up to ``BUCKET_PATIENCE`` seconds. So is "no suitable peers for
        placement" (JetStream error 10005): a replica whose server has just (re)joined the cluster is
        reported offline until the meta leader has heard from it. Anything else (a bucket that
        exists with another configuration, a missing permission) fails at once."""
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeoutError
        from nats.js.api import KeyValueConfig
        from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError, ServiceUnavailableError

        js = self.nats.jetstream()
        name = self.bucket_name(kind)
        config = KeyValueConfig(bucket=name, history=1, replicas=self.settings.replicas, ttl=ttl or None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUCKET_PATIENCE
        delay = 0.1
        while True:
            try:
                try:
                    return await js.key_value(name)
                except (BucketNotFoundError, NotFoundError):
                    return await js.create_key_value(config)
            except (NatsTimeoutError, TimeoutError, NoRespondersError, ServiceUnavailableError, BadRequestError) as exc:
                if isinstance(exc, BadRequestError) and exc.err_code != NO_PEERS_FOR_PLACEMENT:
                    raise
                if loop.time() + delay > deadline:
                    raise
                log.warning("cluster: JetStream has not opened the %s bucket yet (%s); retrying",
                            name, getattr(exc, "description", None) or type(exc).__name__)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def watch_bucket(self, kv: KeyValue, apply: Callable[[Any], None],
                           what: str) -> tuple[Any, Coroutine[Any, Any, None]]:  # fmt: skip
        """Watch ``kv``: every entry already there goes through ``apply`` before this returns; then
        the returned coroutine (for the caller to run as a task) follows every later change. An
        ``apply`` that fails is logged (``what``: what an entry is, for the log) and the watch goes on."""
        watcher = await kv.watchall()
        while True:
            entry = await watcher.updates(timeout=10)  # type: ignore[no-untyped-call]
            if entry is None:  # the end of what was there before
                break
            apply(entry)

        async def follow() -> None:
            async for entry in watcher:
                if entry is not None:
                    try:
                        apply(entry)
                    except Exception:
                        limited_log.log(f"cluster {what}", logging.ERROR, "cluster: applying %s failed", what,
                                        exc_info=True)  # fmt: skip

        return watcher, follow()

    @staticmethod
    async def wind_down(busy: Callable[[], bool], flush: float, tasks: set[asyncio.Task[None]],
                        watcher: Any) -> None:  # fmt: skip
        """A service's stop: give its writer up to ``flush`` seconds to finish what ``busy`` says
        is left (a node that cannot finish is cleaned up by the others as a dead one), then cancel
        its ``tasks`` and stop its ``watcher``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush
        while busy() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # a cancel of the caller still ends it
        tasks.clear()
        if watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher.stop(), 1.0)

    @property
    def inbox(self) -> str:
        return f"{self.prefix}.node.{self.incarnation}"

    def inbox_of(self, incarnation: str) -> str:
        return f"{self.prefix}.node.{incarnation}"

    async def start(self) -> None:
        """Connect, attach every realm of the router, and load the cluster's view."""
        import nats

        settings = self.settings
        self._nc = nc = await nats.connect(
            servers=settings.servers, name=f"cloverleaf {settings.node} {self.incarnation}",
            user=settings.user, password=settings.password, token=settings.token,
            user_credentials=settings.credentials, tls=settings.tls,
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=5,
            ping_interval=max(1, round(settings.failure_timeout)), max_outstanding_pings=2,
            error_cb=self._nats_error, disconnected_cb=self._nats_disconnected, reconnected_cb=self._nats_reconnected,
        )  # fmt: skip
        self._dataplane = DataPlane(
            settings.servers, {self.inbox: self._on_inbox, f"{self.prefix}.heartbeat": self._on_heartbeat},
            name=f"cloverleaf {settings.node} {self.incarnation} data", user=settings.user,
            password=settings.password, token=settings.token, credentials=settings.credentials, tls=settings.tls,
            # a frozen NATS server is left (three unanswered PINGs) before the node's own heartbeats
            # have been missing for failure_timeout, so a node reconnects rather than fences itself
            ping_interval=max(0.1, settings.failure_timeout / 4),
        )  # fmt: skip
        await self._dataplane.start()
        self._interest_bucket = self.bucket_name("subscriptions")
        self._subscriptions_kv = await self.open_bucket("subscriptions")
        for realm in self.router.realms.values():
            self.attach(realm)
        self._nodes_kv = await self.open_bucket("nodes", ttl=3600)
        for service in self.services:
            await service.start(self)
        await nc.subscribe(f"{self.inbox}.sync", cb=self._on_sync)
        await self._load_interest()
        loop = asyncio.get_running_loop()
        self._last_own_heartbeat = loop.time()
        for work in (self._write_interest(), self._heartbeats(), self._watch_peers()):
            self._tasks.append(loop.create_task(work))
        # every live node beats every heartbeat_interval: after a bit more than one, this node knows
        # them all, so its first sessions' changes wait for every node (read your writes)
        await asyncio.sleep(self.settings.heartbeat_interval * 1.5)
        if self._interest_dirty:
            # the node's own subscriptions (event history) are known everywhere before it is ready
            written: asyncio.Future[None] = loop.create_future()
            last = next(reversed(self._interest_dirty))

            def done() -> None:
                if not written.done():
                    written.set_result(None)

            self._interest_dirty[last][2].append(done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(written, 3.0)
        log.info("cluster %s: node %s joined as incarnation %s via %s", settings.name, settings.node,
                 self.incarnation, nc.connected_url.netloc if nc.connected_url else "?")  # fmt: skip

    def attach(self, realm: Realm) -> None:
        """Link one realm to the cluster (before any session joins it)."""
        link = RealmLink(self, realm)
        self.links[realm.name] = link
        realm.cluster = link
        secret, name = self.secret, realm.name
        broker = realm.broker
        earlier = broker.subscriptions.all()  # the node's own: event history recorders
        broker.subscriptions = LocalSubscriptionStore(
            id_for=lambda topic, match: scoped_id(secret, "subscription", name, match, topic)
        )
        for subscription in earlier:
            for member in subscription.subscribers.values():
                moved, _ = broker.subscriptions.subscribe(subscription.topic, subscription.match, member)
                if broker.history.get(subscription.id) is member:
                    del broker.history[subscription.id]
                    broker.history[moved.id] = member
            # so that other nodes send this node the events its history keeps
            kept = broker.subscriptions.lookup(subscription.topic, subscription.match)
            if kept is not None:
                self.publish_interest(name, kept, None)
        self.rpc.attach(realm)

    async def stop(self) -> None:
        """Withdraw this node's state, tell the others it leaves, then leave NATS (each step bounded:
        what a stopping node cannot finish, the others clean up as after a dead one)."""
        self._stopping = True
        for handle in self._later:
            handle.cancel()
        self._later.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while self._interest_dirty and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        # gather, not `await task` under suppress(BaseException): that also swallowed a cancel of
        # stop() itself, so a caller's timeout around stop() could not end it
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop(), 4.0)
        kv = self._subscriptions_kv
        if kv is not None:
            mine = [key for key, entry in self._interest_entries.items() if entry.incarnation == self.incarnation]
            if mine:  # at once, and bounded as a whole (one second per key added up on a slow JetStream)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.gather(*(kv.delete(key) for key in mine), return_exceptions=True),
                                           1.5)  # fmt: skip
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._watcher.stop(), 1.0)
        if self._dataplane is not None:
            self._flush_outbox()
            # after everything this node sent (one connection: the others read it in this order)
            self._dataplane.publish(
                f"{self.prefix}.heartbeat", wire.encode(wire.NodeLeaving(self.incarnation, self.settings.node))
            )
            await self._dataplane.close(1.0)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 2.0)
        for realm_name, link in self.links.items():
            realm = self.router.realms.get(realm_name)
            if realm is not None and realm.cluster is link:
                realm.cluster = None

    # -- sending ---------------------------------------------------------------------------------

    def send(self, incarnation: str, payload: bytes) -> None:
        """Queue one message for another node (never blocks); nothing once this node is fenced
        (the others have dropped it: what its closing sessions publish must not reach them).
        Everything queued for one node in one event-loop pass leaves as one NATS message."""
        if self.fenced:
            return
        if self._outbox_count >= MAX_OUTBOX:
            self.stats.dropped += 1
            limited_log.warning("cluster outbox full", "cluster outbox full (%d messages): message to %s dropped",
                                MAX_OUTBOX, incarnation)  # fmt: skip
            return
        subject = self.inbox_of(incarnation)
        queued = self._outbox.get(subject)
        if queued is None:
            self._outbox[subject] = [payload]
        else:
            queued.append(payload)
        self._outbox_count += 1
        if not self._outbox_scheduled:
            self._outbox_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        self._outbox_scheduled = False
        plane = self._dataplane
        outbox, self._outbox = self._outbox, {}
        self._outbox_count = 0
        if plane is None:
            return
        limit = max(4096, plane.max_payload // 2)
        for subject, payloads in outbox.items():
            for data in _batches(payloads, limit):
                if plane.publish(subject, data):
                    self.stats.sent += 1
                else:
                    self.stats.dropped += 1
                    limited_log.warning("cluster send failed", "cluster: NATS buffer full: a message to %s dropped",
                                        subject)  # fmt: skip

    # -- receiving -------------------------------------------------------------------------------

    def _on_inbox(self, data: bytes) -> None:
        self.stats.received += 1
        message = self._read(wire.decode, data)
        if isinstance(message, wire.Batch):
            for value in message.messages:
                inner = self._read(wire.from_value, value)
                if inner is not None and not isinstance(inner, wire.Batch):
                    self._dispatch(inner)
        elif message is not None:  # (None: unreadable, or a kind from a newer node)
            self._dispatch(message)

    def _read(self, read: Callable[[Any], Any], data: Any) -> Any:
        """``read(data)``; None, counted and logged, for what is not a node-to-node message."""
        try:
            return read(data)
        except wire.WireError as exc:
            self.stats.undecodable += 1
            limited_log.warning("cluster bad message", "cluster: unreadable message in the inbox: %s", exc)
            return None

    def _dispatch(self, message: Any) -> None:
        handler = self.handlers.get(message.KIND)
        if handler is None:
            return
        try:
            handler(message)
        except Exception:
            limited_log.log("cluster handler failed", logging.ERROR,
                            "cluster: handling %s failed", type(message).__name__, exc_info=True)  # fmt: skip

    def _on_publication(self, message: wire.Publication) -> None:
        link = self.links.get(message.realm)
        if link is not None:
            link.deliver(message)

    # -- subscription interest -------------------------------------------------------------------

    def _interest_key(self, realm: str, subscription: Subscription[Any]) -> str:
        return kv_key(realm, subscription.match, subscription.topic, self.incarnation)

    def publish_interest(self, realm: str, subscription: Subscription[Any], then: Callable[[], None] | None) -> None:
        """Schedule writing this node's subscribers of ``subscription`` (or deleting the entry);
        ``then`` is called once every live node has applied the write."""
        key = self._interest_key(realm, subscription)
        pending = self._interest_dirty.pop(key, None)
        waiting = pending[2] if pending is not None else []
        if then is not None:
            waiting.append(then)
        self._interest_dirty[key] = (realm, subscription, waiting)  # (re-inserted last: written in order)
        self._interest_ready.set()

    async def _write_interest(self) -> None:
        kv = self._subscriptions_kv
        assert kv is not None
        while True:
            await self._interest_ready.wait()
            self._interest_ready.clear()
            while self._interest_dirty:
                key = next(iter(self._interest_dirty))
                realm, subscription, waiting = self._interest_dirty.pop(key)
                members = subscription.subscribers
                # the meta API's subscribers are sessions; a history recorder still makes the node interested
                sessions = sorted(sid for sid, member in members.items() if not isinstance(member, HistoryRecorder))
                try:
                    # no subscriber left is written too (an empty list, read as no interest): a
                    # revision that can be waited for, as a deletion's could not
                    value = msgpack.packb([realm, subscription.match, subscription.topic, self.incarnation,
                                           sessions, subscription.created, bool(members)])  # fmt: skip
                    revision = await kv.put(key, value)
                    self._interest_entries[key] = _InterestEntry(realm, subscription.match, subscription.topic,
                                                                 self.incarnation)  # fmt: skip
                except Exception as exc:
                    # retried: the entry is written again when NATS answers
                    limited_log.warning("cluster interest write", "cluster: writing interest %s failed: %s", key, exc)
                    pending = self._interest_dirty.pop(key, None)
                    self._interest_dirty[key] = (realm, subscription, waiting + (pending[2] if pending else []))
                    await asyncio.sleep(0.1)
                    continue
                if waiting:
                    await self.barrier(self._interest_bucket, revision)
                    for then in waiting:
                        try:
                            then()
                        except Exception:
                            limited_log.log("cluster interest", logging.ERROR, "cluster: answering a SUBSCRIBE failed",
                                            exc_info=True)  # fmt: skip

    async def _load_interest(self) -> None:
        """Start watching the interest bucket; return once the entries already there are loaded."""
        kv = self._subscriptions_kv
        assert kv is not None
        self._watcher, follow = await self.watch_bucket(kv, self._apply_interest, "an interest entry")
        self._tasks.append(asyncio.get_running_loop().create_task(follow))

    def _apply_interest(self, entry: Any) -> None:
        try:
            self._apply_interest_entry(entry)
        finally:
            if entry.revision is not None:
                self.applied(self._interest_bucket, entry.revision)

    def _apply_interest_entry(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE"):
            known = self._interest_entries.pop(entry.key, None)
            if known is not None and known.incarnation != self.incarnation:
                link = self.links.get(known.realm)
                if link is not None:
                    self._drop_interest(link, known)
            return
        try:
            realm, match, topic, incarnation, sessions, *more = msgpack.unpackb(entry.value, raw=False)
        except Exception:
            limited_log.warning("cluster interest", "cluster: unreadable interest entry %s", entry.key)
            return
        if incarnation == self.incarnation or incarnation in self.dead:
            return
        known = _InterestEntry(realm, match, topic, incarnation)
        link = self.links.get(realm)
        interested = bool(more[1]) if len(more) > 1 else bool(sessions)
        if not interested:  # no subscriber left on that node
            self._interest_entries.pop(entry.key, None)
            if link is not None:
                self._drop_interest(link, known)
            return
        self._interest_entries[entry.key] = known
        if link is None:
            return
        self.expect_peer(incarnation)
        subscription, _created = link.interest.subscribe(topic, match, self._member(incarnation))
        link.subscribers[(subscription.id, incarnation)] = list(sessions)
        if more and not subscription.created:
            subscription.created = str(more[0])

    def expect_peer(self, incarnation: str) -> bool:
        """A KV entry names ``incarnation``: count it as alive until it has been silent for the
        failure timeout (entries can arrive before a node's first heartbeat; one of a node that
        died earlier is then cleaned up like any dead node's). False for this node itself and for
        a node found dead already (its entries are being cleaned up)."""
        if incarnation == self.incarnation or incarnation in self.dead:
            return False
        if incarnation not in self.peers:
            self.peers[incarnation] = _Peer("?", asyncio.get_running_loop().time())
        return True

    def _drop_interest(self, link: RealmLink, entry: _InterestEntry) -> None:
        subscription = link.interest.lookup(entry.topic, entry.match)
        if subscription is not None:
            link.interest.unsubscribe(subscription.id, self._member(entry.incarnation))
            link.subscribers.pop((subscription.id, entry.incarnation), None)

    def _member(self, incarnation: str) -> NodeMember:
        member = self._members.get(incarnation)
        if member is None:
            member = self._members[incarnation] = NodeMember(incarnation)
        return member

    # -- read your writes across nodes -------------------------------------------------------------

    def applied(self, bucket: str, revision: int) -> None:
        """This node's watcher of ``bucket`` has applied everything up to ``revision``."""
        if revision <= self._applied.get(bucket, 0):
            return
        self._applied[bucket] = revision
        still = []
        for wanted_bucket, wanted, future in self._sync_waiters:
            if wanted_bucket == bucket and wanted <= revision:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((wanted_bucket, wanted, future))
        self._sync_waiters = still

    async def barrier(self, bucket: str, revision: int, timeout: float = SYNC_TIMEOUT) -> None:
        """Return once every live node has applied ``bucket`` up to ``revision``, so that a
        SUBSCRIBED or REGISTERED is sent when a publication or call on any node would see it. A
        node that stops being live meanwhile (found dead, gone, no responders) is not waited for;
        a live node whose watch lags (JetStream electing a new leader) is, up to ``timeout``."""
        if not self.peers:
            return
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        payload = msgpack.packb([bucket, revision])
        nc = self.nats
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def one(incarnation: str) -> None:
            while incarnation in self.peers and loop.time() < deadline:
                try:
                    await nc.request(f"{self.inbox_of(incarnation)}.sync", payload, timeout=0.5)
                    return
                except (NatsTimeout, TimeoutError):
                    continue  # still live? ask again
                except NoRespondersError:
                    return  # its inbox is gone: it is dead or leaving
                except Exception:
                    return

        await asyncio.gather(*(one(incarnation) for incarnation in list(self.peers)))

    async def _on_sync(self, msg: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._answer_sync(msg))
        self._sync_tasks.add(task)
        task.add_done_callback(self._sync_tasks.discard)

    async def _answer_sync(self, msg: Any) -> None:
        try:
            bucket, revision = msgpack.unpackb(msg.data, raw=False)
            if self._applied.get(bucket, 0) < revision:
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._sync_waiters.append((bucket, revision, future))
                try:
                    await asyncio.wait_for(future, 0.45)
                except TimeoutError:
                    return  # not there yet: the asking node asks again while this node is live
            await msg.respond(b"")
        except Exception:
            limited_log.debug("cluster sync", "cluster: answering a sync request failed")

    # -- membership ------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        plane = self._dataplane
        assert plane is not None
        sequence = 0
        subject = f"{self.prefix}.heartbeat"
        while True:
            sequence += 1
            # on the data plane: a node is alive for the others exactly while its traffic flows
            plane.publish(subject, wire.encode(wire.Heartbeat(self.incarnation, self.settings.node, sequence)))
            await asyncio.sleep(self.settings.heartbeat_interval)

    def _on_heartbeat(self, data: bytes) -> None:
        try:
            beat = wire.decode(data)
        except wire.WireError:
            self.stats.undecodable += 1
            return
        if isinstance(beat, wire.NodeLeaving):
            peer = self.peers.get(beat.incarnation)
            if peer is not None and beat.incarnation != self.incarnation:
                self._node_down(beat.incarnation, peer, 0.0, leaving=True)
            return
        if not isinstance(beat, wire.Heartbeat):
            return
        now = asyncio.get_running_loop().time()
        if beat.incarnation == self.incarnation:
            self._last_own_heartbeat = now
            return
        if beat.incarnation in self.dead:
            return  # a frozen node thawed: it fences itself and comes back as a new incarnation
        peer = self.peers.get(beat.incarnation)
        if peer is None or peer.node == "?":
            if peer is None:
                self.stats.nodes_seen += 1
            log.info("cluster %s: node %s (%s) is up", self.settings.name, beat.node, beat.incarnation)
            self.peers[beat.incarnation] = peer = _Peer(beat.node, now)
        peer.last_seen = now
        peer.sequence = beat.sequence

    async def _watch_peers(self) -> None:
        timeout = self.settings.failure_timeout
        loop = asyncio.get_running_loop()
        last_tick = loop.time()
        while True:
            await asyncio.sleep(min(0.1, timeout / 4))
            now = loop.time()
            stalled, last_tick = now - last_tick, now
            own_silence = now - self._last_own_heartbeat
            if stalled > timeout and self.on_fence is not None and not self.fenced:
                # this process did not run for longer than the peers wait (frozen, or its loop
                # blocked): they have declared it dead whatever its heartbeats say now
                self.fenced = True
                self.on_fence(f"this process was stalled for {stalled:.1f} s")
                continue
            if own_silence > timeout:
                # our own view is stale (NATS unreachable, or this process was frozen): the peers'
                # silence proves nothing about them, and they have dropped this node already
                if self.on_fence is not None and not self.fenced:
                    self.fenced = True
                    self.on_fence(f"its own heartbeat did not come back for {own_silence:.1f} s")
                continue
            lost = False
            for incarnation, peer in list(self.peers.items()):
                if now - peer.last_seen > timeout:
                    self._node_down(incarnation, peer, now - peer.last_seen)
                    lost = True
            if lost and self._standing is None:
                self._standing = loop.create_task(self._confirm_standing())

    async def standing(self) -> bool:
        """Whether JetStream takes this node's writes (a check runs now if none is running): a
        node on the minority side of a partition must not clean up after nodes it merely cannot
        hear (its writes could land after the heal and delete live state)."""
        task = self._standing
        if task is None:
            task = self._standing = asyncio.get_running_loop().create_task(self._confirm_standing())
        return await asyncio.shield(task)

    async def _confirm_standing(self) -> bool:
        """Other nodes went silent: either they are gone, or this node is on the wrong side of a
        partition (its NATS server still echoes its heartbeats, but JetStream has no majority
        here). Write to the cluster's replicated ``nodes`` bucket until it takes a write: a node
        whose writes fail for ``STANDING_TIMEOUT`` (long enough for the majority side to elect
        new JetStream leaders) fences itself, so the two sides of a partition never both keep
        routing on their own views."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(STANDING_TIMEOUT, 3 * self.settings.failure_timeout)
        problem: object = None
        try:
            kv = self._nodes_kv
            assert kv is not None
            while loop.time() < deadline and not self.fenced:
                try:
                    await asyncio.wait_for(kv.put(self.incarnation, self.settings.node.encode()), 1.0)
                    return True
                except Exception as exc:
                    problem = exc or type(exc).__name__
                    await asyncio.sleep(0.2)
            if self.on_fence is not None and not self.fenced:
                self.fenced = True
                self.on_fence(f"other nodes went silent and JetStream took no write here for "
                              f"{max(STANDING_TIMEOUT, 3 * self.settings.failure_timeout):g} s ({problem}): this "
                              f"node is cut off from the cluster's majority")  # fmt: skip
            return False
        finally:
            self._standing = None

    def _node_down(self, incarnation: str, peer: _Peer, silent: float, leaving: bool = False) -> None:
        del self.peers[incarnation]
        self.stats.nodes_lost += 1
        if leaving:
            log.info("cluster %s: node %s (%s) left", self.settings.name, peer.node, incarnation)
        else:
            log.warning("cluster %s: node %s (%s) is gone (silent for %.1f s): dropping its state",
                        self.settings.name, peer.node, incarnation, silent)  # fmt: skip
        self.dead[incarnation] = None
        while len(self.dead) > MAX_DEAD:
            del self.dead[next(iter(self.dead))]
        # a node that said it leaves: its sessions told their leaving themselves; one never heard
        # from (its entries outlived it): this node's subscribers never heard of its sessions
        announce = not leaving and peer.node != "?"
        member = self._members.pop(incarnation, None)
        if member is not None:
            for link in self.links.values():
                sessions: dict[int, list[int]] = {}
                for pair in [pair for pair in link.subscribers if pair[1] == incarnation]:
                    sessions[pair[0]] = link.subscribers.pop(pair)
                removed = link.interest.remove_member(member)
                if announce:
                    try:
                        link.subscribers_gone(removed, sessions)
                    except Exception:
                        limited_log.log("cluster node down", logging.ERROR, "cluster: meta events about %s failed",
                                        incarnation, exc_info=True)  # fmt: skip
        stale = [key for key, entry in self._interest_entries.items() if entry.incarnation == incarnation]
        for key in stale:
            del self._interest_entries[key]
        if stale:
            self.janitor_work(incarnation, lambda _at_once: self.later(lambda: self._purge(stale)))
        self._dropping = (incarnation, announce)
        try:
            for callback in self.on_node_down:
                _cleaning_up(callback, incarnation, incarnation)
        finally:
            self._dropping = None
        self._take_over(incarnation, peer)

    def tells_departure(self, incarnation: str) -> bool:
        """In an ``on_node_down`` callback: whether this node's subscribers are told about the
        dropped node's sessions (meta events for their subscriptions, registrations, leaving).
        Not for a node that said it leaves (its sessions told it as they left) nor for one never
        heard from (its entries outlived it: nobody here heard of its sessions)."""
        return self._dropping == (incarnation, True)

    def is_janitor(self) -> bool:
        """The live node with the smallest incarnation cleans up after dead ones."""
        return all(self.incarnation < other for other in self.peers)

    def janitor_work(self, incarnation: str, work: Callable[[bool], None]) -> None:
        """In an ``on_node_down`` callback: run ``work`` now if this node is the janitor; else keep
        it for three failure timeouts, and run it if the janitor dies meanwhile (two nodes dying
        at the same moment: the janitor may have died before it found the other dead). ``work``
        gets ``at_once``: True when run now, or when the dead janitor never found the node dead
        (its last heartbeat came before this node found it dead), so that what a janitor does at
        once (publishing testaments) is done once; False when the dead janitor may have done that
        part (only the idempotent KV cleanup is left to do)."""
        if self.is_janitor():
            work(True)
            return
        loop = asyncio.get_running_loop()
        duty = self._duties.get(incarnation)
        if duty is None:
            duty = self._duties[incarnation] = _Duty(loop.time(), min(self.peers), [])
        duty.works.append(work)

    def _take_over(self, incarnation: str, peer: _Peer) -> None:
        """``incarnation`` (last heard at ``peer.last_seen``) died: the duties it had as janitor
        pass to the next one, this node's if it is that one now."""
        now = asyncio.get_running_loop().time()
        horizon = now - 3 * self.settings.failure_timeout - self.settings.failure_timeout
        for dead, duty in list(self._duties.items()):
            if duty.found_at < horizon:
                del self._duties[dead]  # long done by its janitor
            elif duty.janitor == incarnation:
                if not self.is_janitor():
                    duty.janitor = min(self.peers)
                    continue
                del self._duties[dead]
                at_once = peer.last_seen < duty.found_at
                log.info("cluster %s: janitor %s died too: cleaning up after %s here", self.settings.name,
                         incarnation, dead)  # fmt: skip
                for work in duty.works:
                    _cleaning_up(work, at_once, dead)

    def later(self, cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the janitor's ``cleanup()`` of a dead node's KV entries a failure timeout from now:
        every survivor has found the node dead by then (and told its own subscribers about its
        state); one whose watcher saw the entries vanish first would drop that state silently.
        Nothing runs if the node stops or is fenced meanwhile."""
        loop = asyncio.get_running_loop()

        async def if_standing() -> None:
            if not self.fenced and not self._stopping and await self.standing():
                await cleanup()  # (the minority side of a partition cleans up nothing)

        def start() -> None:
            self._later.discard(handle)
            if self._stopping:
                return
            task = loop.create_task(if_standing())
            self._sync_tasks.add(task)
            task.add_done_callback(self._sync_tasks.discard)

        handle = loop.call_later(self.settings.failure_timeout, start)
        self._later.add(handle)

    async def _purge(self, keys: list[str]) -> None:
        """The janitor deletes a dead node's interest entries, retrying while JetStream is busy
        (a new leader being elected), for a minute at most, and never once this node is fenced
        (a fenced node's view of who is dead is not to be trusted)."""
        kv = self._subscriptions_kv
        assert kv is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0
        pending = list(keys)
        while pending and not self.fenced and loop.time() < deadline:
            try:
                await kv.delete(pending[0])
                pending.pop(0)
            except Exception:
                await asyncio.sleep(0.5)

    # -- NATS connection events --------------------------------------------------------------------

    async def _nats_error(self, exc: Exception) -> None:
        limited_log.warning("nats error", "cluster: NATS: %s", exc)

    async def _nats_disconnected(self) -> None:
        if not self._stopping:
            log.warning("cluster %s: disconnected from NATS", self.settings.name)

    async def _nats_reconnected(self) -> None:
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else "?"
        log.info("cluster %s: reconnected to NATS at %s", self.settings.name, url)

    @property
    def connected(self) -> bool:
        """Whether the node is connected to NATS now (both connections)."""
        plane = self._dataplane
        return bool(self._nc is not None and self._nc.is_connected and plane is not None and plane.is_connected)

    def status(self) -> dict[str, Any]:
        """What /metrics and the logs show of the cluster."""
        return {
            "cluster": self.settings.name, "node": self.settings.node, "incarnation": self.incarnation,
            "nats_connected": self.connected, "nodes": len(self.peers) + 1,
            "sent": self.stats.sent, "received": self.stats.received, "dropped": self.stats.dropped,
            "seen_at": time.time(),
        }  # fmt: skip
