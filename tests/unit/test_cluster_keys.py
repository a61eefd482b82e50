"""The pure codecs of the cluster back end: KV key tokens (``cloverleaf.cluster.keys``) and IDs
(``cloverleaf.cluster.ids``)."""

from __future__ import annotations

import ast
import hashlib
import re
import types
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloverleaf.cluster import ids, keys
from cloverleaf.cluster.ids import MAX_ID, incarnation_id, scoped_id
from cloverleaf.cluster.keys import (
    MAX_KEY_LENGTH,
    MAX_TOKEN_LENGTH,
    escape_token,
    hashed_token,
    is_hashed_token,
    key_token,
    kv_key,
    unescape_token,
)

TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_=-]+")
# ADR-8 / nats.net IsValidKey: a whole KV key.
VALID_KV_KEY = re.compile(r"[-/_=.a-zA-Z0-9]+")

# st.text() draws surrogate-free Unicode (all planes); the second strategy adds lone surrogates,
# which a Python str can hold.
any_text = st.text()
text_with_surrogates = st.text(st.characters(codec=None, exclude_categories=()))
uri_like = st.text(st.sampled_from("abcxyz019_.-=*> "), max_size=40)


# --- escape_token / unescape_token ---


@given(any_text)
@example("")
@example("\x00")
@example(".")
@example("..")
@example("*")
@example(">")
@example(" ")
@example("=")
@example("==")
@example("-")
@example("\U0001f600")
@example("a.b-c=d*e>f g")
def test_round_trip(text: str) -> None:
    token = escape_token(text)
    assert unescape_token(token) == text


@given(text_with_surrogates)
def test_round_trip_with_lone_surrogates(text: str) -> None:
    assert unescape_token(escape_token(text)) == text


@given(any_text)
def test_token_alphabet(text: str) -> None:
    token = escape_token(text)
    assert TOKEN_ALPHABET.fullmatch(token)
    assert "." not in token
    assert VALID_KV_KEY.fullmatch(token)
    assert not is_hashed_token(token)
    assert "==" not in token


@given(any_text, any_text)
def test_injective(a: str, b: str) -> None:
    if a != b:
        assert escape_token(a) != escape_token(b)


@given(uri_like, uri_like)
def test_injective_on_uri_like_text(a: str, b: str) -> None:
    # Small alphabet: distinct inputs that look alike are far more likely than with st.text().
    if a != b:
        assert escape_token(a) != escape_token(b)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("", "="),
        ("com.example.add2", "com-example-add2"),
        ("com_example_X9", "com_example_X9"),
        ("com.example-low", "com-example=2Dlow"),
        ("a=b", "a=3Db"),
        ("wamp.session.on_join", "wamp-session-on_join"),
        ("com..x", "com--x"),
        (".", "-"),
        ("*", "=2A"),
        (">", "=3E"),
        (" ", "=20"),
        ("\x00", "=00"),
        ("a*>b", "a=2A=3Eb"),
        ("é", "=C3=A9"),
        ("\U0001f600", "=F0=9F=98=80"),
        ("\ud800", "=ED=A0=80"),
    ],
)
def test_stable_escapes(text: str, token: str) -> None:
    """Pinned: stored keys depend on these exact strings."""
    assert escape_token(text) == token
    assert unescape_token(token) == text


@pytest.mark.parametrize(
    "token",
    [
        "",  # empty token
        "a.b",  # a separator
        "a b",
        "a*b",
        "=41",  # "A" escaped needlessly
        "=2E",  # "." escaped instead of "-"
        "=2d",  # lower-case hex
        "=2",  # truncated escape
        "a=",  # truncated escape
        "=G0",
        "=C3",  # incomplete UTF-8 sequence
        "=FF",  # never valid UTF-8
        "=C3=A9=",
        "é",
        "==",
    ],
)
def test_unescape_refuses_non_canonical_tokens(token: str) -> None:
    with pytest.raises(ValueError):
        unescape_token(token)


# --- key_token / hashed tokens / kv_key ---


def test_long_inputs_are_hashed() -> None:
    short = "a" * MAX_TOKEN_LENGTH
    assert key_token(short) == short
    long = "a" * (MAX_TOKEN_LENGTH + 1)
    token = key_token(long)
    assert is_hashed_token(token)
    assert token == hashed_token(long)
    assert len(token) == 66
    assert token.startswith("==")
    with pytest.raises(ValueError, match="hashed"):
        unescape_token(token)
    # The limit applies to the escaped form: 86 hyphens escape to 258 characters.
    assert is_hashed_token(key_token("-" * 86))
    assert not is_hashed_token(key_token("-" * 85))
    # A very long URI (far over the 4 KiB protocol line limit) still gives a short key.
    assert len(kv_key("reg", "realm1", "com.example." + "x" * 100_000)) < 100


def test_stable_hashed_token() -> None:
    """Pinned: SHA-256 of the UTF-8 bytes, lower-case hex, after ``==`` (the FIPS 180-2 vectors for
    "" and "abc")."""
    assert hashed_token("") == "==e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert key_token("x" * 300) == "==0d4e2ca9e9cbced7a7a5380eb29e1a3783b9b6d0db72de36a1051038e1c1fbc7"
    assert hashed_token("abc") == "==ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@given(st.text(min_size=MAX_TOKEN_LENGTH // 3))
def test_key_token_alphabet_and_length(text: str) -> None:
    token = key_token(text)
    assert TOKEN_ALPHABET.fullmatch(token)
    assert len(token) <= MAX_TOKEN_LENGTH
    if is_hashed_token(token):
        assert len(escape_token(text)) > MAX_TOKEN_LENGTH
    else:
        assert unescape_token(token) == text


@given(any_text, any_text)
def test_hashed_and_escaped_never_collide(a: str, b: str) -> None:
    hashed = hashed_token(a)
    escaped = escape_token(b)
    assert hashed != escaped
    assert is_hashed_token(hashed)
    assert not is_hashed_token(escaped)


def test_is_hashed_token_is_exact() -> None:
    assert not is_hashed_token("==")
    assert not is_hashed_token("==" + "A" * 64)  # upper-case hex is not ours
    assert not is_hashed_token("==" + "a" * 63)
    assert not is_hashed_token("=" + "a" * 65)
    assert is_hashed_token("==" + "a" * 64)


def test_kv_key() -> None:
    assert kv_key("reg", "realm1", "com.example.add2") == "reg.realm1.com-example-add2"
    assert kv_key("sub", "", "com.*.x", "node>1") == "sub.=.com-=2A-x.node=3E1"
    assert kv_key("x") == "x"
    with pytest.raises(ValueError):
        kv_key()
    with pytest.raises(ValueError, match="limit"):
        kv_key(*(["a" * MAX_TOKEN_LENGTH] * 8))


@given(st.lists(any_text, min_size=1, max_size=6))
def test_kv_key_one_token_per_part(parts: list[str]) -> None:
    key = kv_key(*parts)
    assert VALID_KV_KEY.fullmatch(key)
    assert not key.startswith(".") and not key.endswith(".")
    assert len(key) <= MAX_KEY_LENGTH
    tokens = key.split(".")
    assert len(tokens) == len(parts)
    for token, part in zip(tokens, parts, strict=True):
        assert token == key_token(part)
        if not is_hashed_token(token):
            assert unescape_token(token) == part


# --- ids ---


SECRET = b"cluster secret"


@given(st.binary(max_size=64), st.lists(any_text, max_size=4))
def test_scoped_id_in_range_and_deterministic(secret: bytes, parts: list[str]) -> None:
    value = scoped_id(secret, *parts)
    assert type(value) is int
    assert 1 <= value <= MAX_ID
    assert scoped_id(secret, *parts) == value


def test_scoped_id_stable() -> None:
    """Pinned: every node of a cluster, of any version, must compute these."""
    assert scoped_id(SECRET, "realm1", "exact", "com.example.add2") == PINNED_ADD2
    assert scoped_id(b"", "realm1", "exact", "com.example.add2") == PINNED_UNKEYED
    assert scoped_id(SECRET) == PINNED_NO_PARTS


PINNED_ADD2 = 7399292095819719
PINNED_UNKEYED = 3813357969217448
PINNED_NO_PARTS = 584112453592297


def test_scoped_id_framing() -> None:
    assert scoped_id(SECRET, "ab", "c") != scoped_id(SECRET, "a", "bc")
    assert scoped_id(SECRET, "abc") != scoped_id(SECRET, "ab", "c")
    assert scoped_id(SECRET, "a", "b") != scoped_id(SECRET, "b", "a")
    assert scoped_id(SECRET) != scoped_id(SECRET, "")
    assert scoped_id(SECRET, "") != scoped_id(SECRET, "", "")
    assert scoped_id(SECRET, "realm1", "prefix", "com.x") != scoped_id(SECRET, "realm1", "exact", "com.x")


def test_scoped_id_depends_on_secret() -> None:
    assert scoped_id(b"one", "r", "exact", "u") != scoped_id(b"two", "r", "exact", "u")


def test_scoped_id_secret_limit() -> None:
    scoped_id(b"k" * 64, "x")
    with pytest.raises(ValueError):
        scoped_id(b"k" * 65, "x")


@given(st.lists(any_text, min_size=1, max_size=3), st.lists(any_text, min_size=1, max_size=3))
def test_scoped_id_distinct_parts_distinct_ids(a: list[str], b: list[str]) -> None:
    if a != b:
        assert scoped_id(SECRET, *a) != scoped_id(SECRET, *b)  # 2^-53 odds of a false failure


def test_incarnation_id() -> None:
    seen = {incarnation_id() for _ in range(1000)}
    assert len(seen) == 1000
    for value in seen:
        assert re.fullmatch(r"[0-9a-f]{16}", value)


# --- layering ---


@pytest.mark.parametrize("module", [keys, ids])
def test_pure_modules_import_no_io(module: types.ModuleType) -> None:
    """These modules stay fuzzable: no asyncio, no nats, nothing from the rest of Cloverleaf."""
    assert module.__file__ is not None
    source = Path(module.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "binascii", "hashlib", "re", "secrets"}


def test_scoped_id_matches_its_documented_construction() -> None:
    """BLAKE2b-64, keyed, personalised ``cloverleaf.id.v1``, over 8-byte big-endian length + UTF-8 per part."""
    parts = ("realm1", "exact", "com.example.add2")
    data = b"".join(len(p.encode()).to_bytes(8, "big") + p.encode() for p in parts)
    digest = hashlib.blake2b(data, digest_size=8, key=SECRET, person=b"cloverleaf.id.v1").digest()
    assert scoped_id(SECRET, *parts) == (int.from_bytes(digest, "big") % 2**53) + 1 == PINNED_ADD2
