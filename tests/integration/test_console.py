"""The web console: a page served by the node, its own ticket-authenticated WAMP endpoint, the meta
API from a browser."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RouterProcess, free_port, launch_router, router_config

from cloverleaf.client import (
    NO_RECONNECT,
    ApplicationError,
    PublishOptions,
    Session,
    SubscribeOptions,
    TicketAuth,
    connect,
)
from cloverleaf.node.config import ConfigError, parse_config
from cloverleaf.wamp.auth import hash_ticket

PASSWORD = "console-secret"
#: cheap argon2id parameters: every login verifies the hash, and the tests log in often
TICKET_HASH = hash_ticket(PASSWORD, salt=b"console-test-salt", iterations=1, memory=8192, parallelism=1)
REPOSITORY = Path(__file__).resolve().parents[2]
#: the event stream's rows as [topic, args, kwargs] texts
EVENT_ROWS = (
    "[...document.querySelectorAll('#events tbody tr')].map((row) => [...row.cells].slice(1).map((c) => c.textContent))"
)


class Console:
    def __init__(self, router: RouterProcess, port: int, plain_port: int, autobahn_js: Path, real: bool) -> None:
        self.router = router
        self.port = port
        #: a web transport without a console path
        self.plain_port = plain_port
        self.autobahn_js = autobahn_js
        #: whether autobahn_js is AutobahnJS (npm could fetch it) or a stand-in
        self.real_autobahn = real

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/console/ws"

    @property
    def client_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


def console_path(**overrides: Any) -> dict[str, Any]:
    return {"type": "console", "realms": ["realm1"], "principals": {"admin": {"ticket": TICKET_HASH}}, **overrides}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "web" / "js").mkdir(parents=True)
    try:
        autobahn_js: Path | None = request.getfixturevalue("autobahn_browser_js")
    except pytest.skip.Exception:  # no npm: everything but the browser test runs on a stand-in
        autobahn_js = None
    script = tmp / "web" / "js" / "autobahn.min.js"  # the default autobahn_js
    if autobahn_js is None:
        script.write_text("/* a stand-in for AutobahnJS */")
    else:
        shutil.copyfile(autobahn_js, script)
    port, plain_port = free_port(), free_port()

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path, limits={"auth_failures_free": 50})
        config["realms"].append({"name": "realm2"})
        config["transports"] += [
            {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}, "paths": {
                "/console": console_path(realms=["realm1", "realm2"]), "/ws": {"type": "websocket"},
            }},
            {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": plain_port}, "paths": {
                "/ws": {"type": "websocket"}, "/info": {"type": "nodeinfo"},
            }},
        ]  # fmt: skip
        return config

    router = launch_router(tmp, make_config, wait_ports=(port, plain_port))
    yield Console(router, port, plain_port, script, autobahn_js is not None)
    code = router.stop()
    assert code == 0, router.log()
    assert "Traceback" not in router.log(), router.log()


@pytest.fixture
async def client(console: Console) -> AsyncIterator[Session]:
    """An ordinary client on the web transport's /ws path (anonymous)."""
    session = await connect(console.client_url, "realm1", reconnect=NO_RECONNECT)
    yield session
    await session.leave()


async def console_login(console: Console, realm: str = "realm1", authid: str = "admin",
                        password: str = PASSWORD) -> Session:  # fmt: skip
    return await connect(console.url, realm, authenticators=[TicketAuth(authid, password)], reconnect=NO_RECONNECT)


def login_steps(realm: str = "realm1") -> list[dict[str, Any]]:
    """Browser steps that sign the console page in as admin on ``realm`` (picked from the list)."""
    return [
        {"wait_for": f"[...document.querySelectorAll('#login-realm option')].some((o) => o.value === '{realm}')"},
        {"fill": "#login-user", "value": "admin"},
        {"fill": "#login-password", "value": PASSWORD},
        {"select": "#login-realm", "value": realm},
        {"click": "#login-button"},
    ]


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- WAMP: the console's own endpoint ------------------------------------------------------------


async def test_wrong_password_and_unknown_user_are_refused(console: Console) -> None:
    for authid, password in (("admin", "wrong"), ("nobody", PASSWORD)):
        with pytest.raises(ApplicationError) as refused:
            await console_login(console, authid=authid, password=password)
        assert refused.value.error == "wamp.error.authentication_failed"


async def test_console_user_joins_with_the_console_role(console: Console, client: Session) -> None:
    session = await console_login(console)
    try:
        assert session.details["authid"] == "admin"
        assert session.details["authrole"] == "cloverleaf.console"
        assert session.details["authmethod"] == "ticket"
        assert session.details["authextra"] == {"realms": ["realm1", "realm2"]}
        listed = await session.call("wamp.session.list")
        assert client.session_id in listed and session.session_id in listed
        described = await session.call("wamp.session.get", client.session_id)
        assert described["authrole"] == "anonymous" and described["transport"]["type"] == "websocket"
        # call, publish, subscribe on any URI; register is not the console's business
        await client.register("com.example.add", lambda a, b: a + b)
        assert await session.call("com.example.add", 2, 40) == 42
        publication = await session.publish("com.example.news", "hello", options=PublishOptions(acknowledge=True))
        assert publication is not None
        with pytest.raises(ApplicationError) as refused:
            await session.register("com.console.nope", lambda: None)
        assert refused.value.error == "wamp.error.not_authorized"
    finally:
        await session.leave()


async def test_realm_outside_the_console_is_refused_with_a_clear_message(console: Console) -> None:
    # strict.realm exists on the router, but the console does not manage it; the console's realms are
    # public (the login page lists them), so the refusal says which ones there are
    with pytest.raises(ApplicationError) as refused:
        await console_login(console, realm="strict.realm")
    assert refused.value.error == "wamp.error.no_such_realm"
    assert refused.value.args == ("this console manages the realms realm1, realm2, not 'strict.realm'",)


async def test_the_login_page_lists_the_console_realms(console: Console) -> None:
    status, headers, body = await asyncio.to_thread(http_get, console.port, "/console/realms.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body) == {"realms": ["realm1", "realm2"]}


async def test_realm_stats_for_the_live_figures(console: Console, client: Session) -> None:
    session = await console_login(console)
    try:
        before = await session.call("cloverleaf.realm.stats")
        await client.publish("com.example.counted", 1, options=PublishOptions(acknowledge=True))
        after = await session.call("cloverleaf.realm.stats")
        assert set(after) == {"sessions", "joins", "messages_received", "messages_sent", "calls_routed",
                              "events_delivered", "events_dropped", "errors_sent", "aborts"}  # fmt: skip
        assert after["sessions"] >= 2
        assert after["messages_received"] >= before["messages_received"] + 2  # the PUBLISH and the CALL
        with pytest.raises(ApplicationError) as taken:  # the router's own procedure
            await client.register("cloverleaf.realm.stats", lambda: {})
        assert taken.value.error == "wamp.error.procedure_already_exists"
    finally:
        await session.leave()


async def test_console_endpoint_offers_only_ticket(console: Console) -> None:
    with pytest.raises(ApplicationError) as refused:
        await connect(console.url, "realm1", reconnect=NO_RECONNECT)  # anonymous
    assert refused.value.error == "wamp.error.no_auth_method"


async def test_browsers_from_other_origins_are_refused(console: Console) -> None:
    def upgrade(origin: str) -> bytes:
        with socket.create_connection(("127.0.0.1", console.port), timeout=5) as sock:
            sock.sendall(
                f"GET /console/ws HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\nOrigin: {origin}\r\n\r\n".encode()
            )
            return sock.recv(4096)

    assert (await asyncio.to_thread(upgrade, "http://evil.example")).startswith(b"HTTP/1.1 403")
    assert (await asyncio.to_thread(upgrade, f"http://127.0.0.1:{console.port}")).startswith(b"HTTP/1.1 101")


# -- HTTP: the page ------------------------------------------------------------------------------


async def test_page_and_scripts_are_served(console: Console) -> None:
    status, headers, _ = await asyncio.to_thread(http_get, console.port, "/console")
    assert status == 301 and headers["Location"] == "/console/"
    status, headers, body = await asyncio.to_thread(http_get, console.port, "/console/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="autobahn.min.js"' in body and b'src="console.js"' in body
    assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, headers, body = await asyncio.to_thread(http_get, console.port, "/console/console.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and b"autobahn.Connection" in body
    status, headers, _ = await asyncio.to_thread(http_get, console.port, "/console/console.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    status, headers, body = await asyncio.to_thread(http_get, console.port, "/console/autobahn.min.js")
    assert status == 200 and body == console.autobahn_js.read_bytes()
    for path in ("/console/__init__.py", "/console/../node.yaml", "/console/js/autobahn.min.js"):
        status, _, _ = await asyncio.to_thread(http_get, console.port, path)
        assert status == 404, path
    status, _, _ = await asyncio.to_thread(http_get, console.port, "/console/ws")
    assert status == 426


async def test_no_console_unless_configured(console: Console) -> None:
    for path in ("/console", "/console/", "/console/console.js"):
        status, _, _ = await asyncio.to_thread(http_get, console.plain_port, path)
        assert status == 404


# -- configuration -------------------------------------------------------------------------------


def _config_with(path: dict[str, Any]) -> dict[str, Any]:
    return {"realms": [{"name": "realm1"}], "transports": [
        {"type": "web", "endpoint": {"port": 0}, "paths": {"/console": path}}]}  # fmt: skip


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as invalid:
        parse_config(_config_with(console_path(realms=[], principals={"admin": {"ticket": "clear"}})))
    problems = "\n".join(invalid.value.problems)
    assert 'transports[0].paths["/console"].realms: List should have at least 1 item' in problems
    assert 'transports[0].paths["/console"].principals["admin"].ticket: expected a ticket hash' in problems


def test_check_and_start_refuse_unknown_realms_and_a_missing_autobahn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloverleaf.node.cli import main

    (tmp_path / "node.yaml").write_text(yaml.safe_dump(_config_with(console_path(realms=["realm1", "realm9"]))))
    assert main(["check", str(tmp_path / "node.yaml")]) == 1
    errors = capsys.readouterr().err
    assert """transports[0].paths["/console"].realms[1]: no realm 'realm9' is configured""" in errors
    assert f'transports[0].paths["/console"].autobahn_js: cannot read {tmp_path}/web/js/autobahn.min.js' in errors
    # start stops before listening anywhere, with one line naming the key
    (tmp_path / "node.yaml").write_text(yaml.safe_dump(_config_with(console_path())))
    started = subprocess.run([sys.executable, "-m", "cloverleaf", "start", "-c", str(tmp_path / "node.yaml")],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert started.returncode == 1
    assert 'cannot start: transports[0].paths["/console"].autobahn_js: cannot read' in started.stderr


# -- the page in a browser -----------------------------------------------------------------------


async def test_console_in_a_browser(console: Console, client: Session, tmp_path: Path) -> None:
    from tests.browser import require_browser, run_browser

    require_browser()
    if not console.real_autobahn:
        pytest.skip("AutobahnJS's browser build could not be fetched (npm pack autobahn-browser)")
    await client.register("com.example.add", lambda a, b: a + b)
    await client.register("com.example.greet", lambda name: f"hello {name}")
    await client.subscribe("com.example.alerts", lambda *args, **kwargs: None)
    done = asyncio.Event()

    async def publisher() -> None:  # publishes once the page subscribed to the stream
        while not done.is_set():
            if await client.call("wamp.subscription.lookup", "com.example.news", {"match": "prefix"}) is not None:
                break
            await asyncio.sleep(0.05)
        for city, celsius in (("Lisbon", 21), ("Oslo", 4), ("Kyoto", 17)):
            await client.publish("com.example.news.weather", city, celsius=celsius)

    publishing = asyncio.get_running_loop().create_task(publisher())
    base = f"http://127.0.0.1:{console.port}/console/"
    shot = tmp_path / "console.png"
    steps: list[dict[str, Any]] = [
        {"goto": base},
        {"fill": "#login-user", "value": "admin"},
        {"fill": "#login-password", "value": "not it"},
        {"click": "#login-button"},
        {"wait_text": "#login-error", "contains": "Login failed"},
        {"fill": "#login-password", "value": PASSWORD},
        {"select": "#login-realm", "value": "realm1"},
        {"click": "#login-button"},
        # the realm's state, from the meta API
        {"wait_text": "#sessions", "contains": str(client.session_id)},
        {"wait_text": "#registrations", "contains": "com.example.greet"},
        {"wait_text": "#subscriptions", "contains": "com.example.alerts"},
        # the event stream: the Python client publishes once the page subscribed
        {"fill": "#stream-topic", "value": "com.example.news"},
        {"select": "#stream-match", "value": "prefix"},
        {"click": "#stream-button"},
        {"wait_text": "#events", "contains": "Kyoto"},
        # calls: an error, a result
        {"fill": "#call-procedure", "value": "com.example.nope"},
        {"click": "#call-button"},
        {"wait_text": "#call-result", "contains": "wamp.error.no_such_procedure"},
        {"fill": "#call-procedure", "value": "com.example.add"},
        {"fill": "#call-args", "value": "[2, 40]"},
        {"click": "#call-button"},
        {"wait_text": "#call-result", "contains": "42"},
        # publishing, acknowledged, delivered to the page's own stream too
        {"fill": "#publish-topic", "value": "com.example.news.note"},
        {"fill": "#publish-args", "value": '["deploy finished"]'},
        {"fill": "#publish-kwargs", "value": '{"by": "console"}'},
        {"click": "#publish-me"},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "Published to com.example.news.note"},
        {"wait_text": "#events", "contains": "deploy finished"},
        {"eval": EVENT_ROWS, "name": "events"},
        {"screenshot": str(shot), "full_page": True},
        # what looks like HTML is shown as text
        {"fill": "#call-procedure", "value": "com.example.greet"},
        {"fill": "#call-args", "value": '["<b>console</b>"]'},
        {"click": "#call-button"},
        {"wait_text": "#call-result", "contains": "hello <b>console</b>"},
        {"fill": "#publish-args", "value": '["<img src=x>"]'},
        {"click": "#publish-button"},
        {"wait_text": "#events", "contains": "<img src=x>"},
        {"eval": "document.querySelectorAll('#call-result b, #events img').length", "name": "html elements"},
        # the stream keeps the newest N events; unsubscribing stops it
        {"fill": "#stream-keep", "value": "2"},
        {"eval": "document.querySelectorAll('#events tbody tr').length", "name": "events kept"},
        {"click": "#stream-stop"},
        {"wait_text": "#stream-status", "contains": "Not subscribed"},
        # another realm of the console: a new connection, the other realm's sessions
        {"select": "#realm-select", "value": "realm2"},
        {"wait_text": "#whoami", "contains": "admin @ realm2"},
        {"wait_text": "#sessions-count", "contains": "1"},
        {"text": "#sessions", "name": "realm2 sessions"},
        {"click": "#logout-button"},
        {"wait_text": "#login h1", "contains": "Sign in"},
    ]
    try:
        results = await asyncio.to_thread(run_browser, steps)
    finally:
        done.set()
        await publishing
    named = {step["name"]: result for step, result in zip(steps, results, strict=True) if "name" in step}
    assert named["html elements"] == 0  # user data is shown as text, never parsed as HTML
    assert named["events"] == [  # newest first; the topic from the event's details (a prefix subscription)
        ["com.example.news.note", '["deploy finished"]', '{"by":"console"}'],
        ["com.example.news.weather", '["Kyoto"]', '{"celsius":17}'],
        ["com.example.news.weather", '["Oslo"]', '{"celsius":4}'],
        ["com.example.news.weather", '["Lisbon"]', '{"celsius":21}'],
    ]
    assert named["events kept"] == 2
    sessions = named["realm2 sessions"]
    assert str(client.session_id) not in sessions and "cloverleaf.console" in sessions
    assert shot.stat().st_size > 10_000
    if os.environ.get("CLOVERLEAF_SCREENSHOTS") == "1":
        (REPOSITORY / "docs" / "images").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPOSITORY / "docs" / "images" / "console.png")


async def test_console_details_kill_calls_publish_options_and_figures(console: Console, client: Session,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    """What a console user does all day, in Chromium: live router figures; a session's details and
    killing it; a registration's callees (and its URI in the call form); a call with a timeout and
    one cancelled; a subscription's subscribers (and streaming it, the table cleared per topic);
    publishing with exclude, eligible and retain."""
    from tests.browser import require_browser, run_browser

    require_browser()
    if not console.real_autobahn:
        pytest.skip("AutobahnJS's browser build could not be fetched (npm pack autobahn-browser)")
    victim = await connect(console.client_url, "realm1", reconnect=NO_RECONNECT)
    left = asyncio.Event()
    victim.on_leave(lambda session, reason: left.set())
    interrupted = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "late"

    await client.register("com.example.slow", slow)
    received: list[Any] = []
    await client.subscribe("com.example.alerts", lambda *args, **kwargs: received.append(args[0]))
    done = asyncio.Event()

    async def alerts() -> None:  # once the page streams com.example.alerts too
        while not done.is_set():
            if await client.call("wamp.subscription.count_subscribers",
                                 await client.call("wamp.subscription.lookup", "com.example.alerts")) == 2:  # fmt: skip
                break
            await asyncio.sleep(0.05)
        await client.publish("com.example.alerts", "disk full")

    alerting = asyncio.get_running_loop().create_task(alerts())
    me = client.session_id
    steps: list[dict[str, Any]] = [
        {"goto": f"http://127.0.0.1:{console.port}/console/"},
        {"wait_for": "document.querySelectorAll('#login-realm option').length === 2"},
        {"eval": "[...document.querySelectorAll('#login-realm option')].map((o) => o.value)", "name": "realms"},
        *login_steps(),
        {"wait_text": "#sessions", "contains": str(victim.session_id)},
        # live figures: a second sample gives rates
        {"wait_for": "/^[0-9.]+$/.test(document.getElementById('fig-in').textContent)", "timeout": 8000},
        {"text": "#fig-sessions", "name": "figure sessions"},
        # the events table says why it is empty
        {"text": "#events tbody", "name": "empty stream"},
        # a session's details, and killing it (two clicks)
        {"click": f"#sessions tr[data-session='{victim.session_id}']"},
        {"wait_text": "#session-json", "contains": '"authrole": "anonymous"'},
        {"click": "#kill-button"},
        {"wait_text": "#kill-button", "contains": "Click again"},
        {"click": "#kill-button"},
        {"wait_text": "#kill-result", "contains": f"Killed session {victim.session_id}"},
        {"wait_for": f"!document.getElementById('sessions').textContent.includes('{victim.session_id}')"},
        # a registration: its callees, its URI in the call form
        {"click": "#registrations tr:has-text('com.example.slow')"},
        {"wait_text": "#registration-callees", "contains": str(me)},
        {"eval": "document.getElementById('call-procedure').value", "name": "procedure"},
        # a call with a timeout: the router ends it
        {"fill": "#call-timeout", "value": "0.3"},
        {"click": "#call-button"},
        {"wait_text": "#call-result", "contains": "Error: wamp.error."},
        {"text": "#call-result", "name": "timed out"},
        # a call cancelled from the console
        {"fill": "#call-timeout", "value": ""},
        {"click": "#call-button"},
        {"wait_for": "!document.getElementById('call-cancel').disabled"},
        {"click": "#call-cancel"},
        {"wait_text": "#call-result", "contains": "wamp.error.canceled"},
        # a subscription: its subscribers, and streaming it
        {"click": "#subscriptions tr:has-text('com.example.alerts')"},
        {"wait_text": "#subscription-subscribers", "contains": str(me)},
        {"wait_text": "#stream-status", "contains": "Streaming com.example.alerts"},
        {"wait_text": "#events", "contains": "disk full"},
        # another topic: a table of its own
        {"fill": "#stream-topic", "value": "com.example.quiet"},
        {"click": "#stream-button"},
        {"wait_text": "#stream-status", "contains": "Streaming com.example.quiet"},
        {"text": "#events-count", "name": "count after switching"},
        {"text": "#events tbody", "name": "switched stream"},
        # publish options: excluded, then only to the client, then retained
        {"fill": "#publish-topic", "value": "com.example.alerts"},
        {"fill": "#publish-args", "value": '["hidden"]'},
        {"fill": "#publish-exclude", "value": str(me)},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "Published to com.example.alerts"},
        {"fill": "#publish-exclude", "value": ""},
        {"fill": "#publish-eligible", "value": str(me)},
        {"fill": "#publish-args", "value": '["only for you"]'},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "(publication"},
        {"fill": "#publish-eligible", "value": ""},
        {"fill": "#publish-topic", "value": "com.example.state"},
        {"fill": "#publish-args", "value": '["kept"]'},
        {"click": "#publish-retain"},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "retained"},
        {"click": "#publish-retain"},
        {"click": "#publish-ack"},
        {"fill": "#publish-args", "value": '["fire and forget"]'},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "(not acknowledged)"},
        {"fill": "#publish-exclude", "value": "not a session"},
        {"click": "#publish-button"},
        {"wait_text": "#publish-result", "contains": "Exclude: session IDs"},
        # placeholders read as examples, never as values
        {"eval": "[...document.querySelectorAll('input[placeholder], textarea[placeholder]')]"
                 ".map((e) => e.placeholder)", "name": "placeholders"},
        {"screenshot": str(tmp_path / "console-details.png"), "full_page": True},
    ]
    try:
        results = await asyncio.to_thread(run_browser, steps)
    finally:
        done.set()
        await alerting
    named = {step["name"]: result for step, result in zip(steps, results, strict=True) if "name" in step}
    assert named["realms"] == ["realm1", "realm2"]
    assert all(text.startswith("e.g. ") or text in ("none", "everyone") for text in named["placeholders"]), named
    assert int(named["figure sessions"]) >= 3  # the client, the victim, the console
    assert "Not subscribed" in named["empty stream"]
    assert named["procedure"] == "com.example.slow"
    assert "wamp.error.timeout" in named["timed out"] or "wamp.error.canceled" in named["timed out"], named
    assert await asyncio.wait_for(interrupted.wait(), 5)  # the cancel reached the callee
    assert named["count after switching"] == "0"
    assert "No events yet on com.example.quiet" in named["switched stream"]
    await asyncio.wait_for(left.wait(), 5)  # the victim was killed
    deadline = asyncio.get_running_loop().time() + 5
    while "only for you" not in received and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert received == ["only for you"]  # "hidden" excluded the client ("disk full" was its own)
    retained: list[Any] = []
    got = asyncio.Event()
    await client.subscribe("com.example.state", lambda *args, **kwargs: (retained.append(args[0]), got.set()),
                           options=SubscribeOptions(get_retained=True))  # fmt: skip
    await asyncio.wait_for(got.wait(), 5)
    assert retained == ["kept"]
    if os.environ.get("CLOVERLEAF_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "console-details.png", REPOSITORY / "docs" / "images" / "console-details.png")


async def test_console_survives_a_router_restart(tmp_path: Path, autobahn_browser_js: Path) -> None:
    """The node restarts under a signed-in console: the page reconnects with the credentials it holds
    in memory (no new login), reloads the realm and resumes its event stream."""
    import threading

    from tests.browser import require_browser, run_browser

    require_browser()
    (tmp_path / "web" / "js").mkdir(parents=True)
    shutil.copyfile(autobahn_browser_js, tmp_path / "web" / "js" / "autobahn.min.js")
    port = free_port()

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append({"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                                     "paths": {"/console": console_path(), "/ws": {"type": "websocket"}}})  # fmt: skip
        return config

    router = launch_router(tmp_path, make_config, wait_ports=(port,))
    client_url = f"ws://127.0.0.1:{port}/ws"
    results: list[Any] = []
    failure: list[BaseException] = []

    def browse() -> None:
        try:
            results.extend(run_browser([
                {"goto": f"http://127.0.0.1:{port}/console/"},
                *login_steps(),
                {"fill": "#stream-topic", "value": "com.example.news"},
                {"select": "#stream-match", "value": "prefix"},
                {"click": "#stream-button"},
                {"wait_text": "#stream-status", "contains": "Streaming com.example.news"},
                {"eval": "window.seen = []; new MutationObserver(() => seen.push(document.getElementById("
                         "'status-text').textContent)).observe(document.getElementById('status-text'), "
                         "{childList: true, subtree: true, characterData: true}); 0"},
                {"wait_for": "seen.includes('reconnecting…') && document.getElementById('status-text')"
                             ".textContent === 'connected'", "timeout": 30000},
                {"wait_text": "#stream-status", "contains": "Streaming com.example.news", "timeout": 10000},
                {"wait_text": "#events", "contains": "after the restart", "timeout": 15000},
                {"eval": "document.getElementById('login').hidden", "name": "login hidden"},
                {"text": "#whoami"},
            ], timeout=120))
        except BaseException as exc:  # reported by the test, from its thread
            failure.append(exc)

    browser = threading.Thread(target=browse)
    browser.start()
    try:
        # the page is streaming: a subscriber of com.example.news (prefix) exists
        probe = await connect(client_url, "realm1", reconnect=NO_RECONNECT)
        for _ in range(300):
            if await probe.call("wamp.subscription.lookup", "com.example.news", {"match": "prefix"}) is not None:
                break
            await asyncio.sleep(0.05)
        await probe.leave()
        await asyncio.sleep(0.3)  # the page's status watcher is installed
        assert router.stop() == 0, router.log()
        await asyncio.sleep(1.0)  # down for a moment: the console's first attempts find nothing
        router = launch_router(tmp_path, make_config, wait_ports=(port,))  # the same web port
        publisher = await connect(client_url, "realm1", reconnect=NO_RECONNECT)
        try:
            for _ in range(300):  # once the console subscribed again
                if await publisher.call("wamp.subscription.lookup", "com.example.news",
                                        {"match": "prefix"}) is not None:  # fmt: skip
                    break
                await asyncio.sleep(0.05)
            await publisher.publish("com.example.news.flash", "after the restart")
        finally:
            await publisher.leave()
        await asyncio.to_thread(browser.join, 120)
    finally:
        router.stop()
    assert not failure, failure
    assert results[-2] is True  # never sent back to the login form
    assert results[-1] == "admin @ realm1"
