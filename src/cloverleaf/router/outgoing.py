"""Serialize-once: a message bound for many recipients is encoded once per serializer."""

from __future__ import annotations

from ..wamp.messages import Message
from ..wamp.serializers import Serializer


class OutgoingMessage:
    """A message with a cache of its encodings, keyed by serializer.

    An EVENT for 1,000 subscribers using two serializers is encoded twice, not 1,000 times.
    """

    __slots__ = ("_cache", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._cache: dict[Serializer, bytes] = {}

    def encoded(self, serializer: Serializer) -> bytes:
        payload = self._cache.get(serializer)
        if payload is None:
            payload = serializer.encode(self.message.marshal())
            self._cache[serializer] = payload
        return payload
