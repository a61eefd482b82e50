#!/usr/bin/env python3
"""Workers benchmark: one Cloverleaf node as 1 process against `--workers N` (issue 13), one command.

    .venv/bin/python benchmarks/workers_bench.py            # everything (~4 min)
    .venv/bin/python benchmarks/workers_bench.py --quick    # smoke run (~1.5 min)

Setups, all started at once and kept for the whole run: a node as one process, the same config
with `--workers N` (default 2: the parent, N workers, their private nats-server), and, unless
--no-crossbar, Crossbar.io with run.py's config (one router worker) and the same node with N proxy
workers in front of its router worker (`CrossbarProxied`). Load: run.py's `loadgen.py`
worker processes (WebSocket, json, never metered); a URL fragment `#w1` makes a load session
reconnect until worker w1 WELCOMEs it (`x_cb_worker`), so a scenario can place callers and
callees on chosen workers. Router CPU = utime+stime over the window of every process of the node
(parent, workers and nats-server) or of Crossbar's router worker (and its proxy workers).

Scenarios:
* connection spread: 100 connections one after the other and 200 at once, counted per worker,
  with SO_REUSEPORT sockets (the default) and with one shared socket;
* RPC, 8 sessions x 16 in flight (2 caller processes): callee and callers on the same worker, and
  callee on w0 with callers on w1, against one process: CPU per call;
* RPC capacity, load spread: 2 callees (one per worker, shared registration, roundrobin) and
  `--rpc-procs` caller processes whose connections the kernel spreads: calls/s and CPU per call;
* fan-out 1->N, subscribers in one process per worker, the publisher on w0: deliveries/s, CPU;
* start to first WELCOME and idle RSS (the whole process tree).
See docs/workers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster_bench  # noqa: E402
import run  # noqa: E402  (re-executes with .venv's Python when needed)
from cluster_bench import Metered, fmt, scen_pubsub, scen_rpc  # noqa: E402
from run import log, now_ns, proc_descendants, proc_rss_kb, split  # noqa: E402

loadgen = run.loadgen
REPO = run.REPO
BENCH_DIR = run.BENCH_DIR


class WorkerNode(run.CloverleafRouter):
    """`cloverleaf start` with one WebSocket transport, as one process or with ``--workers N``."""

    def __init__(self, workdir, taken, realm, python, workers: int, sockets: str = "reuseport"):
        self.name = f"{workers}-workers-{sockets}" if workers > 1 else "1-process"
        super().__init__(os.path.join(workdir, self.name), taken, realm, python)
        self.workers, self.sockets = workers, sockets

    def command(self):
        cmd, cwd, env = super().command()  # writes run.py's config and compiles src/ once
        cfg = cmd[-1]
        with open(cfg, "w") as f:
            f.write(cluster_bench.websocket_only_config(self.realm, self.ws_port) + f"worker_sockets: {self.sockets}\n")
        if self.workers > 1:
            cmd = [*cmd, "--workers", str(self.workers)]
        return cmd, cwd, env

    def tree(self) -> dict[str, int]:
        """label -> pid of every process of the node (parent, workers w0.., nats-server)."""
        if self.proc is None:
            return {}
        pids = {"parent" if self.workers > 1 else "node": self.proc.pid}
        workers = 0
        for pid in proc_descendants(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"nats-server" in cmdline:
                pids["nats"] = pid
            else:
                pids[f"w{workers}"] = pid
                workers += 1
        return pids

    def url(self, worker: str | None = None) -> str:
        return self.ws_url + (f"#{worker}" if worker and self.workers > 1 else "")


class CrossbarProxied(run.CrossbarRouter):
    """Crossbar.io with ``proxies`` proxy workers in front of its one router worker: the proxies
    share the WebSocket port (``shared: true``, SO_REUSEPORT), terminate the client connections and
    open one backend session per client to the router worker over a Unix socket
    (``anonymous-proxy`` authentication, which Crossbar admits on Unix sockets only). Every process
    of the node but the controller is metered."""

    def __init__(self, workdir, taken, realm, venv: str, proxies: int):
        super().__init__(workdir, taken, realm, venv)
        self.name = f"crossbar-{proxies}-proxies"
        self.proxies = proxies

    def command(self):
        cmd, cwd, env = super().command()  # writes run.py's config; this one replaces it
        cbdir = os.path.join(self.dir, "node", ".crossbar")
        backend = os.path.join(self.dir, "router.sock")
        with open(run.CROSSBAR_CONFIG) as f:
            base = json.load(f)
        router = base["workers"][0]
        router["realms"][0]["name"] = self.realm
        websocket_path = router["transports"][0]["paths"]["ws"]
        router["transports"] = [{"type": "rawsocket", "endpoint": {"type": "unix", "path": backend},
                                 "serializers": ["cbor", "msgpack", "json"],
                                 "auth": {"anonymous-proxy": {"type": "static"}}}]  # fmt: skip
        proxy = {
            "type": "proxy",
            "transports": [{"type": "web", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": self.ws_port,
                                                        "shared": True, "backlog": 4096},
                            "paths": {"ws": {**websocket_path, "auth": {"anonymous": {"type": "static",
                                                                                      "role": "anonymous"}}}}}],
            "connections": {"router": {"transport": {"type": "rawsocket", "endpoint": {"type": "unix", "path": backend},
                                                     "serializer": "cbor", "url": "rs://localhost"},
                                       "auth": {"anonymous-proxy": {"type": "static"}}}},
            "routes": {self.realm: {"anonymous": "router"}},
        }  # fmt: skip
        base["workers"] = [router] + [json.loads(json.dumps(proxy)) for _ in range(self.proxies)]
        with open(os.path.join(cbdir, "config.json"), "w") as f:
            json.dump(base, f, indent=2)
        return cmd, cwd, env

    def metered_pids(self) -> list[int]:
        return list(self.labelled_pids().values())

    def labelled_pids(self) -> dict[str, int]:
        """"router", "proxy0", "proxy1", ...: the node's workers (the controller is left out)."""
        labelled: dict[str, int] = {}
        for pid in proc_descendants(self.proc.pid) if self.proc is not None else []:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()  # a worker's title, or its command line while it starts
            except OSError:
                continue
            kind = "router" if b"RouterController" in cmdline else "proxy" if b"ProxyController" in cmdline else "other"
            labelled[kind if kind == "router" else f"{kind}{sum(k.startswith(kind) for k in labelled)}"] = pid
        return labelled


async def _spread(url: str, realm: str, sequential: int, parallel: int) -> tuple[dict, dict]:
    codec = loadgen.Codec("json")

    async def one(counts: collections.Counter, sessions: list) -> None:
        s = await loadgen.connect(url, realm, codec)
        counts[s.welcome.result().get("x_cb_worker", "-")] += 1
        sessions.append(s)

    seq_counts: collections.Counter = collections.Counter()
    sessions: list = []
    for _ in range(sequential):
        await one(seq_counts, sessions)
    for s in sessions:
        s.close()
    par_counts: collections.Counter = collections.Counter()
    sessions = []
    await asyncio.gather(*(one(par_counts, sessions) for _ in range(parallel)))
    for s in sessions:
        s.close()
    return dict(sorted(seq_counts.items())), dict(sorted(par_counts.items()))


def startup(node: WorkerNode, realm: str) -> dict:
    node.spawn()
    t_welcome, _ = asyncio.run(loadgen.wait_for_welcome(node.ws_url, realm, "json", deadline_s=60,
                                                        give_up=lambda: not node.alive()))  # fmt: skip
    first = (t_welcome - node.t_spawn) / 1e9
    if node.workers > 1:  # every worker up (the first WELCOME may come from the first one ready)
        deadline = time.monotonic() + 60
        while len([k for k in node.tree() if k.startswith("w")]) < node.workers and time.monotonic() < deadline:
            time.sleep(0.05)
        seen: set[str] = set()
        while len(seen) < node.workers and time.monotonic() < deadline:
            seen.update(asyncio.run(_spread(node.ws_url, realm, 4, 0))[0])
    all_ready = (now_ns() - node.t_spawn) / 1e9
    time.sleep(1.0)
    rss = sum(proc_rss_kb(pid) for pid in node.tree().values())
    return {"first_welcome_s": round(first, 3), "all_workers_s": round(all_ready, 3),
            "idle_rss_mb": round(rss / 1024, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="1.5 s windows, no Crossbar")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--procs", type=int, default=2, help="caller processes of the placed RPC scenarios")
    p.add_argument("--rpc-procs", type=int, default=4, help="caller processes of the capacity scenario")
    p.add_argument("--rpc-sessions", type=int, default=8)
    p.add_argument("--rpc-inflight", type=int, default=16)
    p.add_argument("--fanout", type=int, default=100)
    p.add_argument("--fanout-window", type=int, default=16)
    p.add_argument("--crossbar", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--realm", default="realm1")
    p.add_argument("--json", default=None)
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.duration, cfg.warmup = 1.5, 0.5
    if cfg.crossbar is None:
        cfg.crossbar = not cfg.quick
    cfg.tmp = tempfile.mkdtemp(prefix="cloverleaf-workers-bench-")
    cfg.pub_window = 128
    python = os.path.join(REPO, ".venv", "bin", "python")
    if not os.path.exists(python):
        python = sys.executable
    taken: set[int] = set()
    one = WorkerNode(cfg.tmp, taken, cfg.realm, python, 1)
    many = WorkerNode(cfg.tmp, taken, cfg.realm, python, cfg.workers)
    shared = WorkerNode(cfg.tmp, taken, cfg.realm, python, cfg.workers, "shared")
    crossbar = proxied = None
    rows: list[dict] = []
    starts: dict[str, dict] = {}
    spreads: dict[str, tuple[dict, dict]] = {}
    failed = False
    t_begin = time.monotonic()

    def attempt(fn, *args) -> None:
        nonlocal failed
        if not cluster_bench.attempt_scenario(cfg, rows, fn, *args):
            failed = True

    try:
        for node in (one, many, shared):
            starts[node.name] = startup(node, cfg.realm)
            log(f"{node.name}: {starts[node.name]}")
        for node in (many, shared):
            spreads[node.name] = asyncio.run(_spread(node.ws_url, cfg.realm, 100, 200))
            log(f"connection spread, {node.name}: {spreads[node.name]}")
        shared.stop()
        if cfg.crossbar:
            venv = run.ensure_crossbar_venv(os.path.join(BENCH_DIR, "crossbar-venv"))
            crossbar = run.CrossbarRouter(os.path.join(cfg.tmp, "crossbar"), taken, cfg.realm, venv)
            crossbar.spawn()
            t_welcome, _ = asyncio.run(loadgen.wait_for_welcome(crossbar.ws_url, cfg.realm, "json", deadline_s=90,
                                                                give_up=lambda: not crossbar.alive()))  # fmt: skip
            time.sleep(1.0)
            starts["crossbar"] = {"first_welcome_s": round((t_welcome - crossbar.t_spawn) / 1e9, 3),
                                  "idle_rss_mb": round(sum(proc_rss_kb(p) for p in [crossbar.proc.pid,
                                                      *proc_descendants(crossbar.proc.pid)]) / 1024, 1)}  # fmt: skip
            proxied = CrossbarProxied(os.path.join(cfg.tmp, "crossbar-proxied"), taken, cfg.realm, venv, cfg.workers)
            proxied.spawn()
            t_welcome, _ = asyncio.run(loadgen.wait_for_welcome(proxied.ws_url, cfg.realm, "json", deadline_s=90,
                                                                give_up=lambda: not proxied.alive()))  # fmt: skip
            time.sleep(1.0)
            starts[proxied.name] = {"first_welcome_s": round((t_welcome - proxied.t_spawn) / 1e9, 3),
                                    "idle_rss_mb": round(sum(proc_rss_kb(p) for p in [proxied.proc.pid,
                                                        *proc_descendants(proxied.proc.pid)]) / 1024, 1)}  # fmt: skip
        m_one = Metered("1 process", one.tree())
        m_many = Metered(f"{cfg.workers} workers", many.tree())
        pipe = f"RPC {cfg.rpc_sessions}x{cfg.rpc_inflight}"
        s, k = cfg.rpc_sessions, cfg.rpc_inflight
        attempt(scen_rpc, pipe + ", callee and callers together", "1 process", m_one, one.url(), one.url(), s, k)
        attempt(scen_rpc, pipe + ", callee and callers together", f"{cfg.workers} workers (all on w0)", m_many,
                many.url("w0"), many.url("w0"), s, k)  # fmt: skip
        attempt(scen_rpc, pipe + ", callee and callers apart", f"{cfg.workers} workers (callee w0, callers w1)",
                m_many, many.url("w1"), many.url("w0"), s, k)  # fmt: skip
        cap = f"RPC capacity, {cfg.rpc_procs} caller processes x {s}x{k}, 2 callees"
        saved_procs = cfg.procs
        cfg.procs = cfg.rpc_procs
        for label, meter, node in (("1 process", m_one, one), (f"{cfg.workers} workers (spread by the kernel)",
                                                                m_many, many)):  # fmt: skip
            attempt(scen_rpc_shared, cap, label, meter, node, cfg.rpc_procs * s, k)
        if crossbar is not None:
            m_cb = Metered("crossbar", {"crossbar": crossbar.metered_pids()[0]})
            attempt(scen_rpc_shared, cap, "Crossbar.io (one router worker)", m_cb, crossbar, cfg.rpc_procs * s, k)
        if proxied is not None:
            m_px = Metered(proxied.name, proxied.labelled_pids())
            attempt(scen_rpc_shared, cap, f"Crossbar.io (router worker, {cfg.workers} proxy workers)", m_px, proxied,
                    cfg.rpc_procs * s, k)  # fmt: skip
        cfg.procs = saved_procs
        fan = f"fan-out 1->{cfg.fanout} (per delivery)"
        parts = split(cfg.fanout, cfg.workers)
        attempt(scen_pubsub, fan, "1 process", m_one, one.url(), [(one.url(), n) for n in parts], cfg.fanout_window)
        spread_label = "/".join(map(str, parts))
        attempt(scen_pubsub, fan, f"{cfg.workers} workers (publisher w0, subscribers {spread_label})", m_many,
                many.url("w0"), [(many.url(f"w{i}"), n) for i, n in enumerate(parts)],
                cfg.fanout_window)  # fmt: skip
        if crossbar is not None:
            attempt(scen_pubsub, fan, "Crossbar.io (one router worker)", m_cb, crossbar.ws_url,
                    [(crossbar.ws_url, n) for n in parts], cfg.fanout_window)  # fmt: skip
        if proxied is not None:
            attempt(scen_pubsub, fan, f"Crossbar.io (router worker, {cfg.workers} proxy workers)", m_px,
                    proxied.ws_url, [(proxied.ws_url, n) for n in parts], cfg.fanout_window)  # fmt: skip
    except KeyboardInterrupt:
        failed = True
    finally:
        for node in (one, many, shared, crossbar, proxied):
            if node is not None:
                node.stop()

    print()
    print(f"Workers benchmark: {cfg.duration:.1f} s windows, {os.cpu_count()} CPUs, "
          f"{time.monotonic() - t_begin:.0f} s total. Router CPU = utime+stime over the window of every process of "
          "the node (parent, workers, nats-server) / operations.")  # fmt: skip
    print()
    print(run.md_table(["setup", "start to first WELCOME s", "all workers WELCOMing s", "idle RSS MB (all processes)"],
                       [[k, fmt(v.get("first_welcome_s"), 2), fmt(v.get("all_workers_s"), 2), fmt(v.get("idle_rss_mb"))]
                        for k, v in starts.items()]))  # fmt: skip
    print()
    print(run.md_table(["sockets", "100 connections one after the other", "200 at once"],
                       [[k, str(a), str(b)] for k, (a, b) in spreads.items()]))  # fmt: skip
    print()
    body = []
    base: dict[str, dict] = {}
    for r in rows:
        if "error" in r:
            body.append([r["scenario"], r["setup"], "error: " + r["error"][:80], "", "", "", "", "", ""])
            continue
        key = r["scenario"].replace("callee and callers apart", "callee and callers together")
        if r["setup"] == "1 process":
            base[key] = r
        b = base.get(key)
        ratio = "-" if b is None or b is r else fmt(r["cpu_us_per_op"] / b["cpu_us_per_op"], 2)
        throughput = "-" if b is None or b is r else fmt(r["ops_per_s"] / b["ops_per_s"], 2)
        body.append([r["scenario"], r["setup"], fmt(r["ops_per_s"], 0), throughput, fmt(r["lat_p50_ms"], 2),
                     fmt(r["cpu_us_per_op"], 1), ratio,
                     " / ".join(f"{k} {v:.1f}" for k, v in r["cpu_us_per_op_by_process"].items()),
                     fmt(r["gen_cpu_pct"], 0), r["problems"]])  # fmt: skip
    print(run.md_table(["scenario", "setup", "ops/s", "ops/s vs 1 process", "p50 ms", "router CPU µs/op",
                        "CPU vs 1 process", "µs/op by process", "gen CPU %", "problems"], body))  # fmt: skip
    print()
    out = cfg.json or os.path.join(BENCH_DIR, "results", f"workers-bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"config": vars(cfg), "rows": rows, "starts": starts, "spreads": spreads}, f, indent=1)
    log(f"raw results: {out}")
    if not failed:
        import shutil

        shutil.rmtree(cfg.tmp, ignore_errors=True)
    return 1 if failed else 0


def scen_rpc_shared(cfg, kind: str, setup: str, meter: Metered, node, sessions: int, inflight: int) -> dict:
    """Two callees of one shared registration (roundrobin), on w0 and w1 for a node with workers;
    callers in cfg.procs processes whose connections land where the kernel puts them."""
    workers: list[run.Worker] = []
    tag = "cap-" + "".join(ch if ch.isalnum() else "_" for ch in setup)
    base = cluster_bench.base_spec
    try:
        callees = []
        for i in range(2):
            url = node.url(f"w{i}") if isinstance(node, WorkerNode) else node.ws_url
            w = run.Worker(dict(base(url, cfg), role="callee", procedure=cluster_bench.PROC, invoke="roundrobin"),
                           cfg.tmp, f"{tag}-callee{i}")  # fmt: skip
            workers.append(w)
            callees.append(w)
            w.expect("READY", 60)
        asyncio.run(cluster_bench._call_until_routed(node.ws_url, cfg.realm, cluster_bench.PROC))
        callers = []
        for i, n in enumerate(split(sessions, cfg.procs)):
            w = run.Worker(dict(base(node.ws_url, cfg), role="callers", procedure=cluster_bench.PROC, sessions=n,
                                inflight=inflight), cfg.tmp, f"{tag}-callers{i}")  # fmt: skip
            workers.append(w)
            callers.append(w)
        for w in callers:
            w.expect("READY", 60)
        t0, t1, cpu = cluster_bench.window(meter, [*callees, *callers], cfg.warmup, cfg.duration)
        results = [w.result(30) for w in callers]
        for w in callees:
            w.send("STOP")
        cres = [w.result(15) for w in callees]
        for r in cres:
            r["ops"] = 0
            r.pop("lat_ns", None)
        return cluster_bench.summarize(kind, setup, meter, t0, t1, cpu, [*results, *cres], {
            "bad_results": sum(r["bad_results"] for r in results),
            "undrained": sum(r["undrained"] for r in results),
        })  # fmt: skip
    finally:
        for w in workers:
            w.finish()


if __name__ == "__main__":
    sys.exit(main())
