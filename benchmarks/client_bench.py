#!/usr/bin/env python3
"""Client CPU per operation: Cloverleaf's asyncio client against Autobahn|Python, same run.

    .venv/bin/python benchmarks/client_bench.py                 # full run (~2 min)
    .venv/bin/python benchmarks/client_bench.py --quick         # smoke run (~40 s)
    .venv/bin/python benchmarks/client_bench.py --rounds 3      # medians of 3 rounds, for the record

It starts one Cloverleaf router on free 127.0.0.1 ports (the helpers of ``run.py``), then for every
scenario runs the two client libraries in turn (alternating which goes first), each role in its own
process on the same event loop (uvloop by default), with the same serializer and transport:

* calls: a callee process registers ``com.bench.echo`` (a plain function returning its two
  arguments); a caller process keeps ``--inflight`` calls in flight (that many tasks, each awaiting
  ``session.call(...)`` in a loop). Reported: caller CPU per call, callee CPU per invocation.
* events: a subscriber process counts events with a plain handler; a publisher process publishes
  ``[n, "hello"]`` without acknowledgement, keeping at most ``--pub-window`` events undelivered (the
  subscriber's count is shared through an mmap'd file). Reported: subscriber CPU per event received,
  publisher CPU per publish.

Each process meters its own CPU (``resource.getrusage``: utime + stime, all threads) over the same
CLOCK_MONOTONIC window ``[t0, t1)`` after a warm-up, and counts the operations completed inside it.
See docs/benchmarks.md ("Client").

With ``--profile auto`` (the default) every Cloverleaf figure above ``--target`` times Autobahn's is
profiled afterwards: the scenario is run again with cProfile on in that Cloverleaf process over the
window (those runs are not in the table) and the top functions are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# the Cloverleaf sources under test (router and client); workers get it from the orchestrator
SRC = os.environ.get("CLOVERLEAF_BENCH_SRC") or os.path.join(REPO, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (re-executes in .venv if needed; the router-vs-Crossbar harness)
from loadgen import Control, open_counters, out, sleep_until_ns  # noqa: E402

now_ns = time.monotonic_ns
LIBS = ("cloverleaf", "autobahn")
PROCEDURE = "com.bench.echo"
TOPIC = "com.bench.topic"


# ========================================================================================
# Worker side: one role of one library in one process
# ========================================================================================
def cpu_self() -> tuple[float, float]:
    """(utime + stime, stime) of this process (all threads), seconds."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_stime


class Meter:
    """Samples (time, own CPU, operation count) at t0 and t1; optionally cProfiles in between."""

    def __init__(self, t0: int, t1: int, count, spec: dict):
        self.t0, self.t1, self.count = t0, t1, count
        self.profile_path = spec.get("profile")
        self.profile_clock = spec.get("profile_clock", "wall")
        self.a = self.b = None

    async def run(self) -> None:
        prof = None
        await sleep_until_ns(self.t0)
        if self.profile_path:
            import cProfile

            # wall clock by default (cheap); "cpu" = this thread's CPU time (a syscall per reading:
            # ~1 µs each, so absolute figures inflate a lot, but preemption is not charged)
            prof = cProfile.Profile(time.thread_time) if self.profile_clock == "cpu" else cProfile.Profile()
            prof.enable()
        self.a = (now_ns(), *cpu_self(), self.count())
        await sleep_until_ns(self.t1)
        self.b = (now_ns(), *cpu_self(), self.count())
        if prof is not None:
            prof.disable()
            prof.dump_stats(self.profile_path)

    def report(self) -> dict:
        if self.a is None or self.b is None:
            return {"error": "measurement window not completed"}
        return {
            "wall_s": (self.b[0] - self.a[0]) / 1e9,
            "cpu_s": self.b[1] - self.a[1],
            "sys_s": self.b[2] - self.a[2],
            "ops": self.b[3] - self.a[3],
        }


# -- library adapters: connect and leave --------------------------------------------------
async def cl_connect(spec):
    from cloverleaf.client import NO_RECONNECT, connect

    return await connect(spec["url"], spec["realm"], serializer=spec["serializer"], reconnect=NO_RECONNECT)


async def cl_leave(session) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.leave(), 5)


async def ab_connect(spec):
    """An Autobahn ApplicationSession joined over WebSocket (no permessage-deflate offer, factory
    defaults otherwise) or RawSocket, with exactly the serializer asked for."""
    from urllib.parse import urlsplit

    import txaio

    txaio.use_asyncio()
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    with contextlib.suppress(Exception):
        txaio.start_logging(level="warn", out=sys.stderr)
    from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
    from autobahn.wamp.types import ComponentConfig

    joined = loop.create_future()

    class BenchSession(ApplicationSession):
        async def onJoin(self, details):
            if not joined.done():
                joined.set_result(self)

        def onDisconnect(self):
            if not joined.done():
                joined.set_exception(ConnectionError("disconnected before joining"))

    serializer = {"json": JsonSerializer, "msgpack": MsgPackSerializer}[spec["serializer"]]()

    def make():
        return BenchSession(ComponentConfig(spec["realm"]))

    parts = urlsplit(spec["url"])
    if parts.scheme == "rs":
        factory = WampRawSocketClientFactory(make, serializer=serializer)
    else:
        factory = WampWebSocketClientFactory(make, url=spec["url"], serializers=[serializer])
    await asyncio.wait_for(loop.create_connection(factory, parts.hostname, parts.port), 10)
    return await asyncio.wait_for(joined, 10)


async def ab_leave(session) -> None:
    with contextlib.suppress(Exception):
        if session.is_attached():
            await asyncio.wait_for(session.leave(), 5)
    await asyncio.sleep(0.05)


CONNECT = {"cloverleaf": cl_connect, "autobahn": ab_connect}
LEAVE = {"cloverleaf": cl_leave, "autobahn": ab_leave}


class State:
    __slots__ = ("bad", "done", "errors", "first_error", "running")

    def __init__(self):
        self.done = 0
        self.bad = 0
        self.errors = 0
        self.first_error = None
        self.running = True


async def wait_go(ctl: Control):
    cmd = await ctl.expect("GO")
    if cmd[0] != "GO":
        raise RuntimeError("orchestrator went away")
    return int(cmd[1]), int(cmd[2])


# -- roles ----------------------------------------------------------------------------------
async def role_callee(spec, ctl: Control) -> dict:
    lib = spec["lib"]
    session = await CONNECT[lib](spec)
    st = State()
    if lib == "cloverleaf":
        from cloverleaf.client import Result

        def echo(*args):
            st.done += 1
            return Result(list(args))

    else:
        from autobahn.wamp.types import CallResult

        def echo(*args):
            st.done += 1
            return CallResult(*args)

    await asyncio.wait_for(session.register(echo, PROCEDURE) if lib == "autobahn"
                           else session.register(PROCEDURE, echo), 10)  # fmt: skip
    out("READY")
    t0, t1 = await wait_go(ctl)
    meter = Meter(t0, t1, lambda: st.done, spec)
    await meter.run()
    await ctl.expect("STOP")
    res = dict(meter.report(), invocations=st.done)
    await LEAVE[lib](session)
    return res


async def role_caller(spec, ctl: Control) -> dict:
    lib = spec["lib"]
    session = await CONNECT[lib](spec)
    st = State()
    call = session.call
    attr = "args" if lib == "cloverleaf" else "results"

    async def one() -> None:
        while st.running:
            try:
                res = await call(PROCEDURE, 1, "hello")
            except Exception as e:
                st.errors += 1
                st.first_error = st.first_error or f"{type(e).__name__}: {e}"
                if st.errors > 100:
                    st.running = False
                continue
            st.done += 1
            r = getattr(res, attr, None)
            if r is None or len(r) != 2 or r[0] != 1 or r[1] != "hello":
                st.bad += 1

    # warm the connection up with one call before READY
    first = await asyncio.wait_for(call(PROCEDURE, 1, "hello"), 10)
    if list(getattr(first, attr, None) or ()) != [1, "hello"]:
        raise RuntimeError(f"unexpected call result {first!r}")
    out("READY")
    t0, t1 = await wait_go(ctl)
    meter = Meter(t0, t1, lambda: st.done, spec)
    tasks = [asyncio.ensure_future(one()) for _ in range(spec["inflight"])]
    await meter.run()
    st.running = False
    _, pending = await asyncio.wait(tasks, timeout=10)
    for t in pending:
        t.cancel()
    res = dict(
        meter.report(),
        calls=st.done,
        bad_results=st.bad,
        errors=st.errors,
        first_error=st.first_error,
        undrained=len(pending),
    )
    await LEAVE[lib](session)
    return res


async def role_subscriber(spec, ctl: Control) -> dict:
    lib = spec["lib"]
    _mm, counters = open_counters(spec["counters"])
    session = await CONNECT[lib](spec)
    st = State()

    def on_event(n, text):
        st.done += 1
        counters[0] = st.done

    await asyncio.wait_for(session.subscribe(on_event, TOPIC) if lib == "autobahn"
                           else session.subscribe(TOPIC, on_event), 10)  # fmt: skip
    out("READY")
    t0, t1 = await wait_go(ctl)
    meter = Meter(t0, t1, lambda: st.done, spec)
    await meter.run()
    await ctl.expect("STOP")
    res = dict(meter.report(), received=st.done)
    await LEAVE[lib](session)
    return res


async def role_publisher(spec, ctl: Control) -> dict:
    """Publish [n, "hello"] (no acknowledgement) as fast as the subscriber takes them, keeping at
    most ``window`` publications undelivered; refill when half of it has arrived (checked every
    millisecond)."""
    lib = spec["lib"]
    _mm, counters = open_counters(spec["counters"])
    session = await CONNECT[lib](spec)
    st = State()
    window = spec["window"]
    low = max(1, window // 2)
    publish = session.publish
    is_coro = lib == "cloverleaf"  # Cloverleaf's publish is a coroutine function, Autobahn's returns None
    out("READY")
    t0, t1 = await wait_go(ctl)
    meter = Meter(t0, t1, lambda: st.done, spec)
    timer = asyncio.ensure_future(meter.run())
    while not timer.done():
        outstanding = st.done - counters[0]
        if outstanding <= low:
            n = window - outstanding
            i = st.done
            if is_coro:
                for k in range(i, i + n):
                    await publish(TOPIC, k, "hello")
            else:
                for k in range(i, i + n):
                    publish(TOPIC, k, "hello")
            st.done = i + n
        await asyncio.sleep(0.001)
    await timer
    end = time.monotonic() + 5  # let the last events arrive (bounded)
    while counters[0] < st.done and time.monotonic() < end:
        await asyncio.sleep(0.01)
    res = dict(meter.report(), published=st.done, undelivered=st.done - counters[0])
    await LEAVE[lib](session)
    return res


ROLES = {"callee": role_callee, "caller": role_caller, "subscriber": role_subscriber, "publisher": role_publisher}


async def worker_main(spec: dict) -> int:
    ctl = Control()
    try:
        res = await asyncio.wait_for(ROLES[spec["role"]](spec, ctl), spec.get("hard_s", 120))
    except Exception as e:  # report, the orchestrator decides
        res = {"error": f"{type(e).__name__}: {e}"}
    res["loop"] = type(asyncio.get_running_loop()).__module__
    out("RESULT " + json.dumps(res))
    await asyncio.sleep(0.05)
    return 0 if "error" not in res else 1


def worker_entry(spec: dict) -> int:
    if spec.get("loop", "uvloop") == "uvloop":
        import uvloop

        return uvloop.run(worker_main(spec))
    return asyncio.run(worker_main(spec))


# ========================================================================================
# Orchestrator
# ========================================================================================
class Worker(bench.Worker):
    """run.py's line-protocol worker, running a role of this file instead of loadgen.py."""

    def __init__(self, spec: dict, logdir: str, tag: str):
        self.tag = tag
        self.err_path = os.path.join(logdir, f"worker-{tag}.log")
        env = src_env(spec["src"])
        with open(self.err_path, "ab") as errf:
            self.p = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errf,
                text=True,
                bufsize=1,
                env=env,
            )
        import queue

        self.q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()


def src_env(src: str) -> dict:
    env = dict(os.environ)
    env["CLOVERLEAF_BENCH_SRC"] = src
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Router(bench.CloverleafRouter):
    """run.py's Cloverleaf router, run from the sources under test."""

    def __init__(self, workdir, taken_ports, realm, python: str, src: str):
        super().__init__(workdir, taken_ports, realm, python)
        self.src = src

    def command(self):
        cmd, cwd, _env = super().command()
        return cmd, cwd, src_env(self.src)


def export_rev(rev: str, dest: str) -> tuple[str, str]:
    """`git archive REV src` into dest (read-only for the repository); returns dest/src."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(["git", "-C", REPO, "archive", sha, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return os.path.join(dest, "src"), sha


class RouterWindow:
    """Send GO to the workers, meter the router and the machine over [t0, t1)."""

    def __init__(self, router, workers, warmup: float, duration: float):
        self.t0 = now_ns() + int(warmup * 1e9)
        self.t1 = self.t0 + int(duration * 1e9)
        for w in workers:
            w.send(f"GO {self.t0} {self.t1}")
        bench.sleep_until_ns(self.t0)
        a = (now_ns(), router.cpu_s(), bench.machine_cpu())
        bench.sleep_until_ns(self.t1)
        b = (now_ns(), router.cpu_s(), bench.machine_cpu())
        self.wall_s = (b[0] - a[0]) / 1e9
        self.router_cpu_s = b[1] - a[1]
        tot, idle = b[2][0] - a[2][0], b[2][1] - a[2][1]
        self.machine_cpu_s = (tot - idle) / tot * (os.cpu_count() or 1) * self.wall_s if tot else None


SCENARIOS = {
    # name: (kind, transport, serializer)
    "calls-ws-json": ("calls", "ws", "json"),
    "calls-ws-msgpack": ("calls", "ws", "msgpack"),
    "calls-rs-json": ("calls", "rs", "json"),
    "events-ws-json": ("events", "ws", "json"),
    "events-ws-msgpack": ("events", "ws", "msgpack"),
    "events-rs-json": ("events", "rs", "json"),
}
TRANSPORT_LABEL = {"ws": "WebSocket", "rs": "RawSocket"}
# (kind, role) -> (operation label, the figure the target applies to)
OPERATIONS = {
    ("calls", "caller"): ("call (caller process, per call)", True),
    ("calls", "callee"): ("invocation (callee process, per invocation)", False),
    ("events", "subscriber"): ("event received (subscriber process, per event)", True),
    ("events", "publisher"): ("publish (publisher process, per publish)", False),
}


def run_scenario(router, cfg, name: str, lib: str, profile: dict | None = None) -> list[dict]:
    """One measurement: returns one row per role."""
    kind, transport, serializer = SCENARIOS[name]
    url = router.ws_url if transport == "ws" else router.rs_url
    profile = profile or {}
    base = {
        "lib": lib,
        "url": url,
        "realm": router.realm,
        "serializer": serializer,
        "loop": cfg.loop,
        "src": cfg.src,
        "profile_clock": cfg.profile_clock,
        "hard_s": cfg.warmup + cfg.duration + 60,
    }
    tag = f"{name}-{lib}" + ("-profile" if profile else "")
    workers: list[Worker] = []
    try:
        if kind == "calls":
            first = Worker(dict(base, role="callee", profile=profile.get("callee")), cfg.tmp, tag + "-callee")
            workers.append(first)
            first.expect("READY", 30)
            second = Worker(
                dict(base, role="caller", inflight=cfg.inflight, profile=profile.get("caller")),
                cfg.tmp,
                tag + "-caller",
            )
            workers.append(second)
            second.expect("READY", 30)
            win = RouterWindow(router, workers, cfg.warmup, cfg.duration)
            res2 = second.result(30)
            first.send("STOP")
            res1 = first.result(15)
            roles = [("caller", res2), ("callee", res1)]
            problems = res2["errors"] + res2["bad_results"] + res2["undrained"]
            first_error = res2.get("first_error")
        else:
            counters = os.path.join(cfg.tmp, f"counters-{tag}")
            with open(counters, "wb") as f:
                f.write(b"\0" * 8)
            spec = dict(base, counters=counters)
            first = Worker(dict(spec, role="subscriber", profile=profile.get("subscriber")), cfg.tmp, tag + "-sub")
            workers.append(first)
            first.expect("READY", 30)
            second = Worker(
                dict(spec, role="publisher", window=cfg.pub_window, profile=profile.get("publisher")),
                cfg.tmp,
                tag + "-pub",
            )
            workers.append(second)
            second.expect("READY", 30)
            time.sleep(0.2)
            win = RouterWindow(router, workers, cfg.warmup, cfg.duration)
            res2 = second.result(30)
            first.send("STOP")
            res1 = first.result(15)
            roles = [("subscriber", res1), ("publisher", res2)]
            problems = res2["undelivered"]
            first_error = None
        clients_cpu = res1["cpu_s"] + res2["cpu_s"]
        other = (
            None
            if win.machine_cpu_s is None
            else max(0.0, win.machine_cpu_s - win.router_cpu_s - clients_cpu) / win.wall_s * 100
        )
        rows = []
        for role, r in roles:
            rows.append(
                {
                    "scenario": name,
                    "kind": kind,
                    "transport": transport,
                    "serializer": serializer,
                    "lib": lib,
                    "role": role,
                    "ops": r["ops"],
                    "ops_per_s": r["ops"] / r["wall_s"],
                    "cpu_us_per_op": r["cpu_s"] / r["ops"] * 1e6 if r["ops"] else None,
                    "sys_us_per_op": r["sys_s"] / r["ops"] * 1e6 if r["ops"] else None,
                    "cpu_pct": r["cpu_s"] / r["wall_s"] * 100,
                    "router_cpu_pct": win.router_cpu_s / win.wall_s * 100,
                    "other_cpu_pct": other,
                    "problems": problems,
                    "first_error": first_error,
                    "loop": r.get("loop"),
                }
            )
        return rows
    finally:
        for w in workers:
            w.finish()


def median_rows(rows: list[dict]) -> dict:
    out_row = dict(rows[0])
    for k in rows[0]:
        vals = [r.get(k) for r in rows]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            out_row[k] = statistics.median(vals)
    out_row["rounds"] = len(rows)
    return out_row


def report(summary: dict, scenarios: list[str], errors: dict, target: float) -> tuple[str, list[tuple]]:
    """The Markdown table, and the (scenario, role, ratio) figures that miss the target."""
    fmt = bench.fmt
    rows, missed = [], []
    for sc in scenarios:
        kind, transport, serializer = SCENARIOS[sc]
        tr = f"{TRANSPORT_LABEL[transport]} {serializer}"
        for (k, role), (label, primary) in OPERATIONS.items():
            if k != kind:
                continue
            ref = summary.get((sc, "autobahn", role), {}).get("cpu_us_per_op")
            mine = summary.get((sc, "cloverleaf", role), {}).get("cpu_us_per_op")
            ratio = mine / ref if (mine and ref) else None
            if ratio is not None and ratio > target:
                missed.append((sc, role, ratio))
            for lib in LIBS:
                s = summary.get((sc, lib, role))
                if s is None:
                    err = errors.get((sc, lib), "not run")
                    rows.append([label, tr, lib, "error: " + err[:70], "", "", "", ""])
                    continue
                shown = label if primary else f"*{label}*"
                rows.append(
                    [
                        shown,
                        tr,
                        lib,
                        fmt(float(s["ops_per_s"]), 0),
                        fmt(s["cpu_us_per_op"], 1),
                        fmt(s["sys_us_per_op"], 1),
                        fmt(s["cpu_pct"], 0),
                        (f"**{ratio:.2f}**" if primary else f"{ratio:.2f}") if (lib == "cloverleaf" and ratio) else "",
                    ]
                )
    header = ["operation", "transport", "library", "ops/s", "CPU µs/op", "of which kernel", "process CPU %",
              "Cloverleaf/Autobahn"]  # fmt: skip
    return bench.md_table(header, rows), missed


# -- profiling ------------------------------------------------------------------------------
def short_func(key) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    for marker in ("site-packages" + os.sep, "src" + os.sep, "lib" + os.sep + "python3"):
        i = filename.rfind(marker)
        if i >= 0:
            filename = filename[i + len(marker) :]
            break
    return f"{filename}:{line}({name})"


def profile_text(path: str, ops: int, top: int) -> str:
    st = pstats.Stats(path, stream=io.StringIO())
    total = st.total_tt
    ncalls = sum(v[1] for v in st.stats.values())
    entries = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = [
        f"  total profiled time {total:.3f} s over {ops:,} ops = {total / ops * 1e6:.1f} µs/op under cProfile; "
        f"{ncalls / ops:.1f} profiled function calls per op"
        if ops
        else f"  total profiled time {total:.3f} s",
        "  {:>9} {:>9} {:>10} {:>8}  {}".format("tottime", "cumtime", "calls", "µs/op", "function"),
    ]
    for key, (_cc, nc, tt, ct, _callers) in entries:
        per_op = tt / ops * 1e6 if ops else 0
        lines.append(f"  {tt:9.3f} {ct:9.3f} {nc:10,} {per_op:8.2f}  {short_func(key)}")
    # cumulative view of the client library's own functions
    lines.append("  -- by cumulative time (cloverleaf/ functions only) --")
    cum = sorted(
        ((k, v) for k, v in st.stats.items() if "cloverleaf" + os.sep in k[0]), key=lambda kv: kv[1][3], reverse=True
    )[: max(6, top // 2)]
    for key, (_cc, nc, tt, ct, _callers) in cum:
        lines.append(f"  {tt:9.3f} {ct:9.3f} {nc:10,} {ct / ops * 1e6 if ops else 0:8.2f}  {short_func(key)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Client CPU per operation: Cloverleaf's client against Autobahn|Python (asyncio).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of: " + ",".join(SCENARIOS))
    p.add_argument("--libs", default=",".join(LIBS), help="comma list of: " + ",".join(LIBS))
    p.add_argument("--duration", type=float, default=5.0, help="measurement window per measurement, s")
    p.add_argument("--warmup", type=float, default=1.5, help="load before the window opens, s")
    p.add_argument("--rounds", type=int, default=1, help="repeat every measurement; medians reported")
    p.add_argument("--inflight", type=int, default=16, help="calls kept in flight by the caller")
    p.add_argument("--pub-window", type=int, default=128, help="max events published but not yet received")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop of every client")
    p.add_argument("--quick", action="store_true", help="smoke run: 1.5 s windows, 0.5 s warm-up")
    p.add_argument("--target", type=float, default=0.5, help="Cloverleaf/Autobahn CPU per op to meet")
    p.add_argument(
        "--profile",
        choices=("auto", "off", "all"),
        default="auto",
        help="cProfile Cloverleaf processes afterwards: those missing the target (auto), none, or all",
    )
    p.add_argument("--profile-top", type=int, default=15, help="functions listed per profile")
    p.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cProfile timer: wall clock (cheap; a function making a syscall also absorbs the time the "
        "process is preempted by the peer it wakes) or thread CPU time (no preemption, heavy overhead)",
    )
    p.add_argument("--realm", default="realm1")
    p.add_argument("--start-timeout", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=0.5)
    default_py = os.path.join(REPO, ".venv", "bin", "python")
    p.add_argument(
        "--cloverleaf-python",
        default=default_py if os.path.exists(default_py) else sys.executable,
        help="Python that runs the router (`-m cloverleaf`)",
    )
    p.add_argument("--src", default=os.path.join(REPO, "src"), help="Cloverleaf sources (router and client) under test")
    p.add_argument(
        "--src-rev",
        default=None,
        help="measure this git revision instead (e.g. HEAD: `git archive` of src/ into the temp dir, "
        "so edits in the working tree during the run do not matter)",
    )
    p.add_argument("--json", default=None, help="raw results (default: .bench/results/client-bench-<time>.json)")
    p.add_argument("--keep-tmp", action="store_true")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.duration, cfg.warmup = 1.5, 0.5
    scenarios = [s.strip() for s in cfg.scenarios.split(",") if s.strip()]
    libs = [s.strip() for s in cfg.libs.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    for lib in libs:
        if lib not in LIBS:
            p.error(f"unknown library {lib!r}")

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    cfg.tmp = tempfile.mkdtemp(prefix="cloverleaf-client-bench-")
    log = bench.log
    log(f"temp dir {cfg.tmp}; scenarios {scenarios}; libs {libs}; loop {cfg.loop}; "
        f"window {cfg.duration:.1f} s (+{cfg.warmup:.1f} s warm-up); {cfg.rounds} round(s)")  # fmt: skip
    cfg.src_label = "working tree"
    if cfg.src_rev:
        cfg.src, sha = export_rev(cfg.src_rev, os.path.join(cfg.tmp, "snapshot"))
        cfg.src_label = f"commit {sha}"
    cfg.src = os.path.abspath(cfg.src)
    log(f"cloverleaf sources: {cfg.src} ({cfg.src_label})")
    t_begin = time.monotonic()
    raw: list[dict] = []
    errors: dict[tuple, str] = {}
    profiles: list[tuple] = []
    failed = False
    router = Router(cfg.tmp, set(), cfg.realm, cfg.cloverleaf_python, cfg.src)
    try:
        bench.start_router(router, cfg)
        for rnd in range(cfg.rounds):
            for i, sc in enumerate(scenarios):
                order = libs if (i + rnd) % 2 == 0 else libs[::-1]
                for lib in order:
                    if not router.alive():
                        raise RuntimeError(f"router exited (rc {router.proc.returncode}):\n{router.log_tail()}")
                    log(f"round {rnd + 1}: {sc} with {lib} ...")
                    try:
                        rows = run_scenario(router, cfg, sc, lib)
                    except Exception as e:
                        errors[(sc, lib)] = f"{type(e).__name__}: {e}"
                        log(f"  {sc}/{lib} FAILED: {errors[(sc, lib)]}")
                        failed = True
                        continue
                    for row in rows:
                        row["round"] = rnd
                        raw.append(row)
                        log(
                            "  {}/{}/{}: {} ops/s, {} µs CPU/op, process {} %, router {} %, other {} %, "
                            "problems {}".format(
                                sc,
                                lib,
                                row["role"],
                                bench.fmt(row["ops_per_s"], 0),
                                bench.fmt(row["cpu_us_per_op"], 1),
                                bench.fmt(row["cpu_pct"], 0),
                                bench.fmt(row["router_cpu_pct"], 0),
                                bench.fmt(row["other_cpu_pct"], 0),
                                row["problems"],
                            )
                        )
                    time.sleep(0.3)

        groups: dict[tuple, list] = {}
        for row in raw:
            groups.setdefault((row["scenario"], row["lib"], row["role"]), []).append(row)
        summary = {k: median_rows(v) for k, v in groups.items()}
        text, missed = report(summary, scenarios, errors, cfg.target)

        # profiling runs (not in the table)
        if cfg.profile != "off" and "cloverleaf" in libs:
            todo: dict[str, list[str]] = {}
            if cfg.profile == "all":
                for sc in scenarios:
                    todo[sc] = [r for (k, r) in OPERATIONS if k == SCENARIOS[sc][0]]
            else:
                for sc, role, _ratio in missed:
                    todo.setdefault(sc, []).append(role)
            pdir = os.path.join(bench.BENCH_DIR, "results", "client-profiles-" + time.strftime("%Y%m%d-%H%M%S"))
            for sc, roles in todo.items():
                os.makedirs(pdir, exist_ok=True)
                paths = {role: os.path.join(pdir, f"{sc}-{role}.prof") for role in roles}
                log(f"profiling cloverleaf {sc} ({', '.join(roles)}) ...")
                try:
                    rows = run_scenario(router, cfg, sc, "cloverleaf", profile=paths)
                except Exception as e:
                    log(f"  profiling {sc} FAILED: {type(e).__name__}: {e}")
                    continue
                for row in rows:
                    if row["role"] in paths and os.path.exists(paths[row["role"]]):
                        profiles.append((sc, row["role"], paths[row["role"]], row["ops"]))
    except KeyboardInterrupt:
        log("interrupted")
        return 1
    finally:
        router.stop()

    print()
    print("Client CPU per operation (each client process meters its own utime+stime over the window).")
    print(
        f"Medians of {cfg.rounds} round(s); {cfg.duration:.1f} s windows after {cfg.warmup:.1f} s warm-up; "
        f"{cfg.inflight} calls in flight; pub window {cfg.pub_window}; loop {cfg.loop} for both libraries; "
        f"{os.cpu_count() or 1} CPUs; Cloverleaf {cfg.src_label}; {time.monotonic() - t_begin:.0f} s total."
    )
    print()
    print(text)
    print()
    worst = {}
    for row in raw:
        k = (row["scenario"], row["lib"])
        worst[k] = max(worst.get(k, 0), row.get("problems") or 0)
    bad = {k: v for k, v in worst.items() if v}
    if bad:
        print("Problems (errors, wrong results, undrained calls, undelivered events): "
              + ", ".join(f"{sc}/{lib}: {v}" for (sc, lib), v in bad.items()))  # fmt: skip
        print()
    others = [r["other_cpu_pct"] for r in raw if r.get("other_cpu_pct") is not None]
    routers = [r["router_cpu_pct"] for r in raw]
    if others:
        lo, hi, med = min(others), max(others), statistics.median(others)
        print(
            "Machine: CPU used outside the router and the two client processes (other processes, kernel work not "
            f"charged to a process): {lo:.0f}-{hi:.0f} % of a core during the windows (median {med:.0f} %); "
            f"router {min(routers):.0f}-{max(routers):.0f} %."
        )
    if missed:
        print(
            "Above the {:.2f}x target: {}".format(
                cfg.target, ", ".join(f"{sc}/{role} {ratio:.2f}" for sc, role, ratio in missed)
            )
        )
    else:
        print(f"Every Cloverleaf figure is within {cfg.target:.2f}x Autobahn's.")
    for sc, role, path, ops in profiles:
        print()
        print(f"### cProfile: cloverleaf {sc}, {role} process (top {cfg.profile_top} by own time; {path})")
        print(profile_text(path, ops, cfg.profile_top))

    out_path = cfg.json or os.path.join(
        bench.BENCH_DIR, "results", "client-bench-{}.json".format(time.strftime("%Y%m%d-%H%M%S"))
    )
    if out_path.startswith(bench.BENCH_DIR + os.sep):
        os.makedirs(bench.BENCH_DIR, exist_ok=True)
        gi = os.path.join(bench.BENCH_DIR, ".gitignore")
        if not os.path.exists(gi):
            with open(gi, "w") as f:
                f.write("# benchmark scratch space (Crossbar venv, results): never committed\n*\n")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(
            {
                "config": {k: v for k, v in vars(cfg).items()},
                "raw": raw,
                "errors": {f"{k[0]}/{k[1]}": v for k, v in errors.items()},
                "table_md": text,
            },
            f,
            indent=1,
        )
    log(f"raw results: {out_path}")
    if cfg.keep_tmp or failed:
        log(f"logs kept in {cfg.tmp}")
    else:
        shutil.rmtree(cfg.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "worker":
        sys.exit(worker_entry(json.loads(sys.argv[2])))
    sys.exit(main())
