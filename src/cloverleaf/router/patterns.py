"""URI pattern matching for subscriptions and registrations (spec: advanced/pubsub_pattern_based_subscription,
advanced/rpc_pattern_based_registration).

- ``exact``: the URI itself.
- ``prefix``: any URI that starts with the pattern (a plain string prefix: "a.b" matches "a.bc").
- ``wildcard``: the same number of components, where an empty pattern component matches any one.

:class:`PatternIndex` keeps values under (pattern, match) keys and answers both questions the
router asks: every value matching a URI (the broker delivers to all) and the single best one (the
dealer: exact, else the longest prefix, else the wildcard with the longest leading portions).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

EXACT = "exact"
PREFIX = "prefix"
WILDCARD = "wildcard"
MATCH_POLICIES = (EXACT, PREFIX, WILDCARD)

#: Payload passthru keys (spec: advanced/payload_passthru_mode), and Autobahn's older end-to-end
#: encryption keys, forwarded from Options to Details untouched.
PPT_KEYS = ("ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid")
ENC_KEYS = ("enc_algo", "enc_key", "enc_serializer")


def passthru_keys(options: dict[str, object]) -> dict[str, object]:
    """The payload passthru (and Autobahn enc_*) keys present in ``options``."""
    if not options:
        return {}
    return {key: options[key] for key in (*PPT_KEYS, *ENC_KEYS) if key in options}


def wildcard_matches(pattern: str, uri: str) -> bool:
    """Whether ``uri`` matches the wildcard ``pattern`` (component-wise, empty = any)."""
    pattern_parts = pattern.split(".")
    uri_parts = uri.split(".")
    return len(pattern_parts) == len(uri_parts) and all(
        p == "" or p == u for p, u in zip(pattern_parts, uri_parts, strict=True)
    )


def wildcard_rank(pattern: str) -> tuple[int, ...]:
    """The spec's precedence among matching wildcard registrations: the lengths of the runs of
    non-empty components before each wildcard, compared in order; larger wins.

    'a1.b2.c33..e5' -> (3, 1) beats 'a1.b2..d4.e5' -> (2, 2); 'a1.b2..d4.e5..g7' -> (2, 2, 1)
    beats 'a1.b2..d4..f6.g7' -> (2, 1, 2).
    """
    runs = [0]
    for part in pattern.split("."):
        if part:
            runs[-1] += 1
        else:
            runs.append(0)
    return tuple(runs)


class _Node(Generic[T]):
    """A wildcard trie node: children by component, "" for the wildcard child."""

    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: dict[str, T] = {}  # pattern -> value, at the node where the pattern ends


class PatternIndex(Generic[T]):
    """Values under (pattern, match policy), with matching lookups."""

    __slots__ = ("_exact", "_prefix", "_prefix_lengths", "_wildcard", "_wildcard_count")

    def __init__(self) -> None:
        self._exact: dict[str, T] = {}
        self._prefix: dict[str, T] = {}
        #: distinct prefix lengths, longest first: a URI is probed only at these lengths
        self._prefix_lengths: list[int] = []
        self._wildcard: _Node[T] = _Node()
        self._wildcard_count = 0

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefix) + self._wildcard_count

    @property
    def has_patterns(self) -> bool:
        return bool(self._prefix) or self._wildcard_count > 0

    def get(self, pattern: str, match: str) -> T | None:
        if match == EXACT:
            return self._exact.get(pattern)
        if match == PREFIX:
            return self._prefix.get(pattern)
        node = self._find_node(pattern)
        return None if node is None else node.values.get(pattern)

    def add(self, pattern: str, match: str, value: T) -> None:
        if match == EXACT:
            self._exact[pattern] = value
        elif match == PREFIX:
            self._prefix[pattern] = value
            if len(pattern) not in self._prefix_lengths:
                self._prefix_lengths.append(len(pattern))
                self._prefix_lengths.sort(reverse=True)
        else:
            node = self._wildcard
            for part in pattern.split("."):
                node = node.children.setdefault(part, _Node())
            if pattern not in node.values:
                self._wildcard_count += 1
            node.values[pattern] = value

    def remove(self, pattern: str, match: str) -> None:
        if match == EXACT:
            self._exact.pop(pattern, None)
        elif match == PREFIX:
            if self._prefix.pop(pattern, None) is not None and not any(len(p) == len(pattern) for p in self._prefix):
                self._prefix_lengths.remove(len(pattern))
        else:
            path: list[tuple[_Node[T], str]] = []
            node = self._wildcard
            for part in pattern.split("."):
                child = node.children.get(part)
                if child is None:
                    return
                path.append((node, part))
                node = child
            if node.values.pop(pattern, None) is not None:
                self._wildcard_count -= 1
            # prune empty branches so lookups stay short
            for parent, part in reversed(path):
                child = parent.children[part]
                if child.values or child.children:
                    break
                del parent.children[part]

    def _find_node(self, pattern: str) -> _Node[T] | None:
        node: _Node[T] | None = self._wildcard
        for part in pattern.split("."):
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def matching(self, uri: str) -> list[tuple[str, str, T]]:
        """Every (pattern, match, value) matching ``uri``: exact first, then prefixes, then wildcards."""
        found: list[tuple[str, str, T]] = []
        value = self._exact.get(uri)
        if value is not None:
            found.append((uri, EXACT, value))
        if self._prefix:
            size = len(uri)
            for length in self._prefix_lengths:
                if length <= size:
                    prefix = uri[:length]
                    value = self._prefix.get(prefix)
                    if value is not None:
                        found.append((prefix, PREFIX, value))
        if self._wildcard_count:
            for pattern, value in self._wildcard_values(uri):
                found.append((pattern, WILDCARD, value))
        return found

    def best(self, uri: str) -> tuple[str, str, T] | None:
        """The one match the dealer routes to: exact, else longest prefix, else best wildcard."""
        value = self._exact.get(uri)
        if value is not None:
            return uri, EXACT, value
        if self._prefix:
            size = len(uri)
            for length in self._prefix_lengths:  # longest first
                if length <= size:
                    prefix = uri[:length]
                    value = self._prefix.get(prefix)
                    if value is not None:
                        return prefix, PREFIX, value
        if self._wildcard_count:
            candidates = self._wildcard_values(uri)
            if candidates:
                pattern, value = max(candidates, key=lambda item: wildcard_rank(item[0]))
                return pattern, WILDCARD, value
        return None

    def _wildcard_values(self, uri: str) -> list[tuple[str, T]]:
        parts = uri.split(".")
        found: list[tuple[str, T]] = []
        nodes: list[_Node[T]] = [self._wildcard]
        for part in parts:
            next_nodes: list[_Node[T]] = []
            for node in nodes:
                exact_child = node.children.get(part)
                if exact_child is not None:
                    next_nodes.append(exact_child)
                any_child = node.children.get("")
                if any_child is not None and part:
                    next_nodes.append(any_child)
            if not next_nodes:
                return found
            nodes = next_nodes
        for node in nodes:
            found.extend(node.values.items())
        return found

    def values(self) -> list[tuple[str, str, T]]:
        """Every (pattern, match, value) held."""
        result = [(p, EXACT, v) for p, v in self._exact.items()]
        result += [(p, PREFIX, v) for p, v in self._prefix.items()]
        stack = [self._wildcard]
        while stack:
            node = stack.pop()
            result += [(p, WILDCARD, v) for p, v in node.values.items()]
            stack.extend(node.children.values())
        return result
