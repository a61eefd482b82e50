"""NATS JetStream KV keys built from arbitrary strings (WAMP URIs, realm and node names).

A KV key is the tail of the subject ``$KV.<bucket>.<key>``: NATS allows ``[-/_=.A-Za-z0-9]`` in it
(ADR-8; nats.net's ``IsValidKey``: ``\\A[-/_=\\.a-zA-Z0-9]+\\z``, not starting or ending with ``.``),
and ``.`` splits it into tokens that watch filters (``*``, ``>``) match one whole token at a time.
A WAMP URI used raw would be wrong three ways: its ``.`` would split it into several tokens, a
``*`` or ``>`` in it would act as a wildcard, and a very long one would exceed the protocol line
limit (nats-server's ``max_control_line`` and nats-py's parser: 4096 bytes by default), which makes
the server drop the connection. So every string becomes exactly one token here.

Escape scheme (:func:`escape_token`), output alphabet ``[A-Za-z0-9_=-]``:

* ``A-Z a-z 0-9 _`` pass through unchanged;
* ``.`` becomes ``-`` (``com.example.add2`` -> ``com-example-add2``: WAMP URIs stay readable at
  no length cost, since ``.`` is by far their most common punctuation);
* every other character (``-`` and ``=`` included) becomes its UTF-8 bytes, each written ``=XX``
  with two upper-case hex digits (``com.example-low`` -> ``com-example=2Dlow``, ``é`` -> ``=C3=A9``);
  lone surrogates, which a Python ``str`` can hold, are encoded with ``surrogatepass``;
* the empty string, which cannot be a token, becomes ``=`` alone (no escape is ``=`` alone).

The mapping is a bijection between all strings and the *canonical* tokens: :func:`unescape_token`
refuses any token :func:`escape_token` would not produce (``=41`` for ``A``, lower-case hex, a
``.``), so two distinct keys never name the same string.

Long strings (:func:`key_token`): an escaped token longer than :data:`MAX_TOKEN_LENGTH` is replaced
by ``==`` followed by the SHA-256 of the string's UTF-8 bytes in lower-case hex (66 characters).
``==`` never occurs in an escaped token (an escape's ``=`` is always followed by an upper-case hex
digit, or ends a token that is ``=`` alone), so a hashed token never equals an escaped one; the
caller stores the full string in the entry's value (a hashed token cannot be unescaped).
"""

from __future__ import annotations

import binascii
import hashlib
import re

MAX_TOKEN_LENGTH = 256
"""Longest escaped token :func:`key_token` keeps; longer ones are hashed.

The whole protocol line carrying a key must stay under 4096 bytes (nats-server's default
``max_control_line``, also nats-py's parser limit for the ``MSG``/``HMSG`` lines a watcher
receives). That line holds the key plus ``$KV.<bucket>.``, a reply subject (JetStream ack subjects
run to ~150 bytes) and the sizes. With 256-character tokens a key of four variable parts (say realm,
match policy, URI, node) is at most ~1 KiB, a quarter of the limit. 256 characters still keep as
readable text every URI seen in practice (typically under 100 characters; one ``-`` costs 3) and
keep the stream's subject index small; beyond it readability is worth nothing and hashing costs
one SHA-256.
"""

MAX_KEY_LENGTH = 2048
"""Longest key :func:`kv_key` builds: half the 4096-byte protocol line limit, the rest for the
``$KV.<bucket>.`` prefix, the reply subject and the header and payload sizes."""

HASH_MARKER = "=="
"""Prefix of a hashed token; never the start of (nor inside) an escaped token."""

_EMPTY_TOKEN = "="
_HASHED_LENGTH = len(HASH_MARKER) + 64

_PLAIN = re.compile(r"[A-Za-z0-9_.]*")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]*(?:=[0-9A-F]{2}[A-Za-z0-9_-]*)*")  # unrolled: no backtracking
_HASHED_SHAPE = re.compile(r"==[0-9a-f]{64}")

_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# Output for each UTF-8 byte, indexed by its value: str.translate applies it in one C loop to the
# bytes decoded as Latin-1 (one character per byte).
_BYTE_TABLE: list[str] = [chr(b) if b in _SAFE_BYTES else "-" if b == 0x2E else f"={b:02X}" for b in range(256)]


def escape_token(text: str) -> str:
    """Escape any string into one non-empty KV key token made only of ``[A-Za-z0-9_=-]``.

    Reversible (:func:`unescape_token`), deterministic across versions (the scheme is in the module
    docstring; changing it would orphan stored keys), linear in the length of ``text``. The result
    can be long (up to 12 characters per input character): use :func:`key_token` for keys.
    """
    if not text:
        return _EMPTY_TOKEN
    if _PLAIN.fullmatch(text) is not None:
        return text.replace(".", "-")  # the common case: no byte needs an escape
    return text.encode("utf-8", "surrogatepass").decode("latin-1").translate(_BYTE_TABLE)


def unescape_token(token: str) -> str:
    """The string :func:`escape_token` escaped into ``token``.

    Raises :class:`ValueError` for a hashed token (see :func:`is_hashed_token`: its string is in the
    entry's value) and for any token that :func:`escape_token` would not have produced.
    """
    if token == _EMPTY_TOKEN:
        return ""
    if not token or _TOKEN_SHAPE.fullmatch(token) is None:
        if is_hashed_token(token):
            raise ValueError("a hashed token cannot be unescaped: its text is stored with the value")
        raise ValueError(f"not an escaped token: {token[:80]!r}")
    text = token.replace("-", ".")
    if "=" not in token:
        return text  # only [A-Za-z0-9_-]: canonical by construction
    # The escapes are quoted-printable's =XX: binascii decodes them in C. The shape check above
    # leaves no other "=" for it to interpret.
    try:
        text = binascii.a2b_qp(text.encode("ascii")).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not an escaped token (bad UTF-8): {token[:80]!r}") from exc
    if escape_token(text) != token:  # e.g. "=41" for "A": refused so that each string has one token
        raise ValueError(f"not a canonical escaped token: {token[:80]!r}")
    return text


def hashed_token(text: str) -> str:
    """``==`` and the lower-case hex SHA-256 of ``text``'s UTF-8 bytes (66 characters)."""
    return HASH_MARKER + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def key_token(text: str) -> str:
    """One KV key token for ``text``: escaped if at most :data:`MAX_TOKEN_LENGTH` long, else hashed.

    A hashed token (:func:`is_hashed_token`) never equals an escaped one; when it is used the caller
    must keep ``text`` itself in the entry's value to recover it (and to tell apart the 2^-128-odds
    case of two strings with the same hash).
    """
    if len(text) <= MAX_TOKEN_LENGTH:  # an escape is never shorter than its text: skip it for long ones
        token = escape_token(text)
        if len(token) <= MAX_TOKEN_LENGTH:
            return token
    return hashed_token(text)


def is_hashed_token(token: str) -> bool:
    """Whether ``token`` is a hashed token from :func:`key_token` (not an escaped one)."""
    return len(token) == _HASHED_LENGTH and _HASHED_SHAPE.fullmatch(token) is not None


def kv_key(*parts: str) -> str:
    """A KV key: the :func:`key_token` of each part, joined with ``.``.

    Each part is exactly one token, so ``kv_key("reg", realm, uri)`` can be watched with
    ``reg.<realm token>.*``. Raises :class:`ValueError` for no parts, or if the key would be longer
    than :data:`MAX_KEY_LENGTH` (too many parts: a longer subject risks the connection).
    """
    if not parts:
        raise ValueError("a KV key needs at least one part")
    key = ".".join([key_token(part) for part in parts])
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"KV key of {len(parts)} parts is {len(key)} characters (limit {MAX_KEY_LENGTH})")
    return key
