"""The HTTP bridge (Crossbar-compatible shapes): HTTP POSTs become WAMP publications and calls.

``webhook``: any request (method, headers, body) becomes an event on a configured topic.
``publisher``: POST ``{"topic": uri, "args": [...], "kwargs": {...}, "options": {...}}`` publishes
and answers ``{"id": publication}``. ``caller``: POST ``{"procedure": uri, "args": [...], "kwargs":
{...}}`` calls and answers ``{"args": [...], "kwargs": {...}}``. Failures answer 400 with
``{"error": uri, "args": [...]}`` (bad request) or 500/502 with the WAMP error. Each bridge acts on
one realm under one role, authorized like any client. With a ``key``/``secret`` pair, requests must
be signed as Crossbar's bridge does: query parameters ``key``, ``timestamp``, ``seq``, ``nonce`` and
``signature`` = base64url(HMAC-SHA256(secret, key + timestamp + seq + nonce + body)).

A signed request is accepted once: the bridge remembers each accepted signature until its timestamp
leaves the window (15 minutes either side of now), and answers a replay 401. ``seq`` and ``nonce``
only make two requests with the same body and timestamp differ; ``seq`` need not increase (several
clients may share a key). The memory is bounded (:data:`MAX_REMEMBERED`): when full, the oldest
entry is dropped and requests stamped at or before its timestamp are refused as too old, so the
guarantee holds, with a shorter window.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson

from ..router.internal import ServiceSession
from ..transport.web import HttpRequest
from ..wamp.errors import ApplicationError, SerializationError
from ..wamp.serializers import JSON as JSON_SERIALIZER

JSON = "application/json"
#: how far a signed request's timestamp may be from now (seconds)
SIGNATURE_WINDOW = 900
#: accepted signatures remembered for replay protection, at most (about 110 signed requests per
#: second over the whole window)
MAX_REMEMBERED = 100_000


class HttpBridge:
    def __init__(
        self,
        kind: str,
        session: ServiceSession,
        key: str | None = None,
        secret: str | None = None,
        timeout: float = 30.0,
        topic: str | None = None,
    ) -> None:
        self.kind = kind
        #: webhook: the topic every request is published to
        self.topic = topic
        self.session = session
        self.key = key
        self.secret = secret
        self.timeout = timeout
        #: signatures accepted and still within the window, and a heap of (timestamp, signature)
        self._accepted: set[str] = set()
        self._expiry: list[tuple[float, str]] = []
        #: requests stamped at or before this are refused (raised when the memory was full)
        self._horizon = 0.0

    async def handle(self, http: HttpRequest) -> tuple[int, bytes, str]:
        query, body = http.query, http.body
        if self.secret is not None:
            problem = self._check_signature(query, body)
            if problem:
                return _failure(401, "cloverleaf.error.invalid_signature", problem)
        if self.kind == "webhook":
            assert self.topic is not None
            event = {"method": http.method, "path": http.path, "query": query, "headers": http.headers,
                     "body": body.decode("utf-8", errors="replace")}  # fmt: skip
            try:
                publication = await self.session.publish(self.topic, [event], {}, {}, self.timeout)
            except ApplicationError as exc:
                return 502, orjson.dumps({"error": exc.error, "args": list(exc.args)}), JSON
            return 202, orjson.dumps({"id": publication}), JSON
        body = body or b"{}"
        try:
            # the WAMP JSON serializer: a NUL-prefixed string is binary here too, as on a WebSocket
            request, unportable = JSON_SERIALIZER.decode_routable(body)
        except SerializationError as exc:
            return _failure(400, "cloverleaf.error.invalid_json", exc.message)
        if not isinstance(request, dict):
            return _failure(400, "cloverleaf.error.invalid_request", "the body must be a JSON object")
        if unportable is not None:
            return _failure(400, "wamp.error.invalid_argument", f"the request holds {unportable}")
        args = request.get("args") or []
        kwargs = request.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            return _failure(400, "cloverleaf.error.invalid_request", "args must be a list and kwargs an object")
        try:
            if self.kind == "publisher":
                topic = request.get("topic")
                options = request.get("options") or {}
                if not isinstance(topic, str) or not isinstance(options, dict):
                    return _failure(400, "cloverleaf.error.invalid_request", "topic (a URI) is required")
                publication = await self.session.publish(topic, args, kwargs, options, self.timeout)
                return 200, orjson.dumps({"id": publication}), JSON
            procedure = request.get("procedure")
            if not isinstance(procedure, str):
                return _failure(400, "cloverleaf.error.invalid_request", "procedure (a URI) is required")
            result = await self.session.call_result(procedure, args, kwargs, self.timeout)
            return 200, orjson.dumps({"args": result.args or [], "kwargs": result.kwargs or {}}), JSON
        except ApplicationError as exc:
            status = 400 if exc.error in ("wamp.error.invalid_uri", "wamp.error.invalid_argument") else 502
            if exc.error == "wamp.error.not_authorized":
                status = 403
            return status, orjson.dumps({"error": exc.error, "args": list(exc.args), "kwargs": exc.kwargs}), JSON
        except TimeoutError:
            return _failure(504, "wamp.error.timeout", f"no answer within {self.timeout}s")

    def _check_signature(self, query: str, body: bytes) -> str | None:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        needed = ("key", "timestamp", "seq", "nonce", "signature")
        if any(name not in params for name in needed):
            return "signed requests need key, timestamp, seq, nonce and signature query parameters"
        if params["key"] != self.key:
            return "unknown key"
        try:
            stamp = datetime.fromisoformat(params["timestamp"].replace("Z", "+00:00"))
        except ValueError:
            return "invalid timestamp"
        if abs(stamp.timestamp() - time.time()) > SIGNATURE_WINDOW:
            return "timestamp too far from now"
        assert self.secret is not None
        message = (params["key"] + params["timestamp"] + params["seq"] + params["nonce"]).encode() + body
        expected = base64.urlsafe_b64encode(hmac.new(self.secret.encode(), message, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, params["signature"].encode()):
            return "invalid signature"
        return self._remember(params["signature"], stamp.timestamp())

    def _remember(self, signature: str, stamp: float) -> str | None:
        """Accept ``signature`` once; None, or why the request is refused."""
        now = time.time()
        while self._expiry and self._expiry[0][0] < now - SIGNATURE_WINDOW:  # out of the window anyway
            self._accepted.discard(heapq.heappop(self._expiry)[1])
        if signature in self._accepted:
            return "replayed request (this signature was accepted before)"
        if stamp <= self._horizon:
            return "timestamp too old (the replay memory is full: send a fresh timestamp)"
        if len(self._accepted) >= MAX_REMEMBERED:
            oldest, dropped = heapq.heappop(self._expiry)
            self._accepted.discard(dropped)
            self._horizon = max(self._horizon, oldest)
            if stamp <= self._horizon:
                return "timestamp too old (the replay memory is full: send a fresh timestamp)"
        self._accepted.add(signature)
        heapq.heappush(self._expiry, (stamp, signature))
        return None


def sign(key: str, secret: str, body: bytes, seq: int, nonce: int) -> dict[str, str]:
    """The query parameters for a signed bridge request (what a client sends)."""
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = (key + timestamp + str(seq) + str(nonce)).encode() + body
    signature = base64.urlsafe_b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"key": key, "timestamp": timestamp, "seq": str(seq), "nonce": str(nonce), "signature": signature}


def _failure(status: int, error: str, message: str) -> tuple[int, bytes, str]:
    return status, orjson.dumps({"error": error, "args": [message]}), JSON


__all__ = ["HttpBridge", "sign"]
