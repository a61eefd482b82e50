"""The interoperability matrix: what each third-party client did against the router in this test run.

Every interop test records, for one client in one serializer over one transport, which features it
exercised and how each went (:meth:`InteropResults.record`), *before* it asserts, so a failure shows
in the table as well as in the test report. At the end of the run ``test_zz_interop_table.py``
renders the records as docs/interop.md (``UPDATE_INTEROP_DOC=1``) or checks the committed file
against them: the table in the docs is what the last full run measured, never typed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: feature key -> what the table calls it (rows of each client's table, in this order)
FEATURES: dict[str, str] = {
    "connect": "connect (HELLO/WELCOME)",
    "rpc": "register + call (args, kwargs)",
    "call_errors": "call errors (application error with args/kwargs, no_such_procedure)",
    "pubsub_acknowledged": "subscribe + publish with acknowledge",
    "progressive_caller": "progressive call results, as caller",
    "progressive_callee": "progressive call results, as callee",
    "unsubscribe_unregister": "unsubscribe + unregister",
    "leave": "leave (GOODBYE)",
    "reconnect": "automatic reconnect, registrations and subscriptions renewed",
    "pubsub_options": "publish options: eligible, exclude, exclude_me (by session)",
    "pattern_subscriptions": "prefix and wildcard subscriptions, several matching at once",
    "rpc_options": "RPC options: caller disclosure, pattern registrations, shared registrations",
    "call_cancel": "call cancel",
    "call_timeout": "call timeout",
    "slow_calls": "slow calls (several in flight, answered out of order)",
    "binary_payloads": "binary payloads (bytes in args and kwargs)",
    "meta_api": "meta API calls and meta events",
}

#: transport names used in the table
TRANSPORTS = ("WebSocket", "RawSocket TCP", "RawSocket Unix", "long-poll")
SERIALIZERS = ("json", "msgpack", "cbor")

PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"


@dataclass(frozen=True)
class ClientInfo:
    """One third-party client as the table names it."""

    name: str  #: e.g. "AutobahnJS"
    package: str  #: where it comes from, e.g. "npm autobahn"
    version: str  #: the installed (pinned) version
    runtime: str  #: e.g. "Node 20", "Python 3.11"


@dataclass
class RunRecord:
    """One client in one serializer over one transport: each exercised feature's outcome."""

    client: ClientInfo
    serializer: str
    transport: str
    outcomes: dict[str, str] = field(default_factory=dict)  #: feature -> PASS / FAIL / UNSUPPORTED
    notes: dict[str, str] = field(default_factory=dict)  #: feature -> why it is unsupported (or what failed)


class InteropResults:
    """Collects :class:`RunRecord` s over a test run (the session fixture ``interop_results``)."""

    def __init__(self) -> None:
        self.records: list[RunRecord] = []

    def record(
        self,
        client: ClientInfo,
        serializer: str,
        transport: str,
        passed: Iterable[str],
        expected: Iterable[str] = (),
        unsupported: Mapping[str, str] | None = None,
        failures: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Record one run. ``passed``: features that worked; ``expected``: features the run was
        meant to show (any not in ``passed`` is recorded as failed, with ``failures[feature]`` as the
        note when given); ``unsupported``: features the client does not have, with the reason."""
        if serializer not in SERIALIZERS:
            raise ValueError(f"unknown serializer {serializer!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        passed = set(passed)
        unsupported = dict(unsupported or {})
        unknown = (passed | set(expected) | set(unsupported)) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown interop features {sorted(unknown)}")
        run = RunRecord(client, serializer, transport)
        for feature in FEATURES:
            if feature in passed:
                run.outcomes[feature] = PASS
            elif feature in unsupported:
                run.outcomes[feature] = UNSUPPORTED
                run.notes[feature] = unsupported[feature]
            elif feature in expected:
                run.outcomes[feature] = FAIL
                run.notes[feature] = (failures or {}).get(feature, "")
        self.records.append(run)
        return run

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(r) for r in self.records], indent=1))


#: one collector for the whole test run (the ``interop_results`` fixture), read by test_zz_interop_table.py
RESULTS = InteropResults()

#: the runs a full test run must contain before the committed table can be compared with it:
#: (client name, serializer, transport)
EXPECTED_RUNS: set[tuple[str, str, str]] = set()


def expect_runs(client: str, serializers: Iterable[str], transports: Iterable[str]) -> None:
    """Declare (at import time of an interop test module) which runs a full test run makes."""
    for serializer in serializers:
        for transport in transports:
            EXPECTED_RUNS.add((client, serializer, transport))


#: clients tried and left out of the suite, with what was seen when installing them on this machine
#: (Python 3.11, Node 20, the package registries only)
LEFT_OUT: dict[str, str] = {
    "aiowamp 0.1.1 (PyPI)": "installs, but does not import beside a current `websockets` (it imports "
    "`websockets.framing`, gone since websockets 9.0); in a venv of its own with websockets 8.1 it imports, "
    "and then cannot open a WebSocket at all (it passes a `urllib.parse.ParseResult` where websockets "
    "expects a string URI). Unmaintained since 2020.",
    "beltway2 (PyPI)": "its only release requires Python >= 3.12; this machine (and CI) run Python 3.11.",
}

_MARK = {PASS: "✓", FAIL: "✗ FAILED", UNSUPPORTED: "n/a"}


def render_markdown(records: list[RunRecord]) -> str:
    """docs/interop.md from the records of one test run (deterministic: sorted, no timings)."""
    clients: dict[str, ClientInfo] = {}
    for run in records:
        clients.setdefault(run.client.name, run.client)
    lines = [
        "# Interoperability: third-party clients against Cloverleaf",
        "",
        "<!-- Generated by the test suite (tests/interop/test_zz_interop_table.py) from the run's own",
        "     results: run `UPDATE_INTEROP_DOC=1 .venv/bin/python -m pytest tests/interop` to rewrite it.",
        "     A full test run fails when this file and the results differ. Do not edit by hand. -->",
        "",
        "Each client below is a real, installed third-party package (pinned in `tests/js/package.json` or",
        "`pyproject.toml`), run by the test suite against a router process over loopback. A cell says what",
        "the run measured: ✓ the feature worked end to end (checked from the client's side and, where it",
        "matters, from a second peer); n/a the client does not have the feature (the note says why);",
        "blank: not exercised in that combination. Nothing here is typed by hand.",
        "",
        "| client | package | version | runtime | runs (serializer/transport) | features ✓ |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(clients, key=str.lower):
        info = clients[name]
        runs = [r for r in records if r.client.name == name]
        combos = sorted({(r.serializer, r.transport) for r in runs}, key=_combo_order)
        # per (serializer, transport, feature), as in the client's table: a run repeated (against a
        # single router and a cluster, say) counts once, and a failure anywhere counts as failed
        cells: dict[tuple[str, str, str], str] = {}
        for r in runs:
            for feature, outcome in r.outcomes.items():
                key = (r.serializer, r.transport, feature)
                if cells.get(key) != FAIL:
                    cells[key] = FAIL if outcome == FAIL else PASS if PASS in (outcome, cells.get(key)) else outcome
        passed = sum(1 for o in cells.values() if o == PASS)
        failed = sum(1 for o in cells.values() if o == FAIL)
        verdict = f"{passed}" + (f", **{failed} failed**" if failed else "")
        lines.append(f"| {_cell(name)} | {info.package} | {info.version} | {info.runtime} | "
                     f"{', '.join(f'{s}/{t}' for s, t in combos)} | {verdict} |")
    for name in sorted(clients, key=str.lower):
        info = clients[name]
        runs = [r for r in records if r.client.name == name]
        combos = sorted({(r.serializer, r.transport) for r in runs}, key=_combo_order)
        lines += ["", f"## {name} {info.version} ({info.package}, {info.runtime})", ""]
        lines.append("| feature | " + " | ".join(f"{s}<br>{t}" for s, t in combos) + " |")
        lines.append("|---|" + "---|" * len(combos))
        notes: dict[str, list[str]] = {}  # note -> the features it explains
        for feature, title in FEATURES.items():
            cells = []
            for combo in combos:
                outcomes = [r.outcomes.get(feature) for r in runs if (r.serializer, r.transport) == combo]
                outcome = FAIL if FAIL in outcomes else PASS if PASS in outcomes else \
                    UNSUPPORTED if UNSUPPORTED in outcomes else None
                cells.append(_MARK[outcome] if outcome else "")
                for r in runs:
                    note = r.notes.get(feature) if (r.serializer, r.transport) == combo else None
                    if note and feature not in notes.setdefault(note, []):
                        notes[note].append(feature)
            if any(cells):
                lines.append(f"| {title} | " + " | ".join(cells) + " |")
        if notes:
            lines.append("")
            for note, features in notes.items():
                what = "every feature" if len(features) == len(FEATURES) else \
                    "; ".join(FEATURES[feature] for feature in features)
                lines.append(f"- *{what}*: {note}")
    lines += ["", "## Clients not in the suite", ""]
    lines += [f"- **{name}**: {why}" for name, why in LEFT_OUT.items()]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell ("Autobahn|Python" would split the row)."""
    return text.replace("|", "\\|")


def _combo_order(combo: tuple[str, str]) -> tuple[int, int]:
    serializer, transport = combo
    return TRANSPORTS.index(transport), SERIALIZERS.index(serializer)
