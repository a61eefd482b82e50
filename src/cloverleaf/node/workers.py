"""Several worker processes for one node (`cloverleaf start --workers N`, docs/workers.md).

The parent binds every listening socket of the config, starts a private nats-server when the
config has no `cluster:` section, and runs N workers: each is `cloverleaf start` on the same
config, told by its environment (:data:`WORKER_ENV`) which sockets it inherited and which cluster
to join, so that the workers form one router through the cluster machinery (docs/cluster.md). The
parent supervises them: a worker that dies is started again on the same sockets; SIGINT/SIGTERM
stop the workers (each says GOODBYE `wamp.close.system_shutdown` to its sessions), then NATS. A
worker dies with its parent (parent-death signal, and a check of its parent's pid).

Sockets: with `reuseport` (the default, measured in docs/workers.md) every worker gets a socket of
its own bound with SO_REUSEPORT, and the kernel spreads the connections; with `shared` all workers
accept from one socket. Unix sockets are always shared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..transport.rawsocket import remove_stale_socket
from .config import NodeConfig, TcpEndpoint, UnixEndpoint
from .natsserver import PrivateNats, die_with_parent

log = logging.getLogger("cloverleaf.node")

#: the environment variable that makes `cloverleaf start` a worker of a parent process
WORKER_ENV = "CLOVERLEAF_WORKER"
#: a worker that dies within this many seconds of its start counts as failing to start: the parent
#: waits longer before each new attempt (doubling, at most MAX_RESTART_DELAY)
QUICK_DEATH = 5.0
MAX_RESTART_DELAY = 10.0


@dataclass
class WorkerSpec:
    """What a worker learns from its parent."""

    index: int
    count: int
    #: the name of the worker, as logs, metrics and WELCOME (``x_cb_worker``) show it
    name: str
    #: the `cluster:` section to join (the private NATS one, or the config's own with this worker's name)
    cluster: dict[str, Any]
    #: transport index (as a string: JSON) -> the inherited listening socket's file descriptor
    sockets: dict[str, int] = field(default_factory=dict)
    parent: int = 0
    #: the node's own name in its `cluster:` section ("": the workers' private NATS)
    node: str = ""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> WorkerSpec | None:
        text = os.environ.get(WORKER_ENV)
        if not text:
            return None
        return cls(**json.loads(text))

    def socket_for(self, transport_index: int) -> socket.socket | None:
        """The inherited listening socket of ``transport_index`` (None: the worker binds it itself)."""
        fd = self.sockets.get(str(transport_index))
        return None if fd is None else socket.socket(fileno=fd)


def worker_count(configured: int | str) -> int:
    if configured == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return int(configured)


def bind_sockets(config: NodeConfig, count: int, mode: str) -> list[dict[str, int]]:
    """Listening sockets for every transport of ``config``: per worker, transport index -> fd."""
    per_worker: list[dict[str, int]] = [{} for _ in range(count)]
    for index, transport in enumerate(config.transports):
        endpoint = transport.endpoint
        if isinstance(endpoint, UnixEndpoint):
            remove_stale_socket(endpoint.path)
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.bind(endpoint.path)
            unix.listen(socket.SOMAXCONN)
            fd = unix.detach()  # one descriptor, shared by every worker
            for worker in per_worker:
                worker[str(index)] = fd
            continue
        assert isinstance(endpoint, TcpEndpoint)
        port = endpoint.port
        shared: int | None = None
        for worker in per_worker:
            if mode == "shared" and shared is not None:
                worker[str(index)] = shared
                continue
            infos = socket.getaddrinfo(endpoint.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if mode == "reuseport":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(socket.SOMAXCONN)
            sock.set_inheritable(True)
            port = sock.getsockname()[1]  # a port 0 in the config: every worker's socket on the same one
            worker[str(index)] = shared = sock.detach()
    for worker in per_worker:
        for fd in worker.values():
            os.set_inheritable(fd, True)
    return per_worker


class Supervisor:
    """The parent of a node's workers."""

    def __init__(self, config: NodeConfig, config_file: str | None, count: int, log_level: str | None,
                 listen_mode: str = "reuseport") -> None:  # fmt: skip
        self.config = config
        self.config_file = config_file
        self.count = count
        self.log_level = log_level
        self.listen_mode = listen_mode
        self.nats: PrivateNats | None = None
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self.started_at = [0.0] * count
        self.delays = [0.5] * count
        self.restarts = 0
        self._stopping = False

    def _cluster_section(self, index: int) -> dict[str, Any]:
        own = self.config.cluster
        if own is not None:
            section = own.model_dump(exclude_none=True)
            section["node"] = f"{own.node}-w{index}"
            return section
        assert self.nats is not None
        return {"name": "workers", "node": f"w{index}",
                "nats": {"servers": [self.nats.url], "token": self.nats.token}}  # fmt: skip

    def _spawn(self, index: int, sockets: dict[str, int]) -> None:
        own = self.config.cluster
        spec = WorkerSpec(index, self.count, f"w{index}", self._cluster_section(index), sockets, os.getpid(),
                          own.node if own is not None else "")
        command = [sys.executable, "-m", "cloverleaf", "start"]
        if self.config_file:
            command += ["--config", self.config_file]
        if self.log_level:
            command += ["--log-level", self.log_level]
        env = dict(os.environ, **{WORKER_ENV: spec.to_env()})
        process = subprocess.Popen(command, env=env, pass_fds=sorted(set(sockets.values())), stdin=subprocess.DEVNULL,
                                   preexec_fn=die_with_parent)  # fmt: skip
        self.processes[index] = process
        self.started_at[index] = time.monotonic()
        log.info("worker w%d started (pid %d)", index, process.pid)

    def run(self) -> int:
        """Run the node until SIGINT/SIGTERM; the exit status."""
        stop_signals = (signal.SIGINT, signal.SIGTERM)

        def request_stop(signum: int, _frame: Any) -> None:
            self._stopping = True

        for signum in stop_signals:
            signal.signal(signum, request_stop)
        if hasattr(signal, "SIGHUP"):  # reload TLS certificates: every worker does it
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self._forward(signal.SIGHUP))
        if self.config.cluster is None:
            self.nats = PrivateNats()
            self.nats.start()
        try:
            sockets = bind_sockets(self.config, self.count, self.listen_mode)
        except OSError:
            if self.nats is not None:
                self.nats.stop()
            raise
        log.info("node with %d workers (%s sockets)%s", self.count, self.listen_mode,
                 "" if self.config.cluster else ", joined through a private NATS")  # fmt: skip
        try:
            for index in range(self.count):
                self._spawn(index, sockets[index])
            while not self._stopping:
                time.sleep(0.1)
                for index, process in enumerate(self.processes):
                    if process is None or process.poll() is None or self._stopping:
                        continue
                    self._restart(index, process, sockets[index])
        finally:
            self._stop_workers()
            if self.nats is not None:
                self.nats.stop()
            for fd in {fd for fds in sockets for fd in fds.values()}:
                with contextlib.suppress(OSError):
                    os.close(fd)
            for transport in self.config.transports:  # the socket files this parent bound
                if isinstance(transport.endpoint, UnixEndpoint):
                    remove_stale_socket(transport.endpoint.path)
        log.info("node stopped (%d worker restarts)", self.restarts)
        return 0

    def _forward(self, signum: int) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signum)

    def _restart(self, index: int, process: subprocess.Popen[bytes], sockets: dict[str, int]) -> None:
        lived = time.monotonic() - self.started_at[index]
        if lived < QUICK_DEATH:
            delay = self.delays[index]
            self.delays[index] = min(delay * 2, MAX_RESTART_DELAY)
        else:
            delay = self.delays[index] = 0.5
        log.error("worker w%d (pid %d) exited with status %s after %.1f s: starting it again in %.1f s",
                  index, process.pid, process.returncode, lived, delay)  # fmt: skip
        self.processes[index] = None
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._stopping:
            time.sleep(0.05)
        if not self._stopping:
            self.restarts += 1
            self._spawn(index, sockets)

    def _stop_workers(self) -> None:
        live = [process for process in self.processes if process is not None and process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout + 10.0
        for process in live:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time: killed", process.pid)
                process.kill()
                process.wait()
