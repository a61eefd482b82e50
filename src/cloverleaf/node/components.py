"""Embedded components: Apps run inside the node, and guest programs and class components the
node supervises.

An **app** component is a :class:`cloverleaf.client.App` imported from the node folder and started
on an in-memory link (:mod:`cloverleaf.router.memory`): no socket, no framing, the same router
session as any client's. Without a ``role`` it joins under the router's trusted internal role;
with one it is authorized like any client of that role. One that cannot start (an import error, a
refused registration, an ``on_join`` hook that raises or never returns) is logged at ERROR and left
out; the node goes on.

A **guest** component is a program the node starts once its transports listen, whose output goes
to the node log line by line, which is started again when it exits (exponential backoff), and which
is stopped on shutdown: SIGTERM to its process group, SIGKILL after ``stop_timeout``.

A **class** component is an Autobahn|Python ``ApplicationSession`` subclass (Crossbar's class
components) run unchanged by :mod:`cloverleaf.node.classrunner` in a process supervised as a guest
is; it joins through a Unix socket the node opens for it alone (:class:`PrivateSockets`), or over
a transport of its own.

**http-subscriber** and **http-callee** components (:mod:`cloverleaf.node.httpout`) turn events into
HTTP requests and calls into HTTP requests, on an in-memory session like an app's.

The node starts components after its transports (the HTTP components first, then the apps in the
order listed, then the guests and class components) and stops them before the router says
GOODBYE to everyone: guests and class components first, then apps, then the HTTP components
(which deliver what the others sent last).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from ..router.internal import FixedRoleAuthenticator, TrustedAuthenticator
from ..router.memory import connect_in_memory
from ..router.session import SessionOptions
from ..wamp.serializers import MSGPACK, Serializer
from .config import (
    AppComponent,
    ClassComponent,
    GuestComponent,
    HttpCalleeComponent,
    HttpSubscriberComponent,
    NodeConfig,
    WebSocketPath,
    WebTransport,
)

if TYPE_CHECKING:
    from ..client.app import App
    from ..client.session import Session
    from ..client.transports import ClientLink, LinkOpener, LostHandler, MessageHandler
    from ..router.router import Router
    from .httpout import HttpComponentRunner

log = logging.getLogger("cloverleaf.components")
#: the lines guests write (stdout and stderr)
guest_log = logging.getLogger("cloverleaf.guest")

#: seconds an app component may take to leave on shutdown
APP_LEAVE_TIMEOUT = 2.0
#: seconds the output of a stopped guest is still read (a child of it may hold the pipe open)
OUTPUT_DRAIN_SECONDS = 1.0


# -- app components -------------------------------------------------------------------------------


class _InMemoryMethod:
    """The client's side of the in-memory authentication methods: offered in HELLO, never challenged."""

    def __init__(self, method: str, authid: str) -> None:
        self.method = method
        self.authid: str | None = authid

    def authextra(self) -> dict[str, Any]:
        return {}

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        from ..client.auth import AuthenticationFailed

        raise AuthenticationFailed(f"{self.method} is never challenged")


def in_memory_opener(router: Router, options: SessionOptions, peer: str) -> LinkOpener:
    """A client link opener connecting to ``router`` in memory (a new router session each time)."""

    async def open_link(serializer: Serializer, on_message: MessageHandler, on_lost: LostHandler) -> ClientLink:
        return connect_in_memory(router, options, serializer, on_message, on_lost, peer)

    return open_link


async def connect_component(router: Router, realm: str, role: str | None, authid: str, name: str) -> Session:
    """A client session of the node's own, on an in-memory link: under ``role``, authorized like
    any client's, or (None) under the router's trusted internal role; reconnected if the router
    ever closes it, its registrations and subscriptions made again."""
    from ..client.session import connect

    authenticator: TrustedAuthenticator | FixedRoleAuthenticator = (
        TrustedAuthenticator(authid) if role is None else FixedRoleAuthenticator(authid, role)
    )
    opener = in_memory_opener(router, SessionOptions([authenticator]), f"component:{name}")
    return await connect(f"in-memory:{name}", realm, serializer=MSGPACK, opener=opener,
                         authenticators=[_InMemoryMethod(authenticator.method, authid)])  # fmt: skip


def _cause(exc: BaseException) -> str:
    from ..wamp.errors import ApplicationError
    from .apps import AppNotFound

    if isinstance(exc, (AppNotFound, ApplicationError)):  # these say what happened (an error URI first)
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AppRunner:
    """One app component: import, start in memory, leave on stop."""

    def __init__(self, config: AppComponent, node: NodeConfig, router: Router) -> None:
        self.config = config
        self.name = config.label
        self._folder = str(node.base_dir)
        self._router = router
        self.app: App | None = None

    async def start(self, started: set[int]) -> bool:
        """Start the app; on failure log one ERROR line (the traceback at DEBUG) and return False.

        ``started`` holds the ids of the App objects other components already run: an App holds
        one session, so the same object cannot be started twice.
        """
        config = self.config
        try:
            from .apps import load_app

            app = load_app(config.app, self._folder)
            if id(app) in started:
                raise RuntimeError(f"{config.app} is already run by another component (an App holds one session; "
                                   "use a function returning a new App to run it twice)")  # fmt: skip
            authid = config.authid or f"component:{config.app}"
            authenticator: TrustedAuthenticator | FixedRoleAuthenticator = (
                TrustedAuthenticator(authid) if config.role is None else FixedRoleAuthenticator(authid, config.role)
            )
            opener = in_memory_opener(self._router, SessionOptions([authenticator]), f"component:{self.name}")
            await asyncio.wait_for(
                app.start(f"in-memory:{self.name}", config.realm, serializer=MSGPACK, opener=opener,
                          authenticators=[_InMemoryMethod(authenticator.method, authid)]),
                config.start_timeout,
            )  # fmt: skip
        except TimeoutError:
            log.error("app %s: cannot start: not started within %ss (an on_join hook must return: run long work "
                      "in a task)", self.name, config.start_timeout)  # fmt: skip
            return False
        except Exception as exc:
            log.error("app %s: cannot start: %s", self.name, _cause(exc))
            log.debug("app %s: start failed", self.name, exc_info=True)
            return False
        started.add(id(app))
        self.app = app
        log.info("app %s: running on realm %s as %s", self.name, config.realm, config.role or "the trusted role")
        return True

    async def stop(self) -> None:
        app, self.app = self.app, None
        if app is None:
            return
        try:
            await app.stop(timeout=APP_LEAVE_TIMEOUT)
        except Exception as exc:
            log.warning("app %s: leaving failed: %s", self.name, _cause(exc))


# -- guest components -----------------------------------------------------------------------------


class GuestNotStartable(Exception):
    """The guest's program cannot be run (missing executable or working directory)."""


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"code {code}"


def resolve_executable(config: GuestComponent, node: NodeConfig, env: Mapping[str, str]) -> str:
    """The program to run: looked up on the guest's PATH when the name has no "/", else resolved
    against the node folder; raise :class:`GuestNotStartable` when there is none."""
    executable = config.executable
    if os.sep not in executable and "/" not in executable:
        found = shutil.which(executable, path=env.get("PATH", os.defpath))
        if found is None:
            raise GuestNotStartable(f"executable {executable!r} not found on PATH")
        return found
    path = node.resolve(executable)
    if not path.is_file():
        raise GuestNotStartable(f"executable {str(path)!r} does not exist")
    if not os.access(path, os.X_OK):
        raise GuestNotStartable(f"{str(path)!r} is not executable")
    return str(path)


def guest_cwd(config: GuestComponent | ClassComponent, node: NodeConfig) -> Path:
    cwd = node.resolve(config.cwd or ".")
    if not cwd.is_dir():
        raise GuestNotStartable(f"working directory {str(cwd)!r} does not exist")
    return cwd


#: the config of a program the node supervises
ProgramT = TypeVar("ProgramT", GuestComponent, ClassComponent)


class SupervisedRunner(Generic[ProgramT]):
    """One supervised program (a guest, or a class component's runner): a supervisor task that
    starts, watches and restarts it. Subclasses say what to run (:meth:`command`)."""

    #: what its log lines call it
    kind = "program"

    def __init__(self, config: ProgramT, node: NodeConfig) -> None:
        self.config: ProgramT = config
        self.name = config.label
        #: how its log lines name it ("guest worker", "class app.Backend")
        self.who = f"{self.kind} {self.name}"
        self._node = node
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._output: set[asyncio.Task[None]] = set()
        #: the running process (None between runs)
        self.process: asyncio.subprocess.Process | None = None
        #: how many times the program was started
        self.starts = 0

    def command(self, env: Mapping[str, str]) -> list[str]:
        """The program and its arguments (raise :class:`GuestNotStartable` when there is none)."""
        raise NotImplementedError

    def environment(self, env_defaults: Mapping[str, str]) -> dict[str, str]:
        return {**env_defaults, **os.environ, **self.config.env}

    def start(self, env_defaults: Mapping[str, str]) -> None:
        env = self.environment(env_defaults)
        self._task = asyncio.get_running_loop().create_task(self._supervise(env), name=self.who)

    async def stop(self) -> None:
        """SIGTERM the running program, SIGKILL it after ``stop_timeout``; no restart after this."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._output:
            await asyncio.wait(self._output, timeout=OUTPUT_DRAIN_SECONDS)
            for task in self._output:
                task.cancel()

    async def _supervise(self, env: dict[str, str]) -> None:
        try:
            await self._keep_running(env)
        except Exception:  # a bug here must not take the node's shutdown with it
            log.exception("%s: supervision failed", self.who)
            process = self.process
            if process is not None and process.returncode is None:
                self._signal(process, signal.SIGKILL)

    async def _keep_running(self, env: dict[str, str]) -> None:
        restart = self.config.restart
        loop = asyncio.get_running_loop()
        delay = restart.initial_delay
        while not self._stopping.is_set():
            began = loop.time()
            try:
                code = await self._run_once(env)
            except (GuestNotStartable, OSError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if self.starts == 0:
                    # Never ran: a mistake in the config, which waiting does not fix (`cloverleaf check` tells).
                    log.error("%s: cannot start: %s (not retried)", self.who, reason)
                    return
                log.error("%s: cannot start again: %s; next attempt in %.1fs", self.who, reason, delay)
            else:
                if code is None or self._stopping.is_set():
                    return  # stopped by the node (or exited just as it was about to be)
                lasted = loop.time() - began
                if lasted >= restart.reset_after:
                    delay = restart.initial_delay
                if restart.policy == "never" or (restart.policy == "on_failure" and code == 0):
                    log.log(logging.INFO if code == 0 else logging.WARNING,
                            "%s: exited with %s after %.1fs (restart policy %s: not restarted)",
                            self.who, _describe_exit(code), lasted, restart.policy)  # fmt: skip
                    return
                log.warning("%s: exited with %s after %.1fs; restarting in %.1fs",
                            self.who, _describe_exit(code), lasted, delay)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * restart.factor, restart.max_delay)

    async def _run_once(self, env: dict[str, str]) -> int | None:
        """Run the program once; return its exit code, or None when the node stopped it."""
        config = self.config
        command = self.command(env)
        process = await asyncio.create_subprocess_exec(
            *command, cwd=guest_cwd(config, self._node), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: terminal signals are the node's to pass on
        )  # fmt: skip
        self.process = process
        self.starts += 1
        log.info("%s: started (pid %d): %s", self.who, process.pid, " ".join(command))
        loop = asyncio.get_running_loop()
        for stream, suffix in ((process.stdout, ""), (process.stderr, " (stderr)")):
            if stream is not None:
                task = loop.create_task(self._forward(stream, suffix))
                self._output.add(task)
                task.add_done_callback(self._output.discard)
        exited = loop.create_task(process.wait())
        stopping = loop.create_task(self._stopping.wait())
        try:
            await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        try:
            if exited.done():
                self._end_leftovers(process)
                return exited.result()
            await self._terminate(process, exited)
            return None
        finally:
            self.process = None

    async def _terminate(self, process: asyncio.subprocess.Process, exited: asyncio.Task[int]) -> None:
        timeout = self.config.stop_timeout
        log.info("%s: stopping (SIGTERM, pid %d)", self.who, process.pid)
        self._signal(process, signal.SIGTERM)
        done, _ = await asyncio.wait((exited,), timeout=timeout)
        if not done:
            log.warning("%s: still running %ss after SIGTERM: killing it (SIGKILL)", self.who, timeout)
            self._signal(process, signal.SIGKILL)
            await exited
        log.info("%s: stopped (%s)", self.who, _describe_exit(exited.result()))

    def _end_leftovers(self, process: asyncio.subprocess.Process) -> None:
        """The guest exited: what it started and left in its process group gets SIGTERM (as systemd
        does before a restart), so restarts do not pile up orphans."""
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return  # nothing left: the usual case
        log.info("%s: sent SIGTERM to the processes it left behind", self.who)

    @staticmethod
    def _signal(process: asyncio.subprocess.Process, signum: signal.Signals) -> None:
        """Signal the guest's process group (what it started goes too), or the process alone."""
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    async def _forward(self, stream: asyncio.StreamReader, suffix: str) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line beyond the stream's limit (64 KiB): dropped by readline
                guest_log.info("%s%s: [a line over 64 KiB was left out]", self.name, suffix)
                continue
            if not line:
                return
            guest_log.info("%s%s: %s", self.name, suffix, line.decode("utf-8", "replace").rstrip("\r\n"))


# -- class components -----------------------------------------------------------------------------

#: Unix socket paths are limited to about 100 bytes: a private folder deeper than this is made in /tmp
_MAX_SOCKET_FOLDER = 80


class GuestRunner(SupervisedRunner[GuestComponent]):
    """A guest: the program its config names."""

    kind = "guest"

    def command(self, env: Mapping[str, str]) -> list[str]:
        return [resolve_executable(self.config, self._node, env), *self.config.arguments]


class ClassRunner(SupervisedRunner[ClassComponent]):
    """A class component: :mod:`cloverleaf.node.classrunner` in this node's Python, supervised
    like a guest, joining through ``transport`` (the node's private socket for it, or its own)."""

    kind = "class"

    def __init__(self, config: ClassComponent, node: NodeConfig) -> None:
        super().__init__(config, node)
        #: the Autobahn Component transport it connects over (set before start)
        self.transport: dict[str, Any] | None = (
            config.transport.model_dump() if config.transport is not None else None
        )

    def command(self, env: Mapping[str, str]) -> list[str]:
        config = self.config
        assert self.transport is not None
        arguments = [sys.executable, "-m", "cloverleaf.node.classrunner", "--classname", config.classname,
                     "--realm", config.realm, "--transport", json.dumps(self.transport, separators=(",", ":"))]
        if config.extra is not None:
            arguments += ["--extra", json.dumps(config.extra, separators=(",", ":"))]
        return arguments

    def environment(self, env_defaults: Mapping[str, str]) -> dict[str, str]:
        env = super().environment(env_defaults)
        folders = [str(self._node.resolve(folder)) for folder in self.config.pythonpath]
        if folders:
            env["PYTHONPATH"] = os.pathsep.join([*folders, *filter(None, [env.get("PYTHONPATH")])])
        return env


class PrivateSockets:
    """The Unix sockets class components join through: one per component, in a folder only this
    node's user may enter (0700), each admitting its clients as that component's authid and role
    (authorized like any client's). Removed when the node stops."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self.folder: str | None = None
        self._servers: list[asyncio.Server] = []

    async def open(self, runner: ClassRunner) -> None:
        from ..transport.rawsocket import RawSocketSettings, serve_rawsocket_unix
        from ..wamp.serializers import CBOR, JSON

        if self.folder is None:
            parent = tempfile.gettempdir()
            self.folder = tempfile.mkdtemp(prefix="cloverleaf-",
                                           dir=parent if len(parent) < _MAX_SOCKET_FOLDER else "/tmp")  # fmt: skip
        path = os.path.join(self.folder, f"{len(self._servers)}.sock")
        config = runner.config
        authenticator = FixedRoleAuthenticator(config.authid or f"component:{config.classname}", config.role,
                                               method="anonymous")  # fmt: skip
        settings = RawSocketSettings(serializers=[CBOR, MSGPACK, JSON], session=SessionOptions([authenticator]))
        self._servers.append(await serve_rawsocket_unix(self._router, settings, path))
        runner.transport = {"type": "rawsocket", "url": "rs://localhost", "endpoint": {"type": "unix", "path": path}}

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


# -- all of them ----------------------------------------------------------------------------------


def wamp_url(addresses: list[str], config: NodeConfig) -> str | None:
    """The address a local guest connects to: plain before TLS, WebSocket, RawSocket, Unix socket.

    A web transport's address (http://host:port) becomes ws://host:port/path with the path of its
    first WebSocket service.
    """
    websocket_paths: dict[int, str] = {}  # configured port -> first WAMP WebSocket path
    for transport in config.transports:
        if isinstance(transport, WebTransport):
            for path, service in transport.paths.items():
                if isinstance(service, WebSocketPath):
                    websocket_paths.setdefault(transport.endpoint.port, path.rstrip("/") or "/")
                    break
    candidates: list[str] = []
    for address in addresses:
        scheme, sep, rest = address.partition("://")
        if scheme in ("http", "https"):
            ws_path = websocket_paths.get(urlsplit(address).port or 0) or websocket_paths.get(0)
            if ws_path is not None:
                candidates.append(f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest.rstrip('/')}{ws_path}")
        else:
            candidates.append(address)
    for preferred in ("ws://", "rs://", "unix://", "wss://", "rss://"):
        for candidate in candidates:
            if candidate.startswith(preferred):
                return candidate
    return None


class Components:
    """The node's components, started after its transports and stopped before its router."""

    def __init__(self, config: NodeConfig, router: Router) -> None:
        self._config = config
        self.apps = [AppRunner(c, config, router) for c in config.components if isinstance(c, AppComponent)]
        self.guests = [GuestRunner(c, config) for c in config.components if isinstance(c, GuestComponent)]
        self.classes = [ClassRunner(c, config) for c in config.components if isinstance(c, ClassComponent)]
        self._sockets = PrivateSockets(router)
        self.http: list[HttpComponentRunner] = []
        outgoing = [c for c in config.components if isinstance(c, (HttpSubscriberComponent, HttpCalleeComponent))]
        if outgoing:  # (aiohttp loads only when one is configured)
            from .httpout import http_runner

            self.http = [http_runner(c, router) for c in outgoing]

    async def start(self, addresses: list[str]) -> None:
        """Start the HTTP components (all at once: an app may call or publish to them as it
        starts), then the apps one after the other (in the order listed), then the guests and
        class components (each class component's private socket listening first).

        Guests get ``CLOVERLEAF_URL`` (the node's first plain WAMP address, as ``cloverleaf run``
        reads it) and ``PYTHONUNBUFFERED=1`` (output forwarded line by line), unless the node's
        environment or the guest's ``env`` says otherwise.
        """
        await asyncio.gather(*(runner.start() for runner in self.http))
        started: set[int] = set()
        for app in self.apps:
            await app.start(started)
        defaults = {"PYTHONUNBUFFERED": "1"}
        url = wamp_url(addresses, self._config)
        if url is not None:
            defaults["CLOVERLEAF_URL"] = url
        runnable: list[SupervisedRunner[Any]] = list(self.guests)
        for runner in self.classes:
            if runner.transport is None:
                try:
                    await self._sockets.open(runner)
                except OSError as exc:  # (no writable temporary folder, say): the rest of the node runs on
                    log.error("%s: cannot start: no socket for it: %s (not retried)", runner.who,
                              exc.strerror or exc)  # fmt: skip
                    continue
            runnable.append(runner)
        for guest in runnable:
            guest.start(defaults)

    async def stop(self) -> None:
        """Stop the guests and class components (all at once: SIGTERM, then SIGKILL) and close
        their private sockets, then let the apps leave, then stop the HTTP components (all at once:
        each lets its requests finish, then closes its client)."""
        programs: list[SupervisedRunner[Any]] = [*self.guests, *self.classes]
        await asyncio.gather(*(program.stop() for program in programs))
        await self._sockets.close()
        for app in reversed(self.apps):
            await app.stop()
        await asyncio.gather(*(runner.stop() for runner in self.http))


def _find_module(module: str, folders: list[str]) -> importlib.machinery.ModuleSpec | None:
    """Where ``module`` would be imported from with ``folders`` first on sys.path (None: nowhere)."""
    added = [folder for folder in folders if folder not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.util.find_spec(module)
    except Exception:  # a parent package that fails to import, say
        return None
    finally:
        for folder in added:
            sys.path.remove(folder)


def _check_class(component: ClassComponent, config: NodeConfig, where: str) -> list[str]:
    """A class component's runtime: Autobahn in this Python, the module on its path, and Twisted
    when the module is written for it (most Crossbar components are)."""
    if _find_module("autobahn.wamp", []) is None:
        return [f"{where}: Autobahn is not installed in {sys.executable}, which runs class components "
                "(pip install autobahn there)"]  # fmt: skip
    problems = _check_class_transport(component, where)
    module = component.classname.rpartition(".")[0]
    try:
        cwd = str(guest_cwd(component, config))
    except GuestNotStartable as exc:
        return [*problems, f"{where}.cwd: {exc}"]
    folders = [cwd, *(str(config.resolve(folder)) for folder in component.pythonpath)]
    spec = _find_module(module, folders)
    if spec is None:
        return [*problems,
                f"{where}.classname: cannot find module {module!r} (in {', '.join(folders)} or on sys.path)"]
    # (a bare "twisted" namespace is left by some packages' plugins: ask for twisted.internet)
    if spec.origin and _find_module("twisted.internet", []) is None:
        with contextlib.suppress(OSError):
            if "twisted" in Path(spec.origin).read_text(errors="replace"):
                problems.append(f"{where}.classname: {component.classname} is written for Twisted, which is not "
                                f"installed in {sys.executable} (pip install twisted there)")  # fmt: skip
    return problems


def _check_class_transport(component: ClassComponent, where: str) -> list[str]:
    """A class component's own transport URL, read as Autobahn's runner will read it (its own URL
    parsers: a URL they refuse would stop the component at every start). Whether something answers
    there is not checked: `check` opens no connection."""
    transport = component.transport
    if transport is None or "endpoint" in (transport.model_extra or {}):
        return []  # (with an endpoint, Autobahn does not read the URL for the connection)
    from autobahn.rawsocket.util import parse_url as parse_rawsocket_url
    from autobahn.websocket.util import parse_url as parse_websocket_url

    url = transport.url
    # a rawsocket transport may be given a ws:// URL: Autobahn takes its host and port
    parse = parse_rawsocket_url if transport.type == "rawsocket" and url.startswith("rs") else parse_websocket_url
    try:
        parse(url)
    except Exception as exc:  # (Autobahn raises plain Exception)
        takes = "rs://, rss:// or ws://" if transport.type == "rawsocket" else "ws:// or wss://"
        return [f"{where}.transport.url: {exc} (a {transport.type} transport takes {takes} URLs)"]
    return []


def check_components(config: NodeConfig) -> list[str]:
    """What ``cloverleaf check`` can tell without running anything: app and class modules that
    cannot be found (and what a class component needs installed), guest executables and working
    directories that do not exist."""
    problems: list[str] = []
    folder = str(config.base_dir)
    for index, component in enumerate(config.components):
        where = f"components[{index}]"
        if isinstance(component, AppComponent):
            module = component.app.partition(":")[0]
            if _find_module(module, [folder]) is None:
                problems.append(f"{where}.app: cannot find module {module!r} (in {folder} or on sys.path)")
        elif isinstance(component, ClassComponent):
            problems += _check_class(component, config, where)
        elif isinstance(component, GuestComponent):
            env = {**os.environ, **component.env}
            try:
                resolve_executable(component, config, env)
            except GuestNotStartable as exc:
                problems.append(f"{where}.executable: {exc}")
            try:
                guest_cwd(component, config)
            except GuestNotStartable as exc:
                problems.append(f"{where}.cwd: {exc}")
    return problems
