"""The meta API of a realm (spec: advanced/meta_api_*, advanced/pubsub_testament).

Meta procedures (``wamp.session.*``, ``wamp.registration.*``, ``wamp.subscription.*``) are served
by the router itself: the dealer routes a CALL to them after the same authorization check as any
other procedure. Meta events are published through the broker like any other event, so they can be
subscribed to (and authorized) by URI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..wamp import errors
from ..wamp.errors import ApplicationError
from ..wamp.ids import fast_random_id
from ..wamp.messages import integral_id
from ..wamp.uri import is_valid_uri
from .broker import Audience
from .patterns import EXACT, MATCH_POLICIES, PREFIX, WILDCARD
from .registry import Registration, Subscription

if TYPE_CHECKING:
    from .realm import Realm
    from .session import RouterSession

MetaProcedure = Callable[["RouterSession", list[Any], dict[str, Any]], Any]

#: Testament scopes (spec: advanced/pubsub_testament)
SCOPES = ("destroyed", "detached")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ClusterSessions(Protocol):
    """The sessions of one realm on the other nodes of a cluster, for the session meta API
    (``MetaApi.cluster``; None on a single node)."""

    def remote_sessions(self) -> Iterable[dict[str, Any]]:
        """The details (as ``wamp.session.get`` gives them) of every session on other nodes."""

    def remote_session(self, session_id: int) -> dict[str, Any] | None:
        """The details of one session on another node (None: no such session there)."""

    def kill(self, session_ids: list[int], reason: str, message: str | None) -> None:
        """Close sessions of other nodes with GOODBYE ``reason`` (sent to the nodes holding them)."""

    def left(self, session_id: int) -> None:
        """A session of this node left the realm."""

    def testaments_changed(self, session_id: int, testaments: dict[str, list[Testament]],
                           then: Callable[[], None]) -> None:  # fmt: skip
        """A session of this node added or flushed testaments (``testaments``: all it has now, by
        scope): keep a copy where the cluster publishes them should this node die; ``then`` is
        called once the copy is stored (or storing it failed)."""


#: meta events come from the router itself: no publisher to exclude, no black or white list
_ROUTER_AUDIENCE = Audience(0, False)


@dataclass(slots=True)
class Testament:
    topic: str
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)


class _Null:
    """What a meta procedure answers when its result is null: RESULT ``[null]``, as Crossbar's
    meta procedures answer (clients read ``args[0]``), where ``None`` means no value at all."""

    __slots__ = ()


NULL = _Null()


@dataclass(slots=True)
class Later:
    """What a meta procedure returns when its answer must wait: the dealer holds the caller's later
    messages, calls ``start`` with a function to call when done, then sends RESULT ``value``."""

    start: Callable[[Callable[[], None]], None]
    value: Any = None


def result_args(value: Any) -> list[Any] | None:
    """The RESULT arguments for what a meta procedure returned."""
    if value is None:
        return None
    return [None if value is NULL else value]


def _arg(args: list[Any], index: int, kind: type, name: str) -> Any:
    if kind is int and len(args) > index:
        args[index] = integral_id(args[index])  # a session or registration ID from a JS peer (float64)
    if len(args) <= index or not isinstance(args[index], kind) or (isinstance(args[index], bool) and kind is int):
        raise ApplicationError(errors.INVALID_ARGUMENT, f"argument {index + 1} ({name}) must be a {kind.__name__}")
    return args[index]


class MetaApi:
    """Meta procedures and events of one realm."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm
        #: session ID -> scope -> testaments, in the order they were added
        self.testaments: dict[int, dict[str, list[Testament]]] = {}
        #: the realm's sessions on the other nodes of a cluster (None: a single node)
        self.cluster: ClusterSessions | None = None
        self.procedures: dict[str, MetaProcedure] = {
            "wamp.session.count": self._session_count,
            "wamp.session.list": self._session_list,
            "wamp.session.get": self._session_get,
            "wamp.session.kill": self._session_kill,
            "wamp.session.kill_by_authid": self._session_kill_by_authid,
            "wamp.session.kill_by_authrole": self._session_kill_by_authrole,
            "wamp.session.kill_all": self._session_kill_all,
            "wamp.session.add_testament": self._add_testament,
            "wamp.session.flush_testaments": self._flush_testaments,
            "wamp.registration.list": self._registration_list,
            "wamp.registration.lookup": self._registration_lookup,
            "wamp.registration.match": self._registration_match,
            "wamp.registration.get": self._registration_get,
            "wamp.registration.list_callees": self._registration_list_callees,
            "wamp.registration.count_callees": self._registration_count_callees,
            "wamp.registration.remove_callee": self._registration_remove_callee,
            "wamp.subscription.remove_subscriber": self._subscription_remove_subscriber,
            "wamp.subscription.list": self._subscription_list,
            "wamp.subscription.lookup": self._subscription_lookup,
            "wamp.subscription.match": self._subscription_match,
            "wamp.subscription.get": self._subscription_get,
            "wamp.subscription.list_subscribers": self._subscription_list_subscribers,
            "wamp.subscription.count_subscribers": self._subscription_count_subscribers,
            "wamp.subscription.get_events": self._subscription_get_events,
            # not in the spec: the realm's counters on this node (the web console's live figures)
            "cloverleaf.realm.stats": self._realm_stats,
        }

    # -- events -------------------------------------------------------------------------------

    def publish(self, topic: str, *args: Any) -> None:
        """Deliver a meta event to the realm's subscribers of ``topic`` (cheap when there are none),
        on every node of a cluster."""
        realm = self.realm
        broker = realm.broker
        cluster = realm.cluster
        if cluster is None:
            if broker.subscriptions.matching(topic):
                broker.deliver(topic, fast_random_id(), {}, list(args), None)
            return
        publication, values = fast_random_id(), list(args)
        if broker.subscriptions.matching(topic):
            broker.deliver(topic, publication, {}, values, None)
        cluster.forward_publication(topic, publication, {}, values, None, _ROUTER_AUDIENCE)

    def publish_local(self, topic: str, *args: Any) -> None:
        """Deliver a meta event to this node's subscribers only (each node of a cluster says it
        about a dead node's sessions to its own subscribers)."""
        broker = self.realm.broker
        if broker.subscriptions.matching(topic):
            broker.deliver(topic, fast_random_id(), {}, list(args), None)

    def joined(self, session: RouterSession) -> None:
        self.publish("wamp.session.on_join", session.describe())

    def left(self, session: RouterSession) -> None:
        identity = session.identity
        testaments = self.testaments.pop(session.session_id, None)
        if testaments:
            self.publish_testaments(session.session_id, testaments)
        self.publish(
            "wamp.session.on_leave", session.session_id, identity.authid if identity else None,
            identity.authrole if identity else None,
        )  # fmt: skip
        if self.cluster is not None:
            self.cluster.left(session.session_id)

    def publish_testaments(self, session_id: int, testaments: dict[str, list[Testament]]) -> None:
        """Publish the testaments of a session that is gone (on every node of a cluster): those of
        its own node when it leaves, or, when its node died, on the node cleaning up after it."""
        for scope in ("detached", "destroyed"):  # no session resumption: both happen now
            for testament in testaments.get(scope, []):
                self._publish_testament(session_id, testament)

    def _publish_testament(self, session_id: int, testament: Testament) -> None:
        from .broker import _audience  # the broker's option parsing, shared

        try:
            audience = _audience(session_id, testament.options)
        except ValueError:
            audience = None
        publication = fast_random_id()
        self.realm.broker.deliver(testament.topic, publication, {}, testament.args, testament.kwargs, audience)
        cluster = self.realm.cluster
        if cluster is not None:
            cluster.forward_publication(testament.topic, publication, {}, testament.args, testament.kwargs,
                                        audience or _ROUTER_AUDIENCE)  # fmt: skip

    # Meta events are not published about subscriptions and registrations on the router's own
    # "wamp." URIs: a monitor subscribed to wamp.subscription.on_create would otherwise see its own
    # bookkeeping in the stream it watches (as Crossbar: no meta events for wamp.* URIs).

    def subscribed(self, session: RouterSession, subscription: Subscription[Any], created: bool) -> None:
        if created:
            subscription.created = now_iso()
        if subscription.topic.startswith("wamp."):
            return
        if created:
            self.publish("wamp.subscription.on_create", session.session_id, _subscription_details(subscription))
        self.publish("wamp.subscription.on_subscribe", session.session_id, subscription.id)

    def unsubscribed(self, session: RouterSession, subscription: Subscription[Any], deleted: bool) -> None:
        if subscription.topic.startswith("wamp."):
            return
        self.publish("wamp.subscription.on_unsubscribe", session.session_id, subscription.id)
        if deleted:
            self.publish("wamp.subscription.on_delete", session.session_id, subscription.id)

    def registered(self, session: RouterSession, registration: Registration[Any], created: bool) -> None:
        if created:
            registration.created = now_iso()
        if registration.procedure.startswith("wamp."):
            return
        if created:
            self.publish("wamp.registration.on_create", session.session_id, _registration_details(registration))
        self.publish("wamp.registration.on_register", session.session_id, registration.id)

    def unregistered(self, session: RouterSession, registration: Registration[Any], deleted: bool) -> None:
        if registration.procedure.startswith("wamp."):
            return
        self.publish("wamp.registration.on_unregister", session.session_id, registration.id)
        if deleted:
            self.publish("wamp.registration.on_delete", session.session_id, registration.id)

    # -- sessions -----------------------------------------------------------------------------

    @staticmethod
    def _role_filter(args: list[Any]) -> list[str] | None:
        if not args:
            return None
        roles = args[0]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ApplicationError(errors.INVALID_ARGUMENT, "filter_authroles must be a list of strings")
        return roles

    def _session_ids(self, args: list[Any]) -> list[int]:
        """The IDs of the realm's sessions (on every node), those of the roles in ``args[0]`` if given."""
        roles = self._role_filter(args)
        sessions = self.realm.sessions.values()
        if roles is None:
            found = [s.session_id for s in sessions]
        else:
            found = [s.session_id for s in sessions if s.identity is not None and s.identity.authrole in roles]
        if self.cluster is not None:
            found.extend(d["session"] for d in self.cluster.remote_sessions()
                         if roles is None or d.get("authrole") in roles)  # fmt: skip
        return found

    def _realm_stats(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """This node's counters of the realm since it started, and its sessions now."""
        return {"sessions": len(self.realm.sessions), **self.realm.stats.snapshot()}

    def _session_count(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return len(self._session_ids(args))

    def _session_list(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self._session_ids(args)

    def _session_get(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        target = _arg(args, 0, int, "session")
        session = self.realm.sessions.get(target)
        if session is not None:
            return session.describe()
        remote = self.cluster.remote_session(target) if self.cluster is not None else None
        if remote is None:
            raise ApplicationError(errors.NO_SUCH_SESSION, "no session with this ID on the realm")
        return remote

    @staticmethod
    def _close_reason(kwargs: dict[str, Any]) -> tuple[str, str | None]:
        reason = kwargs.get("reason", errors.CLOSE_KILLED)
        if not isinstance(reason, str) or not is_valid_uri(reason):
            raise ApplicationError(errors.INVALID_URI, f"reason {reason!r:.80} is not a valid URI")
        message = kwargs.get("message")
        return reason, message if isinstance(message, str) else None

    def _kill(self, victims: list[RouterSession], remote: list[int], kwargs: dict[str, Any]) -> list[int]:
        """Close local ``victims`` and the sessions ``remote`` of other nodes; return their IDs."""
        reason, message = self._close_reason(kwargs)
        for victim in victims:
            victim.say_goodbye(reason, message)
        if remote and self.cluster is not None:
            self.cluster.kill(remote, reason, message)
        return [s.session_id for s in victims] + remote

    def _remote_where(self, key: str, value: str) -> list[int]:
        if self.cluster is None:
            return []
        return [d["session"] for d in self.cluster.remote_sessions() if d.get(key) == value]

    def _session_kill(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        target = _arg(args, 0, int, "session")
        victim = self.realm.sessions.get(target)
        if victim is not None and victim is not caller:
            self._kill([victim], [], kwargs)
            return None
        if victim is None and self.cluster is not None and self.cluster.remote_session(target) is not None:
            self._kill([], [target], kwargs)
            return None
        raise ApplicationError(errors.NO_SUCH_SESSION, "no other session with this ID on the realm")

    def _session_kill_by_authid(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        authid = _arg(args, 0, str, "authid")
        victims = [s for s in self.realm.sessions.values()
                   if s is not caller and s.identity is not None and s.identity.authid == authid]  # fmt: skip
        return self._kill(victims, self._remote_where("authid", authid), kwargs)

    def _session_kill_by_authrole(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        authrole = _arg(args, 0, str, "authrole")
        victims = [s for s in self.realm.sessions.values()
                   if s is not caller and s.identity is not None and s.identity.authrole == authrole]  # fmt: skip
        return len(self._kill(victims, self._remote_where("authrole", authrole), kwargs))

    def _session_kill_all(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        victims = [s for s in self.realm.sessions.values() if s is not caller]
        remote = [d["session"] for d in self.cluster.remote_sessions()] if self.cluster is not None else []
        return len(self._kill(victims, remote, kwargs))

    def _add_testament(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        topic = _arg(args, 0, str, "topic")
        if not self.realm.valid_uri(topic):
            raise ApplicationError(errors.INVALID_URI, f"invalid topic URI {topic!r:.200}")
        event_args = args[1] if len(args) > 1 else None
        event_kwargs = args[2] if len(args) > 2 else None
        if event_args is not None and not isinstance(event_args, list):
            raise ApplicationError(errors.INVALID_ARGUMENT, "args must be a list")
        if event_kwargs is not None and not isinstance(event_kwargs, dict):
            raise ApplicationError(errors.INVALID_ARGUMENT, "kwargs must be a dictionary")
        scope = kwargs.get("scope", "destroyed")
        if scope not in SCOPES:
            raise ApplicationError(errors.INVALID_ARGUMENT, f"scope must be one of {', '.join(SCOPES)}")
        options = kwargs.get("publish_options") or {}
        if not isinstance(options, dict):
            raise ApplicationError(errors.INVALID_ARGUMENT, "publish_options must be a dictionary")
        bucket = self.testaments.setdefault(caller.session_id, {}).setdefault(scope, [])
        if len(bucket) >= 100:  # bounded: a session cannot grow the router's memory without end
            raise ApplicationError(errors.INVALID_ARGUMENT, "at most 100 testaments per scope")
        bucket.append(Testament(topic, event_args, event_kwargs, options))
        return self._testaments_changed(caller.session_id)

    def _testaments_changed(self, session_id: int) -> Any:
        """None, or in a cluster: RESULT once the cluster has the session's testaments (so they are
        published even if this node dies right after)."""
        cluster = self.cluster
        if cluster is None:
            return None
        testaments = self.testaments.get(session_id, {})
        return Later(lambda then: cluster.testaments_changed(session_id, testaments, then))

    def _flush_testaments(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        scope = kwargs.get("scope", "destroyed")
        if scope not in SCOPES:
            raise ApplicationError(errors.INVALID_ARGUMENT, f"scope must be one of {', '.join(SCOPES)}")
        mine = self.testaments.get(caller.session_id, {})
        if mine.pop(scope, None) is None:
            return None  # spec: "does not return a value"
        return self._testaments_changed(caller.session_id)

    # -- registrations ------------------------------------------------------------------------

    def _registration(self, args: list[Any]) -> Registration[Any]:
        registration = self.realm.dealer.registrations.get(_arg(args, 0, int, "registration"))
        if registration is None:
            raise ApplicationError(errors.NO_SUCH_REGISTRATION, "no registration with this ID on the realm")
        return registration

    def _registration_list(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        lists: dict[str, list[int]] = {EXACT: [], PREFIX: [], WILDCARD: []}
        for registration in self.realm.dealer.registrations.all():
            lists[registration.match].append(registration.id)
        return lists

    def _registration_lookup(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        procedure = _arg(args, 0, str, "procedure")
        options = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        match = options.get("match", EXACT)
        if match not in MATCH_POLICIES:
            raise ApplicationError(errors.INVALID_ARGUMENT, f"match must be one of {', '.join(MATCH_POLICIES)}")
        registration = self.realm.dealer.registrations.lookup(procedure, match)
        return NULL if registration is None else registration.id

    def _registration_match(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        registration = self.realm.dealer.registrations.best(_arg(args, 0, str, "procedure"))
        return NULL if registration is None else registration.id

    def _registration_get(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return _registration_details(self._registration(args))

    def _registration_list_callees(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return list(self._registration(args).callees)

    def _registration_count_callees(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return len(self._registration(args).callees)

    def _registration_remove_callee(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Revoke one callee's registration (Crossbar's meta procedure; spec: registration_revocation)."""
        registration = self._registration(args)
        callee = registration.callees.get(_arg(args, 1, int, "callee"))
        if callee is None:
            raise ApplicationError(errors.NO_SUCH_SESSION, "the session is not a callee of this registration")
        reason = kwargs.get("reason")
        self.realm.dealer.revoke(callee, registration, reason if isinstance(reason, str) else None)
        return None

    # -- subscriptions ------------------------------------------------------------------------

    def _subscription_remove_subscriber(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Revoke one subscriber's subscription (Crossbar's meta procedure; spec: subscription_revocation)."""
        subscription = self._subscription(args)
        subscriber = subscription.subscribers.get(_arg(args, 1, int, "subscriber"))
        if subscriber is None or subscriber.session_id not in self.realm.sessions:
            raise ApplicationError(errors.NO_SUCH_SESSION, "the session is not a subscriber of this subscription")
        reason = kwargs.get("reason")
        self.realm.broker.revoke(subscriber, subscription, reason if isinstance(reason, str) else None)
        return None

    def _subscription(self, args: list[Any]) -> Subscription[Any]:
        """The subscription with the ID in ``args[0]``: this node's, else (in a cluster) another
        node's (subscription IDs are the same on every node)."""
        subscription_id = _arg(args, 0, int, "subscription")
        subscription = self.realm.broker.subscriptions.get(subscription_id)
        cluster = self.realm.cluster
        if subscription is None and cluster is not None:
            subscription = cluster.remote_subscription(subscription_id)
        if subscription is None:
            raise ApplicationError(errors.NO_SUCH_SUBSCRIPTION, "no subscription with this ID on the realm")
        return subscription

    def _subscription_list(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        lists: dict[str, list[int]] = {EXACT: [], PREFIX: [], WILDCARD: []}
        for subscription in self.realm.broker.subscriptions.all():
            lists[subscription.match].append(subscription.id)
        cluster = self.realm.cluster
        if cluster is not None:
            for subscription in cluster.remote_subscriptions():
                if subscription.id not in lists[subscription.match]:
                    lists[subscription.match].append(subscription.id)
        return lists

    def _subscription_lookup(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        topic = _arg(args, 0, str, "topic")
        options = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        match = options.get("match", EXACT)
        if match not in MATCH_POLICIES:
            raise ApplicationError(errors.INVALID_ARGUMENT, f"match must be one of {', '.join(MATCH_POLICIES)}")
        subscription = self.realm.broker.subscriptions.lookup(topic, match)
        cluster = self.realm.cluster
        if subscription is None and cluster is not None:
            subscription = cluster.remote_lookup(topic, match)
        return NULL if subscription is None else subscription.id

    def _subscription_match(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        topic = _arg(args, 0, str, "topic")
        ids = [s.id for s in self.realm.broker.subscriptions.matching(topic)]
        cluster = self.realm.cluster
        if cluster is not None:
            ids += [s.id for s in cluster.remote_matching(topic) if s.id not in ids]
        return ids or NULL

    def _subscription_get(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return _subscription_details(self._subscription(args))

    def _subscribers(self, args: list[Any]) -> list[int]:
        """Session IDs of a subscription's subscribers (history recorders are not sessions)."""
        subscription = self._subscription(args)
        cluster = self.realm.cluster
        if self.realm.broker.subscriptions.get(subscription.id) is not subscription:  # known on other nodes only
            return cluster.remote_subscribers(subscription.id) if cluster is not None else []
        recorder = self.realm.broker.history.get(subscription.id)
        local = [sid for sid in subscription.subscribers if recorder is None or sid != recorder.session_id]
        return local + (cluster.remote_subscribers(subscription.id) if cluster is not None else [])

    def _subscription_list_subscribers(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self._subscribers(args)

    def _subscription_count_subscribers(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return len(self._subscribers(args))

    def _subscription_get_events(self, caller: RouterSession, args: list[Any], kwargs: dict[str, Any]) -> Any:
        subscription = self._subscription(args)
        recorder = self.realm.broker.history.get(subscription.id)
        if recorder is None:
            raise ApplicationError(
                "wamp.error.history_unavailable", "event history is not enabled for this subscription"
            )
        return recorder.query(subscription.id, kwargs)


def _registration_details(registration: Registration[Any]) -> dict[str, Any]:
    return {
        "id": registration.id, "created": registration.created, "uri": registration.procedure,
        "match": registration.match, "invoke": registration.invoke,
    }  # fmt: skip


def _subscription_details(subscription: Subscription[Any]) -> dict[str, Any]:
    return {"id": subscription.id, "created": subscription.created, "uri": subscription.topic,
            "match": subscription.match}  # fmt: skip
