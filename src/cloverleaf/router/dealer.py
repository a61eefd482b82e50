"""The dealer: REGISTER / UNREGISTER / CALL / INVOCATION / YIELD / RESULT / ERROR / CANCEL routing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..wamp import errors
from ..wamp.errors import ProtocolError, UnencodableError
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
from .registry import AlreadyRegistered, LocalRegistrationStore, RegistrationStore

if TYPE_CHECKING:
    from .realm import Realm
    from .session import RouterSession

#: Features announced in WELCOME.Details.roles.dealer (only what is implemented).
DEALER_FEATURES: dict[str, Any] = {
    "caller_identification": True,
    "progressive_call_results": True,
    "call_canceling": True,
}

_CANCEL_MODES = ("skip", "kill", "killnowait")


class PendingCall:
    """A CALL routed to a callee and not yet answered."""

    __slots__ = ("call_request", "callee", "caller", "canceled", "invocation_request", "receive_progress")

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


class Dealer:
    __slots__ = ("realm", "registrations")

    def __init__(self, realm: Realm, registrations: RegistrationStore[RouterSession] | None = None) -> None:
        self.realm = realm
        self.registrations: RegistrationStore[RouterSession] = registrations or LocalRegistrationStore()

    # -- callee side -------------------------------------------------------------------------

    def register(self, session: RouterSession, message: Register) -> None:
        options = message.options
        match = options.get("match", "exact")
        invoke = options.get("invoke", "single")
        if match != "exact":
            session.error(
                Register.MESSAGE_TYPE,
                message.request,
                errors.INVALID_ARGUMENT,
                f"match policy {match!r:.40} is not supported (supported: 'exact')",
            )
            return
        if invoke != "single":
            session.error(
                Register.MESSAGE_TYPE,
                message.request,
                errors.INVALID_ARGUMENT,
                f"invocation policy {invoke!r:.40} is not supported (supported: 'single')",
            )
            return
        procedure = message.procedure
        if not self.realm.valid_uri(procedure):
            session.error(
                Register.MESSAGE_TYPE, message.request, errors.INVALID_URI, f"invalid procedure URI {procedure!r:.200}"
            )
            return
        if procedure.startswith("wamp."):
            session.error(
                Register.MESSAGE_TYPE,
                message.request,
                errors.INVALID_URI,
                f"procedure URI '{procedure}' is in the reserved 'wamp.' namespace",
            )
            return
        if not self.realm.authorize(session, Action.REGISTER, procedure):
            session.error(
                Register.MESSAGE_TYPE,
                message.request,
                errors.NOT_AUTHORIZED,
                f"session is not authorized to register procedure '{procedure}'",
            )
            return
        try:
            registration = self.registrations.register(procedure, match, invoke, session)
        except AlreadyRegistered:
            session.error(
                Register.MESSAGE_TYPE,
                message.request,
                errors.PROCEDURE_ALREADY_EXISTS,
                f"procedure '{procedure}' is already registered",
            )
            return
        session.send(Registered(message.request, registration.id))

    def unregister(self, session: RouterSession, message: Unregister) -> None:
        if self.registrations.unregister(message.registration, session) is None:
            session.error(
                Unregister.MESSAGE_TYPE,
                message.request,
                errors.NO_SUCH_REGISTRATION,
                f"session has no registration {message.registration}",
            )
            return
        session.send(Unregistered(message.request))

    def yield_(self, callee: RouterSession, message: Yield) -> None:
        pending = callee.pending_invocations.get(message.request)
        if pending is None:
            self._check_late_answer(callee, message.request, "YIELD")
            return  # the call was canceled or its caller left: a late answer is dropped
        progress = message.options.get("progress") is True
        if progress and not pending.receive_progress:
            return  # the caller did not ask for progressive results
        if not progress:
            del callee.pending_invocations[message.request]
            pending.caller.pending_calls.pop(pending.call_request, None)
        if pending.canceled is not None and (progress or pending.canceled != "kill"):
            return  # canceled: only a final answer still matters, and only in "kill" mode
        result = Result(pending.call_request, {"progress": True} if progress else {}, message.args, message.kwargs)
        self._answer_caller(pending, result)

    def invocation_error(self, callee: RouterSession, message: Error) -> None:
        pending = callee.pending_invocations.pop(message.request, None)
        if pending is None:
            self._check_late_answer(callee, message.request, "ERROR")
            return
        pending.caller.pending_calls.pop(pending.call_request, None)
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
        try:
            payload = caller.serializer.encode(answer.marshal())
        except UnencodableError as exc:
            payload = caller.serializer.encode(
                Error(
                    Call.MESSAGE_TYPE,
                    pending.call_request,
                    {},
                    errors.INVALID_ARGUMENT,
                    [f"the answer cannot be represented in the caller's serializer: {exc}"],
                ).marshal()
            )
        if not caller.fits(len(payload)):
            payload = caller.serializer.encode(
                Error(
                    Call.MESSAGE_TYPE,
                    pending.call_request,
                    {},
                    errors.PAYLOAD_SIZE_EXCEEDED,
                    ["the result is larger than the caller accepts"],
                ).marshal()
            )
        caller.send_payload(payload, droppable=False)

    # -- caller side -------------------------------------------------------------------------

    def call(self, caller: RouterSession, message: Call) -> None:
        procedure = message.procedure
        request = message.request
        realm = self.realm
        if request in caller.pending_calls:
            raise ProtocolError(f"CALL request ID {request} is already in use by a pending call")
        if not realm.valid_uri(procedure):
            caller.error(Call.MESSAGE_TYPE, request, errors.INVALID_URI, f"invalid procedure URI {procedure!r:.200}")
            return
        if not realm.authorize(caller, Action.CALL, procedure):
            caller.error(
                Call.MESSAGE_TYPE,
                request,
                errors.NOT_AUTHORIZED,
                f"session is not authorized to call procedure '{procedure}'",
            )
            return
        registration = self.registrations.lookup(procedure)
        if registration is None:
            caller.error(
                Call.MESSAGE_TYPE,
                request,
                errors.NO_SUCH_PROCEDURE,
                f"no callee registered for procedure '{procedure}'",
            )
            return
        callee = next(iter(registration.callees.values()))
        options = message.options
        details: dict[str, Any] = {}
        receive_progress = options.get("receive_progress") is True
        if receive_progress and callee.supports("callee", "progressive_call_results"):
            details["receive_progress"] = True
        if options.get("disclose_me") is True and caller.identity is not None:
            details["caller"] = caller.session_id
            details["caller_authid"] = caller.identity.authid
            details["caller_authrole"] = caller.identity.authrole
        invocation_request = callee.request_ids.next()
        try:
            payload = callee.serializer.encode(
                Invocation(invocation_request, registration.id, details, message.args, message.kwargs).marshal()
            )
        except UnencodableError as exc:
            caller.error(
                Call.MESSAGE_TYPE,
                request,
                errors.INVALID_ARGUMENT,
                f"the call's payload cannot be represented in the callee's serializer: {exc}",
            )
            return
        if not callee.fits(len(payload)):
            caller.error(
                Call.MESSAGE_TYPE,
                request,
                errors.PAYLOAD_SIZE_EXCEEDED,
                "the call's payload is larger than the callee accepts",
            )
            return
        pending = PendingCall(caller, request, callee, invocation_request, receive_progress)
        caller.pending_calls[request] = pending
        callee.pending_invocations[invocation_request] = pending
        callee.send_payload(payload, droppable=False)

    def cancel(self, caller: RouterSession, message: Cancel) -> None:
        pending = caller.pending_calls.get(message.request)
        if pending is None or pending.canceled is not None:
            return  # already answered: nothing to cancel
        mode = message.options.get("mode", "killnowait")
        if mode not in _CANCEL_MODES:
            caller.error(
                Cancel.MESSAGE_TYPE,
                message.request,
                errors.INVALID_ARGUMENT,
                f"cancel mode {mode!r:.40} is not one of {', '.join(_CANCEL_MODES)}",
            )
            return
        callee = pending.callee
        if mode != "skip" and not callee.supports("callee", "call_canceling"):
            mode = "skip"
        pending.canceled = mode
        if mode != "skip":
            callee.send(Interrupt(pending.invocation_request, {"mode": mode}))
        if mode != "kill":
            caller.pending_calls.pop(message.request, None)
            caller.send(Error(Call.MESSAGE_TYPE, message.request, {}, errors.CANCELED, ["the call was canceled"]))
        if mode == "killnowait":
            callee.pending_invocations.pop(pending.invocation_request, None)

    # -- leaving -----------------------------------------------------------------------------

    def detach(self, session: RouterSession) -> None:
        """Clean up after a session that left: its registrations and both sides of its calls."""
        self.registrations.remove_member(session)
        for pending in session.pending_invocations.values():
            caller = pending.caller
            if caller.pending_calls.pop(pending.call_request, None) is not None and caller.is_open:
                caller.send(
                    Error(
                        Call.MESSAGE_TYPE,
                        pending.call_request,
                        {},
                        errors.CANCELED,
                        ["callee disconnected from in-flight request"],
                    )
                )
        session.pending_invocations.clear()
        for pending in session.pending_calls.values():
            callee = pending.callee
            if callee.pending_invocations.pop(pending.invocation_request, None) is None:
                continue
            if callee.is_open and callee.supports("callee", "call_canceling"):
                callee.send(Interrupt(pending.invocation_request, {"mode": "killnowait", "reason": errors.CANCELED}))
        session.pending_calls.clear()
