"""The dealer: REGISTER / UNREGISTER / CALL / INVOCATION / YIELD / RESULT / ERROR / CANCEL routing.

Exact, prefix and wildcard registrations (spec precedence), shared registrations with the
``single``, ``roundrobin``, ``random``, ``first`` and ``last`` policies, progressive results, call
canceling, call timeouts, caller disclosure, and the router's own meta procedures.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import TYPE_CHECKING, Any

from ..wamp import errors
from ..wamp.errors import ApplicationError, ProtocolError, UnencodableError
from ..wamp.messages import (
    Call,
    Cancel,
    Error,
    Interrupt,
    Invocation,
    Register,
    Registered,
    Result,
    Unregister,
    Unregistered,
    Yield,
)
from .auth import Action
from .meta import Later, result_args
from .patterns import EXACT, MATCH_POLICIES, passthru_keys
from .registry import AlreadyRegistered, LocalRegistrationStore, Registration, RegistrationStore

if TYPE_CHECKING:
    from .realm import Realm
    from .session import RouterSession

#: Features announced in WELCOME.Details.roles.dealer (only what is implemented).
DEALER_FEATURES: dict[str, Any] = {
    "caller_identification": True,
    "progressive_call_results": True,
    "call_canceling": True,
    "call_timeout": True,
    "pattern_based_registration": True,
    "shared_registration": True,
    "registration_meta_api": True,
    "session_meta_api": True,
    "testament_meta_api": True,
    "progressive_call_invocations": True,
    "payload_passthru_mode": True,
    "registration_revocation": True,
    "call_trustlevels": True,
}

_CANCEL_MODES = ("skip", "kill", "killnowait")
INVOKE_POLICIES = ("single", "roundrobin", "random", "first", "last")


class PendingCall:
    """A CALL routed to a callee and not yet answered."""

    __slots__ = (
        "call_request",
        "callee",
        "caller",
        "canceled",
        "invocation_request",
        "progressive_invocations",
        "receive_progress",
        "registration",
        "route",
        "timer",
    )

    def __init__(
        self,
        caller: RouterSession,
        call_request: int,
        callee: RouterSession,
        invocation_request: int,
        receive_progress: bool,
    ) -> None:
        self.caller = caller
        self.call_request = call_request
        self.callee = callee
        self.invocation_request = invocation_request
        self.receive_progress = receive_progress
        #: mode of a CANCEL waiting for the callee's answer ("kill"), else None
        self.canceled: str | None = None
        #: the router-side timeout, when the call has one
        self.timer: asyncio.TimerHandle | None = None
        #: the caller still sends more CALLs for this request (progressive call invocations)
        self.progressive_invocations = False
        self.registration = 0
        #: on a cluster node, what is needed to route the call again (see Dealer.reroute)
        self.route: tuple[Call, float, dict[str, Any], bool] | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


#: the longest call timeout kept (2^31 - 1 ms, about 24.8 days, JavaScript's setTimeout limit); a
#: longer one is shortened to it (also when forwarded to the callee)
MAX_CALL_TIMEOUT_SECONDS = (2**31 - 1) / 1000


#: URIs the router answers itself: the spec's meta API, and Cloverleaf's own (cloverleaf.realm.stats)
ROUTER_PROCEDURE_PREFIXES = ("wamp.", "cloverleaf.realm.")


def call_timeout_seconds(value: Any) -> float:
    """The CALL's ``timeout`` option in seconds (0: none), at most :data:`MAX_CALL_TIMEOUT_SECONDS`.

    The spec gives milliseconds as an integer, and that is how an integer is read (Autobahn|Python
    sends its integer unchanged). A float (10.0, 2.5) is taken as seconds, as some clients send it.
    """
    if type(value) is int:
        seconds = value / 1000
    elif type(value) is float:
        seconds = value
        if not math.isfinite(seconds):
            raise ValueError("option 'timeout' must be a finite number")
    else:
        raise ValueError("option 'timeout' must be a number of milliseconds")
    if seconds < 0:
        raise ValueError("option 'timeout' must not be negative")
    return min(seconds, MAX_CALL_TIMEOUT_SECONDS)


class Dealer:
    __slots__ = ("_random", "realm", "registrations")

    def __init__(self, realm: Realm, registrations: RegistrationStore[RouterSession] | None = None) -> None:
        self.realm = realm
        self.registrations: RegistrationStore[RouterSession] = registrations or LocalRegistrationStore()
        self._random = random.Random()

    # -- callee side -------------------------------------------------------------------------

    def register(self, session: RouterSession, message: Register) -> None:
        options = message.options
        match = options.get("match", EXACT)
        invoke = options.get("invoke", "single")
        request = message.request
        if match not in MATCH_POLICIES:
            session.error(Register.MESSAGE_TYPE, request, errors.INVALID_ARGUMENT,
                          f"match policy {match!r:.40} is not one of {', '.join(MATCH_POLICIES)}")  # fmt: skip
            return
        if invoke not in INVOKE_POLICIES:
            session.error(Register.MESSAGE_TYPE, request, errors.INVALID_ARGUMENT,
                          f"invocation policy {invoke!r:.40} is not one of {', '.join(INVOKE_POLICIES)}")  # fmt: skip
            return
        procedure = message.procedure
        if not self.realm.valid_uri(procedure, pattern=match):
            session.error(
                Register.MESSAGE_TYPE, request, errors.INVALID_URI, f"invalid procedure URI {procedure!r:.200}"
            )
            return
        if procedure.startswith("wamp."):
            session.error(Register.MESSAGE_TYPE, request, errors.INVALID_URI,
                          f"procedure URI '{procedure}' is in the reserved 'wamp.' namespace")  # fmt: skip
            return
        if procedure.startswith(ROUTER_PROCEDURE_PREFIXES[1:]):  # the router answers these itself
            session.error(Register.MESSAGE_TYPE, request, errors.PROCEDURE_ALREADY_EXISTS,
                          f"procedures under '{ROUTER_PROCEDURE_PREFIXES[1]}' are the router's own")  # fmt: skip
            return
        if not self.realm.authorize(session, Action.REGISTER, procedure).allowed:
            session.error(Register.MESSAGE_TYPE, request, errors.NOT_AUTHORIZED,
                          f"session is not authorized to register procedure '{procedure}'")  # fmt: skip
            return
        cluster = self.realm.cluster
        if cluster is not None:
            # the cluster's registry decides (compare-and-set: single and the policy hold cluster-wide),
            # then calls registered() or refused(); the session's later messages wait for it
            kept = {key: options[key] for key in ("disclose_caller", "forward_timeout") if options.get(key) is True}
            cluster.register(session, request, procedure, match, invoke, kept)
            return
        try:
            registration, created = self.registrations.register(procedure, match, invoke, session)
        except AlreadyRegistered as taken:
            self.refused(session, request, procedure, taken.different_policy)
            return
        if created:
            registration.options = {
                key: options[key] for key in ("disclose_caller", "forward_timeout") if options.get(key) is True
            }
        self.registered(session, request, registration, created)

    def registered(self, session: RouterSession, request: int, registration: Registration[Any], created: bool) -> None:
        """REGISTER succeeded (here, or in the cluster's registry): answer and tell the meta API."""
        session.send(Registered(request, registration.id))
        self.realm.meta.registered(session, registration, created)

    @staticmethod
    def refused(session: RouterSession, request: int, procedure: str, different_policy: bool) -> None:
        """REGISTER refused because the procedure is taken (``different_policy``: shared under another
        invocation policy)."""
        if different_policy:
            error = errors.PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY
            text = f"procedure '{procedure}' is already registered with another invocation policy"
        else:
            error, text = errors.PROCEDURE_ALREADY_EXISTS, f"procedure '{procedure}' is already registered"
        session.error(Register.MESSAGE_TYPE, request, error, text)

    def unregister(self, session: RouterSession, message: Unregister) -> None:
        removed = self.registrations.unregister(message.registration, session)
        if removed is None:
            session.error(Unregister.MESSAGE_TYPE, message.request, errors.NO_SUCH_REGISTRATION,
                          f"session has no registration {message.registration}")  # fmt: skip
            return
        cluster = self.realm.cluster
        if cluster is not None:
            # UNREGISTERED once every node has stopped routing calls to it (docs/cluster.md)
            session.hold()
            registration, deleted = removed

            def unregistered_everywhere() -> None:
                if session.is_open:
                    session.send(Unregistered(message.request))
                    self.realm.meta.unregistered(session, registration, deleted)
                session.release()

            cluster.callees_changed(registration, unregistered_everywhere)
            return
        session.send(Unregistered(message.request))
        self.realm.meta.unregistered(session, removed[0], removed[1])

    def yield_(self, callee: RouterSession, message: Yield) -> None:
        pending = callee.pending_invocations.get(message.request)
        if pending is None:
            self._check_late_answer(callee, message.request, "YIELD")
            return  # the call was canceled, timed out, or its caller left: a late answer is dropped
        details = passthru_keys(message.options)
        if "ppt_scheme" in details and not callee.supports("callee", "payload_passthru_mode"):
            # raised while the call is still pending: the callee's abort then answers its caller
            raise ProtocolError("YIELD uses payload passthru, which the callee did not announce")
        progress = message.options.get("progress") is True
        if progress and not pending.receive_progress:
            return  # the caller did not ask for progressive results
        if not progress:
            del callee.pending_invocations[message.request]
            pending.caller.pending_calls.pop(pending.call_request, None)
            pending.stop_timer()
        if pending.canceled is not None and (progress or pending.canceled != "kill"):
            return  # canceled: only a final answer still matters, and only in "kill" mode
        if "ppt_scheme" in details and not pending.caller.supports("caller", "payload_passthru_mode"):
            reason = ["the caller does not support payload passthru"]
            callee.pending_invocations.pop(message.request, None)
            pending.caller.pending_calls.pop(pending.call_request, None)
            pending.stop_timer()
            callee.send(Error(Yield.MESSAGE_TYPE, message.request, {}, errors.FEATURE_NOT_SUPPORTED, reason))
            self._answer_caller(
                pending, Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.FEATURE_NOT_SUPPORTED, reason)
            )
            return
        if progress:
            details["progress"] = True
        self._answer_caller(pending, Result(pending.call_request, details, message.args, message.kwargs))

    def invocation_error(self, callee: RouterSession, message: Error) -> None:
        pending = callee.pending_invocations.pop(message.request, None)
        if pending is None:
            self._check_late_answer(callee, message.request, "ERROR")
            return
        pending.caller.pending_calls.pop(pending.call_request, None)
        pending.stop_timer()
        if pending.canceled == "skip" or pending.canceled == "killnowait":
            return  # the caller already got its ERROR
        error = message.error if self.realm.valid_uri(message.error) else errors.INVALID_URI
        self._answer_caller(
            pending,
            Error(Call.MESSAGE_TYPE, pending.call_request, message.details, error, message.args, message.kwargs),
        )

    @staticmethod
    def _check_late_answer(callee: RouterSession, request: int, kind: str) -> None:
        """An answer to an INVOCATION never sent is a protocol violation; a late one is not."""
        if not callee.request_ids.was_issued(request):
            raise ProtocolError(f"{kind} for INVOCATION {request}, which was never sent to this session")

    def _answer_caller(self, pending: PendingCall, answer: Result | Error) -> None:
        caller = pending.caller
        sent_type = answer.MESSAGE_TYPE
        try:
            payload = caller.serializer.encode(answer.marshal())
        except UnencodableError as exc:
            sent_type = Error.MESSAGE_TYPE
            payload = caller.serializer.encode(
                Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.INVALID_ARGUMENT,
                      [f"the answer cannot be represented in the caller's serializer: {exc}"]).marshal()
            )  # fmt: skip
        if not caller.fits(len(payload)):
            sent_type = Error.MESSAGE_TYPE
            payload = caller.serializer.encode(
                Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.PAYLOAD_SIZE_EXCEEDED,
                      ["the result is larger than the caller accepts"]).marshal()
            )  # fmt: skip
        caller.send_payload(payload, sent_type, droppable=False)

    # -- caller side -------------------------------------------------------------------------

    def call(self, caller: RouterSession, message: Call) -> None:
        procedure = message.procedure
        request = message.request
        realm = self.realm
        options = message.options
        pending_call = caller.pending_calls.get(request)
        if pending_call is not None:
            if not pending_call.progressive_invocations:
                raise ProtocolError(f"CALL request ID {request} is already in use by a pending call")
            self._continue_call(pending_call, message)
            return
        if caller.core.reused_request:
            raise ProtocolError(f"CALL request ID {request} reuses the ID of a call that is not in progress")
        if not realm.valid_uri(procedure):
            caller.error(Call.MESSAGE_TYPE, request, errors.INVALID_URI, f"invalid procedure URI {procedure!r:.200}")
            return
        decision = realm.authorize(caller, Action.CALL, procedure)
        if not decision.allowed:
            caller.error(Call.MESSAGE_TYPE, request, errors.NOT_AUTHORIZED,
                         f"session is not authorized to call procedure '{procedure}'")  # fmt: skip
            return
        progressive_call = options.get("progress") is True
        if progressive_call and not caller.supports("caller", "progressive_call_invocations"):
            raise ProtocolError("CALL with progress, but the caller did not announce progressive_call_invocations")
        passthru = passthru_keys(options)
        if "ppt_scheme" in passthru and not caller.supports("caller", "payload_passthru_mode"):
            raise ProtocolError("CALL uses payload passthru, which the caller did not announce")
        try:
            timeout = call_timeout_seconds(options["timeout"]) if "timeout" in options else 0.0
        except ValueError as exc:
            caller.error(Call.MESSAGE_TYPE, request, errors.INVALID_ARGUMENT, str(exc))
            return
        if procedure.startswith(ROUTER_PROCEDURE_PREFIXES):
            self._call_meta(caller, message)
            return
        self._route(caller, message, timeout, progressive_call, passthru, decision.disclose)

    def _route(self, caller: RouterSession, message: Call, timeout: float, progressive_call: bool,
               passthru: dict[str, Any], disclose_allowed: bool) -> None:  # fmt: skip
        """Choose the callee of an authorized, checked CALL and invoke it."""
        procedure, request, options, realm = message.procedure, message.request, message.options, self.realm
        registration = self.registrations.best(procedure)
        if registration is None or not registration.callees:
            caller.error(Call.MESSAGE_TYPE, request, errors.NO_SUCH_PROCEDURE,
                         f"no callee registered for procedure '{procedure}'")  # fmt: skip
            return
        callee = self._pick_callee(registration)
        if progressive_call and not (
            callee.supports("callee", "progressive_call_invocations") and callee.supports_canceling
        ):
            caller.error(Call.MESSAGE_TYPE, request, errors.FEATURE_NOT_SUPPORTED,
                         "the callee does not support progressive call invocations")  # fmt: skip
            return
        if "ppt_scheme" in passthru and not callee.supports("callee", "payload_passthru_mode"):
            caller.error(Call.MESSAGE_TYPE, request, errors.FEATURE_NOT_SUPPORTED,
                         "the callee does not support payload passthru")  # fmt: skip
            return
        details: dict[str, Any] = dict(passthru) if realm.cluster is not None else passthru
        if progressive_call:
            details["progress"] = True
        receive_progress = options.get("receive_progress") is True
        # Forwarded to every callee that announced progressive_call_results, call_canceling or not:
        # the current spec disregards the feature without canceling, but AutobahnJS callees
        # announce no canceling and stream progress (Crossbar forwards it; docs/spec-notes.md). A
        # CANCEL then ends the caller's call at once ("skip") and the late YIELDs are dropped.
        if receive_progress and callee.supports("callee", "progressive_call_results"):
            details["receive_progress"] = True
        policy = realm.policy(caller)
        disclose = (
            options.get("disclose_me") is True
            or policy.disclose_caller
            or disclose_allowed
            or "disclose_caller" in registration.options
        )
        if disclose and caller.identity:
            details["caller"] = caller.session_id
            details["caller_authid"] = caller.identity.authid
            details["caller_authrole"] = caller.identity.authrole
        if policy.trustlevel is not None:
            details["trustlevel"] = policy.trustlevel
        if registration.match != EXACT:
            details["procedure"] = procedure
        forward_timeout = timeout > 0 and "forward_timeout" in registration.options
        if forward_timeout:
            details["timeout"] = round(timeout * 1000)
        invocation_request = callee.request_ids.next()
        try:
            payload = callee.serializer.encode(
                Invocation(invocation_request, registration.id, details, message.args, message.kwargs).marshal()
            )
        except UnencodableError as exc:
            caller.error(Call.MESSAGE_TYPE, request, errors.INVALID_ARGUMENT,
                         f"the call's payload cannot be represented in the callee's serializer: {exc}")  # fmt: skip
            return
        if not callee.fits(len(payload)):
            caller.error(Call.MESSAGE_TYPE, request, errors.PAYLOAD_SIZE_EXCEEDED,
                         "the call's payload is larger than the callee accepts")  # fmt: skip
            return
        pending = PendingCall(caller, request, callee, invocation_request, receive_progress)
        pending.progressive_invocations = progressive_call
        pending.registration = registration.id
        if realm.cluster is not None:  # kept to route the call again if its remote callee has just left
            pending.route = (message, timeout, passthru, disclose_allowed)
        caller.pending_calls[request] = pending
        callee.pending_invocations[invocation_request] = pending
        if timeout > 0 and not forward_timeout:
            pending.timer = asyncio.get_running_loop().call_later(timeout, self._timed_out, pending)
        self.realm.stats.calls_routed += 1
        callee.send_payload(payload, Invocation.MESSAGE_TYPE, droppable=False)

    def reroute(self, pending: PendingCall) -> None:
        """The callee's node answered that the callee left (or unregistered) before the call
        reached it: route the call again, as if it had come in now (another callee, or
        no_such_procedure). Only for calls kept for it (``pending.route``, cluster nodes)."""
        caller = pending.caller
        pending.stop_timer()
        if caller.pending_calls.get(pending.call_request) is not pending or pending.route is None:
            return
        del caller.pending_calls[pending.call_request]
        if pending.canceled is not None or not caller.is_open:
            return
        message, timeout, passthru, disclose_allowed = pending.route
        self._route(caller, message, timeout, pending.progressive_invocations, passthru, disclose_allowed)

    def _continue_call(self, pending: PendingCall, message: Call) -> None:
        """A later CALL of a progressive call goes to the same callee under the same INVOCATION ID."""
        if pending.canceled is not None:
            return
        details = passthru_keys(message.options)
        if message.options.get("progress") is True:
            details["progress"] = True
        else:
            pending.progressive_invocations = False  # the final chunk
        pending.callee.send(
            Invocation(pending.invocation_request, pending.registration, details, message.args, message.kwargs)
        )

    def _pick_callee(self, registration: Registration[RouterSession]) -> RouterSession:
        callees = registration.callees
        policy = registration.invoke
        if policy == "single" or len(callees) == 1:
            return next(iter(callees.values()))
        values = list(callees.values())
        if policy == "roundrobin":
            callee = values[registration.next_index % len(values)]
            registration.next_index = (registration.next_index + 1) % len(values)
            return callee
        if policy == "random":
            return self._random.choice(values)
        if policy == "last":
            return values[-1]
        return values[0]  # "first"

    def _timed_out(self, pending: PendingCall) -> None:
        """The call's timeout passed: the caller gets wamp.error.timeout, the callee an INTERRUPT."""
        pending.timer = None
        caller, callee = pending.caller, pending.callee
        if caller.pending_calls.pop(pending.call_request, None) is None:
            return
        callee.pending_invocations.pop(pending.invocation_request, None)
        if caller.is_open:
            caller.send(Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.TIMEOUT,
                              ["the call was not answered within its timeout"]))  # fmt: skip
        if callee.is_open and callee.supports_canceling:
            callee.send(Interrupt(pending.invocation_request, {"mode": "killnowait", "reason": errors.TIMEOUT}))

    def _call_meta(self, caller: RouterSession, message: Call) -> None:
        handler = self.realm.meta.procedures.get(message.procedure)
        if handler is None:
            caller.error(Call.MESSAGE_TYPE, message.request, errors.NO_SUCH_PROCEDURE,
                         f"no meta procedure '{message.procedure}'")  # fmt: skip
            return
        try:
            value = handler(caller, list(message.args or ()), dict(message.kwargs or {}))
        except ApplicationError as exc:
            caller.send(Error(Call.MESSAGE_TYPE, message.request, {}, exc.error, list(exc.args) or None,
                              exc.kwargs or None))  # fmt: skip
            return
        if isinstance(value, Later):  # answered once the meta procedure's work is done (its later messages wait)
            caller.hold()
            request = message.request

            def answer(value: Later = value) -> None:
                if caller.is_open:
                    caller.send(Result(request, {}, result_args(value.value)))
                caller.release()

            value.start(answer)
            return
        caller.send(Result(message.request, {}, result_args(value)))

    def cancel(self, caller: RouterSession, message: Cancel) -> None:
        pending = caller.pending_calls.get(message.request)
        if pending is None or pending.canceled is not None:
            return  # already answered: nothing to cancel
        mode = message.options.get("mode", "killnowait")
        if mode == "":  # kraftfahrstrasse's "no mode given" (docs/spec-notes.md): the default, as without the key
            mode = "killnowait"
        if mode not in _CANCEL_MODES:
            caller.error(Cancel.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT,
                         f"cancel mode {mode!r:.40} is not one of {', '.join(_CANCEL_MODES)}")  # fmt: skip
            return
        callee = pending.callee
        if mode != "skip" and not callee.supports_canceling:
            mode = "skip"
        pending.canceled = mode
        if mode != "kill":
            pending.stop_timer()
        if mode != "skip":
            callee.send(Interrupt(pending.invocation_request, {"mode": mode}))
        if mode != "kill":
            caller.pending_calls.pop(message.request, None)
            caller.send(Error(Call.MESSAGE_TYPE, message.request, {}, errors.CANCELED, ["the call was canceled"]))
        if mode == "killnowait":
            callee.pending_invocations.pop(pending.invocation_request, None)

    def revoke(self, callee: RouterSession, registration: Registration[RouterSession], reason: str | None) -> None:
        """Remove a callee from a registration on the router's initiative (registration_revocation)."""
        removed = self.registrations.unregister(registration.id, callee)
        if removed is None:
            return
        if callee.supports("callee", "registration_revocation"):
            details: dict[str, Any] = {"registration": registration.id}
            if reason:
                details["reason"] = reason
            callee.send(Unregistered(0, details))
        self.realm.meta.unregistered(callee, removed[0], removed[1])
        if self.realm.cluster is not None:
            self.realm.cluster.callees_changed(removed[0])

    # -- calls from other nodes of a cluster --------------------------------------------------

    def relay_invocation(self, origin: Any, callee: RouterSession, message: Invocation) -> None:
        """An INVOCATION another node's dealer sent for ``callee``, a session of this node.

        ``origin`` stands for the caller's node (a proxy with what the dealer needs of a caller:
        ``pending_calls``, ``send``, ``send_payload``, ``serializer``, ``fits``, ``supports``,
        ``is_open``); the callee's YIELD and ERROR reach it as they reach a local caller. The
        caller's node chose the callee, authorized the call and runs its timeout.
        """
        request = message.request
        pending = origin.pending_calls.get(request)
        if pending is not None:  # the next chunk of a progressive call invocation
            if pending.canceled is None:
                if message.details.get("progress") is not True:
                    pending.progressive_invocations = False
                callee.send(Invocation(pending.invocation_request, message.registration, message.details,
                                       message.args, message.kwargs))  # fmt: skip
            return
        if not callee.is_open:
            origin.send(Error(Call.MESSAGE_TYPE, request, {}, errors.CANCELED,
                              ["callee disconnected from in-flight request"]))  # fmt: skip
            return
        invocation_request = callee.request_ids.next()
        try:
            payload = callee.serializer.encode(
                Invocation(invocation_request, message.registration, message.details, message.args,
                           message.kwargs).marshal()
            )  # fmt: skip
        except UnencodableError as exc:
            origin.send(Error(Call.MESSAGE_TYPE, request, {}, errors.INVALID_ARGUMENT,
                              [f"the call's payload cannot be represented in the callee's serializer: {exc}"]))
            return
        if not callee.fits(len(payload)):
            origin.send(Error(Call.MESSAGE_TYPE, request, {}, errors.PAYLOAD_SIZE_EXCEEDED,
                              ["the call's payload is larger than the callee accepts"]))  # fmt: skip
            return
        # progress is filtered on the caller's node, which knows what its caller asked for
        pending = PendingCall(origin, request, callee, invocation_request, receive_progress=True)
        pending.progressive_invocations = message.details.get("progress") is True
        pending.registration = message.registration
        origin.pending_calls[request] = pending
        callee.pending_invocations[invocation_request] = pending
        callee.send_payload(payload, Invocation.MESSAGE_TYPE, droppable=False)

    # -- leaving -----------------------------------------------------------------------------

    def detach(self, session: RouterSession) -> None:
        """Clean up after a session that left: its registrations and both sides of its calls."""
        cluster = self.realm.cluster
        for registration, deleted in self.registrations.remove_member(session):
            self.realm.meta.unregistered(session, registration, deleted)
            if cluster is not None:
                cluster.callees_changed(registration)
        for pending in session.pending_invocations.values():
            pending.stop_timer()
            caller = pending.caller
            if caller.pending_calls.pop(pending.call_request, None) is not None and caller.is_open:
                caller.send(Error(Call.MESSAGE_TYPE, pending.call_request, {}, errors.CANCELED,
                                  ["callee disconnected from in-flight request"]))  # fmt: skip
        session.pending_invocations.clear()
        self.abandon_calls(session)

    @staticmethod
    def abandon_calls(caller: Any) -> None:
        """The caller is gone (a session, or another node's caller side): its calls in flight end,
        and callees that can be interrupted are."""
        for pending in caller.pending_calls.values():
            pending.stop_timer()
            callee = pending.callee
            if callee.pending_invocations.pop(pending.invocation_request, None) is None:
                continue
            if callee.is_open and callee.supports_canceling:
                callee.send(Interrupt(pending.invocation_request, {"mode": "killnowait", "reason": errors.CANCELED}))
        caller.pending_calls.clear()
