#!/usr/bin/env python3
"""Cloverleaf vs Crossbar.io benchmark: one command, bounded in time, stops by itself.

    .venv/bin/python benchmarks/run.py                       # both routers, full run (~2.5 min per round)
    .venv/bin/python benchmarks/run.py --quick               # smoke run (~1 min)
    .venv/bin/python benchmarks/run.py --routers crossbar    # the reference only

For each router it starts a fresh process on free 127.0.0.1 ports, measures the time from
process start to the first WELCOME and the idle RSS, then runs every scenario against each
router in turn (alternating which goes first) with the load generator ``loadgen.py`` in
separate processes, and meters the router's CPU (utime+stime from /proc/<pid>/stat) and RSS
(VmRSS from /proc/<pid>/status) over the same measurement window. See docs/benchmarks.md.

Crossbar.io is installed on first use into .bench/crossbar-venv (git-ignored; ~375 MB, about
a minute); point CROSSBAR_VENV (or --crossbar-venv) at an existing venv to reuse one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _reexec_in_repo_venv() -> None:
    """`python benchmarks/run.py` with a Python lacking the load generator's packages: use .venv's."""
    if all(importlib.util.find_spec(m) is not None for m in ("msgspec", "orjson", "picows", "uvloop")):
        return
    venv_py = os.path.join(REPO, ".venv", "bin", "python")
    if (
        os.path.exists(venv_py)
        and os.path.realpath(sys.executable) != os.path.realpath(venv_py)
        and not os.environ.get("CLOVERLEAF_BENCH_REEXEC")
    ):
        os.environ["CLOVERLEAF_BENCH_REEXEC"] = "1"
        os.execv(venv_py, [venv_py, *sys.argv])
    raise SystemExit("benchmarks need msgspec, orjson, picows and uvloop (pip install -e '.[test]' or see docs)")


_reexec_in_repo_venv()
sys.path.insert(0, HERE)
import loadgen  # noqa: E402

LOADGEN = os.path.join(HERE, "loadgen.py")
CROSSBAR_CONFIG = os.path.join(HERE, "crossbar", "config.json")
CROSSBAR_REQS = os.path.join(HERE, "requirements-crossbar.txt")
BENCH_DIR = os.path.join(REPO, ".bench")
now_ns = time.monotonic_ns


def log(msg: str) -> None:
    print("[bench {}] {}".format(time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# /proc metering
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def proc_descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for k in proc_children(todo.pop()):
            if k not in out:
                out.append(k)
                todo.append(k)
    return out


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{p[9]}]")
        except OSError:
            pass
    return inodes


def owns_any(pid: int, targets: set[str]) -> bool:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + (v[4] if len(v) > 4 else 0)


def free_port(taken: set[int]) -> int:
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def sleep_until_ns(t: int) -> None:
    d = (t - now_ns()) / 1e9
    if d > 0:
        time.sleep(d)


# ----------------------------------------------------------------------------------------
# Routers under test
class Router:
    name = "?"

    def __init__(self, workdir: str, taken_ports: set[int], realm: str):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.ws_port = free_port(taken_ports)
        self.rs_port = free_port(taken_ports)
        self.realm = realm
        self.log_path = os.path.join(self.dir, "router.log")
        self.proc: subprocess.Popen | None = None
        self.t_spawn = 0
        self.error: str | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    @property
    def rs_url(self) -> str:
        return f"rs://127.0.0.1:{self.rs_port}"

    @property
    def web_url(self) -> str:
        """WAMP over WebSocket on a ``web`` transport (a port that also serves HTTP)."""
        return self.ws_url

    @property
    def longpoll_url(self) -> str:
        """WAMP over HTTP long-poll on the ``web`` transport's ``/lp`` path."""
        return f"http://127.0.0.1:{self.ws_port}/lp"

    def command(self) -> tuple[list[str], str, dict]:
        raise NotImplementedError

    def spawn(self) -> None:
        cmd, cwd, env = self.command()
        with open(self.log_path, "ab") as logf:
            self.t_spawn = now_ns()
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metered_pids(self) -> list[int]:
        raise NotImplementedError

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p) for p in self.metered_pids())

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(p) for p in self.metered_pids())

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        # the router was started in its own session: its process group id is its pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)


class CrossbarRouter(Router):
    """`crossbar start` runs a node controller that spawns the router worker as a child
    process; only that worker (the process holding the listening socket) is metered."""

    name = "crossbar"

    def __init__(self, workdir, taken_ports, realm, venv: str):
        super().__init__(workdir, taken_ports, realm)
        self.venv = venv
        self._worker: list[int] = []

    def command(self):
        with open(CROSSBAR_CONFIG) as f:
            cfg = json.load(f)
        worker = cfg["workers"][0]
        worker["realms"][0]["name"] = self.realm
        for t in worker["transports"]:
            t["endpoint"]["interface"] = "127.0.0.1"
            t["endpoint"]["port"] = self.ws_port if t["type"] == "web" else self.rs_port
        cbdir = os.path.join(self.dir, "node", ".crossbar")
        os.makedirs(cbdir, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "node", "web"), exist_ok=True)
        with open(os.path.join(self.dir, "node", "web", "index.html"), "w") as f:
            f.write("<html><body>benchmark node</body></html>\n")
        with open(os.path.join(cbdir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        cmd = [os.path.join(self.venv, "bin", "crossbar"), "start", "--cbdir", cbdir, "--loglevel", "warn"]
        return cmd, os.path.join(self.dir, "node"), dict(os.environ)

    def metered_pids(self) -> list[int]:
        if self._worker and all(os.path.exists(f"/proc/{p}") for p in self._worker):
            return self._worker
        if self.proc is None:
            return []
        targets = listening_inodes(self.ws_port) | listening_inodes(self.rs_port)
        self._worker = [p for p in proc_descendants(self.proc.pid) if owns_any(p, targets)]
        return self._worker


class CloverleafRouter(Router):
    """`<python> -m cloverleaf start --config FILE`; the whole process tree is metered.

    Its WebSocket and RawSocket transports are dedicated ones; a third, ``web`` transport (static
    files plus ``/ws``, as Crossbar's benchmark config has, and ``/lp`` long-poll) serves the "web"
    and "lp" scenarios."""

    name = "cloverleaf"

    def __init__(self, workdir, taken_ports, realm, python: str, cmd_template: str | None = None):
        super().__init__(workdir, taken_ports, realm)
        self.python = python
        self.cmd_template = cmd_template
        self.web_port = free_port(taken_ports)

    @property
    def web_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws"

    @property
    def longpoll_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/lp"

    def command(self):
        cfg = os.path.join(self.dir, "cloverleaf.yaml")
        web_dir = os.path.join(self.dir, "web")
        os.makedirs(web_dir, exist_ok=True)
        with open(os.path.join(web_dir, "index.html"), "w") as f:
            f.write("<html><body>benchmark node</body></html>\n")
        with open(cfg, "w") as f:
            f.write(
                "realms:\n"
                f"  - name: {self.realm}\n"
                "transports:\n"
                "  - type: websocket\n"
                f"    endpoint: {{type: tcp, host: 127.0.0.1, port: {self.ws_port}}}\n"
                "    path: /ws\n"
                "  - type: rawsocket\n"
                f"    endpoint: {{type: tcp, host: 127.0.0.1, port: {self.rs_port}}}\n"
                "  - type: web\n"
                f"    endpoint: {{type: tcp, host: 127.0.0.1, port: {self.web_port}}}\n"
                "    paths:\n"
                f"      /: {{type: static, directory: {web_dir}}}\n"
                "      /ws: {type: websocket}\n"
                "      /lp: {type: longpoll}\n"
            )
        env = dict(os.environ)
        src = os.path.join(REPO, "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # An installed package has its bytecode compiled by pip; a checkout run under
        # PYTHONDONTWRITEBYTECODE (set on some machines) would compile every module at every start
        # and measure the compiler. Compile once, as an install would.
        subprocess.run([self.python, "-m", "compileall", "-q", src], check=False, stdout=subprocess.DEVNULL,
                       env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
        if self.cmd_template:
            import shlex

            return [a.replace("{config}", cfg) for a in shlex.split(self.cmd_template)], REPO, env
        return [self.python, "-m", "cloverleaf", "start", "--config", cfg], REPO, env

    def metered_pids(self) -> list[int]:
        if not self.alive():
            return []
        return [self.proc.pid, *proc_descendants(self.proc.pid)]


def ensure_crossbar_venv(venv: str) -> str:
    exe = os.path.join(venv, "bin", "crossbar")
    if os.path.exists(exe):
        return venv
    if os.path.abspath(venv).startswith(os.path.abspath(BENCH_DIR) + os.sep):
        os.makedirs(BENCH_DIR, exist_ok=True)
        with open(os.path.join(BENCH_DIR, ".gitignore"), "w") as f:
            f.write("# benchmark scratch space (Crossbar venv, results): never committed\n*\n")
    log(f"installing Crossbar.io into {venv} (one time, about a minute) ...")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r", CROSSBAR_REQS], check=True)
    if not os.path.exists(exe):
        raise SystemExit(f"Crossbar install finished but {exe} is missing")
    return venv


def start_router(r: Router, cfg) -> dict:
    """Spawn, wait for the first WELCOME (WebSocket), check RawSocket too, then read the idle RSS."""
    log(f"starting {r.name} (ws {r.ws_port}, rawsocket {r.rs_port})")
    r.spawn()
    t_welcome, attempts = asyncio.run(
        loadgen.wait_for_welcome(r.ws_url, r.realm, "json", deadline_s=cfg.start_timeout, give_up=lambda: not r.alive())
    )
    startup_s = (t_welcome - r.t_spawn) / 1e9
    asyncio.run(loadgen.wait_for_welcome(r.rs_url, r.realm, "json", deadline_s=15, give_up=lambda: not r.alive()))
    time.sleep(cfg.settle)
    pids = r.metered_pids()
    if not pids:
        raise RuntimeError(f"cannot find the {r.name} router process to meter")
    row = {
        "scenario": "startup",
        "router": r.name,
        "startup_s": round(startup_s, 3),
        "probe_attempts": attempts,
        "idle_rss_kb": r.rss_kb(),
        "metered_pids": pids,
        # every process started (for Crossbar: node controller + router worker)
        "idle_rss_kb_all_processes": sum(proc_rss_kb(p) for p in [r.proc.pid, *proc_descendants(r.proc.pid)]),
    }
    log(
        "{} up: first WELCOME {:.2f} s after spawn, idle RSS {:.1f} MB, metering pids {}".format(
            r.name, startup_s, row["idle_rss_kb"] / 1024, pids
        )
    )
    return row


# ----------------------------------------------------------------------------------------
# Load generator worker processes
class Worker:
    def __init__(self, spec: dict, logdir: str, tag: str):
        spec = dict(spec)
        self.tag = tag
        self.err_path = os.path.join(logdir, f"worker-{tag}.log")
        with open(self.err_path, "ab") as errf:
            self.p = subprocess.Popen(
                [sys.executable, LOADGEN, "worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errf,
                text=True,
                bufsize=1,
            )
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def expect(self, word: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"worker {self.tag}: no {word} within {timeout:.0f} s{self._err()}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"worker {self.tag} exited before {word}{self._err()}")
            if line == word or line.startswith(word + " "):
                return line[len(word) + 1 :]
            if line.startswith("RESULT "):  # a worker reporting early means it failed
                raise RuntimeError(f"worker {self.tag}: {line[7:300]}")

    def result(self, timeout: float) -> dict:
        res = json.loads(self.expect("RESULT", timeout))
        if "error" in res:
            raise RuntimeError("worker {}: {}{}".format(self.tag, res["error"], self._err()))
        return res

    def send(self, line: str) -> None:
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def _err(self) -> str:
        try:
            with open(self.err_path, errors="replace") as f:
                tail = f.read()[-600:].strip()
        except OSError:
            tail = ""
        return (f" (stderr: {tail})") if tail else ""

    def finish(self) -> None:
        if self.p.poll() is None:
            with contextlib.suppress(OSError):
                self.p.stdin.close()
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(3)


def split(n: int, k: int) -> list[int]:
    k = max(1, min(n, k))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def percentile(sorted_vals: list, q: float):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


class Window:
    """Tell the workers GO, then meter the router (and the machine) over [t0, t1)."""

    def __init__(self, router: Router, workers: list[Worker], warmup: float, duration: float):
        self.t0 = now_ns() + int(warmup * 1e9)
        self.t1 = self.t0 + int(duration * 1e9)
        for w in workers:
            w.send(f"GO {self.t0} {self.t1}")
        sleep_until_ns(self.t0)
        a = (now_ns(), router.cpu_s(), machine_cpu())
        sleep_until_ns(self.t1)
        b = (now_ns(), router.cpu_s(), machine_cpu())
        self.wall_s = (b[0] - a[0]) / 1e9
        self.router_cpu_s = b[1] - a[1]
        tot = b[2][0] - a[2][0]
        busy = tot - (b[2][1] - a[2][1])
        self.machine_cpu_s = busy / tot * (os.cpu_count() or 1) * self.wall_s if tot else None


def summarize(router: Router, scenario: str, win: Window, results: list[dict], extra: dict) -> dict:
    ops = sum(r.get("ops", 0) for r in results)
    window_s = (win.t1 - win.t0) / 1e9
    lat = sorted(x for r in results for x in r.get("lat_ns", []))
    client_cpu = sum(r["cpu_s"] for r in results if r.get("cpu_s") is not None)
    row = {
        "scenario": scenario,
        "router": router.name,
        "ops": ops,
        "ops_per_s": round(ops / window_s, 1),
        "lat_p50_ms": None if not lat else round(percentile(lat, 50) / 1e6, 3),
        "lat_p99_ms": None if not lat else round(percentile(lat, 99) / 1e6, 3),
        "router_cpu_pct": round(win.router_cpu_s / win.wall_s * 100, 1),
        "router_cpu_us_per_op": round(win.router_cpu_s / ops * 1e6, 2) if ops else None,
        "router_rss_kb": router.rss_kb(),
        "gen_cpu_pct": round(client_cpu / window_s * 100, 1),
        "other_cpu_pct": None
        if win.machine_cpu_s is None
        else round(max(0.0, win.machine_cpu_s - win.router_cpu_s - client_cpu) / win.wall_s * 100, 1),
        "errors": sum(r.get("errors", 0) for r in results),
        "lost_sessions": sum(r.get("lost_sessions", 0) for r in results),
    }
    row.update(extra)
    return row


# ----------------------------------------------------------------------------------------
# Scenarios
def base_spec(router: Router, url: str, serializer: str, cfg) -> dict:
    return {"url": url, "realm": router.realm, "serializer": serializer, "hard_s": cfg.warmup + cfg.duration + 90}


def probe_long_poll(router: Router, url: str, serializer: str) -> None:
    async def probe():
        sess = await loadgen.connect(url, router.realm, loadgen.Codec(serializer), timeout=10)
        sess.close()
        await asyncio.sleep(0.05)

    try:
        asyncio.run(probe())
    except Exception as e:
        raise RuntimeError(f"{router.name} long-poll opens no WAMP session: {type(e).__name__}: {e}") from None


def scen_rpc(
    router: Router, cfg, transport: str, serializer: str, name: str, callee_transport: str | None = None
) -> dict:
    """``transport``: the callers' ("ws", "rs", "web", "lp"); the callee's is ``callee_transport``
    (default: the same)."""
    urls = {"ws": router.ws_url, "rs": router.rs_url, "web": router.web_url, "lp": router.longpoll_url}
    spec = base_spec(router, urls[transport], serializer, cfg)
    callee_spec = dict(spec, url=urls[callee_transport or transport])
    if transport == "lp":  # a long-poll path that opens no session fails here, with the reason
        probe_long_poll(router, spec["url"], serializer)
    proc = "com.bench.echo"
    workers: list[Worker] = []
    try:
        callee = Worker(dict(callee_spec, role="callee", procedure=proc), cfg.tmp, f"{router.name}-{name}-callee")
        workers.append(callee)
        callee.expect("READY", 30)
        callers = []
        for i, n in enumerate(split(cfg.rpc_sessions, cfg.procs)):
            w = Worker(
                dict(spec, role="callers", procedure=proc, sessions=n, inflight=cfg.rpc_inflight),
                cfg.tmp,
                f"{router.name}-{name}-callers{i}",
            )
            workers.append(w)
            callers.append(w)
        for w in callers:
            w.expect("READY", 30)
        win = Window(router, [callee, *callers], cfg.warmup, cfg.duration)
        results = [w.result(30) for w in callers]
        callee.send("STOP")
        cres = callee.result(15)
        cres["ops"] = 0  # calls are counted once, by the callers
        return summarize(
            router,
            name,
            win,
            [*results, cres],
            {
                "bad_results": sum(r["bad_results"] for r in results),
                "undrained": sum(r["undrained"] for r in results),
                "invocations": cres["invocations"],
            },
        )
    finally:
        for w in workers:
            w.finish()


def scen_pubsub(router: Router, cfg, nsubs: int, name: str) -> dict:
    spec = base_spec(router, router.ws_url, "json", cfg)
    topic = "com.bench.topic"
    groups = split(nsubs, cfg.procs) if nsubs > 1 else [1]
    local, remote = groups[-1], groups[:-1]  # the smallest group lives in the publisher's process
    nslots = 1 + len(remote)
    counters = os.path.join(cfg.tmp, f"counters-{router.name}-{name}")
    with open(counters, "wb") as f:
        f.write(b"\0" * 8 * nslots)
    sample_every = 1 if nsubs == 1 else 10
    common = dict(spec, topic=topic, counters=counters, sample_every=sample_every)
    workers: list[Worker] = []
    try:
        subs = []
        for i, n in enumerate(remote):
            w = Worker(
                dict(common, role="subscribers", sessions=n, slot=i + 1),
                cfg.tmp,
                f"{router.name}-{name}-subs{i}",
            )
            workers.append(w)
            subs.append(w)
        for w in subs:
            w.expect("READY", 60)
        pub = Worker(
            dict(
                common,
                role="publisher",
                slot=0,
                nslots=nslots,
                local_subscribers=local,
                total_subscribers=nsubs,
                window=cfg.pub_window if nsubs == 1 else cfg.fanout_window,
            ),
            cfg.tmp,
            f"{router.name}-{name}-pub",
        )
        workers.append(pub)
        pub.expect("READY", 60)
        time.sleep(0.2)
        win = Window(router, [pub, *subs], cfg.warmup, cfg.duration)
        pres = pub.result(30)
        for w in subs:
            w.send("STOP")
        results = [pres] + [w.result(15) for w in subs]
        return summarize(
            router,
            name,
            win,
            results,
            {
                "subscribers": nsubs,
                "published_in_window": pres["published_in_window"],
                "undelivered": pres["undelivered"],
                "latency_sampled_every": sample_every,
            },
        )
    finally:
        for w in workers:
            w.finish()


def scen_sessions(router: Router, cfg, name: str) -> dict:
    spec = base_spec(router, router.ws_url, "json", cfg)
    w = Worker(dict(spec, role="sessions", count=cfg.sessions, concurrency=100), cfg.tmp, f"{router.name}-{name}")
    try:
        w.expect("READY", 30)
        time.sleep(cfg.settle)
        rss0 = router.rss_kb()
        c0 = router.cpu_s()
        w.send("GO 0 0")
        opened = json.loads(w.expect("OPENED", 180))
        c1 = router.cpu_s()
        time.sleep(cfg.settle)
        rss1 = router.rss_kb()
        time.sleep(cfg.hold)
        rss2 = router.rss_kb()
        w.send("CLOSE")
        res = w.result(60)
        time.sleep(cfg.settle)
        rss3 = router.rss_kb()
        n = opened["opened"]
        open_s = (opened["t1"] - opened["t0"]) / 1e9
        lat = sorted(res["lat_ns"])
        return {
            "scenario": name,
            "router": router.name,
            "ops": n,
            "ops_per_s": round(n / open_s, 1) if open_s > 0 else None,
            "lat_p50_ms": None if not lat else round(percentile(lat, 50) / 1e6, 3),
            "lat_p99_ms": None if not lat else round(percentile(lat, 99) / 1e6, 3),
            "router_cpu_pct": round((c1 - c0) / open_s * 100, 1) if open_s > 0 else None,
            "router_cpu_us_per_op": round((c1 - c0) / n * 1e6, 2) if n else None,
            "router_rss_kb": rss1,
            "kb_per_session": round((rss1 - rss0) / n, 2) if n else None,
            "gen_cpu_pct": round(opened["cpu_s"] / open_s * 100, 1) if open_s > 0 else None,
            "sessions_failed": opened["failed"],
            "first_failure": opened["first_failure"],
            "alive_after_hold": res["alive_at_close"],
            "rss_kb_before": rss0,
            "rss_kb_open": rss1,
            "rss_kb_after_hold": rss2,
            "rss_kb_after_close": rss3,
            "errors": opened["failed"] + (n - res["alive_at_close"]),
        }
    finally:
        w.finish()


SCENARIOS = {
    # name: (label for the table, runner)
    "sessions": ("%(sessions)d sessions held (WS json)", lambda r, c: scen_sessions(r, c, "sessions")),
    "rpc-ws-json": (
        "RPC %(rpc_sessions)dx%(rpc_inflight)d WS json",
        lambda r, c: scen_rpc(r, c, "ws", "json", "rpc-ws-json"),
    ),
    "rpc-ws-msgpack": (
        "RPC %(rpc_sessions)dx%(rpc_inflight)d WS msgpack",
        lambda r, c: scen_rpc(r, c, "ws", "msgpack", "rpc-ws-msgpack"),
    ),
    "rpc-web-json": (
        "RPC %(rpc_sessions)dx%(rpc_inflight)d web transport /ws json",
        lambda r, c: scen_rpc(r, c, "web", "json", "rpc-web-json"),
    ),
    "rpc-rs-json": (
        "RPC %(rpc_sessions)dx%(rpc_inflight)d RawSocket json",
        lambda r, c: scen_rpc(r, c, "rs", "json", "rpc-rs-json"),
    ),
    "rpc-lp-json": (
        "RPC %(rpc_sessions)dx%(rpc_inflight)d callers on HTTP long-poll json (callee WS)",
        lambda r, c: scen_rpc(r, c, "lp", "json", "rpc-lp-json", callee_transport="ws"),
    ),
    "pubsub": ("pub/sub 1->1 WS json", lambda r, c: scen_pubsub(r, c, 1, "pubsub")),
    "fanout": ("fan-out 1->%(fanout)d WS json (per delivery)", lambda r, c: scen_pubsub(r, c, c.fanout, "fanout")),
}
#: run only when named: Crossbar.io 26.10.1's long-poll opens no WAMP session (docs/benchmarks.md),
#: so by default the run would end with an error row for the reference
NOT_BY_DEFAULT = ("rpc-lp-json",)
# counted in the "problems" column: anything but 0 means the router misbehaved (or was overwhelmed)
PROBLEM_KEYS = ("errors", "bad_results", "undrained", "lost_sessions", "undelivered")


# ----------------------------------------------------------------------------------------
# Report
def median_rows(rows: list[dict]) -> dict:
    """Median of every numeric field over the rounds (non-numeric fields: from the first row)."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return dict(rows[0], rounds=len(rows), ok_rounds=0)
    out = dict(ok[0])
    for k in ok[0]:
        vals = [r.get(k) for r in ok]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[k] = round(statistics.median(vals), 3)
    out["rounds"] = len(rows)
    out["ok_rounds"] = len(ok)
    return out


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return ("%." + str(digits) + "f") % v
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def report(summary: dict, routers: list[str], scenarios: list[str], cfg) -> str:
    labels = {k: SCENARIOS[k][0] % vars(cfg) for k in SCENARIOS}
    rows = []
    for sc in scenarios:
        ref = summary.get((sc, "crossbar"), {}).get("router_cpu_us_per_op")
        for rn in routers:
            s = summary.get((sc, rn))
            if s is None:
                continue
            if s.get("ok_rounds") == 0:
                rows.append([labels[sc], rn, "error: " + str(s.get("error"))[:60]] + [""] * 9)
                continue
            mine = s.get("router_cpu_us_per_op")
            ratio = "-" if (rn == "crossbar" or not ref or mine is None) else "%.2f" % (mine / ref)
            rows.append(
                [
                    labels[sc],
                    rn,
                    fmt(s.get("ops_per_s"), 0),
                    fmt(s.get("lat_p50_ms"), 2),
                    fmt(s.get("lat_p99_ms"), 2),
                    fmt(s.get("router_cpu_pct"), 0),
                    fmt(s.get("router_cpu_us_per_op"), 1),
                    fmt((s.get("router_rss_kb") or 0) / 1024, 0),
                    fmt(s.get("kb_per_session"), 1) if sc == "sessions" else "",
                    fmt(s.get("gen_cpu_pct"), 0),
                    ratio,
                    fmt(s.get("problems"), 0),
                ]
            )
    t1 = md_table(
        [
            "scenario",
            "router",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "router CPU %",
            "CPU µs/op",
            "router RSS MB",
            "KB/session",
            "gen CPU %",
            "CPU/op vs crossbar",
            "problems",
        ],
        rows,
    )
    rows2 = []
    ref = summary.get(("startup", "crossbar"), {})
    for rn in routers:
        s = summary.get(("startup", rn))
        if s is None:
            continue
        if s.get("ok_rounds") == 0:
            rows2.append([rn, "error: " + str(s.get("error"))[:80], "", "", "", ""])
            continue
        kb = summary.get(("sessions", rn), {}).get("kb_per_session")
        kb_ref = summary.get(("sessions", "crossbar"), {}).get("kb_per_session")
        ratio = []
        if rn != "crossbar" and ref.get("ok_rounds"):
            ratio.append("start %.2f" % (s["startup_s"] / ref["startup_s"]))
            ratio.append("idle RSS %.2f" % (s["idle_rss_kb"] / ref["idle_rss_kb"]))
            if kb and kb_ref:
                ratio.append("KB/session %.2f" % (kb / kb_ref))
        rows2.append(
            [
                rn,
                fmt(s.get("startup_s"), 2),
                fmt(s["idle_rss_kb"] / 1024, 1),
                fmt(s["idle_rss_kb_all_processes"] / 1024, 1),
                fmt(kb, 1),
                ", ".join(ratio) or "-",
            ]
        )
    t2 = md_table(
        [
            "router",
            "start → first WELCOME s",
            "idle RSS MB (metered)",
            "idle RSS MB (all processes)",
            "KB per idle session",
            "vs crossbar",
        ],
        rows2,
    )
    return t1 + "\n\n" + t2


# ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Benchmark Cloverleaf against Crossbar.io (router CPU per operation).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--routers", default="crossbar,cloverleaf", help="comma list of: crossbar, cloverleaf")
    p.add_argument("--scenarios", default=",".join(s for s in SCENARIOS if s not in NOT_BY_DEFAULT),
                   help="comma list of: " + ",".join(SCENARIOS) + " (default: all but "
                   + ",".join(NOT_BY_DEFAULT) + ")")  # fmt: skip
    p.add_argument("--duration", type=float, default=6.0, help="measurement window per scenario, s")
    p.add_argument("--warmup", type=float, default=2.0, help="load before the window opens, s")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything (routers restarted); medians reported")
    p.add_argument("--procs", type=int, default=2, help="load generator processes for RPC callers and fan-out")
    p.add_argument("--rpc-sessions", type=int, default=8)
    p.add_argument("--rpc-inflight", type=int, default=16)
    p.add_argument("--fanout", type=int, default=100, help="fan-out subscribers")
    p.add_argument("--pub-window", type=int, default=128, help="pub/sub 1->1: max events not yet delivered")
    p.add_argument(
        "--fanout-window", type=int, default=16, help="fan-out: max publications not yet delivered to every subscriber"
    )
    p.add_argument("--sessions", type=int, default=1000, help="idle sessions opened and held")
    p.add_argument("--hold", type=float, default=2.0, help="seconds the idle sessions are held")
    p.add_argument("--settle", type=float, default=1.5, help="seconds to settle before reading RSS")
    p.add_argument("--start-timeout", type=float, default=60.0, help="max seconds to the first WELCOME")
    p.add_argument("--quick", action="store_true", help="smoke run: 1.5 s windows, 200 sessions")
    p.add_argument("--realm", default="realm1")
    p.add_argument(
        "--crossbar-venv",
        default=os.environ.get("CROSSBAR_VENV", os.path.join(BENCH_DIR, "crossbar-venv")),
        help="Crossbar.io venv (created if missing; env CROSSBAR_VENV)",
    )
    default_py = os.path.join(REPO, ".venv", "bin", "python")
    p.add_argument(
        "--cloverleaf-python",
        default=default_py if os.path.exists(default_py) else sys.executable,
        help="Python that runs `-m cloverleaf` (src/ is put on PYTHONPATH)",
    )
    p.add_argument(
        "--cloverleaf-cmd",
        default=None,
        help="replace `PYTHON -m cloverleaf start --config {config}` by this command line "
        "({config} is replaced by the generated YAML file)",
    )
    p.add_argument(
        "--json",
        default=None,
        help="write all raw rows and the summary here (default: .bench/results/bench-<time>.json)",
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, router and worker logs)")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.duration, cfg.warmup, cfg.settle, cfg.hold = 1.5, 0.5, 0.5, 0.5
        cfg.sessions = min(cfg.sessions, 200)
    routers = [r.strip() for r in cfg.routers.split(",") if r.strip()]
    scenarios = [s.strip() for s in cfg.scenarios.split(",") if s.strip()]
    for r in routers:
        if r not in ("crossbar", "cloverleaf"):
            p.error(f"unknown router {r!r}")
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by routers and workers
    except (ValueError, OSError):
        pass
    if "crossbar" in routers:
        cfg.crossbar_venv = ensure_crossbar_venv(os.path.abspath(cfg.crossbar_venv))

    def _terminate(signum, frame):  # let the finally: blocks stop the routers
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    cfg.tmp = tempfile.mkdtemp(prefix="cloverleaf-bench-")
    log(
        f"temp dir {cfg.tmp}; routers {routers}; scenarios {scenarios}; "
        f"window {cfg.duration:.1f} s (+{cfg.warmup:.1f} s warm-up)"
    )

    raw: list[dict] = []
    t_begin = time.monotonic()
    failed = False
    try:
        for rnd in range(cfg.rounds):
            order = routers if rnd % 2 == 0 else routers[::-1]
            live: dict[str, Router] = {}
            taken: set[int] = set()
            try:
                for rn in order:
                    rdir = os.path.join(cfg.tmp, f"round{rnd}")
                    r = (
                        CrossbarRouter(rdir, taken, cfg.realm, cfg.crossbar_venv)
                        if rn == "crossbar"
                        else CloverleafRouter(rdir, taken, cfg.realm, cfg.cloverleaf_python, cfg.cloverleaf_cmd)
                    )
                    try:
                        row = start_router(r, cfg)
                        live[rn] = r
                    except Exception as e:
                        r.error = f"{type(e).__name__}: {e}"
                        row = {"scenario": "startup", "router": rn, "error": r.error}
                        log(f"{rn} failed to start: {r.error}\n--- {rn} log tail ---\n{r.log_tail()}")
                        r.stop()
                        failed = True
                    row["round"] = rnd
                    raw.append(row)
                for i, sc in enumerate(scenarios):
                    # alternate which router goes first, scenario by scenario
                    for rn in order if i % 2 == 0 else order[::-1]:
                        r = live.get(rn)
                        if r is None:
                            raw.append({"scenario": sc, "router": rn, "round": rnd, "error": "router not running"})
                            continue
                        if not r.alive():
                            raw.append(
                                {
                                    "scenario": sc,
                                    "router": rn,
                                    "round": rnd,
                                    "error": f"router exited (rc {r.proc.returncode})",
                                }
                            )
                            failed = True
                            continue
                        log(f"round {rnd + 1}: {sc} on {rn} ...")
                        try:
                            row = SCENARIOS[sc][1](r, cfg)
                            row["problems"] = sum(row.get(k) or 0 for k in PROBLEM_KEYS)
                            log(
                                "  {}/{}: {} ops/s, {} µs router CPU/op, p50 {} ms, problems {}, other CPU {} %".format(
                                    sc,
                                    rn,
                                    fmt(row.get("ops_per_s"), 0),
                                    fmt(row.get("router_cpu_us_per_op"), 1),
                                    fmt(row.get("lat_p50_ms"), 2),
                                    row.get("problems"),
                                    fmt(row.get("other_cpu_pct"), 0),
                                )
                            )
                        except Exception as e:
                            row = {"scenario": sc, "router": rn, "error": f"{type(e).__name__}: {e}"}
                            log("  {}/{} FAILED: {}".format(sc, rn, row["error"]))
                            if not r.alive():
                                log(f"--- {rn} log tail ---\n{r.log_tail()}")
                            failed = True
                        row["round"] = rnd
                        raw.append(row)
                        time.sleep(0.5)
            finally:
                for r in live.values():
                    r.stop()
    except KeyboardInterrupt:
        log("interrupted")
        failed = True

    groups: dict[tuple, list] = {}
    for row in raw:
        groups.setdefault((row["scenario"], row["router"]), []).append(row)
    summary = {k: median_rows(v) for k, v in groups.items()}
    text = report(summary, routers, scenarios, cfg)
    print()
    print("Router CPU per operation is the number to compare (ops/s depends on the load generator and on the")
    print(
        f"other processes of this machine). Medians of {cfg.rounds} round(s); {cfg.duration:.1f} s windows; "
        f"{'quick' if cfg.quick else 'full'}; {os.cpu_count() or 1} CPUs; {time.monotonic() - t_begin:.0f} s total."
    )
    print()
    print(text)
    print()
    noisy = sorted({"{}/{}".format(r["scenario"], r["router"]) for r in raw if (r.get("other_cpu_pct") or 0) > 30})
    if noisy:
        print(
            "Note: other processes used more than 30 % of a core during {}; CPU/op is fairly robust to that,"
            " ops/s and latency are not. Re-run on a quiet machine (or with --rounds 3) for the record.".format(
                ", ".join(noisy)
            )
        )
        print()

    out_path = cfg.json or os.path.join(BENCH_DIR, "results", "bench-{}.json".format(time.strftime("%Y%m%d-%H%M%S")))
    if out_path.startswith(BENCH_DIR + os.sep):
        os.makedirs(BENCH_DIR, exist_ok=True)
        gi = os.path.join(BENCH_DIR, ".gitignore")
        if not os.path.exists(gi):
            with open(gi, "w") as f:
                f.write("# benchmark scratch space (Crossbar venv, results): never committed\n*\n")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(
            {
                "config": {k: v for k, v in vars(cfg).items()},
                "raw": raw,
                "summary": [dict(v) for v in summary.values()],
                "table_md": text,
            },
            f,
            indent=1,
        )
    log(f"raw results: {out_path}")
    if cfg.keep_tmp or failed:
        log(f"logs and configs kept in {cfg.tmp}")
    else:
        shutil.rmtree(cfg.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
