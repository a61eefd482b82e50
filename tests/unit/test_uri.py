"""URI rules (spec: basic/building_blocks "URIs"; ``docs/spec-notes.md`` section (e)).

Loose rules (MUST): components are non-empty and contain no ".", "#" or whitespace. Strict rules
(SHOULD): components only use ``[0-9a-z_]``. Empty components are allowed only in wildcard patterns.
Application URIs MUST NOT use ``wamp`` as the first component.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloverleaf.wamp.uri import UriCheck, is_reserved, is_valid_uri

LOOSE, STRICT = UriCheck.LOOSE, UriCheck.STRICT

# The spec's regular expressions, anchored with \Z: "$" also matches before a trailing "\n".
SPEC = {
    (LOOSE, False): re.compile(r"^([^\s\.#]+\.)*([^\s\.#]+)\Z"),
    (LOOSE, True): re.compile(r"^(([^\s\.#]+\.)|\.)*([^\s\.#]+)?\Z"),
    (STRICT, False): re.compile(r"^([0-9a-z_]+\.)*([0-9a-z_]+)\Z"),
    (STRICT, True): re.compile(r"^(([0-9a-z_]+\.)|\.)*([0-9a-z_]+)?\Z"),
}

# (uri, loose, strict, loose+empty, strict+empty)
CASES = [
    ("com.myapp.mytopic1", True, True, True, True),
    ("a", True, True, True, True),
    ("realm1", True, True, True, True),
    ("com.my_app.topic_1", True, True, True, True),
    ("0.1.2", True, True, True, True),
    ("wamp.session.get", True, True, True, True),  # syntactically fine; reserved is another question
    ("com.MyApp.Topic", True, False, True, False),
    ("com.my-app.topic", True, False, True, False),
    ("com.myapp.topic-1:x/y", True, False, True, False),
    ("com.\u00e4pp.\u6f22\u5b57", True, False, True, False),
    ("com.myapp.\U0001f600", True, False, True, False),
    # empty components
    ("a..b", False, False, True, True),
    ("com.myapp..userevent", False, False, True, True),
    (".a", False, False, True, True),
    ("a.", False, False, True, True),
    ("..", False, False, True, True),
    (".", False, False, True, True),
    ("", False, False, False, False),  # never valid, even though the spec's "empty" regex matches it
    # forbidden characters
    ("a#b", False, False, False, False),
    ("com.myapp.#", False, False, False, False),
    ("a b", False, False, False, False),
    (" a", False, False, False, False),
    ("a ", False, False, False, False),
    ("a\tb", False, False, False, False),
    ("a\u00a0b", False, False, False, False),  # NO-BREAK SPACE is whitespace too
    ("a\u3000b", False, False, False, False),  # IDEOGRAPHIC SPACE
    ("a..b c", False, False, False, False),
    ("a.#.b", False, False, False, False),
    # trailing / embedded line breaks: "$" would admit the trailing ones
    ("a.b\n", False, False, False, False),
    ("a\n", False, False, False, False),
    ("a..b\n", False, False, False, False),
    ("a.\n", False, False, False, False),
    ("\n", False, False, False, False),
    ("a.b\r\n", False, False, False, False),
    ("a.b\r", False, False, False, False),
    ("\na.b", False, False, False, False),
    ("a.\nb", False, False, False, False),
    ("a.b\x0b", False, False, False, False),
    ("a.b\x0c", False, False, False, False),
    ("a.b\x1c", False, False, False, False),  # Python's \s includes the information separators
    ("a.b\x85", False, False, False, False),  # NEXT LINE
    ("a.b\u2028", False, False, False, False),  # LINE SEPARATOR
]


@pytest.mark.parametrize(("uri", "loose", "strict", "loose_empty", "strict_empty"), CASES, ids=repr)
def test_uri_rules(uri: str, loose: bool, strict: bool, loose_empty: bool, strict_empty: bool) -> None:
    assert is_valid_uri(uri) is loose  # loose, no empty components, is the default
    assert is_valid_uri(uri, LOOSE) is loose
    assert is_valid_uri(uri, STRICT) is strict
    assert is_valid_uri(uri, LOOSE, allow_empty_components=True) is loose_empty
    assert is_valid_uri(uri, STRICT, allow_empty_components=True) is strict_empty


def test_trailing_newline_is_invalid() -> None:
    # Regression guard: re.match with a "$"-anchored pattern accepts "a.b\n".
    for check in (LOOSE, STRICT):
        for empty in (False, True):
            assert not is_valid_uri("a.b\n", check, empty)


def test_strict_implies_loose() -> None:
    for uri, *_ in CASES:
        for empty in (False, True):
            if is_valid_uri(uri, STRICT, empty):
                assert is_valid_uri(uri, LOOSE, empty)
        if is_valid_uri(uri, LOOSE):
            assert is_valid_uri(uri, LOOSE, allow_empty_components=True)


def test_uri_check_values() -> None:
    assert UriCheck("loose") is LOOSE
    assert UriCheck("strict") is STRICT


_ALPHABET = st.sampled_from(list("ab_Z9.#- \t\n\r\x0b\x0c\x1c\x85\u00a0\u2028\u00e4\U0001f600"))


@settings(max_examples=200, deadline=None)
@given(uri=st.text(_ALPHABET, max_size=10))
def test_matches_the_spec_regexes(uri: str) -> None:
    for (check, empty), pattern in SPEC.items():
        expected = uri != "" and pattern.match(uri) is not None
        assert is_valid_uri(uri, check, empty) is expected, (uri, check, empty)


@pytest.mark.parametrize(
    ("uri", "reserved"),
    [
        ("wamp.error.not_authorized", True),
        ("wamp.session.get", True),
        ("wamp.", True),
        ("wamp..x", True),
        ("wamp", True),  # "MUST NOT use wamp as a first URI component": a one-component URI too
        ("com.myapp.topic", False),
        ("com.wamp.topic", False),
        ("wampx.topic", False),
        ("wamp_x.topic", False),
        ("WAMP.error", False),  # the component is "WAMP", not "wamp" (and it is not a strict URI)
        ("xwamp.a", False),
        ("", False),
    ],
    ids=repr,
)
def test_reserved_wamp_prefix(uri: str, reserved: bool) -> None:
    assert is_reserved(uri) is reserved
