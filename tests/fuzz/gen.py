"""Input generation for the fuzz suite: WAMP values and messages, their encodings, byte mutations,
and the two framings (RawSocket streams and batched WebSocket batches).

Everything is drawn through a :class:`Chooser`, so the same generators run under Hypothesis
(:class:`HypothesisChooser`: choices come from byte chunks Hypothesis draws, so failures replay and
shrink) and from a plain seeded ``random.Random`` (:class:`RandomChooser`, for the long-lived
memory test).

Known-failing generation parts
------------------------------
Inputs that hit a known, still open bug are kept out of generation: :data:`KNOWN_ISSUE_FEATURES`
names them, each with its reproducer in ``test_fuzz_regressions.py``. ``FUZZ_ALL=1`` turns all of
them back on (run that once a fix lands, then delete its name here). Byte mutations can produce the
same values by accident, so a payload whose decoded value shows a disabled feature is not sent
either (:func:`payload_allowed`). The other feature names (``non_finite``, ``non_str_key``,
``cbor_tag``, ``msgpack_ext``, ``nul_string``, ``deep_nesting``, ``infinite_timeout``) are the
value families of the data-model check: they are generated, and can be disabled the same way.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import cbor2
import msgspec
from hypothesis import strategies as st

from cloverleaf.wamp import rawsocket
from cloverleaf.wamp.batching import AUTOBAHN_SEPARATOR, RECORD_SEPARATOR, frame_batch
from cloverleaf.wamp.errors import UnencodableError
from cloverleaf.wamp.ids import MAX_ID
from cloverleaf.wamp.serializers import Serializer

T = TypeVar("T")

# -- generation parts kept out pending fixes -----------------------------------------------------

#: Value families that currently break an invariant (issue 10; reproducers in test_fuzz_regressions.py).
#: Re-enable one by deleting it from this set once its fix lands; FUZZ_ALL=1 enables all of them.
#: None is open now: json_nul_key (F2), ppt_yield (F3) and depth_128 (F4) were re-enabled with their
#: fixes (32cc7e2). F1 (cbor2's encoder crashed on ~8,000 levels) is fixed too: CborSerializer.encode
#: probes the depth first.
KNOWN_ISSUE_FEATURES: frozenset[str] = frozenset()
DISABLED: frozenset[str] = frozenset() if os.environ.get("FUZZ_ALL") == "1" else KNOWN_ISSUE_FEATURES


# -- choosers ------------------------------------------------------------------------------------


class Chooser(Protocol):
    def integer(self, low: int, high: int) -> int: ...
    def choice(self, options: Sequence[T]) -> T: ...
    def floating(self) -> float: ...
    def text(self, max_size: int) -> str: ...
    def binary(self, max_size: int) -> bytes: ...


def chance(c: Chooser, percent: int) -> bool:
    # high draws take the chance, so that Hypothesis, shrinking toward zero, shrinks toward "no"
    return c.integer(0, 99) >= 100 - percent


_SPECIAL_FLOATS = (0.0, -0.0, 1.5, -2.25, 1e308, -1e308, 5e-324, 2.0**53, 2.0**64, float("nan"), float("inf"),
                   float("-inf"))  # fmt: skip
_TEXT = "abcxyz._- 0\x00\x7f\u00e9\u4e2d\U0001f600"


class HypothesisChooser:
    """Choices drawn from Hypothesis: a byte buffer drawn in chunks and consumed like a fuzzer's
    input (one ``data.draw`` per 64 bytes, not per choice: an episode makes hundreds of choices and
    a draw costs ~0.1 ms). Hypothesis still replays and shrinks it; zero bytes mean the smallest
    choice everywhere."""

    _CHUNK = 64

    def __init__(self, data: st.DataObject) -> None:
        self._draw = data.draw
        self._buffer = b""
        self._position = 0

    def _take(self, n: int) -> bytes:
        if self._position + n > len(self._buffer):
            more = self._draw(st.binary(min_size=self._CHUNK, max_size=self._CHUNK))
            self._buffer = self._buffer[self._position :] + more
            self._position = 0
            if n > len(self._buffer):
                return self._take(n)
        chunk = self._buffer[self._position : self._position + n]
        self._position += n
        return chunk

    def integer(self, low: int, high: int) -> int:
        span = high - low
        if span <= 0:
            return low
        raw = int.from_bytes(self._take((span.bit_length() + 7) // 8 + 1), "big")
        return low + raw % (span + 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def floating(self) -> float:
        if self.integer(0, 3):
            return self.choice(_SPECIAL_FLOATS)
        return struct.unpack("!d", self._take(8))[0]

    def text(self, max_size: int) -> str:
        return "".join(self.choice(_TEXT) for _ in range(self.integer(0, max_size)))

    def binary(self, max_size: int) -> bytes:
        return self._take(self.integer(0, max_size))


class RandomChooser:
    """Choices from a seeded ``random.Random`` (no Hypothesis bookkeeping: for long loops)."""

    _ALPHABET = "abcxyz._- \x00\x7f\u00e9\u4e2d\U0001f600"

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.random.randrange(len(options))]

    def floating(self) -> float:
        r = self.random
        return r.choice([0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, r.uniform(-1e9, 1e9), float("nan"), float("inf")])

    def text(self, max_size: int) -> str:
        return "".join(self.random.choice(self._ALPHABET) for _ in range(self.random.randint(0, max_size)))

    def binary(self, max_size: int) -> bytes:
        return self.random.randbytes(self.random.randint(0, max_size))


# -- values --------------------------------------------------------------------------------------

INTERESTING_INTS = (0, 1, -1, 2, 255, 256, 2**31 - 1, 2**31, 2**32, MAX_ID, MAX_ID + 1, 2**63 - 1, 2**63,
                    2**64 - 1, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30))  # fmt: skip


def gen_int(c: Chooser, serializer: Serializer) -> int:
    if chance(c, 50):
        value = c.choice(INTERESTING_INTS)
    elif chance(c, 90):
        value = c.integer(-(2**63), 2**64 - 1)
    else:
        value = c.integer(-(2**70), 2**70)
    if serializer.NAME == "msgpack" and not -(2**63) <= value < 2**64:
        value = c.choice([2**64 - 1, -(2**63)])  # MessagePack has no bigger integers
    return value


def gen_float(c: Chooser) -> float:
    value = c.floating()
    if not math.isfinite(value) and ("non_finite" in DISABLED or c.integer(0, 2)):
        return 0.5  # Hypothesis draws NaN and infinities often: keep them to a third
    return value


def gen_string(c: Chooser, serializer: Serializer) -> str:
    text = c.text(12)
    if serializer.NAME == "json" and chance(c, 1):
        text += "\ud800"  # a lone surrogate: orjson refuses it, so it goes out via the standard library
    if chance(c, 2):
        text = "\x00" + text  # the JSON binary convention's marker
        if serializer.NAME != "json" and "nul_string" in DISABLED:
            text = text[1:] or "x"
    return text


def gen_key(c: Chooser, serializer: Serializer) -> Any:
    """A map key: usually a string; for binary serializers sometimes anything hashable."""
    if serializer.NAME != "json" and "non_str_key" not in DISABLED and chance(c, 4):
        return c.choice([1, -5, 2**40, b"\x01k", None, True, 1.5, (1, 2)])
    key = c.choice(["a", "b", "key", "_x", "Upper", "", "\x00k", "with space"]) if chance(c, 70) else c.text(6)
    if serializer.NAME == "json" and key[:1] == "\x00" and "json_nul_key" in DISABLED:
        key = key[1:] or "k"
    return key


def gen_special(c: Chooser, serializer: Serializer) -> Any:
    """Serializer-specific data-model extensions (CBOR tags, MessagePack ext types)."""
    if serializer.NAME == "cbor" and "cbor_tag" not in DISABLED:
        tag = c.choice([0, 1, 2, 3, 4, 5, 21, 24, 25, 28, 29, 30, 32, 35, 36, 37, 256, 258, 260, 261, 55799, 1234,
                        2**32, 2**64 - 1])  # fmt: skip
        inner = c.choice([0, -1, 1.5, "x", "2020-01-01T00:00:00Z", b"\x01\x02", [1, 2], [], {"a": 1}, None, 10**30,
                          "^(a+)+$", "Content-Type: text/plain\r\n\r\nhi"])  # fmt: skip
        return cbor2.CBORTag(tag, inner)
    if serializer.NAME == "msgpack" and "msgpack_ext" not in DISABLED:
        return msgspec.msgpack.Ext(c.integer(-128, 127), c.binary(12))
    return None


def deep(c: Chooser, depth: int) -> Any:
    """Lists and maps nested ``depth`` levels (one shape per value: a draw per level costs too much)."""
    shape = c.integer(0, 2)
    value: Any = c.choice([1, "x", None])
    for level in range(depth):
        value = [value] if shape == 0 or (shape == 2 and level % 2) else {"k": value}
    return value


def gen_value(c: Chooser, serializer: Serializer, depth: int = 0) -> Any:
    """Any value WAMP payloads carry (and, rarely, ones the data-model check refuses)."""
    roll = c.integer(0, 99) if depth < 4 else c.integer(0, 59)
    if roll < 6:
        return None
    if roll < 12:
        return c.choice([True, False])
    if roll < 24:
        return gen_int(c, serializer)
    if roll < 30:
        return gen_float(c)
    if roll < 48:
        return gen_string(c, serializer)
    if roll < 54:
        return c.binary(16)
    if roll < 60:
        return c.integer(-3, 3)
    if roll < 78:
        return [gen_value(c, serializer, depth + 1) for _ in range(c.integer(0, 4))]
    if roll < 94:
        return {gen_key(c, serializer): gen_value(c, serializer, depth + 1) for _ in range(c.integer(0, 4))}
    if roll < 95 and "deep_nesting" not in DISABLED:
        return deep(c, c.choice([30, 126, 127, 128, 129, 200, 600, 1100, 3000]))  # cbor2.dumps crashes near 20,000
    if roll < 97:
        special = gen_special(c, serializer)
        if special is not None:
            return special
    return c.text(20)


def gen_args(c: Chooser, serializer: Serializer) -> list[Any]:
    return [gen_value(c, serializer) for _ in range(c.integer(0, 3))]


def gen_kwargs(c: Chooser, serializer: Serializer) -> dict[Any, Any]:
    return {
        (c.choice(["a", "b", "value", "x"]) if chance(c, 60) else gen_key(c, serializer)): gen_value(c, serializer)
        for _ in range(c.integer(0, 3))
    }


# -- messages ------------------------------------------------------------------------------------

BYSTANDER_PROCEDURE = "com.fuzz.bystander.proc"
BYSTANDER_TOPIC = "com.fuzz.bystander.topic"

URIS = (
    "com.fuzz.a", "com.fuzz.b", "com.fuzz", "com.fuzz.", "com..a", "com.fuzz.a.b", BYSTANDER_PROCEDURE,
    BYSTANDER_TOPIC, "com.fuzz.bystander", "", "a b", "com.fuzz.#", "wamp.x", "wamp.session.on_join",
    "wamp.session.count", "wamp.session.list", "wamp.session.get", "wamp.session.add_testament",
    "wamp.session.flush_testaments", "wamp.registration.list", "wamp.registration.lookup",
    "wamp.registration.match", "wamp.registration.get", "wamp.registration.list_callees",
    "wamp.registration.count_callees", "wamp.subscription.list", "wamp.subscription.lookup",
    "wamp.subscription.match", "wamp.subscription.get", "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers", "wamp.session.kill", "wamp.session.kill_all",
    "wamp.registration.remove_callee", "wamp.subscription.remove_subscriber", "com.Fuzz.A", "1.2.3",
    "com.fuzz\x00", "com.fuzz.\u00e9",
)  # fmt: skip
MATCHES = ("exact", "prefix", "wildcard", "", "Prefix", None, 1)


def gen_uri(c: Chooser, serializer: Serializer, state: ClientState | None = None) -> Any:
    if chance(c, 85) or (state is not None and not state.free_uris):
        return c.choice(URIS)
    return gen_string(c, serializer) if chance(c, 80) else gen_value(c, serializer)


def option_value(c: Chooser, serializer: Serializer, key: str, known_ids: Sequence[int]) -> Any:
    """A value for an option key: often one the router understands, sometimes anything."""
    if chance(c, 10):
        return gen_value(c, serializer)
    booleans = ("acknowledge", "exclude_me", "disclose_me", "retain", "get_retained", "receive_progress",
                "progress", "disclose_caller", "forward_timeout")  # fmt: skip
    if key in booleans:
        return c.choice([True, False, None, 1, "true"])
    if key == "match":
        return c.choice(MATCHES)
    if key == "invoke":
        return c.choice(["single", "roundrobin", "random", "first", "last", "all", None])
    if key == "mode":
        return c.choice(["skip", "kill", "killnowait", "nope", None])
    if key == "timeout":
        options: list[Any] = [0, 1, 1000, -1, 2**53, 2**63, 0.001, 2.5, -0.5, float("nan"), "10", None]
        if "infinite_timeout" not in DISABLED:
            options += [float("inf"), 1e300, 2.0**1000, 10**20]
        return c.choice(options)
    if key in ("exclude", "eligible"):
        ids = [*known_ids, 1, MAX_ID + 1, -1]
        return [c.choice(ids) for _ in range(c.integer(0, 3))] if chance(c, 80) else c.choice(ids)
    if key in ("exclude_authid", "eligible_authid", "exclude_authrole", "eligible_authrole"):
        names = ["fuzz", "bystander", "anonymous", "fuzzer", "", 5]
        return [c.choice(names) for _ in range(c.integer(0, 3))] if chance(c, 80) else c.choice(names)
    if key.startswith("ppt_"):
        return c.choice(["cbor", "mqtt", "x_custom", "wamp", "json", "", 1, None])
    return gen_value(c, serializer)


OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "publish": ("acknowledge", "exclude_me", "exclude", "eligible", "exclude_authid", "eligible_authid",
                "exclude_authrole", "eligible_authrole", "disclose_me", "retain", "ppt_scheme", "ppt_serializer",
                "ppt_cipher", "ppt_keyid", "enc_algo", "enc_key", "enc_serializer"),
    "subscribe": ("match", "get_retained", "nope"),
    "call": ("timeout", "receive_progress", "progress", "disclose_me", "ppt_scheme", "ppt_serializer",
             "ppt_cipher", "ppt_keyid", "runmode", "rkey"),
    "register": ("match", "invoke", "disclose_caller", "forward_timeout", "concurrency", "force_reregister"),
    "cancel": ("mode",),
    "yield": ("progress", "ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"),
    "details": ("message", "reason", "callee", "x_y"),
}  # fmt: skip
BAD_OPTION_KEYS = ("A", "ab", "Ack", "1abc", "_ab", "with space", "", "acknowledge\n")


def gen_options(c: Chooser, serializer: Serializer, kind: str, known_ids: Sequence[int]) -> dict[Any, Any]:
    options: dict[Any, Any] = {}
    keys = OPTION_KEYS[kind]
    if kind == "yield" and "ppt_yield" in DISABLED:
        keys = ("progress",)
    for _ in range(c.integer(0, 4)):
        key = c.choice(keys)
        options[key] = option_value(c, serializer, key, known_ids)
    if chance(c, 5):
        options[c.choice(BAD_OPTION_KEYS) if chance(c, 70) else gen_key(c, serializer)] = 1
    if chance(c, 5):
        options["_custom_key"] = gen_value(c, serializer)
    return options


def with_payload(c: Chooser, serializer: Serializer, wmsg: list[Any]) -> list[Any]:
    shape = c.integer(0, 3)
    if shape >= 1:
        wmsg.append(gen_args(c, serializer))
    if shape >= 2:
        wmsg.append(gen_kwargs(c, serializer))
    return wmsg


ROLES = ("publisher", "subscriber", "caller", "callee")
FEATURES = ("call_canceling", "call_cancelling", "progressive_call_results", "progressive_call_invocations",
            "payload_passthru_mode", "registration_revocation", "subscription_revocation", "caller_identification",
            "publisher_exclusion", "call_timeout", "x")  # fmt: skip


def gen_hello(c: Chooser, serializer: Serializer) -> list[Any]:
    """A HELLO: mostly one the router accepts (anonymous or ticket), sometimes a strange one."""
    if chance(c, 85):
        roles = {role: {"features": {f: True for f in FEATURES if chance(c, 40)}} for role in ROLES if chance(c, 85)}
        details: dict[Any, Any] = {"roles": roles or {"caller": {}}}
        if chance(c, 25):
            details["authmethods"] = ["ticket", "anonymous"]
            details["authid"] = "fuzzer"
        return [1, "realm1", details]
    roles = {}
    for role in ROLES:
        if chance(c, 80):
            roles[role] = {"features": {f: c.choice([True, True, False, 1]) for f in FEATURES if chance(c, 50)}}
    if chance(c, 5):
        roles[c.choice(["broker", "dealer", "x"])] = {}
    if chance(c, 5):
        roles["caller"] = c.choice([None, [], "x", {"features": []}])
    details = {"roles": roles}
    if chance(c, 30):
        details["authmethods"] = [c.choice(["anonymous", "ticket", "wampcra", "cryptosign", "x"])
                                  for _ in range(c.integer(0, 3))]  # fmt: skip
    if chance(c, 25):
        details["authid"] = c.choice(["fuzzer", "nobody", "", None, 5])
    if chance(c, 10):
        details["authrole"] = c.choice(["fuzz", "bystander", None, 3])
    if chance(c, 10):
        details["authextra"] = c.choice([{}, {"a": 1}, None, [], "x"])
    if chance(c, 5):
        details[c.choice(BAD_OPTION_KEYS)] = 1
    realm = c.choice(["realm1", "realm1", "realm1", "realm2", "", "a..b", "realm1 ", 7]) if chance(c, 95) else (
        gen_string(c, serializer))  # fmt: skip
    return [1, realm, details]


class ClientState:
    """What the fuzzed client knows of its own session: IDs to refer to in later messages."""

    def __init__(self) -> None:
        self.next_request = 1
        self.subscriptions: list[int] = []
        self.registrations: list[int] = []
        self.invocations: list[int] = []
        self.calls: list[int] = []
        #: IDs of the bystander and its registration/subscription (the fuzzed client may guess them)
        self.foreign_ids: list[int] = []
        #: the router sent CHALLENGE and no WELCOME yet: answer it (mostly correctly)
        self.challenged = False
        #: CALLs of the bystander's procedure (it echoes them: the echo must be routable)
        self.calls_to_bystander: set[int] = set()
        #: URIs may be anything; False: only the fixed vocabulary (bounded caches, for the memory test)
        self.free_uris = True

    def request_id(self, c: Chooser) -> Any:
        if chance(c, 96):
            request = self.next_request
            self.next_request += 1
            return request
        return c.choice([0, -1, 1, self.next_request + 5, MAX_ID, MAX_ID + 1, 2**64, 1.0, True, "1", None])

    def some_id(self, c: Chooser, own: Sequence[int]) -> Any:
        pool = [*own, *self.foreign_ids]
        if pool and chance(c, 90):
            return c.choice(pool)
        return c.choice([1, 2, 0, -1, MAX_ID, MAX_ID + 1, 2**64 - 1, 2.0, None, "x", [1]])


CLIENT_KINDS = ("publish", "subscribe", "unsubscribe", "call", "cancel", "register", "unregister", "yield",
                "error", "goodbye", "abort", "authenticate", "hello", "router_message")  # fmt: skip
KIND_WEIGHTS = (14, 8, 4, 14, 3, 8, 4, 7, 4, 1, 1, 2, 1, 2)
_WEIGHTED_KINDS = tuple(k for k, w in zip(CLIENT_KINDS, KIND_WEIGHTS, strict=True) for _ in range(w))


def gen_meta_args(c: Chooser, serializer: Serializer, state: ClientState) -> list[Any]:
    pool: list[Any] = [*state.foreign_ids, *state.registrations, *state.subscriptions, "com.fuzz.a",
                       BYSTANDER_PROCEDURE, BYSTANDER_TOPIC, "exact", "prefix", {"match": "prefix"}, 0, -1]  # fmt: skip
    return [c.choice(pool) if chance(c, 70) else gen_value(c, serializer) for _ in range(c.integer(0, 3))]


def gen_client_message(c: Chooser, serializer: Serializer, state: ClientState) -> list[Any]:
    """A valid-looking message a client might send once joined (or at any other time)."""
    if state.challenged and chance(c, 90):
        state.challenged = False
        return [5, "secret" if chance(c, 80) else "wrong", {}]
    kind = c.choice(_WEIGHTED_KINDS)
    ids = [*state.foreign_ids, *state.subscriptions, *state.registrations]
    if kind == "publish":
        topic = BYSTANDER_TOPIC if chance(c, 20) else gen_uri(c, serializer, state)
        wmsg = [16, state.request_id(c), gen_options(c, serializer, "publish", ids), topic]
        return with_payload(c, serializer, wmsg)
    if kind == "subscribe":
        return [32, state.request_id(c), gen_options(c, serializer, "subscribe", ids), gen_uri(c, serializer, state)]
    if kind == "unsubscribe":
        return [34, state.request_id(c), state.some_id(c, state.subscriptions)]
    if kind == "call":
        request = state.request_id(c)
        if chance(c, 10) and state.calls:
            request = c.choice(state.calls)  # a later chunk of a progressive call, or a reused ID
        elif isinstance(request, int):
            state.calls.append(request)
        uri = BYSTANDER_PROCEDURE if chance(c, 20) else gen_uri(c, serializer, state)
        wmsg = [48, request, gen_options(c, serializer, "call", ids), uri]
        if isinstance(uri, str) and uri.startswith("wamp.") and chance(c, 70):
            wmsg.append(gen_meta_args(c, serializer, state))
            if chance(c, 30):
                wmsg.append(gen_kwargs(c, serializer))
            return wmsg
        return with_payload(c, serializer, wmsg)
    if kind == "cancel":
        return [49, state.some_id(c, state.calls), gen_options(c, serializer, "cancel", ids)]
    if kind == "register":
        return [64, state.request_id(c), gen_options(c, serializer, "register", ids), gen_uri(c, serializer, state)]
    if kind == "unregister":
        return [66, state.request_id(c), state.some_id(c, state.registrations)]
    if kind == "yield":
        wmsg = [70, state.some_id(c, state.invocations), gen_options(c, serializer, "yield", ids)]
        return with_payload(c, serializer, wmsg)
    if kind == "error":
        request_type = 68 if chance(c, 85) else c.choice([16, 32, 48, 64, 0, 99])
        wmsg = [8, request_type, state.some_id(c, state.invocations), gen_options(c, serializer, "details", ids),
                c.choice(["com.fuzz.error", "wamp.error.canceled", "", "a b"])]  # fmt: skip
        return with_payload(c, serializer, wmsg)
    if kind == "goodbye":
        return [6, gen_options(c, serializer, "details", ids), c.choice(["wamp.close.normal", "x", ""])]
    if kind == "abort":
        return [3, gen_options(c, serializer, "details", ids), c.choice(["wamp.close.normal", "x"])]
    if kind == "authenticate":
        return [5, c.choice(["secret", "wrong", ""]), c.choice([{}, {"a": 1}])]
    if kind == "hello":
        return gen_hello(c, serializer)
    # a message only a router sends
    return c.choice([[2, 1, {"roles": {"broker": {}}}], [4, "ticket", {}], [17, 1, 2], [33, 1, 2], [35, 1],
                     [36, 1, 2, {}], [50, 1, {}], [65, 1, 2], [67, 1], [68, 1, 2, {}], [69, 1, {}], [7, 1],
                     [0], [255, 1], [-1], [2**64]])  # fmt: skip


# -- structural mutation -------------------------------------------------------------------------


def mutate_structure(c: Chooser, serializer: Serializer, wmsg: list[Any]) -> Any:
    """Break a message's shape: wrong element types, odd IDs, too few or too many elements."""
    wmsg = list(wmsg)
    op = c.integer(0, 7)
    if op == 0 and wmsg:
        wmsg[c.integer(0, len(wmsg) - 1)] = gen_value(c, serializer)
    elif op == 1 and len(wmsg) > 1:
        wmsg[c.integer(1, len(wmsg) - 1)] = c.choice(
            [0, -1, MAX_ID + 1, 2**63, 2**64 - 1, 1.0, 1.5, float(MAX_ID), True, "1", None, [], {}]
        )
    elif op == 2:
        del wmsg[c.integer(0, len(wmsg) - 1) :]
    elif op == 3:
        wmsg.extend(gen_value(c, serializer) for _ in range(c.integer(1, 3)))
    elif op == 4 and wmsg:
        wmsg[0] = c.choice([1, 3, 6, 8, 16, 32, 48, 64, 70, 2, 0, -1, 1.0, True, "16", None, 2**64])
    elif op == 5:
        return gen_value(c, serializer)  # not a list at all
    elif op == 6 and wmsg:
        index = c.integer(0, len(wmsg) - 1)
        wmsg[index] = [wmsg[index]] if chance(c, 50) else {"k": wmsg[index]}
    else:
        return [] if chance(c, 50) else wmsg[:1]
    return wmsg


# -- encoding and byte mutation ------------------------------------------------------------------


def encode(serializer: Serializer, wmsg: Any) -> bytes | None:
    """The payload bytes for ``wmsg``; None when the serializer cannot represent it.

    JSON falls back to the standard library, which writes what orjson refuses (integers beyond 64
    bits, NaN and Infinity tokens, lone surrogates): inputs a JSON peer may well send.
    """
    try:
        return serializer.encode(wmsg)
    except (UnencodableError, RecursionError, OverflowError, TypeError, ValueError):
        pass
    if serializer.NAME != "json":
        return None
    try:
        return json.dumps(wmsg, default=_json_binary, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return None


def _json_binary(value: Any) -> Any:
    if isinstance(value, bytes):
        return "\x00" + base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def mutate_bytes(c: Chooser, payload: bytes, others: Sequence[bytes] = ()) -> bytes:
    data = bytearray(payload)
    for _ in range(c.integer(1, 3)):
        op = c.integer(0, 8)
        position = c.integer(0, len(data)) if data else 0
        if op == 0 and data:  # flip one bit
            index = min(position, len(data) - 1)
            data[index] ^= 1 << c.integer(0, 7)
        elif op == 1 and data:  # set a byte
            data[min(position, len(data) - 1)] = c.choice([0, 0xFF, 0x7F, 0x80, 0xC1, 0xD4, 0xC7, 0xD8, 0x1F, 0x22,
                                                           0x5B, 0x5D, 0x1E, 0x18, c.integer(0, 255)])  # fmt: skip
        elif op == 2:  # truncate
            del data[position:]
        elif op == 3:  # extend
            data += c.binary(8)
        elif op == 4:  # insert
            data[position:position] = c.binary(4)
        elif op == 5 and data:  # delete a range
            del data[position : position + c.integer(1, 8)]
        elif op == 6 and data:  # duplicate a chunk
            end = min(len(data), position + c.integer(1, 16))
            data[position:position] = data[position:end]
        elif op == 7 and others:  # splice with another payload
            other = c.choice(others)
            cut = c.integer(0, len(other))
            data = data[:position] + bytearray(other[cut:])
        else:  # random bytes
            data = bytearray(c.binary(32))
    return bytes(data)


# -- features the data-model check will reject (used to keep disabled ones out) ------------------


def disabled_features(value: Any, serializer: Serializer, limit: int = 100_000) -> set[str]:
    """The disabled known-issue features a decoded value shows (empty when all are enabled)."""
    if not DISABLED:
        return set()
    found: set[str] = set()
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack and seen < limit:
        item, depth = stack.pop()
        seen += 1
        if depth > 500:
            found.add("deep_nesting")
            continue
        kind = type(item)
        if depth == 127 and (kind is list or kind is dict):
            found.add("depth_128")  # a container on level 128, the message's own list being level 1
        if kind is float and not math.isfinite(item):
            found.add("non_finite")
        elif kind is str:
            if item[:1] == "\x00" and serializer.NAME != "json":
                found.add("nul_string")
        elif kind is list or kind is tuple:
            stack.extend((x, depth + 1) for x in item)
        elif kind is dict:
            for key, x in item.items():
                if type(key) is not str:
                    found.add("non_str_key")
                elif key[:1] == "\x00" and serializer.NAME == "json":
                    found.add("json_nul_key")
                stack.append((key, depth + 1))
                stack.append((x, depth + 1))
        elif item is None or kind in (bool, int, bytes):
            pass
        elif isinstance(item, msgspec.msgpack.Ext):
            found.add("msgpack_ext")
        else:
            found.add("cbor_tag")  # a decoded semantic tag (datetime, Decimal, CBORTag, set, ...)
    if (
        type(value) is list
        and len(value) >= 3
        and value[0] == 70
        and type(value[2]) is dict
        and "ppt_scheme" in value[2]
    ):
        found.add("ppt_yield")
    # an infinite or huge CALL timeout (the dealer's OverflowError)
    if type(value) is list and len(value) >= 3 and value[0] == 48 and type(value[2]) is dict:
        timeout = value[2].get("timeout")
        if type(timeout) is float and (not math.isfinite(timeout) or timeout > 1e9):
            found.add("infinite_timeout")
        if type(timeout) is int and timeout > 10**12:
            found.add("infinite_timeout")
    return found & DISABLED


def payload_allowed(serializer: Serializer, payload: bytes) -> bool:
    """False when the payload decodes to a value with a disabled known-issue feature."""
    if not DISABLED:
        return True
    try:
        value = serializer.decode(payload)
    except Exception:
        return True  # undecodable: the core must reject it, whatever it holds
    return not disabled_features(value, serializer)


# -- framings ------------------------------------------------------------------------------------


def rawsocket_stream(c: Chooser, serializer: Serializer, payloads: Sequence[bytes]) -> bytes:
    """A client's RawSocket byte stream: handshake, then a frame per payload, PINGs mixed in;
    sometimes with a broken handshake or frame header."""
    exponent = c.integer(0, 15)
    hello = bytearray(rawsocket.handshake(serializer.RAWSOCKET_ID, exponent))
    if chance(c, 5):
        hello[c.integer(0, 3)] = c.integer(0, 255)
    stream = bytearray(hello)
    for payload in payloads:
        if chance(c, 5):
            stream += rawsocket.frame(c.binary(8), c.choice([rawsocket.FrameType.PING, rawsocket.FrameType.PONG]))
        header = bytearray(rawsocket.frame_header(len(payload)))
        if chance(c, 3):
            header[c.integer(0, 3)] ^= 1 << c.integer(0, 7)
        stream += header + payload
    return bytes(stream)


def chunks(c: Chooser, data: bytes) -> list[bytes]:
    """Split a stream the way a socket might deliver it."""
    if chance(c, 40) or not data:
        return [data]
    parts = []
    position = 0
    while position < len(data):
        step = c.choice([1, 2, 3, 4, 5, 7, 64, len(data)])
        parts.append(data[position : position + step])
        position += step
    return parts


def batches(c: Chooser, serializer: Serializer, payloads: Sequence[bytes]) -> list[bytes]:
    """Group payloads into batched-WebSocket messages, some of them then damaged."""
    separator = c.choice([RECORD_SEPARATOR, RECORD_SEPARATOR, AUTOBAHN_SEPARATOR])
    result: list[bytes] = []
    index = 0
    while index < len(payloads):
        size = c.integer(1, 4)
        batch = frame_batch(serializer, payloads[index : index + size], separator)
        index += size
        if chance(c, 5):
            batch = mutate_bytes(c, batch)
        result.append(batch)
    if chance(c, 3):
        result.append(c.choice([b"", b"\x1e", b"\x00\x00\x00", struct.pack("!I", 2**31) + b"x"]))
    return result


MutateFn = Callable[[Chooser, bytes], bytes]
