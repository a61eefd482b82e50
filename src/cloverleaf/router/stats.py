"""Counters a realm keeps for monitoring: plain integers on the hot path, read on scrape."""

from __future__ import annotations

from ..wamp.messages import MESSAGE_CLASSES


class RealmStats:
    """What one realm has seen: messages by type, routed calls and events, errors, drops."""

    __slots__ = (
        "aborts", "calls_routed", "dropped_events", "errors_sent", "events_delivered", "joins", "received", "sent",
    )  # fmt: skip

    def __init__(self) -> None:
        #: messages received from clients, indexed by message type code
        self.received = [0] * (max(MESSAGE_CLASSES) + 1)
        #: messages the router sent to the realm's sessions, indexed by message type code
        self.sent = [0] * (max(MESSAGE_CLASSES) + 1)
        self.calls_routed = 0
        #: EVENT deliveries (one per subscriber reached)
        self.events_delivered = 0
        #: ERROR answers the router sent (refusals, no_such_procedure, ...)
        self.errors_sent = 0
        #: EVENTs dropped for slow consumers
        self.dropped_events = 0
        self.joins = 0
        #: sessions ended by ABORT (protocol violations, refusals)
        self.aborts = 0

    def snapshot(self) -> dict[str, int]:
        """The counters as one JSON-able mapping (totals over message types)."""
        return {
            "joins": self.joins,
            "messages_received": sum(self.received),
            "messages_sent": sum(self.sent),
            "calls_routed": self.calls_routed,
            "events_delivered": self.events_delivered,
            "events_dropped": self.dropped_events,
            "errors_sent": self.errors_sent,
            "aborts": self.aborts,
        }
