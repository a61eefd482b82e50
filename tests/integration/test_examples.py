"""examples/ and every Python block of docs/client.md run as printed, against the test's router.

Only the router address changes: ``ws://127.0.0.1:8080/ws`` (and the RawSocket and Unix socket
addresses) become the fixture's. Each block of docs/client.md is preceded by a marker that says how
it runs:

- ``<!-- test: await -->``: top-level-await code, executed here on the test's event loop;
- ``<!-- test: script -->``: a program, run as a subprocess;
- ``<!-- test: service NAME -->`` / ``<!-- test: caller NAME -->``: the side-by-side programs; each
  caller runs against each service (Cloverleaf and Autobahn|Python, both ways);
- ``<!-- test: auth -->``: top-level-await code run against a stand-in router that authenticates
  with ticket and WAMP-CRA (Cloverleaf's router admits anonymous clients only).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RouterProcess
from tests.processes import REPO, Service

DOC = REPO / "docs" / "client.md"
EXAMPLES = REPO / "examples"
DEFAULT_URL = "ws://127.0.0.1:8080/ws"

# -- the examples -----------------------------------------------------------------------------------

# example -> lines its output must contain (each example ends by itself)
EXPECTED: dict[str, list[str]] = {
    "rpc.py": [
        "add(2, 3) = 5",
        "squares: [0, 1, 4, 9, 16]",
        "divide(17, 5): quotient=3 remainder=2 exact=3.4",
        "error: com.example.division_by_zero cannot divide by zero {'dividend': 1}",
        "error: wamp.error.no_such_procedure",
        "whoami: True",
    ],
    "pubsub.py": [
        "published with an acknowledgement: True",
        "received: humidity = 0.4 (publication True)",
        "received: temperature = 21.5 (publication True)",
        "received: tick 1s",
        "received: tick 2s",
    ],
    "progressive.py": [
        "progressive: 3...",
        "progressive: 2...",
        "progressive: 1...",
        "progressive: liftoff",
        "final: None",
        "callback: 2...",
        "callback: liftoff",
        "plain call: liftoff",
        "first of many: 100...",
    ],
    "sync_script.py": [
        "multiply(6, 7) = 42",
        "event: hello from a script",
        "error: wamp.error.no_such_procedure",
        "service not running: wamp.error.no_such_procedure",
        "left: True",
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted([*EXPECTED, "service_app.py"])


async def test_examples_end_by_themselves(router: RouterProcess) -> None:
    """All at once (their URIs differ): the URL as argv for most, from the environment for one."""

    async def run(example: str) -> tuple[str, int, str, str]:
        args, env = ([], {"CLOVERLEAF_URL": router.ws_url}) if example == "sync_script.py" else ([router.ws_url], {})
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / example), *args, cwd=REPO, env={**_environ(), **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
        return example, process.returncode or 0, out.decode(), err.decode()

    failures = []
    for example, code, out, err in await asyncio.gather(*(run(e) for e in sorted(EXPECTED))):
        missing = [line for line in EXPECTED[example] if line not in out.splitlines()]
        if code != 0 or missing or "Traceback" in err:
            failures.append(f"{example}: exit {code}, missing {missing}\nstdout:\n{out}\nstderr:\n{err}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("how", ["python", "cloverleaf run"])
def test_service_app(router: RouterProcess, how: str) -> None:
    if how == "python":
        service = Service.python(str(EXAMPLES / "service_app.py"), router.ws_url)
    else:
        service = Service.python("-m", "cloverleaf", "run", "examples.service_app:app", "--url", router.ws_url,
                                 "--realm", "realm1", cwd=REPO)  # fmt: skip
    try:
        service.wait_for("service ready", 10)
        import cloverleaf
        from cloverleaf.client import ApplicationError, CallOptions

        with cloverleaf.connect(router.ws_url, "realm1", timeout=5) as s:
            assert s.call("com.example.add", 2, 3) == 5
            assert s.call("com.example.count", "visits") == "visits = 1 (caller undisclosed)"
            assert s.call("com.example.count", "visits", options=CallOptions(disclose_me=True)) == (
                f"visits = 2 (caller {s.session_id})"
            )
            with pytest.raises(ApplicationError) as error:
                s.call("com.example.count", "")
            assert error.value.error == "com.example.invalid_counter"
            assert s.call("com.example.stream", 4) == 3
            s.publish("com.example.reset", "visits")
            service.wait_for("counter visits reset", 5)
            assert s.call("com.example.count", "visits") == "visits = 1 (caller undisclosed)"
        if how == "python":  # the sync example talks to the service when it runs
            result = subprocess.run([sys.executable, str(EXAMPLES / "sync_script.py"), router.ws_url], cwd=REPO,
                                    capture_output=True, text=True, timeout=30)  # fmt: skip
            assert "service add(1, 2) = 3" in result.stdout.splitlines(), result.stdout + result.stderr
        assert service.stop(signal.SIGINT, 10) == 0, service.output
    finally:
        service.kill()
    assert "service left: wamp.close.goodbye_and_out" in service.lines, service.output
    assert "Traceback" not in service.output, service.output


# -- docs/client.md ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str  # await, script, service, caller, auth
    name: str  # service/caller name, else ""
    code: str
    line: int
    section: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-line{self.line}"


MARKED = re.compile(r"<!-- test: (\w+)(?: (\w+))? -->\n```python\n(.*?)```", re.S)


def doc_blocks() -> list[Block]:
    text = DOC.read_text()
    blocks = []
    for match in MARKED.finditer(text):
        line = text.count("\n", 0, match.start(3)) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
        blocks.append(Block(match.group(1), match.group(2) or "", match.group(3), line, headings[-1]))
    return blocks


BLOCKS = doc_blocks()


def localize(code: str, router: RouterProcess) -> str:
    return (
        code.replace(DEFAULT_URL, router.ws_url)
        .replace("rs://127.0.0.1:8081", router.rs_url)
        .replace("unix:///tmp/cloverleaf.sock", f"unix://{router.unix_path}")
    )


def test_every_python_block_is_marked() -> None:
    text = DOC.read_text()
    assert text.count("```python") == len(BLOCKS), "a Python block of docs/client.md has no <!-- test: ... --> marker"
    assert {b.kind for b in BLOCKS} <= {"await", "script", "service", "caller", "auth"}
    assert {b.name for b in BLOCKS if b.kind == "service"} == {"cloverleaf", "autobahn"}
    assert {b.name for b in BLOCKS if b.kind == "caller"} == {"cloverleaf", "autobahn"}
    assert sum(len(re.findall(r"print\(.*\)  # ", b.code)) for b in BLOCKS) >= 10  # promised outputs
    for block in BLOCKS:
        ast.parse(block.code, mode="exec", feature_version=(3, 11))  # compiles at all (await blocks: in a coroutine)
        assert DEFAULT_URL in block.code, f"{block.id} does not use the default router URL"


def check_printed(block: Block, output: str) -> None:
    """A ``print(...)  # text`` line in a block promises an output line ending with ``text``."""
    lines = output.splitlines()
    assert lines, f"{block.id} printed nothing"
    for promised in re.findall(r"^\s*print\(.*\)  # (.+)$", block.code, re.M):
        assert any(line.endswith(promised) for line in lines), f"{block.id}: no {promised!r} in:\n{output}"


async def run_await_block(code: str, timeout: float = 10.0) -> None:
    compiled = compile(code, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, {"__name__": "__docs__"})
    if asyncio.iscoroutine(result):
        await asyncio.wait_for(result, timeout)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "await"], ids=lambda b: b.id)
async def test_doc_await_block(router: RouterProcess, block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    await run_await_block(localize(block.code, router))
    check_printed(block, capsys.readouterr().out)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "script"], ids=lambda b: b.id)
def test_doc_script_block(router: RouterProcess, block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(localize(block.code, router))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                            env=_environ())  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    check_printed(block, result.stdout)


@pytest.mark.parametrize("service", ["cloverleaf", "autobahn"])
async def test_doc_side_by_side(router: RouterProcess, tmp_path: Path, service: str) -> None:
    """The service of one client library, and the callers of both against it at once."""
    (service_block,) = [b for b in BLOCKS if b.kind == "service" and b.name == service]
    (tmp_path / "service.py").write_text(localize(service_block.code, router))
    callers = sorted(b.name for b in BLOCKS if b.kind == "caller")
    for block in BLOCKS:
        if block.kind == "caller":
            (tmp_path / f"{block.name}_caller.py").write_text(localize(block.code, router))
    server = Service.python("service.py", cwd=tmp_path, env=_environ())
    try:
        await asyncio.to_thread(server.wait_for, "service ready", 10)

        async def call(name: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, f"{name}_caller.py", cwd=tmp_path, env=_environ(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                out, err = await asyncio.wait_for(process.communicate(), 30)
            except TimeoutError:
                process.kill()
                out, err = await process.communicate()
            return process.returncode or 0, out.decode(), err.decode()

        for name, (code, out, err) in zip(callers, await asyncio.gather(*(call(c) for c in callers)), strict=True):
            assert code == 0, f"{name} caller:\n{out}\n{err}"
            assert "2 + 3 = 5" in out.splitlines(), f"{name} caller:\n{out}\n{err}"  # (Autobahn logs to stdout too)
        deadline = asyncio.get_running_loop().time() + 5
        while server.lines.count("event: hi") < len(callers) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert server.lines.count("event: hi") == len(callers), server.output
        code = await asyncio.to_thread(server.stop, signal.SIGINT, 10)
        if service == "cloverleaf":
            assert code == 0, server.output
            assert "Traceback" not in server.output, server.output
    finally:
        server.kill()


# -- the authentication block, against a stand-in router that speaks ticket and WAMP-CRA ----------------

USERS = {"alice": "s3cr3t"}
SALT = {"salt": "pepper", "iterations": 100, "keylen": 32}


async def fake_auth_router(websocket: Any) -> None:
    """Just enough of a WAMP router (JSON over WebSocket) to authenticate and say goodbye."""
    from autobahn.wamp import auth as autobahn_auth

    hello = json.loads(await websocket.recv())
    assert hello[0] == 1, hello
    details = hello[2]
    authid = details.get("authid")
    method = next(m for m in details.get("authmethods", []) if m in ("ticket", "wampcra"))
    session_id = int(uuid.uuid4().int % 2**53)
    if method == "ticket":
        await websocket.send(json.dumps([4, "ticket", {}]))
        signature = json.loads(await websocket.recv())[1]
        accepted = signature == USERS.get(authid)
    else:
        challenge = json.dumps({"authid": authid, "authrole": "user", "authmethod": "wampcra",
                                "authprovider": "static", "nonce": uuid.uuid4().hex,
                                "session": session_id})  # fmt: skip
        await websocket.send(json.dumps([4, "wampcra", {"challenge": challenge, **SALT}]))
        signature = json.loads(await websocket.recv())[1]
        key = autobahn_auth.derive_key(USERS.get(authid, ""), SALT["salt"], SALT["iterations"], SALT["keylen"])
        accepted = signature == autobahn_auth.compute_wcs(key, challenge).decode()
    if not accepted:
        await websocket.send(json.dumps([3, {}, "wamp.error.not_authorized"]))
        return
    welcome = {"authid": authid, "authrole": "user", "authmethod": method, "authprovider": "static",
               "roles": {"broker": {"features": {}}, "dealer": {"features": {}}}}  # fmt: skip
    await websocket.send(json.dumps([2, session_id, welcome]))
    goodbye = json.loads(await websocket.recv())
    assert goodbye[0] == 6, goodbye
    await websocket.send(json.dumps([6, {}, "wamp.close.goodbye_and_out"]))


@pytest.fixture
async def auth_router() -> AsyncIterator[str]:
    from websockets.asyncio.server import serve

    async with serve(fake_auth_router, "127.0.0.1", 0, subprotocols=["wamp.2.json"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "auth"], ids=lambda b: b.id)
async def test_doc_auth_block(auth_router: str, block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    await run_await_block(block.code.replace(DEFAULT_URL, auth_router))
    assert capsys.readouterr().out.splitlines() == ["ticket alice user", "wampcra alice user"]


async def test_fake_auth_router_refuses_a_wrong_secret(auth_router: str) -> None:
    from cloverleaf.client import ApplicationError, TicketAuth, WampCraAuth, connect

    for authenticator in (TicketAuth("alice", "wrong"), WampCraAuth("alice", "wrong")):
        with pytest.raises(ApplicationError) as error:
            await asyncio.wait_for(connect(auth_router, "realm1", authenticators=[authenticator]), 5)
        assert error.value.error == "wamp.error.not_authorized"


def _environ() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
