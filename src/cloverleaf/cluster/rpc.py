"""RPC across the nodes of a cluster: the registry (JetStream KV, compare-and-set) and the proxies
that let each node's dealer invoke callees on other nodes as it invokes its own (docs/cluster.md).

- Every (realm, match, procedure) is one KV entry: the invoke policy, the registration options and
  the callees in registration order (node, session, what each announced). A REGISTER reads the
  entry and writes it back with compare-and-set, so ``single`` and a mismatched policy are refused
  cluster-wide, also when two nodes register at the same moment.
- Each node keeps a replica of the registry in its dealer's store (watched), where a callee on
  another node is a :class:`RemoteCallee`. The dealer invokes it like a session: the INVOCATION
  goes to the callee's node, whose dealer relays it to the callee through a :class:`RemoteCaller`
  standing for the caller's node; answers, progress, interrupts go back the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import msgpack

from ..router.dealer import PendingCall
from ..router.meta import now_iso
from ..router.ratelimit import RateLimitedLog
from ..router.registry import LocalRegistrationStore, Registration
from ..wamp import errors
from ..wamp.errors import ProtocolError
from ..wamp.ids import SequentialIds
from ..wamp.messages import (
    Call,
    Cancel,
    Error,
    Interrupt,
    Invocation,
    Message,
    Register,
    Result,
    Yield,
    parse_message,
)
from ..wamp.serializers import SERIALIZERS
from . import wire
from .ids import scoped_id
from .keys import kv_key

if TYPE_CHECKING:
    import nats.js.kv

    from ..router.auth import Identity
    from ..router.realm import Realm
    from ..router.session import RouterSession
    from .backend import NatsCluster

log = logging.getLogger("cloverleaf.cluster")
limited_log = RateLimitedLog(log)

#: the serializer of WAMP messages between nodes (carries every value of the data model, bytes too)
WIRE_SERIALIZER = SERIALIZERS["msgpack"]
#: the error of a REGISTER the cluster's registry could not take (NATS or JetStream unreachable)
CLUSTER_UNAVAILABLE = "cloverleaf.error.cluster_unavailable"
#: between nodes only: "the callee you chose has left or unregistered", so the caller's node routes
#: the call again (never sent to a client)
CALLEE_GONE = "cloverleaf.cluster.callee_gone"
#: room left in a NATS message for the envelope around a WAMP message
_ENVELOPE = 1024


@wire.message(10)
@dataclass(slots=True)
class RpcMessage:
    """A WAMP message between the dealers of two nodes: INVOCATION and INTERRUPT to the callee's
    node, RESULT and ERROR back to the caller's. ``session`` is the callee's session ID;
    ``message`` the WAMP message as a list (sent as the dealer encoded it for the other node:
    :func:`~cloverleaf.cluster.wire.encode_with_tail`)."""

    KIND: ClassVar[int]
    realm: str
    sender: str
    session: int
    message: list[Any]

    def check(self) -> None:
        wire.require(wire.is_str(self.realm) and wire.is_str(self.sender), "string realm and sender")
        wire.require(wire.is_int(self.session) and type(self.message) is list, "integer session, a WAMP message")


class _Peer:
    """What RemoteCallee and RemoteCaller share: a session-like end that ships WAMP messages."""

    serializer = WIRE_SERIALIZER

    def __init__(self, rpc: ClusterRegistry, realm: str, incarnation: str, session_id: int) -> None:
        self._rpc = rpc
        self.realm_name = realm
        self.incarnation = incarnation
        #: the callee's session ID (on whichever node it is)
        self.session_id = session_id
        self.pending_calls: dict[int, PendingCall] = {}
        self.pending_invocations: dict[int, PendingCall] = {}
        self.open = True
        #: what precedes each WAMP message this end ships (the same for all of them)
        self._head = rpc.envelope_head(realm, session_id)

    @property
    def is_open(self) -> bool:
        return self.open

    def fits(self, payload_size: int) -> bool:
        return payload_size + _ENVELOPE <= self._rpc.max_payload

    def send(self, message: Message) -> None:
        self.send_payload(self.serializer.encode(message.marshal()), message.MESSAGE_TYPE, droppable=False)

    def send_payload(self, payload: bytes, message_type: int, droppable: bool) -> None:
        if self.open:
            self._rpc.cluster.send(self.incarnation, self._head + payload)


class RemoteCallee(_Peer):
    """A callee on another node, as a member of a registration in this node's replica."""

    def __init__(self, rpc: ClusterRegistry, realm: str, incarnation: str, session_id: int, authid: str | None,
                 authrole: str | None, features: list[str]) -> None:  # fmt: skip
        super().__init__(rpc, realm, incarnation, session_id)
        self.features = frozenset(features)
        self.authid = authid
        self.authrole = authrole
        self.request_ids = SequentialIds()

    @property
    def identity(self) -> Identity | None:
        return None

    def supports(self, role: str, feature: str) -> bool:
        return f"{role}.{feature}" in self.features

    @property
    def supports_canceling(self) -> bool:
        return "callee.call_canceling" in self.features or "callee.call_cancelling" in self.features


class RemoteCaller(_Peer):
    """The caller's node, on the callee's node: the dealer answers it as it answers a local caller
    (it checked what its own caller announced; passthru and progress are its to filter)."""

    def supports(self, role: str, feature: str) -> bool:
        return True


def _callee_entry(cluster: NatsCluster, session: RouterSession) -> list[Any]:
    identity = session.identity
    features = sorted(f for f in session.client_features if f.startswith("callee."))
    return [cluster.incarnation, cluster.settings.node, session.session_id,
            identity.authid if identity else None, identity.authrole if identity else None, features]  # fmt: skip


@dataclass(slots=True)
class _Known:
    realm: str
    match: str
    procedure: str


class ClusterRegistry:
    """Registrations cluster-wide: the KV registry, this node's replica of it, and the RPC traffic."""

    def __init__(self, cluster: NatsCluster) -> None:
        self.cluster = cluster
        self.kv: nats.js.kv.KeyValue | None = None
        self.max_payload = 1024 * 1024
        #: KV key -> the registration it names (so a deletion can be applied)
        self._known: dict[str, _Known] = {}
        #: (incarnation, session) -> the proxy of a callee on another node
        self.callees: dict[tuple[str, int], RemoteCallee] = {}
        #: (incarnation, session) -> the proxy of another node's caller side, per local callee
        self.callers: dict[tuple[str, int], RemoteCaller] = {}
        self._watcher: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty: dict[str, tuple[Realm, Registration[Any], list[Callable[[], None]]]] = {}
        self._dirty_ready = asyncio.Event()
        self.bucket = ""
        self._writing = False

    # -- life cycle ------------------------------------------------------------------------------

    def attach(self, realm: Realm) -> None:
        secret, name = self.cluster.secret, realm.name
        realm.dealer.registrations = LocalRegistrationStore(
            id_for=lambda procedure, match: scoped_id(secret, "registration", name, match, procedure)
        )

    async def start(self, cluster: NatsCluster) -> None:
        self.max_payload = cluster.max_payload
        self.bucket = cluster.bucket_name("registrations")
        self.kv = await cluster.open_bucket("registrations")
        cluster.handlers[RpcMessage.KIND] = self._on_message
        cluster.on_node_down.append(self._node_down)
        self._watcher, follow = await cluster.watch_bucket(self.kv, self._apply, "a registry entry")
        loop = asyncio.get_running_loop()
        for work in (follow, self._write_changes()):
            task = loop.create_task(work)
            self._tasks.add(task)

    async def stop(self) -> None:
        # the sessions are gone: let the writer take their registrations out of the registry
        await self.cluster.wind_down(lambda: bool(self._dirty or self._writing), 2.0, self._tasks, self._watcher)

    # -- the replica -------------------------------------------------------------------------------

    def _apply(self, entry: Any) -> None:
        try:
            self._apply_entry(entry)
        finally:
            if entry.revision is not None:
                self.cluster.applied(self.bucket, entry.revision)

    def _apply_entry(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE"):
            known = self._known.pop(entry.key, None)
            if known is not None:
                self._set(known.realm, known.match, known.procedure, "single", {}, [])
            return
        try:
            realm, match, procedure, invoke, options, callees, *more = msgpack.unpackb(entry.value, raw=False)
        except Exception:
            limited_log.warning("cluster registry", "cluster: unreadable registry entry %s", entry.key)
            return
        self._known[entry.key] = _Known(realm, match, procedure)
        self._set(realm, match, procedure, invoke, options, callees, *more)

    def _set(self, realm_name: str, match: str, procedure: str, invoke: str, options: dict[str, Any],
             callees: list[list[Any]], created: str = "") -> tuple[Registration[Any] | None, bool]:  # fmt: skip
        """Make the local replica of one registration hold ``callees`` (KV order)."""
        realm = self.cluster.router.realms.get(realm_name)
        if realm is None:
            return None, False
        members: list[Any] = []
        for incarnation, _node, session_id, authid, authrole, features in callees:
            if incarnation == self.cluster.incarnation:
                session = realm.sessions.get(session_id)
                if session is not None and session.is_open:
                    members.append(session)
            elif self.cluster.expect_peer(incarnation):
                members.append(self._callee(realm_name, incarnation, session_id, authid, authrole, features))
        store = realm.dealer.registrations
        assert isinstance(store, LocalRegistrationStore)
        registration, added = store.replace(procedure, match, invoke, options, members)
        if registration is not None and created and not registration.created:
            registration.created = str(created)
        return registration, added

    def _callee(self, realm: str, incarnation: str, session_id: int, authid: str | None, authrole: str | None,
                features: list[str]) -> RemoteCallee:  # fmt: skip
        callee = self.callees.get((incarnation, session_id))
        if callee is None:
            callee = RemoteCallee(self, realm, incarnation, session_id, authid, authrole, features)
            self.callees[(incarnation, session_id)] = callee
        return callee

    # -- REGISTER ----------------------------------------------------------------------------------

    def register(self, realm: Realm, session: RouterSession, request: int, procedure: str, match: str, invoke: str,
                 options: dict[str, Any]) -> None:  # fmt: skip
        session.hold()
        # this node's replica may list the callee before its REGISTERED goes out (the node's own
        # watch applies the registry entry): an INVOCATION routed to it meanwhile waits behind it
        session.hold_output()
        task = asyncio.get_running_loop().create_task(
            self._register(realm, session, request, procedure, match, invoke, options)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register(self, realm: Realm, session: RouterSession, request: int, procedure: str, match: str,
                        invoke: str, options: dict[str, Any]) -> None:  # fmt: skip
        from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

        kv = self.kv
        assert kv is not None
        key = kv_key(realm.name, match, procedure)
        mine = _callee_entry(self.cluster, session)
        outcome: tuple[str, Any] = ("error", "the cluster's registry did not answer")
        revision = 0
        try:
            for _attempt in range(100):
                try:
                    entry = await kv.get(key)
                except NotFoundError:
                    entry = None
                try:
                    if entry is None or entry.value is None:
                        value = [realm.name, match, procedure, invoke, options, [mine], now_iso()]
                        revision = await kv.create(key, msgpack.packb(value))
                        outcome = ("created", value)
                        break
                    current = msgpack.unpackb(entry.value, raw=False)
                    # (callees of a node found dead are not counted: the janitor removes them soon)
                    dead = self.cluster.dead
                    current_invoke, callees = current[3], [c for c in current[5] if c[0] not in dead]
                    if not callees:
                        value = [realm.name, match, procedure, invoke, options, [mine], now_iso()]
                        revision = await kv.update(key, msgpack.packb(value), last=entry.revision)
                        outcome = ("created", value)
                        break
                    taken = any(c[0] == mine[0] and c[2] == mine[2] for c in callees)
                    if invoke == "single" or current_invoke != invoke or taken:
                        outcome = ("refused", current_invoke not in ("single", invoke))
                        break
                    current[5] = [*callees, mine]
                    revision = await kv.update(key, msgpack.packb(current), last=entry.revision)
                    outcome = ("joined", current)
                    break
                except KeyWrongLastSequenceError:
                    continue  # somebody else wrote it first: read again
        except Exception as exc:
            outcome = ("error", f"the cluster's registry failed: {exc or type(exc).__name__}")
        if outcome[0] in ("created", "joined") and revision:
            # REGISTERED once every live node routes calls to it (docs/cluster.md)
            await self.cluster.barrier(self.bucket, revision)
        session.release_output(lambda: self._answer_register(realm, session, request, procedure, match, key, outcome))
        session.release()

    def _answer_register(self, realm: Realm, session: RouterSession, request: int, procedure: str, match: str,
                         key: str, outcome: tuple[str, Any]) -> None:  # fmt: skip
        kind, detail = outcome
        if kind in ("created", "joined"):
            self._known[key] = _Known(realm.name, match, procedure)
            registration, _ = self._set(*detail)
            if session.realm is realm and session.is_open and registration is not None:
                realm.dealer.registered(session, request, registration, kind == "created")
            elif registration is None or session.session_id not in registration.callees:
                # the session left while its REGISTER was in flight: take it out again
                self.mark(realm, key, match, procedure)
        elif kind == "refused":
            if session.is_open:
                realm.dealer.refused(session, request, procedure, bool(detail))
        elif session.is_open:
            limited_log.warning("cluster register failed", "cluster: REGISTER of %s failed: %s", procedure, detail)
            session.error(Register.MESSAGE_TYPE, request, CLUSTER_UNAVAILABLE, str(detail))

    # -- a local callee left -----------------------------------------------------------------------

    def callees_changed(self, realm: Realm, registration: Registration[Any],
                        then: Callable[[], None] | None = None) -> None:  # fmt: skip
        key = kv_key(realm.name, registration.match, registration.procedure)
        self.mark(realm, key, registration.match, registration.procedure, then)

    def mark(self, realm: Realm, key: str, match: str, procedure: str, then: Callable[[], None] | None = None) -> None:
        """Schedule writing this node's callees of (match, procedure) to the registry again;
        ``then`` is called once every live node has applied it."""
        pending = self._dirty.pop(key, None)
        waiting = pending[2] if pending is not None else []
        if then is not None:
            waiting.append(then)
        self._dirty[key] = (realm, Registration(0, procedure, match, ""), waiting)
        self._dirty_ready.set()

    async def _write_changes(self) -> None:
        while True:
            await self._dirty_ready.wait()
            self._dirty_ready.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                realm, _, waiting = self._dirty.pop(key)
                self._writing = True
                me = self.cluster.incarnation

                def gone(callee: list[Any], realm: Realm = realm, me: str = me, key: str = key) -> bool:
                    if callee[0] != me:
                        return False
                    session = realm.sessions.get(callee[2])
                    store = realm.dealer.registrations
                    known = self._known.get(key)
                    if session is None or not session.is_open or known is None:
                        return True
                    registration = store.lookup(known.procedure, known.match)
                    return registration is None or session.session_id not in registration.callees

                try:
                    revision = await self._remove_callees(key, gone)
                except Exception as exc:
                    limited_log.warning("cluster registry write", "cluster: updating %s failed: %s", key, exc)
                    self._dirty.setdefault(key, (realm, Registration(0, "", "", ""), waiting))
                    await asyncio.sleep(0.1)
                    continue
                finally:
                    self._writing = False
                if waiting:
                    if revision:
                        await self.cluster.barrier(self.bucket, revision)
                    for then in waiting:
                        try:
                            then()
                        except Exception:
                            limited_log.log("cluster registry", logging.ERROR,
                                            "cluster: answering an UNREGISTER failed", exc_info=True)

    async def _remove_callees(self, key: str, gone: Any) -> int:
        """Take the callees ``gone(callee)`` selects out of one registry entry (compare-and-set);
        return the revision written (0: nothing to change). An entry left without callees stays,
        empty (every node reads it as no registration), so that its revision can be waited for."""
        from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

        kv = self.kv
        assert kv is not None
        for _attempt in range(100):
            try:
                entry = await kv.get(key)
            except NotFoundError:
                return 0
            if entry.value is None:
                return 0
            current = msgpack.unpackb(entry.value, raw=False)
            kept = [callee for callee in current[5] if not gone(callee)]
            if len(kept) == len(current[5]):
                return 0
            current[5] = kept
            try:
                return await kv.update(key, msgpack.packb(current), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
        return 0

    # -- traffic -----------------------------------------------------------------------------------

    def envelope_head(self, realm: str, session_id: int) -> bytes:
        """The bytes of an :class:`RpcMessage` from this node before its WAMP message."""
        return wire.encode_with_tail(RpcMessage.KIND, (realm, self.cluster.incarnation, session_id), b"")

    def _on_message(self, envelope: RpcMessage) -> None:
        realm = self.cluster.router.realms.get(envelope.realm)
        if realm is None:
            return
        try:
            message = parse_message(envelope.message)
        except (ProtocolError, ValueError) as exc:
            limited_log.warning("cluster rpc", "cluster: unreadable RPC message from %s: %s", envelope.sender, exc)
            return
        key = (envelope.sender, envelope.session)
        dealer = realm.dealer
        if isinstance(message, Invocation):
            caller = self.callers.get(key)
            if caller is None:
                caller = self.callers[key] = RemoteCaller(self, envelope.realm, envelope.sender, envelope.session)
            session = realm.sessions.get(envelope.session)
            registration = dealer.registrations.get(message.registration)
            if message.request not in caller.pending_calls and (
                session is None or registration is None or session.session_id not in registration.callees
            ):
                # it left (or unregistered) while the caller's node still routed to it: that node
                # routes the call again
                caller.send(Error(Call.MESSAGE_TYPE, message.request, {}, CALLEE_GONE))
                return
            if session is None:  # (a continuation for a callee that left: its leaving answered the call)
                return
            dealer.relay_invocation(caller, session, message)
        elif isinstance(message, Interrupt):
            caller = self.callers.get(key)
            if caller is not None:
                mode = message.options.get("mode", "killnowait")
                dealer.cancel(caller, Cancel(message.request, {"mode": mode}))  # type: ignore[arg-type]
        elif isinstance(message, Result):
            callee = self.callees.get(key)
            if callee is not None:
                with contextlib.suppress(ProtocolError):
                    dealer.yield_(callee, Yield(message.request, message.details, message.args,  # type: ignore[arg-type]
                                                message.kwargs))  # fmt: skip
        elif isinstance(message, Error) and message.request_type == Call.MESSAGE_TYPE:
            callee = self.callees.get(key)
            if callee is not None and message.error == CALLEE_GONE:
                pending = callee.pending_invocations.pop(message.request, None)
                if pending is not None:
                    # the replica is behind: drop this callee from the registration here too
                    dealer.registrations.unregister(pending.registration, callee)  # type: ignore[arg-type]
                    dealer.reroute(pending)
                return
            if callee is not None:
                with contextlib.suppress(ProtocolError):
                    dealer.invocation_error(callee, Error(Invocation.MESSAGE_TYPE, message.request,  # type: ignore[arg-type]
                                                          message.details, message.error, message.args,
                                                          message.kwargs))  # fmt: skip

    # -- a node is gone ----------------------------------------------------------------------------

    def _node_down(self, incarnation: str) -> None:
        announce = self.cluster.tells_departure(incarnation)
        for (owner, _session), callee in list(self.callees.items()):
            if owner != incarnation:
                continue
            callee.open = False
            del self.callees[(owner, _session)]
            realm = self.cluster.router.realms.get(callee.realm_name)
            if realm is None:
                continue
            removed = realm.dealer.registrations.remove_member(callee)  # type: ignore[arg-type]
            if announce:
                # to this node's subscribers only (each survivor tells its own), as a single router
                # tells of a leaving callee's registrations; on_delete: no callee left on any node
                for registration, deleted in removed:
                    if registration.procedure.startswith("wamp."):
                        continue
                    realm.meta.publish_local("wamp.registration.on_unregister", callee.session_id, registration.id)
                    if deleted:
                        realm.meta.publish_local("wamp.registration.on_delete", callee.session_id, registration.id)
            for pending in list(callee.pending_invocations.values()):
                pending.stop_timer()
                caller = pending.caller
                if caller.pending_calls.pop(pending.call_request, None) is not None and caller.is_open:
                    caller.send(Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.CANCELED,
                                      ["the callee's router node is gone"]))  # fmt: skip
            callee.pending_invocations.clear()
        for (owner, _session), remote_caller in list(self.callers.items()):
            if owner != incarnation:
                continue
            remote_caller.open = False
            del self.callers[(owner, _session)]
            realm = self.cluster.router.realms.get(remote_caller.realm_name)
            if realm is not None:
                # only its calls: it is no member of any registration (its session_id is the local
                # callee's, so Dealer.detach would take that callee out of its registrations)
                realm.dealer.abandon_calls(remote_caller)
        self.cluster.janitor_work(incarnation, lambda _at_once: self.cluster.later(lambda: self._purge(incarnation)))

    async def _purge(self, incarnation: str) -> None:
        """The janitor takes a dead node's callees out of the registry, retrying while JetStream
        is busy, for a minute at most, never once this node is fenced."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0
        pending = list(self._known)
        while pending and not self.cluster.fenced and loop.time() < deadline:
            try:
                await self._remove_callees(pending[0], lambda callee: callee[0] == incarnation)
                pending.pop(0)
            except Exception:
                await asyncio.sleep(0.5)
