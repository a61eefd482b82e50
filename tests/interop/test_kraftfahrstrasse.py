"""kraftfahrstrasse (npm `@verkehrsministerium/kraftfahrstrasse`, TypeScript) as a real peer under Node.

The JS side is tests/js/kraftfahrstrasse_features.mjs: three kraftfahrstrasse sessions exercise each feature
and report per feature; in between (``--sync``) this module calls the kraftfahrstrasse callees from an
Autobahn|Python session, for what the kraftfahrstrasse caller cannot show (its call promise rejects with the
error URI only, dropping the ERROR's args and kwargs).

What the package has (read in build/module of the installed 0.9.0): serializers JSONSerializer and
NodeMSGPackSerializer (BrowserMSGPackSerializer is the same for browsers), no CBOR; transports
NodeWebSocketTransport and BrowserWebSocketTransport, no RawSocket; no automatic reconnect.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions
from tests.conftest import JS_DIR, AutobahnSessions, RouterProcess, autobahn_transport
from tests.interop.matrix import ClientInfo, InteropResults, expect_runs

PACKAGE_JSON = JS_DIR / "node_modules" / "@verkehrsministerium" / "kraftfahrstrasse" / "package.json"
VERSION = json.loads(PACKAGE_JSON.read_text())["version"] if PACKAGE_JSON.exists() else "not installed"
CLIENT = ClientInfo("kraftfahrstrasse", "npm @verkehrsministerium/kraftfahrstrasse", VERSION, "Node 20")
SERIALIZERS = ["json", "msgpack"]
TRANSPORT = "WebSocket"
expect_runs(CLIENT.name, SERIALIZERS, [TRANSPORT])

#: features the .mjs exercises (binary_payloads only where the serializer has a binary type)
JS_FEATURES = ["connect", "rpc", "call_errors", "pubsub_acknowledged", "progressive_caller", "progressive_callee",
               "slow_calls", "call_cancel", "call_timeout", "pubsub_options", "pattern_subscriptions", "rpc_options",
               "meta_api", "unsubscribe_unregister", "leave"]

BUILD = "build/module"
UNSUPPORTED = {
    "reconnect": f"no automatic reconnect: Connection ({BUILD}/generic/Connection.js) only has Open()/Close(); on a "
                 "transport CLOSE it rejects pending requests and settles OnClose(), and the application must Open() "
                 "again and redo its registrations and subscriptions",
}
UNSUPPORTED_JSON = {
    "binary_payloads": f"JSONSerializer ({BUILD}/serialize/JSON.js) is plain JSON.stringify/JSON.parse, without the "
                       "WAMP convention for binary in JSON (a string of \"\\0\" + base64): a Buffer is sent as "
                       "{type: 'Buffer', data: [...]} and binary from other peers arrives as that string",
}
BLOB = b"\x00\x01\x02\xfe\xff"
NODE_TIMEOUT = 25.0


async def _line(process: asyncio.subprocess.Process, stderr: list[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), NODE_TIMEOUT)
    if not raw:
        assert process.stderr is not None
        stderr.append(await process.stderr.read())
        raise AssertionError(f"kraftfahrstrasse_features.mjs ended early; stderr:\n{b''.join(stderr).decode()}")
    return dict(json.loads(raw))


async def _python_side(session: Any, ready: dict[str, Any], serializer: str) -> dict[str, dict[str, str | None]]:
    """Autobahn|Python calls the kraftfahrstrasse callees; returns feature -> {check: None (passed) or error}."""
    checks: dict[str, dict[str, str | None]] = {"call_errors": {}, "progressive_callee": {}, "binary_payloads": {}}
    procedures = ready["procedures"]

    async def run(feature: str, name: str, coro: Any) -> None:
        try:
            await asyncio.wait_for(coro, 5)
            checks[feature][name] = None
        except Exception as exc:  # recorded as the feature's failure text
            checks[feature][name] = f"{name}: {type(exc).__name__}: {exc}"

    async def error_args_kwargs() -> None:
        with pytest.raises(ApplicationError) as info:
            await session.call(procedures["fail"], 7)
        got = (info.value.error, list(info.value.args), info.value.kwargs)
        assert got == ("com.kfs.error.app", ["bad", 7], {"code": 42, "why": "test"}), got

    async def progressive() -> None:
        progress: list[Any] = []
        result = await session.call(procedures["count"], 3,
                                    options=CallOptions(on_progress=lambda *a, **kw: progress.append((a, kw))))
        assert progress == [((1,), {"progress_seen": True}), ((2,), {"progress_seen": True})], progress
        assert (list(result.results), result.kwresults) == ([3], {"progress_seen": True}), result

    async def binary_echo() -> None:
        result = await session.call(procedures["echo"], BLOB, "x", blob=BLOB)
        assert (list(result.results), result.kwresults) == ([BLOB, "x"], {"blob": BLOB}), result

    await run("call_errors", "application error args/kwargs from the kraftfahrstrasse callee to Autobahn|Python",
              error_args_kwargs())
    await run("progressive_callee", "progressive results from the kraftfahrstrasse callee to Autobahn|Python",
              progressive())
    if procedures.get("echo"):
        await run("binary_payloads", f"bytes from Autobahn|Python (json) through the kraftfahrstrasse {serializer} "
                                     "callee and back", binary_echo())
    return checks


@pytest.mark.parametrize("serializer", SERIALIZERS)
async def test_kraftfahrstrasse_features(node: str, router: RouterProcess, autobahn: AutobahnSessions,
                                         interop_results: InteropResults, serializer: str) -> None:
    session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    process = await asyncio.create_subprocess_exec(
        node, "kraftfahrstrasse_features.mjs", router.ws_url, "realm1", "--serializer", serializer, "--sync",
        cwd=JS_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"},
    )  # fmt: skip
    stderr: list[bytes] = []
    try:
        first = await _line(process, stderr)
        python_checks: dict[str, dict[str, str | None]] = {}
        if first.get("stage") == "ready":
            python_checks = await _python_side(session, first, serializer)
            assert process.stdin is not None
            process.stdin.write(b"done\n")
            await process.stdin.drain()
            result = await _line(process, stderr)
        else:
            result = first  # the run ended before it got that far: its report says why
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    err = (b"".join(stderr) + await process.stderr.read()).decode(errors="replace")

    expected = JS_FEATURES + (["binary_payloads"] if serializer != "json" else [])
    features: dict[str, Any] = result.get("features", {})
    passed, failures = [], {}
    for feature in expected:
        entry = features.get(feature)
        problems = [text for text in python_checks.get(feature, {}).values() if text]
        if entry is None:
            failures[feature] = f"not reached: {result.get('error', 'no report')}"
        elif not entry["ok"]:
            failures[feature] = entry.get("error", "")
        elif problems:
            failures[feature] = "; ".join(problems)
        else:
            passed.append(feature)
    unsupported = {**UNSUPPORTED, **(UNSUPPORTED_JSON if serializer == "json" else {})}
    interop_results.record(CLIENT, serializer, TRANSPORT, passed, expected=expected, unsupported=unsupported,
                           failures=failures)

    assert result.get("version") == VERSION, result
    assert not failures, f"{failures}\nstderr:\n{err}\nrouter log:\n{router.log()[-4000:]}"
    assert process.returncode == 0 and result["ok"], (result, err)
    for feature, checks in python_checks.items():
        if feature in expected:
            assert checks and all(text is None for text in checks.values()), (feature, checks)
