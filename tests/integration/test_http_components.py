"""The HTTP bridge's outgoing directions: http-subscriber (events become HTTP requests) and
http-callee (a procedure that performs HTTP requests below a base URL).

Real sockets throughout: the HTTP target is an aiohttp server on 127.0.0.1 (a port of its own), the
node runs in this process with a WebSocket transport on a free port (one test runs `cloverleaf
start` as a process), and a Cloverleaf client publishes and calls over that WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from tests.conftest import launch_router, router_config

from cloverleaf.client import NO_RECONNECT, ApplicationError, Session, connect
from cloverleaf.client.types import CallOptions, PublishOptions
from cloverleaf.node.config import ConfigError, HttpCalleeComponent, HttpSubscriberComponent, NodeConfig, parse_config
from cloverleaf.node.httpout import HttpCalleeRunner, HttpSubscriberRunner
from cloverleaf.node.node import Node

REALMS: list[dict[str, Any]] = [
    {"name": "realm1", "roles": [
        {"name": "anonymous"},
        {"name": "limited", "permissions": [{"uri": "com.allowed.", "match": "prefix", "allow": ["subscribe"]}]},
    ]},
]  # fmt: skip


# -- the HTTP target ---------------------------------------------------------------------------------


@dataclass
class Target:
    """An aiohttp server on 127.0.0.1 that records every request it gets."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: /flaky answers 503 this many more times, then 200
    failures_left: int = 0
    #: requests to /slow whose client closed the connection before the answer
    abandoned: int = 0
    #: /blocked waits for this before answering
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [request["path"] for request in self.requests]


def _app(target: Target) -> web.Application:
    async def record(request: web.Request) -> dict[str, Any]:
        entry = {"method": request.method, "path": request.path, "query": list(request.query.items()),
                 "headers": dict(request.headers), "body": (await request.read()).decode()}  # fmt: skip
        target.requests.append(entry)
        return entry

    async def hook(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=200, text="thanks")

    async def flaky(request: web.Request) -> web.Response:
        await record(request)
        if target.failures_left > 0:
            target.failures_left -= 1
            return web.Response(status=503, text="busy, try later")
        return web.Response(status=200)

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        try:
            await asyncio.sleep(float(request.query.get("seconds", "1")))
        except asyncio.CancelledError:
            target.abandoned += 1  # the client went away (a timeout, a canceled call)
            raise
        return web.Response(text="late")

    async def blocked(request: web.Request) -> web.Response:
        await record(request)
        await target.release.wait()
        return web.Response(status=204)

    async def echo(request: web.Request) -> web.Response:
        entry = await record(request)
        response = web.json_response(entry, headers={"X-Echo": "yes"})
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text=f"status {request.match_info['code']}")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/secret")

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 5000)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/slow", slow)
    app.router.add_route("*", "/api/slow", slow)
    app.router.add_post("/blocked", blocked)
    app.router.add_route("*", "/api/echo", echo)
    app.router.add_route("*", "/api/status/{code}", status)
    app.router.add_get("/api/redirect", redirect)
    app.router.add_get("/api/big", big)
    app.router.add_route("*", "/secret", hook)  # outside the callee's base URL: must never be reached
    return app


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    target = Target()
    # handlers end when their client goes (a timed-out request), not when they are done sleeping
    runner = web.AppRunner(_app(target), handle_signals=False, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target.port = runner.addresses[0][1]
    yield target
    target.release.set()
    await runner.cleanup()


# -- a node in this process ----------------------------------------------------------------------------


def _config(components: list[dict[str, Any]]) -> NodeConfig:
    return parse_config({"realms": REALMS, "transports": [{"type": "websocket", "endpoint": {"port": 0}}],
                         "components": components})  # fmt: skip


@dataclass
class Running:
    node: Node
    client: Session
    stopped: bool = False

    async def stop(self) -> None:
        self.stopped = True
        await self.node.stop()

    def runner(self, index: int = 0) -> Any:
        assert self.node.components is not None
        return self.node.components.http[index]


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    """start(components) -> Running: a node with these components and a client on its WebSocket."""
    started: list[Running] = []

    async def start_node(components: list[dict[str, Any]]) -> Running:
        node = Node(_config(components))
        await node.start()
        client = await connect(node.addresses[0], "realm1", reconnect=NO_RECONNECT)
        running = Running(node, client)
        started.append(running)
        return running

    yield start_node
    for running in started:
        if running.client.is_connected:
            await running.client.leave()
        if not running.stopped:
            await running.node.stop()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


async def _publish(client: Session, topic: str, *args: Any, **kwargs: Any) -> None:
    await client.publish(topic, *args, options=PublishOptions(acknowledge=True), **kwargs)


def _subscriber(target: Target, path: str, **options: Any) -> dict[str, Any]:
    return {"type": "http-subscriber", "realm": "realm1", "retry_delay": 0.01, "retry_max_delay": 0.05,
            "subscriptions": [{"topic": "com.events.order", "url": target.url + path}], **options}  # fmt: skip


def _callee(target: Target, **options: Any) -> dict[str, Any]:
    return {"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": target.url + "/api",
            **options}  # fmt: skip


# -- http-subscriber -----------------------------------------------------------------------------------


async def test_event_is_forwarded_with_its_args_and_kwargs(target: Target, start: Any) -> None:
    running = await start([_subscriber(target, "/hook", headers={"Authorization": "Bearer t0ken"}, subscriptions=[
        {"topic": "com.events.order", "url": target.url + "/hook"},
        {"topic": "com.events.", "match": "prefix", "url": target.url + "/hook?via=prefix"},
    ])])  # fmt: skip
    await _publish(running.client, "com.events.order", 1, "two", b"\x00\x01", item="tea", qty=2)
    await _until(lambda: len(target.requests) == 2)
    by_query = {tuple(r["query"]): r for r in target.requests}
    exact, prefix = by_query[()], by_query[(("via", "prefix"),)]
    assert exact["method"] == "POST" and exact["path"] == "/hook"
    # Crossbar's MessageForwarder body; binary as WAMP's JSON has it (NUL + base64)
    assert json.loads(exact["body"]) == {"args": [1, "two", "\u0000AAE="], "kwargs": {"item": "tea", "qty": 2}}
    assert prefix["body"] == exact["body"]
    headers = exact["headers"]
    assert headers["Content-Type"] == "application/json" and headers["Authorization"] == "Bearer t0ken"
    assert headers["User-Agent"].startswith("cloverleaf/")
    runner: HttpSubscriberRunner = running.runner()
    await _until(lambda: runner.delivered == 2)
    assert (runner.failed, runner.dropped, runner.retried) == (0, 0, 0)


async def test_retries_on_503_with_backoff_then_delivers(target: Target, start: Any) -> None:
    target.failures_left = 2
    running = await start([_subscriber(target, "/flaky", retries=3, retry_delay=0.05, retry_max_delay=0.1)])
    began = time.monotonic()
    await _publish(running.client, "com.events.order", "once")
    runner: HttpSubscriberRunner = running.runner()
    await _until(lambda: runner.delivered == 1)
    assert time.monotonic() - began >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s (doubled, capped)
    assert target.paths() == ["/flaky"] * 3 and (runner.retried, runner.failed) == (2, 0)
    assert all(r["body"] == target.requests[0]["body"] for r in target.requests)


async def test_retries_are_bounded_and_4xx_is_not_retried(target: Target, start: Any,
                                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="cloverleaf")
    target.failures_left = 100
    running = await start([
        {**_subscriber(target, "/flaky", name="flaky", retries=2),  # a password in the URL: Basic auth, never logged
         "subscriptions": [{"topic": "com.events.order", "url": f"http://user:pa55word@127.0.0.1:{target.port}/flaky"}]},
        {**_subscriber(target, "/hook", name="picky", expected_code=201, retries=5)},  # 200 is not 201
    ])  # fmt: skip
    await _publish(running.client, "com.events.order", 1)
    flaky, picky = running.runner(0), running.runner(1)
    await _until(lambda: flaky.failed == 1 and picky.failed == 1)
    assert target.paths().count("/flaky") == 3 and target.paths().count("/hook") == 1
    authorization = {r["headers"].get("Authorization") for r in target.requests if r["path"] == "/flaky"}
    assert authorization == {"Basic dXNlcjpwYTU1d29yZA=="}  # user:pa55word
    assert "pa55word" not in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("http-subscriber flaky: an event on com.events.order was not delivered to" in w
               and "HTTP 503 Service Unavailable: 'busy, try later' (3 attempts" in w for w in warnings), warnings
    assert any("http-subscriber picky:" in w and "HTTP 200 OK: 'thanks' (1 attempt;" in w for w in warnings), warnings


async def test_full_queue_drops_new_events_counted_and_logged_once(
    target: Target, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloverleaf")
    running = await start([_subscriber(target, "/blocked", max_in_flight=1, max_queue=2, expected_code=204)])
    runner: HttpSubscriberRunner = running.runner()
    for n in range(7):
        await _publish(running.client, "com.events.order", n)
    await _until(lambda: runner.dropped == 4)  # one in flight, two waiting, four dropped
    assert len(target.requests) == 1
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == ["http-subscriber http-subscriber:com.events.order: 2 events wait already (max_queue): an "
                       "event on com.events.order was dropped (1 dropped so far)"]  # rate-limited: one line
    target.release.set()
    await _until(lambda: runner.delivered == 3)
    assert [json.loads(r["body"])["args"] for r in target.requests] == [[0], [1], [2]]  # in order with one slot


async def test_request_timeout_counts_as_a_failed_attempt(target: Target, start: Any) -> None:
    running = await start([_subscriber(target, "/slow?seconds=5", timeout=0.2, retries=1)])
    began = time.monotonic()
    await _publish(running.client, "com.events.order", 1)
    runner: HttpSubscriberRunner = running.runner()
    await _until(lambda: runner.failed == 1)
    assert 0.4 <= time.monotonic() - began < 2 and target.paths() == ["/slow", "/slow"]


async def test_a_role_is_authorized_like_a_client(target: Target, start: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    running = await start([
        {**_subscriber(target, "/hook", name="refused", role="limited")},
        {**_subscriber(target, "/hook", name="allowed", role="limited"),
         "subscriptions": [{"topic": "com.allowed.x", "url": target.url + "/hook"}]},
    ])  # fmt: skip
    refused, allowed = running.runner(0), running.runner(1)
    assert refused.session is None and refused.http is None and allowed.session is not None
    assert "http-subscriber refused: cannot start: wamp.error.not_authorized" in caplog.text
    await _publish(running.client, "com.allowed.x", "ok")
    await _until(lambda: allowed.delivered == 1)


# -- http-callee ------------------------------------------------------------------------------------


async def test_callee_get_and_post_with_params_headers_and_body(target: Target, start: Any) -> None:
    running = await start([_callee(target, headers={"Authorization": "Bearer t0ken"})])
    client = running.client
    got = await client.call("com.rest", method="GET", url="echo", params={"q": "tea", "n": [1, 2], "ok": True},
                            headers={"Accept": "application/json", "Authorization": "not the caller's"})  # fmt: skip
    assert got["code"] == 200 and got["headers"]["X-Echo"] == ["yes"]
    assert got["headers"]["Set-Cookie"] == ["a=1", "b=2"]
    echoed = json.loads(got["content"])
    assert echoed["method"] == "GET" and echoed["path"] == "/api/echo"
    assert echoed["query"] == [["q", "tea"], ["n", "1"], ["n", "2"], ["ok", "true"]]
    assert echoed["headers"]["Accept"] == "application/json"
    assert echoed["headers"]["Authorization"] == "Bearer t0ken"  # the component's header stands
    assert "Cookie" not in echoed["headers"]
    # POST: a text body as is; a JSON value as JSON; Crossbar's positional order (method, url, body)
    posted = json.loads((await client.call("com.rest", "POST", "echo", "plain text"))["content"])
    assert posted["method"] == "POST" and posted["body"] == "plain text"
    assert "Cookie" not in posted["headers"]  # no cookie jar: nothing kept from the first response
    as_json = json.loads((await client.call("com.rest", method="put", url="echo?x=1", body={"a": [1]}))["content"])
    assert as_json["method"] == "PUT" and as_json["query"] == [["x", "1"]]
    assert json.loads(as_json["body"]) == {"a": [1]} and as_json["headers"]["Content-Type"] == "application/json"
    # defaults: GET on the base URL itself; HEAD has no content
    assert (await client.call("com.rest", method="HEAD", url="echo"))["content"] == ""
    runner: HttpCalleeRunner = running.runner()
    assert runner.answered == 4 and runner.errors == 0


@pytest.mark.parametrize("url", [
    "../secret", "%2e%2e/secret", "%2E%2E%2Fsecret", "echo/../../secret", "echo/.%2E/../secret", "..;/secret",
    "/secret", "http://127.0.0.1:1/secret", "//127.0.0.1/secret", "https:secret", "\\\\evil/secret",
    "echo\r\nHost: evil",
])  # fmt: skip
async def test_callee_refuses_urls_outside_its_base_url(target: Target, start: Any, url: str) -> None:
    running = await start([_callee(target)])
    with pytest.raises(ApplicationError) as refused:
        await running.client.call("com.rest", url=url)
    assert refused.value.error == "cloverleaf.error.http_url_not_allowed", refused.value
    assert target.requests == []


async def test_callee_refuses_bad_arguments_and_follows_no_redirect(target: Target, start: Any) -> None:
    running = await start([_callee(target, methods=["GET"])])
    client = running.client
    for kwargs, text in [
        ({"method": "DELETE"}, "method: one of GET"),
        ({"verb": "GET"}, "unknown argument 'verb'"),
        ({"headers": {"Host": "evil.example"}}, "headers: Host is set by the callee"),
        ({"headers": {"X-A": "one\r\nX-B: two"}}, "a header name with text values on one line"),
        ({"params": {"q": {"nested": 1}}}, "params: 'q': text, numbers"),
    ]:
        with pytest.raises(ApplicationError) as refused:
            await client.call("com.rest", **kwargs)
        assert refused.value.error == "wamp.error.invalid_argument" and text in str(refused.value), refused.value
    moved = await client.call("com.rest", url="redirect")
    assert moved["code"] == 302 and moved["headers"]["Location"] == ["/secret"]
    assert target.paths() == ["/api/redirect"]  # not followed


async def test_callee_http_failures_are_wamp_errors(target: Target, start: Any) -> None:
    running = await start([
        _callee(target, name="strict", procedure="com.rest.strict", expected_code=[200, 204], timeout=0.3,
                max_response_size=1024),
        _callee(target, name="lenient"),
        {**_callee(target, name="nowhere", procedure="com.rest.nowhere"), "base_url": "http://127.0.0.1:1/"},
    ])  # fmt: skip
    client = running.client
    assert (await client.call("com.rest", url="status/404"))["code"] == 404  # Crossbar's: every response a result
    with pytest.raises(ApplicationError) as status:
        await client.call("com.rest.strict", url="status/404")
    assert status.value.error == "cloverleaf.error.http_status"
    assert status.value.kwargs["code"] == 404 and status.value.kwargs["content"] == "status 404"
    assert "GET http://127.0.0.1:" in status.value.args[0] and "HTTP 404 (expected 200, 204)" in status.value.args[0]
    with pytest.raises(ApplicationError) as timeout:
        await client.call("com.rest.strict", url="slow", params={"seconds": 3})
    assert timeout.value.error == "cloverleaf.error.http_timeout"
    assert "no complete response within 0.3s" in timeout.value.args[0]
    with pytest.raises(ApplicationError) as large:
        await client.call("com.rest.strict", url="big")
    assert large.value.error == "cloverleaf.error.http_response_too_large"
    with pytest.raises(ApplicationError) as unreachable:
        await client.call("com.rest.nowhere")
    assert unreachable.value.error == "cloverleaf.error.http_request_failed"
    assert "ClientConnectorError" in unreachable.value.args[0]


async def test_a_canceled_call_aborts_its_request(target: Target, start: Any) -> None:
    running = await start([_callee(target)])
    runner: HttpCalleeRunner = running.runner()
    with pytest.raises(ApplicationError) as timed_out:  # the router cancels the call after 0.2 s
        await running.client.call("com.rest", url="slow", params={"seconds": 5}, options=CallOptions(timeout=0.2))
    assert timed_out.value.error == "wamp.error.timeout", timed_out.value
    await _until(lambda: target.abandoned == 1 and runner._calls == 0)  # the request was aborted, not left running
    call = asyncio.ensure_future(running.client.call("com.rest", url="slow", params={"seconds": 5}))
    await _until(lambda: target.paths().count("/api/slow") == 2)
    call.cancel()  # the caller's cancel (killnowait) interrupts the callee too
    await _until(lambda: target.abandoned == 2 and runner._calls == 0)


async def test_callee_concurrency_is_bounded(target: Target, start: Any) -> None:
    running = await start([_callee(target, max_in_flight=2, max_queue=1)])
    client = running.client
    calls = [asyncio.ensure_future(client.call("com.rest", url="slow", params={"seconds": 0.3})) for _ in range(4)]
    done = await asyncio.gather(*calls, return_exceptions=True)
    busy = [r for r in done if isinstance(r, ApplicationError)]
    assert len(busy) == 1 and busy[0].error == "cloverleaf.error.http_busy", done
    assert sum(1 for r in done if isinstance(r, dict) and r["code"] == 200) == 3
    assert len(target.requests) == 3


# -- stopping ---------------------------------------------------------------------------------------


async def test_node_stop_drains_then_closes_the_clients(target: Target, start: Any) -> None:
    running = await start([
        _subscriber(target, "/slow?seconds=0.2", name="draining", max_in_flight=1),
        _subscriber(target, "/blocked", name="stuck", stop_timeout=0.2),
        _callee(target),
    ])  # fmt: skip
    draining, stuck, callee = (running.runner(n) for n in range(3))
    clients = [draining.http, stuck.http, callee.http]
    await _publish(running.client, "com.events.order", 1)
    await _publish(running.client, "com.events.order", 2)
    await _until(lambda: "/blocked" in target.paths())
    call = asyncio.ensure_future(running.client.call("com.rest", url="slow", params={"seconds": 0.2}))
    await _until(lambda: target.paths().count("/api/slow") == 1)
    began = time.monotonic()
    await running.stop()
    assert time.monotonic() - began < 2
    assert draining.delivered == 2 and stuck.dropped == 2  # stop_timeout: the blocked ones are given up
    assert (await call)["code"] == 200  # the call in flight was answered before the callee left
    assert all(client is not None and client.closed for client in clients)
    assert all(runner.http is None and runner.session is None for runner in (draining, stuck, callee))
    assert not running.node.router.sessions


async def test_cloverleaf_start_runs_them_and_stops_cleanly(target: Target, tmp_path: Path) -> None:
    """The node as a process: the config is read, the components run, SIGINT ends it with exit code 0."""

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        return router_config(ws_port, rs_port, unix_path, components=[
            _subscriber(target, "/hook", name="forwarder"), _callee(target, name="rest")])  # fmt: skip

    router = await asyncio.to_thread(launch_router, tmp_path, make_config)
    try:
        client = await connect(router.ws_url, "realm1", reconnect=NO_RECONNECT)
        assert (await client.call("com.rest", url="echo"))["code"] == 200
        await _publish(client, "com.events.order", "via a process")
        await _until(lambda: "/hook" in target.paths())
        await client.leave()
    finally:
        code = await asyncio.to_thread(router.stop)
    log = router.log()
    assert code == 0, log
    assert "http-subscriber forwarder: stopped (delivered 1, failed 0, dropped 0, retried 0)" in log
    assert "http-callee rest: stopped (answered 1, errors 0, busy 0)" in log
    assert "Traceback" not in log and "Unclosed" not in log, log


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "expected"), [
    ({"type": "container"},
     "components[0].type: unknown type 'container' (expected one of: app, guest, class, http-subscriber, "
     "http-callee)"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "a.b", "url": "http://h/", "x": 1}]},
     "components[0].subscriptions[0].x: unknown key (expected one of: match, topic, url)"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "a.b", "url": "ftp://h/"}]},
     "components[0].subscriptions[0].url: expected an absolute http:// or https:// URL"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "a..b", "url": "http://h/"}]},
     "components[0].subscriptions[0]: expected topic: a WAMP URI for match: exact (got 'a..b')"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": []},
     "components[0].subscriptions: List should have at least 1 item"),
    ({"type": "http-subscriber", "realm": "nowhere", "subscriptions": [{"topic": "a", "url": "http://h/"}]},
     "expected components[0].realm: one of the configured realms"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "a", "url": "http://h/"}],
      "expected_code": 700}, "components[0].expected_code: expected an HTTP status code from 100 to 599 (got 700)"),
    ({"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "a", "url": "http://h/"}],
      "max_queue": 0}, "components[0].max_queue: Input should be greater than or equal to 1"),
    ({"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": "http://h/api?x=1"},
     "components[0].base_url: expected a URL without ?query or #fragment"),
    ({"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": "http://h/",
      "headers": {"Bad Name": "x"}}, "components[0].headers: expected HTTP header names"),
    ({"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": "http://h/", "method": "GET"},
     "components[0].method: unknown key (expected one of: authid, base_url, expected_code, headers, max_in_flight,"),
    ({"type": "http-callee", "realm": "realm1", "base_url": "http://h/"},
     "components[0].procedure: required key is missing"),
])  # fmt: skip
def test_config_errors_name_the_key(component: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        _config([component])
    assert expected in str(error.value), str(error.value)


def test_config_defaults_and_names() -> None:
    subscriber, callee = _config([
        {"type": "http-subscriber", "realm": "realm1", "subscriptions": [{"topic": "com.a", "url": "http://h/x"}],
         "expected_code": 200},
        {"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": "https://h/api"},
    ]).components  # fmt: skip
    assert subscriber.label == "http-subscriber:com.a" and callee.label == "http-callee:com.rest"
    assert subscriber.expected_code == [200] and callee.expected_code is None
    assert callee.base_url == "https://h/api/"  # a call's url is below it
    assert (subscriber.method, subscriber.max_queue, subscriber.retries, subscriber.timeout) == ("POST", 1000, 3, 10)
    with pytest.raises(ConfigError, match="a name of its own"):
        _config([{"type": "http-callee", "realm": "realm1", "procedure": "com.rest", "base_url": "http://h/"}] * 2)


def test_the_documented_example_is_valid_and_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    web_md = Path(__file__).resolve().parents[2] / "docs" / "web.md"
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", web_md.read_text(), re.S) if "http-callee" in b]
    monkeypatch.setenv("CRM_AUTHORIZATION", "Bearer abc")
    monkeypatch.setenv("WEATHER_KEY", "k3y")
    documented = yaml.safe_load(block)
    realms = [{"name": "realm1", "roles": [{"name": "forwarder"}, {"name": "backend"}]}]
    config = parse_config({"realms": realms, "transports": [{"type": "websocket", "endpoint": {"port": 0}}],
                           **documented})  # fmt: skip
    subscriber, callee = config.components
    assert isinstance(subscriber, HttpSubscriberComponent) and isinstance(callee, HttpCalleeComponent)
    assert subscriber.headers == {"Authorization": "Bearer abc"} and callee.headers == {"X-Api-Key": "k3y"}
    for model, shown in ((HttpSubscriberComponent, documented["components"][0]),
                         (HttpCalleeComponent, documented["components"][1])):  # fmt: skip
        for key in ("timeout", "max_in_flight", "max_queue", "retries", "retry_delay", "retry_max_delay",
                    "stop_timeout", "max_response_size", "method"):  # fmt: skip
            if key in shown:
                assert shown[key] == model.model_fields[key].default, (model.__name__, key)
