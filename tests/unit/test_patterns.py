"""Pattern matching against a straightforward reference matcher (property tests), and the spec's
precedence examples for pattern-based registrations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloverleaf.router.patterns import EXACT, PREFIX, WILDCARD, PatternIndex, wildcard_rank

COMPONENTS = st.sampled_from(["a", "b", "c", "ab", "x1"])
URIS = st.lists(COMPONENTS, min_size=1, max_size=4).map(".".join)
PATTERN_PARTS = st.lists(st.one_of(COMPONENTS, st.just("")), min_size=1, max_size=4)
WILDCARDS = PATTERN_PARTS.filter(lambda parts: any(parts)).map(".".join)
PREFIXES = st.one_of(URIS, URIS.map(lambda u: u[:-1] if len(u) > 1 else u), URIS.map(lambda u: u + "."))


def reference_matches(pattern: str, match: str, uri: str) -> bool:
    if match == EXACT:
        return pattern == uri
    if match == PREFIX:
        return uri.startswith(pattern)
    pattern_parts, uri_parts = pattern.split("."), uri.split(".")
    if len(pattern_parts) != len(uri_parts):
        return False
    return all(p in ("", u) for p, u in zip(pattern_parts, uri_parts, strict=True))


def reference_best(entries: list[tuple[str, str]], uri: str) -> tuple[str, str] | None:
    matching = [(p, m) for p, m in entries if reference_matches(p, m, uri)]
    exact = [e for e in matching if e[1] == EXACT]
    if exact:
        return exact[0]
    prefixes = [e for e in matching if e[1] == PREFIX]
    if prefixes:
        return max(prefixes, key=lambda e: len(e[0]))
    wildcards = [e for e in matching if e[1] == WILDCARD]
    if wildcards:
        best_rank = max(wildcard_rank(p) for p, _ in wildcards)
        # ties in rank: any of the tied patterns is a correct answer
        return next(e for e in wildcards if wildcard_rank(e[0]) == best_rank)
    return None


ENTRIES = st.lists(
    st.one_of(
        URIS.map(lambda u: (u, EXACT)), PREFIXES.map(lambda u: (u, PREFIX)), WILDCARDS.map(lambda u: (u, WILDCARD))
    ),
    max_size=25,
    unique=True,
)


@settings(max_examples=300, deadline=None)
@given(ENTRIES, st.lists(URIS, min_size=1, max_size=10))
def test_matching_equals_the_reference(entries: list[tuple[str, str]], uris: list[str]) -> None:
    index: PatternIndex[tuple[str, str]] = PatternIndex()
    for pattern, match in entries:
        index.add(pattern, match, (pattern, match))
    for uri in uris:
        found = sorted(value for _, _, value in index.matching(uri))
        expected = sorted(e for e in entries if reference_matches(e[0], e[1], uri))
        assert found == expected
        best = index.best(uri)
        reference = reference_best(entries, uri)
        if reference is None:
            assert best is None
        else:
            assert best is not None
            assert best[1] == reference[1]
            if reference[1] == WILDCARD:
                assert wildcard_rank(best[0]) == wildcard_rank(reference[0])
            else:
                assert (best[0], best[1]) == reference


@settings(max_examples=200, deadline=None)
@given(ENTRIES, st.data())
def test_removal_leaves_exactly_the_rest(entries: list[tuple[str, str]], data: st.DataObject) -> None:
    index: PatternIndex[tuple[str, str]] = PatternIndex()
    for pattern, match in entries:
        index.add(pattern, match, (pattern, match))
    removed = data.draw(st.lists(st.sampled_from(entries), unique=True)) if entries else []
    for pattern, match in removed:
        index.remove(pattern, match)
    kept = [e for e in entries if e not in removed]
    assert sorted(v for _, _, v in index.values()) == sorted(kept)
    assert len(index) == len(kept)
    for uri in ["a", "a.b", "a.b.c", "ab.x1.c.a", "c.c"]:
        assert sorted(v for _, _, v in index.matching(uri)) == sorted(
            e for e in kept if reference_matches(e[0], e[1], uri)
        )


def test_spec_precedence_examples() -> None:
    # advanced/rpc_pattern_based_registration, "Calls matching multiple registrations"
    index: PatternIndex[int] = PatternIndex()
    for number, (pattern, match) in enumerate(
        [("a1.b2.c3.d4.e55", EXACT), ("a1.b2.c3", PREFIX), ("a1.b2.c3.d4", PREFIX), ("a1.b2..d4.e5", WILDCARD),
         ("a1.b2.c33..e5", WILDCARD), ("a1.b2..d4.e5..g7", WILDCARD), ("a1.b2..d4..f6.g7", WILDCARD)],
        start=1,
    ):
        index.add(pattern, match, number)

    def best(uri: str) -> int | None:
        found = index.best(uri)
        return None if found is None else found[2]

    assert best("a1.b2.c3.d4.e55") == 1
    assert best("a1.b2.c3.d98.e74") == 2
    assert best("a1.b2.c3.d4.e325") == 3
    assert best("a1.b2.c55.d4.e5") == 4
    # The spec's example says "no prefix match" here, but its normative text (and Crossbar) make a
    # prefix a plain string prefix, so 'a1.b2.c3' does match 'a1.b2.c33...': the prefix wins.
    # docs/spec-notes.md records this inconsistency; the wildcard precedence is checked below.
    assert best("a1.b2.c33.d4.e5") == 2
    index.remove("a1.b2.c3", PREFIX)
    assert best("a1.b2.c33.d4.e5") == 5
    index.add("a1.b2.c3", PREFIX, 2)
    assert best("a1.b2.c88.d4.e5.f6.g7") == 6
    assert best("a2.b2.c2.d2.e2") is None
