"""The web console: a path service of the ``web`` transport (off unless configured).

A ``console`` path serves one page (index.html, console.js, console.css from this package, and the
configured AutobahnJS browser build) and its own WAMP WebSocket endpoint at ``<path>/ws``. That
endpoint offers only ticket authentication against the console's own principals; a console user
joins one of the console's realms under the role :data:`CONSOLE_ROLE`, which the node adds to each
of those realms with permission to call, publish and subscribe on every URI (the meta API
included). The page then reads sessions, registrations and subscriptions with the meta API, keeps
them live with the meta events, and calls, publishes and watches events as the user asks.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ...router.auth import (
    Accept,
    Action,
    Challenge,
    HelloInfo,
    Identity,
    MaybeAwaitable,
    Permission,
    Reject,
    RoleAuthorizer,
)
from ...router.authenticators import verify_ticket
from ...router.session import SessionOptions
from ...transport.web import FixedService, Service, StaticService, WampService
from ...transport.websocket import WebSocketSettings
from ...wamp import errors
from ...wamp.serializers import SERIALIZERS

if TYPE_CHECKING:
    from ...router.router import Router
    from ..config import ConsolePath, NodeConfig

log = logging.getLogger("cloverleaf.node.console")

#: the authrole of console users on every realm the console manages
CONSOLE_ROLE = "cloverleaf.console"

#: the page's own files, shipped in this package
PAGE_DIRECTORY = Path(__file__).resolve().parent
PAGE_FILES = ("index.html", "console.js", "console.css")

#: what the console role may do when a realm does not define the role itself
CONSOLE_PERMISSIONS = [Permission("", "prefix", frozenset({Action.CALL, Action.PUBLISH, Action.SUBSCRIBE}))]

#: response headers of the console's files: never cached, never framed, scripts and connections
#: only from the node itself
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; "
        "object-src 'none'"
    ),
}


class ConsoleError(OSError):
    """The console cannot be served (a missing AutobahnJS file, an unknown realm).

    An :class:`OSError`, so ``cloverleaf start`` reports it in one line, as it does a port in use.
    """


def console_paths(config: NodeConfig) -> list[tuple[str, str, ConsolePath, dict[str, Any]]]:
    """Every console path of the config: (key path, URL path, its config, its transport's paths)."""
    from ..config import ConsolePath, WebTransport

    found = []
    for index, transport in enumerate(config.transports):
        if isinstance(transport, WebTransport):
            for path, service in transport.paths.items():
                if isinstance(service, ConsolePath):
                    found.append((f'transports[{index}].paths["{path}"]', path, service, dict(transport.paths)))
    return found


def websocket_path(path: str) -> str:
    """The URL path of the console's WAMP endpoint."""
    return path.rstrip("/") + "/ws"


def _problems(where: str, path: str, console: ConsolePath, siblings: dict[str, Any], config: NodeConfig) -> list[str]:
    problems = []
    realms = [realm.name for realm in config.realms]
    for index, realm in enumerate(console.realms):
        if realm not in realms:
            problems.append(f"{where}.realms[{index}]: no realm '{realm}' is configured (configured: "
                            f"{', '.join(realms)})")  # fmt: skip
    script = config.resolve(console.autobahn_js)
    try:
        with open(script, "rb"):
            pass
    except OSError as exc:
        problems.append(f"{where}.autobahn_js: cannot read {script}: {exc.strerror or exc} (AutobahnJS's browser "
                        "build: autobahn.min.js from the npm package autobahn-browser)")  # fmt: skip
    ws_root = websocket_path(path)
    if any((other.rstrip("/") or "/") == ws_root for other in siblings):
        problems.append(f"{where}: the console's WebSocket path {ws_root} is configured as a path of its own too")
    return problems


def console_problems(config: NodeConfig) -> list[str]:
    """What keeps the configured consoles from being served: unknown realms, an unreadable AutobahnJS
    file, a path taken by the console's WebSocket; one line per problem, naming the key path."""
    problems = []
    for where, path, console, siblings in console_paths(config):
        problems += _problems(where, path, console, siblings, config)
    return problems


def check_consoles(config: NodeConfig) -> None:
    """Raise :class:`ConsoleError` with the first problem of :func:`console_problems`."""
    problems = console_problems(config)
    if problems:
        raise ConsoleError(problems[0])


class ConsoleAuthenticator:
    """``ticket`` against the console's principals, for the console's realms only.

    Every HELLO with an authid is challenged; the ticket, the authid and the realm are checked
    together after AUTHENTICATE and a failure never says which was wrong (an unknown authid costs
    the same hash verification as a known one). Hashes are verified in a worker thread, at most
    :attr:`concurrency` at a time: argon2id takes tens of milliseconds and 64 MiB by default, which
    neither the router's event loop nor a crowd of guessers should get to spend at once.
    """

    method = "ticket"

    def __init__(self, tickets: dict[str, str], realms: list[str], concurrency: int = 2) -> None:
        self.tickets = dict(tickets)
        self.realms = list(realms)
        self.concurrency = concurrency
        #: verified against when the authid is unknown, so that answering takes as long
        self._decoy = next(iter(self.tickets.values()))
        self._verifying = asyncio.Semaphore(concurrency)

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        if not hello.authid:
            return Reject(errors.AUTHENTICATION_FAILED, "ticket authentication needs an authid")
        if hello.realm not in self.realms:
            # the console's realms are no secret (the login page lists them): say what is wrong
            return Reject(errors.NO_SUCH_REALM, f"this console manages the realms {', '.join(self.realms)}, "
                                                f"not '{hello.realm}'")  # fmt: skip
        return Challenge({})

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return self._verify(hello, signature)

    async def _verify(self, hello: HelloInfo, signature: str) -> Accept | Reject:
        authid = hello.authid or ""
        stored = self.tickets.get(authid)
        async with self._verifying:
            ok = await asyncio.to_thread(verify_ticket, signature, stored or self._decoy)
        if not ok or stored is None or hello.realm not in self.realms:
            return Reject()
        return Accept(Identity(authid, CONSOLE_ROLE, self.method, "console", {"realms": list(self.realms)}))


def add_console_role(router: Router, realm_name: str) -> None:
    """Give ``realm_name`` the console role, unless its config defines the role itself."""
    realm = router.realms[realm_name]
    authorizer = realm.authorizer
    if authorizer.knows_role(CONSOLE_ROLE):
        return  # the realm's own definition (e.g. a narrower one) stands
    if not isinstance(authorizer, RoleAuthorizer):
        log.warning("realm %s: cannot add the console role to a %s", realm_name, type(authorizer).__name__)
        return
    authorizer.add_role(CONSOLE_ROLE, CONSOLE_PERMISSIONS)


def console_services(
    path: str, console: ConsolePath, config: NodeConfig, router: Router, handshake_timeout: float = 10.0
) -> dict[str, Service]:
    """The services of a console at ``path``: the page and its WAMP endpoint; adds the console role to
    the console's realms. Raise :class:`ConsoleError` when a realm is unknown or AutobahnJS is missing."""
    root = path.rstrip("/") or "/"
    for where, _, found, siblings in console_paths(config):
        if found is console:
            problems = _problems(where, path, console, siblings, config)
            if problems:
                raise ConsoleError(problems[0])
    script = config.resolve(console.autobahn_js)
    for realm in console.realms:
        add_console_role(router, realm)
    files = {name: PAGE_DIRECTORY / name for name in PAGE_FILES}
    files["autobahn.min.js"] = script
    page = StaticService(None, ("index.html",), 0, files, SECURITY_HEADERS)
    tickets = {authid: principal.ticket for authid, principal in console.principals.items()}
    ws_root = websocket_path(root)
    settings = WebSocketSettings(
        path=ws_root,
        serializers=[SERIALIZERS["json"]],
        session=SessionOptions([ConsoleAuthenticator(tickets, console.realms)]),
        allowed_origins=console.allowed_origins if console.allowed_origins is not None else ["*"],
        handshake_timeout=handshake_timeout,
    )
    log.info("web console on %s for realm%s %s", root, "s" if len(console.realms) > 1 else "",
             ", ".join(console.realms))  # fmt: skip
    realms = orjson.dumps({"realms": list(console.realms)})
    return {
        root: page,
        ws_root: WampService(settings, same_origin=console.allowed_origins is None),
        # the login form's realm list (names only; the page cannot know them before a login)
        root.rstrip("/") + "/realms.json": FixedService(realms, {"Content-Type": "application/json",
                                                                 "Cache-Control": "no-store"}),
    }


__all__ = [
    "CONSOLE_ROLE",
    "ConsoleAuthenticator",
    "ConsoleError",
    "check_consoles",
    "console_problems",
    "console_services",
]
