"""WAMP URI rules (spec: basic/uris): loose and strict syntax, and the empty-component form
used by wildcard patterns."""

from __future__ import annotations

import re
from enum import StrEnum


class UriCheck(StrEnum):
    """How strictly a realm checks URIs in requests."""

    LOOSE = "loose"
    STRICT = "strict"


# The spec's regular expressions (basic/uris, "Relaxed/Loose URIs" and "Strict URIs").
# fullmatch, not match with "$": "$" also matches before a trailing newline, which would admit "a.b\n".
_LOOSE = re.compile(r"([^\s.#]+\.)*([^\s.#]+)")
_STRICT = re.compile(r"([0-9a-z_]+\.)*([0-9a-z_]+)")
# Patterns with empty components, e.g. "com..on" (wildcard matching).
_LOOSE_EMPTY = re.compile(r"(([^\s.#]+\.)|\.)*([^\s.#]+)?")
_STRICT_EMPTY = re.compile(r"(([0-9a-z_]+\.)|\.)*([0-9a-z_]+)?")

_CHECKERS = {
    (UriCheck.LOOSE, False): _LOOSE.fullmatch,
    (UriCheck.STRICT, False): _STRICT.fullmatch,
    (UriCheck.LOOSE, True): _LOOSE_EMPTY.fullmatch,
    (UriCheck.STRICT, True): _STRICT_EMPTY.fullmatch,
}


def is_valid_uri(uri: str, check: UriCheck = UriCheck.LOOSE, allow_empty_components: bool = False) -> bool:
    """Return whether ``uri`` is a well-formed WAMP URI under the given rule.

    ``allow_empty_components`` admits the empty components of wildcard patterns ("a..c");
    an empty string is never valid.
    """
    if not uri:
        return False
    return _CHECKERS[(check, allow_empty_components)](uri) is not None


def is_reserved(uri: str) -> bool:
    """Whether the URI lies in the ``wamp.`` namespace reserved for the protocol itself."""
    return uri == "wamp" or uri.startswith("wamp.")
