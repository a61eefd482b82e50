"""Interoperability with AutobahnJS (npm `autobahn`) under Node, and across languages with Autobahn|Python.

The JS side is tests/js/interop.mjs (the basic profile: two sessions per serializer) and
tests/js/autobahn_features.mjs (publish options, pattern subscriptions and registrations, shared
registrations, call timeout and cancel, slow calls, binary payloads, reconnect, meta API), pinned in
tests/js/package.json / package-lock.json; each prints one JSON line and exits 0 on success.
node_modules is installed with `npm ci` on first use. The tests are skipped only when node or npm are
not installed at all; a failing `npm ci` is a test failure.

Transports: WebSocket with json, msgpack and cbor; RawSocket TCP with json only: AutobahnJS's Node
RawSocket transport (lib/transport/rawsocket.js) knows one serializer (``Protocol.SERIALIZERS = {json:
1}``, frames are ``JSON.stringify``'d, the transport's ``serializers`` option is not read), which the
msgpack/cbor RawSocket runs show by connecting and reporting the negotiated protocol.

Every run records its outcome in the interop matrix (tests/interop/matrix.py) before asserting.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, RegisterOptions, SubscribeOptions
from tests.conftest import JS_DIR, AutobahnSessions, RouterProcess, autobahn_transport
from tests.interop.matrix import FEATURES, ClientInfo, InteropResults, expect_runs

#: also run against two router nodes of a cluster (tests/conftest.py): the JS and Python sessions land on
#: different nodes
CLUSTER_READY = True

SERIALIZERS = ["json", "msgpack", "cbor"]
JS_CHECKS = ["join", "call_args_kwargs", "no_such_procedure", "application_error", "progressive_results",
             "publish_acknowledged",
             "publish_unacknowledged", "unsubscribe", "unregister", "leave"]
NODE_TIMEOUT = 20.0  # seconds; interop.mjs has its own overall timeout of 15 s
BLOB = b"\x00\x01\x02\xfe\xff"

AUTOBAHN_JS_VERSION: str = json.loads((JS_DIR / "node_modules" / "autobahn" / "package.json").read_text())["version"] \
    if (JS_DIR / "node_modules" / "autobahn" / "package.json").exists() else "22.11.1"
CLIENT = ClientInfo("AutobahnJS", "npm autobahn", AUTOBAHN_JS_VERSION, "Node 20")
WS, RS = "WebSocket", "RawSocket TCP"
#: AutobahnJS's Node RawSocket transport speaks JSON only (lib/transport/rawsocket.js)
RS_ONLY_JSON = ("AutobahnJS 22.11.1's Node RawSocket transport (lib/transport/rawsocket.js) speaks JSON only: "
                "Protocol.SERIALIZERS = {json: 1}, frames are JSON.stringify'd and the serializers option is "
                "ignored (the session negotiates wamp.2.json)")
expect_runs("AutobahnJS", SERIALIZERS, [WS, RS])

#: interop.mjs check -> matrix feature (a feature passes when all its checks passed)
BASIC_FEATURES: dict[str, list[str]] = {
    "connect": ["join"],
    "rpc": ["call_args_kwargs"],
    "call_errors": ["no_such_procedure", "application_error"],
    "progressive_callee": ["progressive_results"],
    "progressive_caller": ["progressive_results"],
    "pubsub_acknowledged": ["publish_acknowledged", "publish_unacknowledged"],
    "unsubscribe_unregister": ["unsubscribe", "unregister"],
    "leave": ["leave"],
}
#: autobahn_features.mjs names its checks by matrix feature
ADVANCED_FEATURES = ["pubsub_options", "pattern_subscriptions", "rpc_options", "slow_calls", "call_timeout",
                     "call_cancel", "binary_payloads", "reconnect", "meta_api"]
JSON_BINARY = ("AutobahnJS 22.11.1's JSONSerializer is plain JSON.stringify/parse: a Buffer is sent as "
               "{\"type\": \"Buffer\", \"data\": [...]} and a '\\0'+base64 string from a peer is delivered as "
               "that string (no WAMP JSON binary convention); the round trip is checked as such")


async def run_node(node: str, router: RouterProcess, script: str, *args: str) -> dict[str, Any]:
    """Run a tests/js script; return its JSON result with "returncode" and "stderr" added (no asserting)."""
    process = await asyncio.create_subprocess_exec(
        node, script, *args, cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT + 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {"ok": False, "runs": [], "error": f"node {script} did not finish", "returncode": None, "stderr": ""}
    out, err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "runs": [], "error": "no output"}
    result["returncode"], result["stderr"] = process.returncode, err
    print(f"{script}: AutobahnJS {result.get('autobahn')} on Node {result.get('node')} via {result.get('websocket')}")
    return result


def assert_ok(result: dict[str, Any], router: RouterProcess) -> None:
    assert result["returncode"] == 0 and result["ok"], (
        f"exit {result['returncode']}: {result.get('stage')}: {result.get('error')}\n"
        f"failures: {json.dumps([(r['serializer'], r.get('transport'), r.get('failures')) for r in result['runs']])}\n"
        f"result: {json.dumps(result.get('runs'))[:4000]}\nstderr:\n{result['stderr'][-4000:]}\n"
        f"router log:\n{router.log()[-4000:]}")


def record_basic(interop_results: InteropResults, result: dict[str, Any], transport: str,
                 features: dict[str, list[str]]) -> None:
    """Record interop.mjs runs: a feature passed when all its checks passed (it stops at the first failure)."""
    runs = {run["serializer"]: run for run in result.get("runs", [])}
    for serializer in SERIALIZERS if transport == WS else ["json"]:
        checks = set(runs.get(serializer, {}).get("checks", []))
        passed = [f for f, needed in features.items() if set(needed) <= checks]
        error = f"{result.get('stage')}: {result.get('error')}"
        interop_results.record(CLIENT, serializer, transport, passed=passed, expected=features,
                               failures={f: error for f in features if f not in passed})


async def run_interop(node: str, router: RouterProcess, url: str, *extra: str) -> dict[str, Any]:
    return await run_node(node, router, "interop.mjs", url, "realm1", *extra)


def check_js_runs(result: dict[str, Any], extra_checks: list[str], serializers: list[str] = SERIALIZERS) -> None:
    assert [run["serializer"] for run in result["runs"]] == serializers
    for run in result["runs"]:
        serializer = run["serializer"]
        assert run["ok"] is True
        assert run["protocol"] == f"wamp.2.{serializer}"
        assert sorted(run["checks"]) == sorted(JS_CHECKS + extra_checks), run
        assert len(set(run["session_ids"])) == 2
        assert all(isinstance(i, int) and 0 < i <= 2**53 for i in run["session_ids"])
        assert isinstance(run["publication_id"], int) and 0 < run["publication_id"] <= 2**53


async def test_autobahn_js_rpc_and_pubsub(node: str, router: RouterProcess, interop_results: InteropResults) -> None:
    """Two AutobahnJS sessions per serializer: RPC, errors, PubSub, unsubscribe/unregister, clean leave."""
    result = await run_interop(node, router, router.ws_url, "--serializers", ",".join(SERIALIZERS))
    record_basic(interop_results, result, WS, BASIC_FEATURES)
    assert_ok(result, router)
    assert result["autobahn"] == "22.11.1"
    check_js_runs(result, [])


async def test_autobahn_js_rawsocket(node: str, router: RouterProcess, interop_results: InteropResults) -> None:
    """The same two-session checks over AutobahnJS's Node RawSocket transport (JSON: its only serializer)."""
    result = await run_interop(node, router, f"rs://127.0.0.1:{router.rs_port}", "--serializers", "json")
    record_basic(interop_results, result, RS, BASIC_FEATURES)
    assert_ok(result, router)
    check_js_runs(result, [], ["json"])


async def test_autobahn_js_with_autobahn_python(node: str, router: RouterProcess, autobahn: AutobahnSessions,
                                                interop_results: InteropResults) -> None:
    """AutobahnJS (json, msgpack, cbor) calls a Python procedure and publishes to a Python (json) subscriber."""
    session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    procedure, topic = "com.example.py.mul2", "com.example.py.topic"
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def mul2(a: int, b: int, **kwargs: Any) -> CallResult:
        calls.append(((a, b), kwargs))
        return CallResult(a * b, product=a * b, echo=kwargs, blob=BLOB)

    events: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any], Any]] = asyncio.Queue()

    def on_event(*args: Any, details: Any, **kwargs: Any) -> None:
        events.put_nowait((args, kwargs, details))

    await session.register(mul2, procedure)
    await session.subscribe(on_event, topic, options=SubscribeOptions(details_arg="details"))

    result = await run_interop(node, router, router.ws_url, "--serializers", ",".join(SERIALIZERS),
                               "--py-procedure", procedure, "--py-topic", topic)
    cross = {"rpc": ["call_args_kwargs", "python_call"],
             "pubsub_acknowledged": ["publish_acknowledged", "python_publish"]}
    record_basic(interop_results, result, WS, cross)
    assert_ok(result, router)
    check_js_runs(result, ["python_call", "python_publish"])

    # JS -> Python RPC, and the result back in each JS serializer
    assert calls == [((6, 7), {"from": "js", "serializer": s}) for s in SERIALIZERS]
    for run in result["runs"]:
        serializer = run["serializer"]
        js_call = run["python_call"]
        assert js_call["args"] == [42]
        # bytes from Python: a real binary value in msgpack/cbor; the WAMP JSON convention "\0" + base64 in JSON
        blob = "\x00AAEC/v8=" if serializer == "json" else {"$bytes": BLOB.hex()}
        assert js_call["kwargs"] == {"product": 42, "echo": {"from": "js", "serializer": serializer}, "blob": blob}

    # JS -> Python PubSub (binary kwargs from msgpack/cbor arrive as bytes in the Python json session)
    for run in result["runs"]:
        serializer = run["serializer"]
        args, kwargs, details = await asyncio.wait_for(events.get(), 5)
        assert args == ("hello python", serializer)
        expected: dict[str, Any] = {"from": "js", "serializer": serializer, "unicode": "Grüße ☘"}
        if serializer != "json":
            expected["blob"] = BLOB
        assert kwargs == expected
        assert details.publication == run["python_publication_id"]
    assert events.empty()


PY_BYTES = b"\x00\x01\xfe\xff"


async def test_autobahn_js_features(node: str, router: RouterProcess, autobahn: AutobahnSessions,
                                    interop_results: InteropResults) -> None:
    """autobahn_features.mjs over WebSocket (json, msgpack, cbor) and RawSocket (json; msgpack and cbor
    only to show they are not offered there), with an Autobahn|Python peer as the binary echo and as a
    callee that supports call canceling."""
    session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    echo_uri, cancel_uri = "com.example.py.features.echo", "com.example.py.features.forever"

    def echo(*args: Any, **kwargs: Any) -> CallResult:
        return CallResult(*args, types=[type(a).__name__ for a in args],
                          kwtypes={k: type(v).__name__ for k, v in kwargs.items()}, blob=kwargs.get("blob"),
                          py_bytes=PY_BYTES)

    interrupted: list[str] = []

    async def forever(tag: str) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            # INTERRUPT (mode "kill"): this callee's answer is what the caller gets
            interrupted.append(tag)
            raise ApplicationError("com.example.py.interrupted", tag) from None

    await session.register(echo, echo_uri)
    await session.register(forever, cancel_uri, options=RegisterOptions())

    runs = ["json/ws", "msgpack/ws", "cbor/ws", "json/rs", "msgpack/rs", "cbor/rs"]
    result = await run_node(node, router, "autobahn_features.mjs", "realm1", "--ws", router.ws_url,
                            "--rs", f"127.0.0.1:{router.rs_port}", "--runs", ",".join(runs),
                            "--py-echo", echo_uri, "--py-cancel", cancel_uri, "--timeout", str(NODE_TIMEOUT + 10))
    by_run = {(r["serializer"], r["transport"]): r for r in result.get("runs", [])}
    for spec in runs:
        serializer, kind = spec.split("/")
        run = by_run.get((serializer, kind), {"checks": [], "failures": {"run": result.get("error")}, "observed": {}})
        transport = WS if kind == "ws" else RS
        if kind == "rs" and serializer != "json":
            offered = run["observed"].get("protocol") == "wamp.2.json" and not run["failures"]
            interop_results.record(CLIENT, serializer, transport, passed=[],
                                   unsupported=dict.fromkeys(FEATURES, RS_ONLY_JSON),
                                   expected=[] if offered else ["connect"],
                                   failures={"connect": json.dumps(run["failures"]) or str(run["observed"])})
            continue
        passed = [f for f in ADVANCED_FEATURES if f in run["checks"]]
        unsupported: dict[str, str] = {}
        if serializer == "json" and "binary_payloads" in passed:
            passed.remove("binary_payloads")
            unsupported["binary_payloads"] = JSON_BINARY
        failures = {f: run["failures"].get(f) or json.dumps(run["failures"]) or str(result.get("error"))
                    for f in ADVANCED_FEATURES if f not in run["checks"]}
        interop_results.record(CLIENT, serializer, transport, passed=passed, unsupported=unsupported,
                               expected=ADVANCED_FEATURES, failures=failures)

    print(json.dumps({f"{r['serializer']}/{r['transport']}": r["observed"] for r in result.get("runs", [])},
                     indent=1))
    assert_ok(result, router)
    for spec in runs:
        serializer, kind = spec.split("/")
        run = by_run[(serializer, kind)]
        if kind == "rs" and serializer != "json":
            assert run["observed"]["protocol"] == "wamp.2.json"  # the serializer option is ignored
            continue
        assert run["observed"]["protocol"] == f"wamp.2.{serializer}"
        assert sorted(run["checks"]) == sorted(ADVANCED_FEATURES), run
        assert run["observed"]["python_cancel_error"] == "com.example.py.interrupted"
        assert run["observed"]["reconnect_close"]["will_retry"] is True
    # the Python callee got an INTERRUPT for each run's canceled call
    assert sorted(interrupted) == sorted(f"{s}_{k}" for s, k in (r.split("/") for r in runs[:4]))
