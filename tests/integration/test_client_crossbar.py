"""The Cloverleaf client against Crossbar.io, the reference router, once (WebSocket JSON, RawSocket MessagePack).

Crossbar lives in its own venv (.bench/crossbar-venv, the one benchmarks/run.py uses, or $CROSSBAR_VENV).
If it is missing it is created here (python -m venv + pip install -r benchmarks/requirements-crossbar.txt,
about two minutes); the tests are skipped only if that install fails. Crossbar runs as a node in its own
process group on free 127.0.0.1 ports with a temporary cbdir, and the whole group is killed at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port

from cloverleaf.client import (
    NO_RECONNECT,
    ApplicationError,
    CallDetails,
    CallOptions,
    EventDetails,
    Publication,
    PublishOptions,
    Result,
    Session,
    connect,
)

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
CROSSBAR_VENV = Path(os.environ.get("CROSSBAR_VENV", str(BENCH_DIR / "crossbar-venv")))
CROSSBAR_CONFIG = REPO / "benchmarks" / "crossbar" / "config.json"
CROSSBAR_REQUIREMENTS = REPO / "benchmarks" / "requirements-crossbar.txt"
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 90.0

# installing Crossbar takes minutes; every test below still bounds each of its own waits
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + START_TIMEOUT + 120)

COMBINATIONS = [("ws", "json"), ("rs", "msgpack")]


def ensure_crossbar_venv(venv: Path) -> Path:
    """The crossbar executable, installing it into ``venv`` first if needed (as benchmarks/run.py does)."""
    exe = venv / "bin" / "crossbar"
    if exe.exists():
        return exe
    if venv.resolve().is_relative_to(BENCH_DIR.resolve()):
        BENCH_DIR.mkdir(exist_ok=True)
        gitignore = BENCH_DIR / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# benchmark scratch space (Crossbar venv, results): never committed\n*\n")
    existed = venv.exists()
    python = shutil.which("python3") or getattr(sys, "_base_executable", None) or sys.executable
    started = time.monotonic()
    print(f"\ninstalling Crossbar.io into {venv} (one time, about two minutes) ...", flush=True)
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-r", str(CROSSBAR_REQUIREMENTS)],
            check=True, timeout=INSTALL_TIMEOUT, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        output = getattr(exc, "stderr", b"") or b""
        reason = f"cannot install Crossbar.io into {venv}: {exc}\n{output.decode(errors='replace')[-2000:]}"
        print(reason, flush=True)
        if not existed:
            shutil.rmtree(venv, ignore_errors=True)  # a half-made venv must not look installed next time
        pytest.skip(reason)
    if not exe.exists():
        reason = f"Crossbar.io install finished but {exe} is missing"
        print(reason, flush=True)
        pytest.skip(reason)
    print(f"installed Crossbar.io in {time.monotonic() - started:.1f}s", flush=True)
    return exe


def crossbar_config(ws_port: int, rs_port: int) -> dict[str, Any]:
    """benchmarks/crossbar/config.json (realm1, anonymous may do everything) on our ports."""
    config: dict[str, Any] = json.loads(CROSSBAR_CONFIG.read_text())
    worker = config["workers"][0]
    worker["realms"][0]["name"] = "realm1"
    for transport in worker["transports"]:
        transport["endpoint"]["interface"] = "127.0.0.1"
        transport["endpoint"]["port"] = ws_port if transport["type"] == "web" else rs_port
    return config


@dataclass
class CrossbarNode:
    process: subprocess.Popen[bytes]
    ws_url: str
    rs_url: str
    log_path: Path
    startup_s: float

    def url(self, transport: str) -> str:
        return self.ws_url if transport == "ws" else self.rs_url

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to the whole process group (controller and router worker), then SIGKILL what is left."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


async def _joins(url: str) -> bool:
    try:
        session = await asyncio.wait_for(connect(url, "realm1", reconnect=NO_RECONNECT, connect_timeout=2), 3)
    except (ConnectionError, TimeoutError, ApplicationError):
        return False
    await session.leave(timeout=2)
    return True


def joins(url: str) -> bool:
    """Whether a session can join realm1 at ``url`` (on a thread of its own: never the tests' event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _joins(url)).result(timeout=10)


def start_crossbar(exe: Path, directory: Path) -> CrossbarNode:
    ws_port, rs_port = free_port(), free_port()
    while rs_port == ws_port:
        rs_port = free_port()
    node = directory / "node"
    cbdir = node / ".crossbar"
    cbdir.mkdir(parents=True)
    (node / "web").mkdir()
    (node / "web" / "index.html").write_text("<html><body>cloverleaf client tests</body></html>\n")
    (cbdir / "config.json").write_text(json.dumps(crossbar_config(ws_port, rs_port), indent=2))
    log_path = directory / "crossbar.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(exe), "start", "--cbdir", str(cbdir), "--loglevel", "info"],
            cwd=node, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    crossbar = CrossbarNode(
        process, f"ws://127.0.0.1:{ws_port}/ws", f"rs://127.0.0.1:{rs_port}", log_path, 0.0
    )  # fmt: skip
    deadline = started + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Crossbar exited with {process.returncode}:\n{crossbar.log()[-4000:]}")
        if joins(crossbar.ws_url) and joins(crossbar.rs_url):
            break
        if time.monotonic() > deadline:
            crossbar.stop()
            raise RuntimeError(f"Crossbar did not accept sessions within {START_TIMEOUT}s:\n{crossbar.log()[-4000:]}")
        time.sleep(0.2)
    crossbar.startup_s = time.monotonic() - started
    print(f"\nCrossbar.io started in {crossbar.startup_s:.1f}s (ws {ws_port}, rawsocket {rs_port})", flush=True)
    return crossbar


@pytest.fixture(scope="module")
def crossbar() -> Iterator[CrossbarNode]:
    exe = ensure_crossbar_venv(CROSSBAR_VENV)
    directory = Path(tempfile.mkdtemp(prefix="clv-crossbar-"))
    node = start_crossbar(exe, directory)
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def open_session(crossbar: CrossbarNode) -> AsyncIterator[Any]:
    opened: list[Session] = []

    async def open_(transport: str, serializer: str) -> Session:
        session = await asyncio.wait_for(
            connect(crossbar.url(transport), "realm1", serializer=serializer, reconnect=NO_RECONNECT), 10
        )
        opened.append(session)
        return session

    yield open_
    for session in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.leave(timeout=2), 5)


async def within(awaitable: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


# -- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("transport", "serializer"), COMBINATIONS)
async def test_rpc_against_crossbar(open_session: Any, transport: str, serializer: str) -> None:
    callee = await open_session(transport, serializer)
    other = COMBINATIONS[1] if (transport, serializer) == COMBINATIONS[0] else COMBINATIONS[0]
    caller = await open_session(*other)  # Crossbar translates between the two serializers
    assert callee.session_id and caller.session_id and callee.details.get("authrole") == "anonymous"
    prefix = f"com.cl.{transport}"

    def add(a: int, b: int) -> int:
        return a + b

    async def echo(*args: Any, **kwargs: Any) -> Result:
        await asyncio.sleep(0)
        return Result(list(args), kwargs)

    def fail(n: int) -> None:
        raise ApplicationError("com.example.too_big", n, limit=10)

    def crash() -> None:
        raise ValueError("bad value")

    async def countdown(n: int) -> AsyncIterator[int]:
        for i in range(n, 0, -1):
            yield i

    def reporter(details: CallDetails) -> str:
        assert details.progress is not None
        details.progress("halfway", step=1)
        return "done"

    registration = await within(callee.register(f"{prefix}.add", add))
    assert registration.id > 0
    await within(callee.register(f"{prefix}.echo", echo))
    await within(callee.register(f"{prefix}.fail", fail))
    await within(callee.register(f"{prefix}.crash", crash))
    await within(callee.register(f"{prefix}.countdown", countdown))
    await within(callee.register(f"{prefix}.reporter", reporter))

    assert await within(caller.call(f"{prefix}.add", 2, 3)) == 5
    payload: list[Any] = [1, "två", b"\x00\xffbytes", None, [1.5, True], {"k": b"v"}]
    result = await within(caller.call(f"{prefix}.echo", *payload, key=b"\x01", n=2**40))
    assert isinstance(result, Result) and result.args == payload and result.kwargs == {"key": b"\x01", "n": 2**40}
    assert await within(caller.call(f"{prefix}.echo")) is None

    with pytest.raises(ApplicationError) as info:
        await within(caller.call(f"{prefix}.fail", 11))
    assert (info.value.error, info.value.args, info.value.kwargs) == ("com.example.too_big", (11,), {"limit": 10})
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(f"{prefix}.crash"))
    assert info.value.error == "wamp.error.runtime_error" and info.value.args == ("bad value",)
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(f"{prefix}.nobody"))
    assert info.value.error == "wamp.error.no_such_procedure"
    with pytest.raises(ApplicationError) as info:
        await within(caller.register(f"{prefix}.add", add))
    assert info.value.error == "wamp.error.procedure_already_exists"

    # progressive results, as an async iterator and through on_progress
    results = [r async for r in caller.call_progressive(f"{prefix}.countdown", 3)]
    assert [(r.args, r.progress) for r in results] == [([3], True), ([2], True), ([1], True), ([], False)]
    progress: list[Result] = []
    done = await within(caller.call(f"{prefix}.reporter", options=CallOptions(on_progress=progress.append)))
    assert done == "done" and [(r.args, r.kwargs) for r in progress] == [(["halfway"], {"step": 1})]

    await within(registration.unregister())
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(f"{prefix}.add", 1, 1))
    assert info.value.error == "wamp.error.no_such_procedure"


@pytest.mark.parametrize(("transport", "serializer"), COMBINATIONS)
async def test_pubsub_against_crossbar(open_session: Any, transport: str, serializer: str) -> None:
    subscriber = await open_session(transport, serializer)
    publisher = await open_session(*COMBINATIONS[0])
    topic = f"com.cl.{transport}.topic"
    events: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any], EventDetails]] = asyncio.Queue()
    plain: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(*args: Any, details: EventDetails, **kwargs: Any) -> None:
        events.put_nowait((args, kwargs, details))

    subscription = await within(subscriber.subscribe(topic, handler))
    second = await within(subscriber.subscribe(topic, lambda *args, **kwargs: plain.put_nowait(args)))
    assert subscription.id == second.id

    publication = await within(publisher.publish(topic, 1, b"\x00b", k="v", options=PublishOptions(acknowledge=True)))
    assert isinstance(publication, Publication) and publication.id > 0
    args, kwargs, details = await within(events.get())
    assert args == (1, b"\x00b") and kwargs == {"k": "v"}
    assert details.subscription == subscription.id and details.publication == publication.id
    assert await within(plain.get()) == (1, b"\x00b")

    # unacknowledged, and with the publisher's own session among the receivers
    await within(publisher.subscribe(topic, lambda *args, **kwargs: plain.put_nowait(("self", *args))))
    assert await within(publisher.publish(topic, 2, options=PublishOptions(exclude_me=False))) is None
    got = {await within(plain.get()), await within(plain.get())}
    assert got == {(2,), ("self", 2)}
    assert (await within(events.get()))[0] == (2,)

    # exclusion by session ID
    await within(publisher.publish(topic, 3, options=PublishOptions(exclude=[subscriber.session_id], exclude_me=False)))
    assert await within(plain.get()) == ("self", 3)
    await within(publisher.publish(topic, 4, options=PublishOptions(acknowledge=True)))
    assert (await within(events.get()))[0] == (4,)  # 3 never came

    await within(second.unsubscribe())
    await within(subscription.unsubscribe())
    with pytest.raises(ApplicationError) as info:
        await within(publisher.publish("wamp.reserved", options=PublishOptions(acknowledge=True)))
    assert info.value.error in ("wamp.error.invalid_uri", "wamp.error.not_authorized")


async def test_cancel_and_timeout_against_crossbar(open_session: Any) -> None:
    callee = await open_session("rs", "msgpack")
    caller = await open_session("ws", "json")
    loop = asyncio.get_running_loop()
    outcomes: asyncio.Queue[str] = asyncio.Queue()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcomes.put_nowait("cancelled")
            raise
        return "finished"

    await within(callee.register("com.cl.slow", slow))
    task = loop.create_task(caller.call("com.cl.slow", options=CallOptions(cancel_mode="killnowait")))
    try:
        await within(started.wait())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(task)
    finally:
        task.cancel()
    assert await within(outcomes.get()) == "cancelled"

    t0 = time.monotonic()
    with pytest.raises(ApplicationError) as info:
        await within(caller.call("com.cl.slow", options=CallOptions(timeout=0.3)))
    assert info.value.error in ("wamp.error.timeout", "wamp.error.canceled")
    assert time.monotonic() - t0 < 3
    assert await within(outcomes.get()) == "cancelled"
    assert caller.is_connected and callee.is_connected
