"""`cloverleaf start --workers N` (docs/workers.md): real processes, a private nats-server, raw
WAMP clients that see which worker WELCOMEd them (``x_cb_worker``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import free_port
from tests.rawclient import RawClient

pytestmark = pytest.mark.timeout(90)


@dataclass
class WorkerNode:
    process: subprocess.Popen[bytes]
    ws_url: str
    unix_path: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        """Every live process below the parent (workers, nats-server), from /proc."""
        found, frontier = [], [self.process.pid]
        while frontier:
            pid = frontier.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                frontier.append(child)
        return found

    def workers(self) -> list[int]:
        """The worker processes (children running Python)."""
        return [pid for pid in self.descendants() if "python" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_node(tmp: Path, workers: str = "2", config: dict[str, Any] | None = None,
               transports: list[dict[str, Any]] = (),  # type: ignore[assignment]
               ws_options: dict[str, Any] | None = None) -> WorkerNode:  # fmt: skip
    tmp.mkdir(parents=True, exist_ok=True)
    ws_port = free_port()
    unix_path = str(tmp / "router.sock")
    body: dict[str, Any] = {
        "realms": [{"name": "realm1"}],
        "transports": [
            {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": ws_port}, "path": "/ws",
             **(ws_options or {})},
            {"type": "rawsocket", "endpoint": {"type": "unix", "path": unix_path}},
            *transports,
        ],
        # the tests' clients are not reading when the fixture stops the node: 1 s for their GOODBYE
        # answers instead of the default 5 s per node
        "shutdown_timeout": 1.0,
        **(config or {}),
    }
    (tmp / "node.yaml").write_text(yaml.safe_dump(body))
    log_path = tmp / "node.log"
    command = [sys.executable, "-m", "cloverleaf", "start", "--config", str(tmp / "node.yaml")]
    if workers:
        command += ["--workers", workers]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    node = WorkerNode(process, f"ws://127.0.0.1:{ws_port}/ws", unix_path, log_path)
    deadline = time.monotonic() + 30
    while node.log().count("cloverleaf router ready") < (2 if workers in ("2", "auto") else int(workers or 1)):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not start:\n{node.log()}")
        time.sleep(0.05)
    return node


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[WorkerNode]]:
    started: list[WorkerNode] = []
    yield started
    for node in started:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
        for pid in node.descendants():
            os.kill(pid, signal.SIGKILL)


async def session_on(node: WorkerNode, worker: str, attempts: int = 60) -> RawClient:
    """A WebSocket session that a given worker WELCOMEd (the kernel spreads connections)."""
    for _ in range(attempts):
        client = await RawClient.websocket(node.ws_url)
        welcome = await client.join()
        if welcome[2].get("x_cb_worker") == worker:
            return client
        await client.close()
    raise AssertionError(f"no connection landed on {worker} in {attempts} attempts")


async def until_answer(caller: RawClient, procedure: str, args: list[Any], timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await caller.request([48, caller.request_id(), {}, procedure, args])
        if answer[0] == 50 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_two_workers_are_one_router(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    node = start_node(tmp_path)
    nodes.append(node)
    assert "private NATS for the workers" in node.log()
    callee = await session_on(node, "w0")
    caller = await session_on(node, "w1")
    welcome_details = (await (await RawClient.websocket(node.ws_url)).join())[2]
    assert welcome_details["x_cb_node"] in ("w0", "w1")
    registered = await callee.request([64, callee.request_id(), {}, "com.workers.double"])
    assert registered[0] == 65, registered
    call = asyncio.ensure_future(until_answer(caller, "com.workers.double", [21]))
    invocation = await callee.recv()
    while invocation[0] != 68:
        invocation = await callee.recv()
    await callee.send([70, invocation[1], {}, [invocation[4][0] * 2]])
    result = await call
    assert result[0] == 50 and result[3] == [42], result
    # pub/sub across the workers, and one session count for the node
    subscribed = await caller.request([32, caller.request_id(), {}, "com.workers.topic"])
    assert subscribed[0] == 33
    await asyncio.sleep(0.3)  # interest reaches the other worker
    await callee.send([16, callee.request_id(), {}, "com.workers.topic", ["hello"]])
    event = await caller.recv()
    assert event[0] == 36 and event[4] == ["hello"], event
    count = await caller.request([48, caller.request_id(), {}, "wamp.session.count"])
    assert count[0] == 50 and count[3][0] >= 3, count
    # the Unix socket is shared by the workers too
    unix = await RawClient.rawsocket(unix_path=node.unix_path)
    joined = await unix.join()
    assert joined[2]["x_cb_worker"] in ("w0", "w1")


async def test_a_dead_worker_is_restarted_and_clients_reconnect(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    node = start_node(tmp_path)
    nodes.append(node)
    doomed = await session_on(node, "w1")
    survivor = await session_on(node, "w0")
    workers = node.workers()
    assert len(workers) == 2, workers
    victim = next(pid for pid in workers if doomed.session_id and _worker_name(node, pid) == "w1")
    os.kill(victim, signal.SIGKILL)
    assert await doomed.closed(5)
    deadline = time.monotonic() + 20
    while "worker w1 started" not in node.log().split("exited with status")[-1]:
        assert time.monotonic() < deadline, node.log()
        await asyncio.sleep(0.1)
    fresh = await session_on(node, "w1")
    registered = await fresh.request([64, fresh.request_id(), {}, "com.workers.again"])
    assert registered[0] == 65
    call = asyncio.ensure_future(until_answer(survivor, "com.workers.again", []))
    invocation = await fresh.recv()
    await fresh.send([70, invocation[1], {}, ["back"]])
    assert (await call)[3] == ["back"]
    assert victim not in node.workers()


def _worker_name(node: WorkerNode, pid: int) -> str:
    for line in node.log().splitlines():
        if f"(pid {pid})" in line and "started" in line:
            return line.split("worker ")[1].split()[0]
    return ""


async def test_sigterm_says_goodbye_everywhere_and_leaves_no_process(tmp_path: Path,
                                                                     nodes: list[WorkerNode]) -> None:  # fmt: skip
    node = start_node(tmp_path)
    nodes.append(node)
    clients = [await session_on(node, "w0"), await session_on(node, "w1")]
    below = node.descendants()
    assert len(below) >= 3  # two workers and nats-server
    node.process.send_signal(signal.SIGTERM)
    for client in clients:
        goodbye = await client.recv(10)
        assert goodbye[0] == 6 and goodbye[2] == "wamp.close.system_shutdown", goodbye
        await client.send([6, {}, "wamp.close.goodbye_and_out"])
    assert node.process.wait(20) == 0, node.log()
    assert not [pid for pid in below if _alive(pid)]
    assert "Traceback" not in node.log(), node.log()
    assert not os.path.exists(node.unix_path)  # the parent bound the Unix socket, and removes it


async def test_killing_the_parent_leaves_no_orphan(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    node = start_node(tmp_path)
    nodes.append(node)
    below = node.descendants()
    assert len(below) >= 3
    node.process.kill()
    node.process.wait()
    deadline = time.monotonic() + 15
    while [pid for pid in below if _alive(pid)]:
        assert time.monotonic() < deadline, [(pid, _cmdline(pid)) for pid in below if _alive(pid)]
        await asyncio.sleep(0.1)


async def test_workers_auto_from_the_config(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    node = start_node(tmp_path, workers="", config={"workers": "auto"})
    nodes.append(node)
    cores = len(os.sched_getaffinity(0))
    assert f"node with {cores} workers" in node.log()



APP = """
import os

from cloverleaf.client import App

app = App("once")


@app.register("com.workers.component_pid")
def component_pid() -> int:
    return os.getpid()
"""


async def test_components_run_once_per_node(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    (tmp_path / "onceapp.py").write_text(APP)
    node = start_node(tmp_path, config={"components": [{"type": "app", "name": "once", "app": "onceapp:app",
                                                        "realm": "realm1"}]})  # fmt: skip
    nodes.append(node)
    pids = set()
    for worker in ("w0", "w1"):
        client = await session_on(node, worker)
        answer = await until_answer(client, "com.workers.component_pid", [])
        assert answer[0] == 50, answer
        pids.add(answer[3][0])
    # one instance, in the first worker, reachable from both (a second one would have been refused
    # the procedure, single by default, and logged it)
    w0_pid = next(pid for pid in node.workers() if _worker_name(node, pid) == "w0")
    assert pids == {w0_pid}
    log = node.log()
    assert log.count("app once: running on realm realm1") == 1 and "[w0] cloverleaf.components: app once" in log, log


async def test_metrics_show_every_worker_whichever_answers(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    import urllib.request

    web_port = free_port()
    node = start_node(tmp_path, transports=[{
        "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
        "paths": {"/metrics": {"type": "metrics"}},
    }])  # fmt: skip
    nodes.append(node)
    held = [await session_on(node, "w0"), await session_on(node, "w1"), await session_on(node, "w1")]
    assert len(held) == 3

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    deadline = time.monotonic() + 10
    answers: list[str] = []
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(scrape)
        if ('cloverleaf_sessions{realm="realm1",worker="w0"} 1.0' in text
                and 'cloverleaf_sessions{realm="realm1",worker="w1"} 2.0' in text):  # fmt: skip
            answers.append(text)
            if len(answers) >= 6:  # several connections: both workers answered some of them
                break
        await asyncio.sleep(0.1)
    assert len(answers) >= 6, answers[-1:] or text
    assert text.count("# TYPE cloverleaf_sessions gauge") == 1  # one family, a sample per worker
    assert 'cloverleaf_cluster_info{cluster="workers",incarnation=' in text


async def test_longpoll_requests_reach_the_worker_of_their_transport(tmp_path: Path,
                                                                     nodes: list[WorkerNode]) -> None:  # fmt: skip
    """Each long-poll request is an HTTP request on a connection of its own, which the kernel
    hands to either worker: the one that did not open the transport relays it to the one that did."""
    from tests.integration.test_longpoll import LongPoll

    web_port = free_port()
    node = start_node(tmp_path, transports=[{
        "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
        "paths": {"/lp": {"type": "longpoll"}},
    }])  # fmt: skip
    nodes.append(node)
    client = LongPoll(web_port)
    await asyncio.to_thread(client.open)
    owner = client.transport.split("-", 1)[0]
    assert owner in ("w0", "w1")
    welcome = await asyncio.to_thread(client.join)
    assert welcome[2]["x_cb_worker"] == owner
    for request_id in range(1, 21):  # 40 requests, each on a new connection: about half relayed
        assert await asyncio.to_thread(client.send, [48, request_id, {}, "wamp.session.count", []]) == 204
        status, result = await asyncio.to_thread(client.receive)
        assert status == 200 and result[0] == 50 and result[1] == request_id, result
    assert await asyncio.to_thread(client.close) == 204



async def test_a_tracking_cookie_authenticates_on_every_worker(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    """Cookie authentication: the binding a worker makes is shared (the cluster's cookies bucket),
    so the browser's next connection, landing on the other worker, is recognized there."""
    import websockets

    from cloverleaf.wamp.serializers import JSON

    auth = {"ticket": {"principals": {"joe": {"role": "user", "ticket": "joes-ticket"}}}, "cookie": {}}
    node = start_node(tmp_path, config={"realms": [{"name": "realm1", "roles": [{"name": "user"}]}]},
                      ws_options={"auth": auth})  # fmt: skip
    nodes.append(node)
    async with websockets.connect(node.ws_url, subprotocols=["wamp.2.json"]) as ws:
        cookie = ws.response.headers["Set-Cookie"].split(";")[0]
        await ws.send(JSON.encode([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"],
                                                 "authid": "joe"}]).decode())  # fmt: skip
        assert JSON.decode((await ws.recv()).encode())[0] == 4
        await ws.send(JSON.encode([5, "joes-ticket", {}]).decode())
        welcome = JSON.decode((await ws.recv()).encode())
        assert welcome[0] == 2 and welcome[2]["authmethod"] == "ticket", welcome
        issued_by = welcome[2]["x_cb_worker"]
    seen: set[str] = set()
    for _attempt in range(40):
        async with websockets.connect(node.ws_url, subprotocols=["wamp.2.json"],
                                      additional_headers={"Cookie": cookie}) as ws:  # fmt: skip
            await ws.send(JSON.encode([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cookie"]}]).decode())
            answer = JSON.decode((await ws.recv()).encode())
            assert answer[0] == 2, answer  # recognized, whichever worker answered
            assert answer[2]["authid"] == "joe" and answer[2]["authmethod"] == "cookie"
            seen.add(answer[2]["x_cb_worker"])
        if len(seen) == 2:
            break
    assert seen == {"w0", "w1"} and issued_by in seen


async def test_http_bridge_publishes_to_subscribers_on_every_worker(tmp_path: Path, nodes: list[WorkerNode]) -> None:
    """The HTTP bridge's internal session lives in whichever worker took the HTTP request; its
    publication reaches the subscribers of both workers, every time."""
    import json
    import urllib.request

    web_port = free_port()
    node = start_node(tmp_path, config={"realms": [{"name": "realm1", "roles": [{"name": "anonymous"},
                                                                                {"name": "bridge"}]}]},
                      transports=[{"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
                                   "paths": {"/publish": {"type": "publisher", "realm": "realm1", "role": "bridge"}}}])
    nodes.append(node)
    subscribers = [await session_on(node, "w0"), await session_on(node, "w1")]
    for subscriber in subscribers:
        answer = await subscriber.request([32, subscriber.request_id(), {}, "com.workers.bridged"])
        assert answer[0] == 33, answer
    await asyncio.sleep(0.3)  # interest reaches the other worker

    def post(n: int) -> int:
        body = json.dumps({"topic": "com.workers.bridged", "args": [n]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{web_port}/publish", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)

    for n in range(10):  # each POST on a new connection: both workers' bridges publish
        assert await asyncio.to_thread(post, n) == 200
    for subscriber in subscribers:
        received = [(await subscriber.recv())[4][0] for _ in range(10)]
        assert sorted(received) == list(range(10)), received


async def test_workers_join_the_configured_cluster(tmp_path: Path, nats_server: Any,
                                                   nodes: list[WorkerNode]) -> None:  # fmt: skip
    """With a cluster: section the workers join that cluster (as <node>-w0, <node>-w1, no private
    NATS), and a node elsewhere in the cluster reaches them. (``nats_server`` before ``nodes``:
    the node stops while its NATS server still runs, as a node leaving its cluster would.)"""
    from tests.cluster.nodes import cluster_router

    section = {"name": "test", "node": "big", "nats": {"servers": [nats_server.url]}}
    node = start_node(tmp_path / "big", config={"cluster": section})
    nodes.append(node)
    log = node.log()
    assert "private NATS" not in log and "node big-w0" in log and "node big-w1" in log, log
    other = cluster_router(tmp_path / "small", nats_server.url, "small")
    try:
        callee = await session_on(node, "w1")
        welcome = await callee.request([64, callee.request_id(), {}, "com.workers.in_cluster"])
        assert welcome[0] == 65
        caller = await RawClient.websocket(other.ws_url)
        joined = await caller.join()
        assert joined[2]["x_cb_node"] == "small" and "x_cb_worker" not in joined[2]
        call = asyncio.ensure_future(until_answer(caller, "com.workers.in_cluster", []))
        invocation = await callee.recv()
        await callee.send([70, invocation[1], {}, ["from big-w1"]])
        assert (await call)[3] == ["from big-w1"]
    finally:
        assert other.stop() == 0, other.log()


async def test_console_in_a_browser_sees_every_worker(tmp_path: Path, nodes: list[WorkerNode],
                                                      autobahn_browser_js: Path) -> None:  # fmt: skip
    """The web console, served by whichever worker the browser reached, shows and uses sessions,
    registrations and events of both workers."""
    import shutil

    from tests.browser import require_browser, run_browser
    from tests.integration.test_console import console_path, login_steps

    from cloverleaf.client import NO_RECONNECT, Session, connect

    require_browser()
    (tmp_path / "web" / "js").mkdir(parents=True)
    shutil.copyfile(autobahn_browser_js, tmp_path / "web" / "js" / "autobahn.min.js")
    web_port = free_port()
    web = {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
           "paths": {"/console": console_path(), "/ws": {"type": "websocket"}}}  # fmt: skip
    node = start_node(tmp_path, transports=[web])
    nodes.append(node)

    async def client_on(worker: str) -> Session:
        for _ in range(60):
            session = await connect(node.ws_url, "realm1", reconnect=NO_RECONNECT)
            if session.details.get("x_cb_worker") == worker:
                return session
            await session.leave()
        raise AssertionError(f"no connection landed on {worker}")

    clients = {worker: await client_on(worker) for worker in ("w0", "w1")}
    try:
        for worker, client in clients.items():
            await client.register(f"com.example.where_{worker}", lambda worker=worker: f"answered by {worker}")
            await client.subscribe(f"com.example.alerts_{worker}", lambda *args, **kwargs: None)
        done = asyncio.Event()

        async def publisher(worker: str) -> None:  # once the page's subscription reached this worker
            client = clients[worker]
            while not done.is_set():
                if await client.call("wamp.subscription.lookup", "com.example.news",
                                     {"match": "prefix"}) is not None:  # fmt: skip
                    await client.publish(f"com.example.news.{worker}", f"news from {worker}")
                    return
                await asyncio.sleep(0.05)

        publishing = asyncio.gather(*(publisher(worker) for worker in clients))
        steps: list[dict[str, Any]] = [
            {"goto": f"http://127.0.0.1:{web_port}/console/"},
            *login_steps(),
            *({"wait_text": "#sessions", "contains": str(client.session_id)} for client in clients.values()),
            {"wait_text": "#registrations", "contains": "com.example.where_w0"},
            {"wait_text": "#registrations", "contains": "com.example.where_w1"},
            {"wait_text": "#subscriptions", "contains": "com.example.alerts_w0"},
            {"wait_text": "#subscriptions", "contains": "com.example.alerts_w1"},
            {"fill": "#stream-topic", "value": "com.example.news"},
            {"select": "#stream-match", "value": "prefix"},
            {"click": "#stream-button"},
            {"wait_text": "#events", "contains": "news from w0"},
            {"wait_text": "#events", "contains": "news from w1"},
            {"fill": "#call-procedure", "value": "com.example.where_w0"},
            {"click": "#call-button"},
            {"wait_text": "#call-result", "contains": "answered by w0"},
            {"fill": "#call-procedure", "value": "com.example.where_w1"},
            {"click": "#call-button"},
            {"wait_text": "#call-result", "contains": "answered by w1"},
            {"text": "#sessions-count", "name": "sessions"},
        ]
        try:
            results = await asyncio.to_thread(run_browser, steps)
        finally:
            done.set()
            await publishing
        named = {step["name"]: result for step, result in zip(steps, results, strict=True) if "name" in step}
        assert named["sessions"].strip() == "3", named  # the two clients and the console's own session
    finally:
        for client in clients.values():
            await client.leave()
