#!/usr/bin/env python3
"""A Crossbar.io class component, migrated: what its calls cost where it runs (issue 15).

One Crossbar node config (a router worker with a class component registering ``bench.echo``,
realm1, a WebSocket transport) runs three ways on this machine, in this run:

- ``crossbar``: Crossbar.io itself (the class inside its router worker);
- ``cloverleaf --crossbar``: `cloverleaf start --crossbar` on the same config: the class runs
  unchanged in a process of its own (a ``class`` component: ``cloverleaf.node.classrunner``,
  Autobahn's Component) joined over a Unix socket;
- ``cloverleaf app``: the same procedure written as a Cloverleaf ``App`` component, in the node's
  process over an in-memory link (the reference for a component without a socket).

A caller (Autobahn|Python, asyncio, WebSocket JSON) calls ``bench.echo`` one call at a time, then
with 64 calls in flight. Reported: calls/s, p50 latency, and the CPU per call of every process of
the node (controller, workers, guests), so that a component in another process is counted.

    .venv/bin/python benchmarks/class_component_bench.py [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import proc_cpu_s, proc_descendants

REPO = Path(__file__).resolve().parents[1]
CROSSBAR = REPO / ".bench" / "crossbar-venv" / "bin" / "crossbar"

COMPONENT = '''
from autobahn.asyncio.wamp import ApplicationSession


class Echo(ApplicationSession):
    async def onJoin(self, details):
        await self.register(lambda value: value, "bench.echo")
'''
TWISTED_COMPONENT = '''
from autobahn.twisted.wamp import ApplicationSession


class Echo(ApplicationSession):
    async def onJoin(self, details):
        await self.register(lambda value: value, "bench.echo")
'''
APP = '''
from cloverleaf.client import App

app = App("echo")


@app.register("bench.echo")
def echo(value):
    return value
'''


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def crossbar_config(port: int) -> dict[str, Any]:
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {"version": 2, "workers": [{
        "type": "router", "options": {"pythonpath": [".."]},
        "realms": [{"name": "realm1", "roles": [
            {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": everything}]},
            {"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": everything}]}]}],
        "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                        "url": f"ws://127.0.0.1:{port}/ws"}],
        "components": [{"type": "class", "classname": "echo_component.Echo", "realm": "realm1", "role": "backend"}],
    }]}  # fmt: skip


def listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def node_cpu(pid: int) -> float:
    return sum(proc_cpu_s(p) for p in [pid, *proc_descendants(pid)])


async def measure(url: str, duration: float, inflight: int) -> tuple[float, float]:
    """(calls/s, p50 ms) of ``bench.echo`` at ``url`` with ``inflight`` calls in flight."""
    import txaio
    from autobahn.asyncio.component import Component

    txaio.start_logging(level="warn")  # not a line per connect attempt

    joined: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    component = Component(transports=[{"type": "websocket", "url": url, "serializers": ["json"],
                                       "max_retries": 0}], realm="realm1")  # fmt: skip
    component.on_join(lambda session, details: joined.done() or joined.set_result(session))
    done = component.start(asyncio.get_running_loop())
    session = await asyncio.wait_for(joined, 20)
    deadline = time.monotonic() + 30
    while True:  # the component may still be joining
        try:
            await session.call("bench.echo", 1)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    latencies: list[float] = []
    stop = time.monotonic() + duration

    async def caller() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            await session.call("bench.echo", 1)
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(inflight)))
    elapsed = time.monotonic() - started
    await component.stop()
    if not done.done():
        done.cancel()
    latencies.sort()
    return len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000


def run_setup(name: str, command: list[str], cwd: Path, port: int, duration: float) -> list[dict[str, Any]]:
    log_path = cwd / f"{name.split()[0]}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        for inflight in (1, 64):
            asyncio.run(measure(f"ws://127.0.0.1:{port}/ws", 0.5, inflight))  # warm-up (and wait for the component)
            before = node_cpu(process.pid)
            rate, p50 = asyncio.run(measure(f"ws://127.0.0.1:{port}/ws", duration, inflight))
            cpu = node_cpu(process.pid) - before
            rows.append({"setup": name, "inflight": inflight, "calls_s": rate, "p50_ms": p50,
                         "cpu_us_per_call": cpu / (rate * duration) * 1e6})  # fmt: skip
            print(f"  {name}, {inflight} in flight: {rate:,.0f} calls/s, p50 {p50:.2f} ms", flush=True)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--no-crossbar", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clv-classbench-"))
    rows: list[dict[str, Any]] = []
    try:
        setups: list[tuple[str, Path, int]] = []
        for name in ("crossbar", "cloverleaf --crossbar"):
            if name == "crossbar" and (args.no_crossbar or not CROSSBAR.exists()):
                continue
            node = work / name.replace(" ", "").replace("-", "")
            (node / ".crossbar").mkdir(parents=True)
            port = free_port()
            # Crossbar runs class components on Twisted; the converted node runs either kind
            (node / "echo_component.py").write_text(TWISTED_COMPONENT if name == "crossbar" else COMPONENT)
            (node / ".crossbar" / "config.json").write_text(json.dumps(crossbar_config(port)))
            setups.append((name, node, port))
        for name, node, port in setups:
            command = ([str(CROSSBAR), "start", "--cbdir", str(node / ".crossbar")] if name == "crossbar" else
                       [sys.executable, "-m", "cloverleaf", "start", "--crossbar", str(node)])  # fmt: skip
            print(f"{name} ...", flush=True)
            rows += run_setup(name, command, node, port, args.duration)
        app_node = work / "app"
        app_node.mkdir()
        (app_node / "echo_app.py").write_text(APP)
        port = free_port()
        (app_node / "cloverleaf.yaml").write_text(json.dumps({
            "realms": [{"name": "realm1"}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}}],
            "components": [{"type": "app", "app": "echo_app:app", "realm": "realm1"}]}))  # fmt: skip
        print("cloverleaf app ...", flush=True)
        rows += run_setup("cloverleaf app", [sys.executable, "-m", "cloverleaf", "start", "--config",
                                             str(app_node / "cloverleaf.yaml")], app_node, port, args.duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| setup | calls in flight | calls/s | p50 ms | node CPU µs per call (all its processes) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['setup']} | {row['inflight']} | {row['calls_s']:,.0f} | {row['p50_ms']:.2f} | "
              f"{row['cpu_us_per_call']:.0f} |")
    by = {(r["setup"], r["inflight"]): r for r in rows}
    for inflight in (1, 64):
        base = by.get(("crossbar", inflight))
        ours = by.get(("cloverleaf --crossbar", inflight))
        if base and ours:
            rate, cpu = ours["calls_s"] / base["calls_s"], ours["cpu_us_per_call"] / base["cpu_us_per_call"]
            print(f"\n{inflight} in flight, cloverleaf --crossbar vs crossbar: {rate:.2f}x the calls/s at {cpu:.2f}x "
                  "the CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
