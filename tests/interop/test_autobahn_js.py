"""Interoperability with AutobahnJS (npm `autobahn`) under Node, and across languages with Autobahn|Python.

The JS side is tests/js/interop.mjs (pinned in tests/js/package.json / package-lock.json); it prints one JSON
line and exits 0 on success. node_modules is installed with `npm ci` on first use. The test is skipped only when
node or npm are not installed at all; a failing `npm ci` is a test failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from autobahn.wamp.types import CallResult, SubscribeOptions
from tests.conftest import JS_DIR, AutobahnSessions, RouterProcess, autobahn_transport

SERIALIZERS = ["json", "msgpack", "cbor"]
JS_CHECKS = ["join", "call_args_kwargs", "no_such_procedure", "application_error", "progressive_results",
             "publish_acknowledged",
             "publish_unacknowledged", "unsubscribe", "unregister", "leave"]
NODE_TIMEOUT = 20.0  # seconds; interop.mjs has its own overall timeout of 15 s
BLOB = b"\x00\x01\x02\xfe\xff"


async def run_interop(node: str, router: RouterProcess, *extra: str) -> dict[str, Any]:
    """Run interop.mjs against the router; return its JSON result (after asserting exit code 0)."""
    process = await asyncio.create_subprocess_exec(
        node, "interop.mjs", router.ws_url, "realm1", *extra, cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"node interop.mjs did not finish within {NODE_TIMEOUT} s")
    out, err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"no output from interop.mjs (exit {process.returncode}); stderr:\n{err}"
    result: dict[str, Any] = json.loads(lines[-1])
    print(f"AutobahnJS {result.get('autobahn')} on Node {result.get('node')} via {result.get('websocket')}")
    assert process.returncode == 0 and result["ok"], (
        f"interop.mjs exit {process.returncode}: {result.get('stage')}: {result.get('error')}\n"
        f"stdout:\n{out}\nstderr:\n{err}\nrouter log:\n{router.log()}")
    return result


def check_js_runs(result: dict[str, Any], extra_checks: list[str]) -> None:
    assert [run["serializer"] for run in result["runs"]] == SERIALIZERS
    for run in result["runs"]:
        serializer = run["serializer"]
        assert run["ok"] is True
        assert run["protocol"] == f"wamp.2.{serializer}"
        assert sorted(run["checks"]) == sorted(JS_CHECKS + extra_checks), run
        assert len(set(run["session_ids"])) == 2
        assert all(isinstance(i, int) and 0 < i <= 2**53 for i in run["session_ids"])
        assert isinstance(run["publication_id"], int) and 0 < run["publication_id"] <= 2**53


async def test_autobahn_js_rpc_and_pubsub(node: str, router: RouterProcess) -> None:
    """Two AutobahnJS sessions per serializer: RPC, errors, PubSub, unsubscribe/unregister, clean leave."""
    result = await run_interop(node, router, "--serializers", ",".join(SERIALIZERS))
    assert result["autobahn"] == "22.11.1"
    check_js_runs(result, [])


async def test_autobahn_js_with_autobahn_python(node: str, router: RouterProcess, autobahn: AutobahnSessions) -> None:
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

    result = await run_interop(node, router, "--serializers", ",".join(SERIALIZERS),
                               "--py-procedure", procedure, "--py-topic", topic)
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
