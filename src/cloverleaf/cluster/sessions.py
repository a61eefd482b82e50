"""Sessions cluster-wide (docs/cluster.md): IDs claimed by compare-and-set, a view of every node's
sessions for the meta API, kills sent to the node holding the session.

:class:`SessionDirectory` is a :class:`~cloverleaf.cluster.backend.ClusterService`. Each joining
session's ID is claimed with a JetStream KV ``create()`` in the bucket
``cloverleaf-<cluster token>-sessions`` (key ``<realm>.<session id>``, value the MessagePack of
``[details, incarnation, node]``, the details as ``wamp.session.get`` gives them) before the router
WELCOMEs it; a clash makes the router draw another ID. While JetStream does not answer (a leader
election), the session is welcomed after :data:`CLAIM_PATIENCE` and claimed in the background. The
entry is deleted when the session leaves. Every node watches the bucket and keeps the other nodes' sessions per realm
(:class:`RealmSessions`, the realm's ``meta.cluster``).

When a node dies, every survivor drops its sessions from its view and tells its own subscribers
(``wamp.session.on_leave``, not forwarded: each survivor does it for its own, so each subscriber
hears it once); the janitor deletes the dead node's entries, a ``failure_timeout`` later so that
every survivor has noticed the death first (an entry deleted before a survivor noticed would leave
that survivor's subscribers without their ``on_leave``).

Testaments: a session's node keeps a copy of its testaments in its entry (the value's fourth item:
scope -> ``[topic, args, kwargs, publish options]`` in order), rewritten with compare-and-set on
each ``add_testament`` and ``flush_testaments`` (which answer once it is stored). A session that
leaves has its testaments published by its own node, as on a single router; when a node dies, the
janitor (alone) publishes its sessions' testaments cluster-wide, before their ``on_leave``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from ..router.meta import Testament
from ..router.ratelimit import RateLimitedLog
from . import wire
from .keys import kv_key
from .session_wire import KillSessions

if TYPE_CHECKING:
    from collections.abc import Callable

    import nats.js.kv

    from ..router.realm import Realm
    from ..router.router import Router
    from .backend import NatsCluster

log = logging.getLogger("cloverleaf.cluster.sessions")
#: seconds a join waits for JetStream to take its session ID claim before it is welcomed anyway
CLAIM_PATIENCE = 2.0  # (a loaded node's JetStream answer may take a second: above that)
#: seconds a join waits for the other nodes to apply its claim (read your writes) before WELCOME
CLAIM_SYNC_TIMEOUT = 3.0
limited_log = RateLimitedLog(log)


@dataclass(slots=True, frozen=True)
class RemoteSession:
    """A session of another node, as its KV entry tells it."""

    realm: str
    session_id: int
    details: dict[str, Any]
    incarnation: str
    node: str
    key: str
    #: its testaments, as its node stored them: scope -> [topic, args, kwargs, publish options]
    testaments: dict[str, list[Any]] | None = None

    def decoded_testaments(self) -> dict[str, list[Testament]]:
        found: dict[str, list[Testament]] = {}
        for scope, items in (self.testaments or {}).items():
            if type(scope) is not str or type(items) is not list:
                continue
            for item in items:
                if type(item) is list and len(item) == 4 and type(item[0]) is str:
                    topic, args, kwargs, options = item
                    found.setdefault(scope, []).append(Testament(
                        topic, args if type(args) is list else None, kwargs if type(kwargs) is dict else None,
                        options if type(options) is dict else {},
                    ))  # fmt: skip
        return found


class RealmSessions:
    """One realm's sessions on the other nodes: the realm's ``meta.cluster``
    (:class:`~cloverleaf.router.meta.ClusterSessions`)."""

    __slots__ = ("directory", "realm", "sessions")

    def __init__(self, directory: SessionDirectory, realm: Realm) -> None:
        self.directory = directory
        self.realm = realm
        #: session ID -> the session on another node
        self.sessions: dict[int, RemoteSession] = {}

    def remote_sessions(self) -> list[dict[str, Any]]:
        return [remote.details for remote in self.sessions.values()]

    def remote_session(self, session_id: int) -> dict[str, Any] | None:
        remote = self.sessions.get(session_id)
        return None if remote is None else remote.details

    def kill(self, session_ids: list[int], reason: str, message: str | None) -> None:
        by_node: dict[str, list[int]] = {}
        for session_id in session_ids:
            remote = self.sessions.get(session_id)
            if remote is not None:
                by_node.setdefault(remote.incarnation, []).append(session_id)
        cluster = self.directory.cluster
        for incarnation, sessions in by_node.items():
            cluster.send(incarnation, wire.encode(KillSessions(self.realm.name, sessions, reason, message)))
            for session_id in sessions:  # gone for this node's meta API at once, as a local kill
                del self.sessions[session_id]

    def left(self, session_id: int) -> None:
        self.directory.release(self.realm.name, session_id)

    def testaments_changed(self, session_id: int, testaments: dict[str, list[Testament]],
                           then: Callable[[], None]) -> None:  # fmt: skip
        stored = {scope: [[t.topic, t.args, t.kwargs, t.options] for t in items]
                  for scope, items in testaments.items() if items}  # fmt: skip
        self.directory.store_testaments(kv_key(self.realm.name, str(session_id)), stored, then)


class SessionDirectory:
    """Session IDs claimed cluster-wide and the view of every node's sessions
    (the router's ``cluster_sessions``, each realm's ``meta.cluster``)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        #: realm name -> its sessions on other nodes
        self.realms: dict[str, RealmSessions] = {}
        self._cluster: NatsCluster | None = None
        self._kv: nats.js.kv.KeyValue | None = None
        self._clash: type[Exception] = Exception
        self._bucket = ""
        self._watcher: Any = None
        #: KV key -> the remote session it holds (to undo it on DEL)
        self._entries: dict[str, RemoteSession] = {}
        #: keys of this node's claimed sessions
        self._mine: set[str] = set()
        #: keys claimed in the background (in-memory sessions), not confirmed yet
        self._claiming: set[str] = set()
        self._deletes: deque[str] = deque()
        self._deletes_ready = asyncio.Event()
        #: key of this node's session -> the testaments to store in its entry, and who waits for it
        self._testaments: dict[str, tuple[dict[str, list[Any]], list[Callable[[], None]]]] = {}
        self._testaments_ready = asyncio.Event()
        #: incarnations found dead: entries of theirs seen later are stale
        self._dead: set[str] = set()
        #: incarnations with entries but no heartbeat yet -> since when (loop time)
        self._unknown_since: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def cluster(self) -> NatsCluster:
        if self._cluster is None:
            raise RuntimeError("the session directory is not started")
        return self._cluster

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self, cluster: NatsCluster) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        self._cluster = cluster
        self._clash = KeyWrongLastSequenceError
        self._bucket = cluster.bucket_name("sessions")
        self._kv = await cluster.open_bucket("sessions")
        for realm in self.router.realms.values():
            view = self.realms[realm.name] = RealmSessions(self, realm)
            realm.meta.cluster = view
        cluster.handlers[KillSessions.KIND] = self._on_kill
        cluster.on_node_down.append(self._on_node_down)
        await self._load()
        self.router.cluster_sessions = self
        for work in (self._write_deletes(), self._write_testaments(), self._sweep()):
            self._spawn(work)

    async def stop(self) -> None:
        """Delete this node's remaining entries (its sessions are gone by now), stop watching."""
        if self.router.cluster_sessions is self:
            self.router.cluster_sessions = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for _testaments, waiting in self._testaments.values():
            for then in waiting:
                then()
        self._testaments.clear()
        await asyncio.gather(*tasks, return_exceptions=True)  # a cancel of stop() itself still ends it
        kv = self._kv
        if kv is not None and (self._deletes or self._mine):  # at once (the caller bounds the whole stop)
            await asyncio.gather(*(kv.delete(key) for key in [*self._deletes, *self._mine]), return_exceptions=True)
        self._deletes.clear()
        self._mine.clear()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        for name, view in self.realms.items():
            realm = self.router.realms.get(name)
            if realm is not None and realm.meta.cluster is view:
                realm.meta.cluster = None

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- claims (the router's ClusterSessions) -----------------------------------------------------

    def taken(self, session_id: int) -> bool:
        return any(session_id in view.sessions for view in self.realms.values())

    def _value(self, details: dict[str, Any]) -> bytes:
        cluster = self.cluster
        return msgpack.packb([details, cluster.incarnation, cluster.settings.node], use_bin_type=True)  # type: ignore[no-any-return]

    # -- testaments --------------------------------------------------------------------------------

    def store_testaments(self, key: str, testaments: dict[str, list[Any]], then: Callable[[], None]) -> None:
        """Schedule writing a session's testaments into its entry (the latest wins); ``then`` once done."""
        pending = self._testaments.pop(key, None)
        waiting = pending[1] if pending is not None else []
        waiting.append(then)
        self._testaments[key] = (testaments, waiting)
        self._testaments_ready.set()

    async def _write_testaments(self) -> None:
        pending = self._testaments
        while True:
            await self._testaments_ready.wait()
            self._testaments_ready.clear()
            while pending:
                key = next(iter(pending))
                testaments, waiting = pending.pop(key)
                try:
                    await self._put_testaments(key, testaments)
                except Exception as exc:
                    limited_log.warning("session testaments", "cluster: storing the testaments of %s failed: %s",
                                        key, exc)  # fmt: skip
                for then in waiting:
                    try:
                        then()
                    except Exception:
                        limited_log.log("session testaments", logging.ERROR, "cluster: answering a testament call "
                                        "failed", exc_info=True)  # fmt: skip

    async def _put_testaments(self, key: str, testaments: dict[str, list[Any]]) -> None:
        """Rewrite this node's session entry ``key`` with ``testaments`` (compare-and-set: an entry
        deleted meanwhile, its session gone, is not written again). Bounded: about 2 s."""
        from nats.js.errors import NotFoundError

        kv = self._kv
        assert kv is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline:
            if key in self._claiming:  # an in-memory session's claim is on its way
                await asyncio.sleep(0.01)
                continue
            if key not in self._mine:
                return  # the session has left (its node publishes its testaments itself)
            try:
                entry = await kv.get(key)
            except NotFoundError:
                return
            except Exception as exc:  # NATS is reconnecting: again
                limited_log.warning("session testaments", "cluster: reading %s failed: %s", key, exc)
                await asyncio.sleep(0.1)
                continue
            if entry.value is None:
                return
            details, incarnation, node, *_more = msgpack.unpackb(entry.value, raw=False)
            value = msgpack.packb([details, incarnation, node, testaments], use_bin_type=True)
            try:
                await kv.update(key, value, last=entry.revision)
                return
            except self._clash:
                continue  # written (or deleted) meanwhile: read again
            except Exception as exc:
                limited_log.warning("session testaments", "cluster: writing %s failed: %s", key, exc)
                await asyncio.sleep(0.1)
        raise TimeoutError("the sessions bucket did not take the write in time")

    async def claim(self, realm: str, session_id: int, details: dict[str, Any]) -> bool:
        """Claim the ID by KV ``create()`` and wait until every live node has the session in its
        view (the meta API of any node sees it once it is WELCOMEd).

        JetStream may not answer for seconds (a stream leader's server died: a Raft election takes
        4-9 s). A join does not wait for that: past :data:`CLAIM_PATIENCE` without an answer, or on
        an error other than a clash, the session is welcomed on its random ID (a clash with another
        node's session then has the odds of one in 2^53 per live session) and the claim carries on
        in the background until JetStream takes it."""
        kv = self._kv
        assert kv is not None
        key = kv_key(realm, str(session_id))
        value = self._value(details)
        loop = asyncio.get_running_loop()
        create = loop.create_task(kv.create(key, value))
        done, _pending = await asyncio.wait((create,), timeout=CLAIM_PATIENCE)
        if create in done and isinstance(create.exception(), self._clash):
            log.info("session ID %d is taken in realm %s on another node: drawing another", session_id, realm)
            return False
        error = create.exception() if create in done else None
        if create not in done or error is not None:
            failure = "no answer" if error is None else (str(error) or type(error).__name__)
            limited_log.warning("claim deferred", "session %d: JetStream did not take its ID claim (%s): welcomed on "
                                "its random ID, claiming in the background", session_id, failure)  # fmt: skip
            self._claiming.add(key)
            self._spawn(self._claim_in_background(key, value, session_id, create if create not in done else None))
            return True
        self._mine.add(key)
        # WELCOME once every node has the session in its view; a node whose watch lags longer
        # (re-subscribing after a leader change) gets it later
        await self.cluster.barrier(self._bucket, create.result(), CLAIM_SYNC_TIMEOUT)
        return True

    def claim_soon(self, realm: str, session_id: int, details: dict[str, Any]) -> None:
        key = kv_key(realm, str(session_id))
        self._claiming.add(key)
        self._spawn(self._claim_in_background(key, self._value(details), session_id))

    async def _claim_in_background(self, key: str, value: bytes, session_id: int,
                                   pending: asyncio.Task[int] | None = None) -> None:  # fmt: skip
        """Create the session's entry (``pending``: a create already on its way), retrying while
        JetStream does not take it and the session is still here."""
        kv = self._kv
        assert kv is not None
        delay = 0.1
        while key in self._claiming:
            try:
                if pending is not None:
                    attempt, pending = pending, None
                    await attempt
                else:
                    await kv.create(key, value)
                break
            except self._clash:
                # an earlier attempt may have been stored after its answer timed out
                with contextlib.suppress(Exception):
                    if (await kv.get(key)).value == value:
                        break
                self._claiming.discard(key)
                log.error("session %d: another node's session has the same ID (a 1 in 2^53 draw while JetStream "
                          "was unavailable)", session_id)  # fmt: skip
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                limited_log.warning("background claim", "session %d: claiming its ID failed: %s (retrying)",
                                    session_id, exc or type(exc).__name__)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        else:  # the session left before an attempt was confirmed; one may still have been stored
            self._delete_soon([key])
            return
        if key in self._claiming:
            self._claiming.discard(key)
            self._mine.add(key)
        else:  # the session left while its claim was on its way
            self._delete_soon([key])

    def release(self, realm: str, session_id: int) -> None:
        key = kv_key(realm, str(session_id))
        pending = self._testaments.pop(key, None)
        if pending is not None:  # no need to store them now: this node publishes them
            for then in pending[1]:
                then()
        if key in self._mine:
            self._mine.discard(key)
            self._delete_soon([key])
        else:
            self._claiming.discard(key)  # the background claim deletes it once it lands

    async def _delete_later(self, keys: list[str]) -> None:
        """(the janitor's cleanup, run by ``cluster.later``: only where JetStream takes writes)"""
        self._delete_soon(keys)

    def _delete_soon(self, keys: list[str]) -> None:
        self._deletes.extend(keys)
        self._deletes_ready.set()

    async def _write_deletes(self) -> None:
        kv = self._kv
        assert kv is not None
        deletes = self._deletes
        while True:
            await self._deletes_ready.wait()
            self._deletes_ready.clear()
            while deletes:
                key = deletes[0]
                try:
                    await kv.delete(key)
                except Exception as exc:  # retried: NATS is reconnecting
                    limited_log.warning("session delete", "cluster: deleting session entry %s failed: %s", key, exc)
                    await asyncio.sleep(0.1)
                    continue
                deletes.popleft()

    # -- the view ----------------------------------------------------------------------------------

    async def _load(self) -> None:
        """Watch the bucket; return once the entries already there are in the view."""
        kv = self._kv
        assert kv is not None
        self._watcher, follow = await self.cluster.watch_bucket(kv, self._apply, "a session entry")
        self._spawn(follow)

    def _apply(self, entry: Any) -> None:
        try:
            self._apply_entry(entry)
        finally:
            if entry.revision is not None:
                self.cluster.applied(self._bucket, entry.revision)

    def _apply_entry(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE"):
            known = self._entries.pop(entry.key, None)
            if known is not None:
                self._forget(known)
            return
        try:
            details, incarnation, node, *more = msgpack.unpackb(entry.value, raw=False)
            testaments = more[0] if more and type(more[0]) is dict else None
            realm, session_id = details["realm"], details["session"]
            if not (type(realm) is str and type(session_id) is int and type(incarnation) is str):
                raise TypeError("realm, session or incarnation of the wrong type")
        except Exception as exc:
            limited_log.warning("session entry", "cluster: unreadable session entry %s: %s", entry.key, exc)
            return
        cluster = self.cluster
        if incarnation == cluster.incarnation:
            return  # this node's own sessions are in the realm itself
        if incarnation in self._dead:  # written just before its node died, seen late
            if cluster.is_janitor():
                self._delete_soon([entry.key])
            return
        remote = RemoteSession(realm, session_id, details, incarnation, str(node), entry.key, testaments)
        previous = self._entries.get(entry.key)
        if previous is not None:
            self._forget(previous)
        self._entries[entry.key] = remote
        view = self.realms.get(realm)
        if view is not None:
            view.sessions[session_id] = remote
        peer = cluster.peers.get(incarnation)
        if (peer is None or peer.node == "?") and incarnation not in self._unknown_since:
            self._unknown_since[incarnation] = asyncio.get_running_loop().time()

    def _forget(self, remote: RemoteSession) -> bool:
        """Drop a remote session from its realm's view; whether it was there."""
        view = self.realms.get(remote.realm)
        if view is not None and view.sessions.get(remote.session_id) is remote:
            del view.sessions[remote.session_id]
            return True
        return False

    # -- dead nodes --------------------------------------------------------------------------------

    def _on_node_down(self, incarnation: str) -> None:
        # a node never heard from (its entries outlived it; the back end timed out a placeholder):
        # this node's subscribers never heard its sessions join either
        self._drop_node(incarnation, announce=incarnation not in self._unknown_since)

    def _drop_node(self, incarnation: str, announce: bool) -> None:
        """Forget a dead node's sessions; with ``announce``, tell this node's subscribers they left."""
        self._dead.add(incarnation)
        self._unknown_since.pop(incarnation, None)
        keys: list[str] = []
        cluster = self.cluster
        # the janitor alone publishes the testaments, cluster-wide (is_janitor: the same answer on
        # every survivor, the dead node being out of their peers); the others keep them in case
        # the janitor died too before it found this node dead
        janitor = cluster.is_janitor()
        testaments: list[RemoteSession] = []
        for key, remote in list(self._entries.items()):
            if remote.incarnation != incarnation:
                continue
            del self._entries[key]
            keys.append(key)
            if self._forget(remote) and announce:
                realm = self.router.realms.get(remote.realm)
                if realm is not None:
                    if janitor and remote.testaments:
                        realm.meta.publish_testaments(remote.session_id, remote.decoded_testaments())
                    elif remote.testaments:
                        testaments.append(remote)
                    details = remote.details
                    realm.meta.publish_local("wamp.session.on_leave", remote.session_id, details.get("authid"),
                                             details.get("authrole"))  # fmt: skip
        log.info("cluster: node %s gone with %d sessions", incarnation, len(keys))

        def clean_up(at_once: bool) -> None:
            for remote in testaments if at_once else ():
                realm = self.router.realms.get(remote.realm)
                if realm is not None:
                    realm.meta.publish_testaments(remote.session_id, remote.decoded_testaments())
            if keys:
                # later, so that every survivor has found the node dead (and told its subscribers) first
                cluster.later(lambda: self._delete_later(keys))

        if keys:
            cluster.janitor_work(incarnation, clean_up)

    async def _sweep(self) -> None:
        """Entries of a node never heard from (dead before this node started) are dropped."""
        cluster = self.cluster
        timeout = cluster.settings.failure_timeout
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(timeout / 4)
            now = loop.time()
            for incarnation, since in list(self._unknown_since.items()):
                peer = cluster.peers.get(incarnation)
                if peer is not None and peer.node != "?":  # its heartbeat was heard ("?": a placeholder)
                    del self._unknown_since[incarnation]
                elif now - since > 2 * timeout:
                    log.info("cluster: session entries of node %s, never heard from: dropped", incarnation)
                    self._drop_node(incarnation, announce=False)

    # -- kills from other nodes --------------------------------------------------------------------

    def _on_kill(self, message: KillSessions) -> None:
        realm = self.router.realms.get(message.realm)
        if realm is None:
            return
        for session_id in message.sessions:
            session = realm.sessions.get(session_id)
            if session is not None:
                log.info("session %d killed from another node: %s", session_id, message.reason)
                session.say_goodbye(message.reason, message.message)
