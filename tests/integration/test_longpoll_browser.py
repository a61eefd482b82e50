"""AutobahnJS in headless Chromium on the HTTP long-poll transport, meeting a Python WebSocket
session in the same realm: events both ways and a call from the browser to Python."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.browser import require_browser, run_browser
from tests.conftest import RouterProcess, free_port, wait_for_port
from tests.integration.test_web import _start_with

from cloverleaf.client import NO_RECONNECT, connect

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>long-poll</title></head>
<body>
<p id="status">connecting</p><p id="transport"></p><p id="events"></p><p id="result"></p>
<script src="autobahn.min.js"></script>
<script>
  const status = document.getElementById('status');
  const connection = new autobahn.Connection({
    realm: 'realm1',
    transports: [{type: 'longpoll', url: `http://${location.host}/lp`}],
    max_retries: 0,
  });
  connection.onopen = async (session, details) => {
    document.getElementById('transport').textContent = connection.transport.info.type;
    await session.subscribe('com.lp.to_browser', ([value]) => {
      document.getElementById('events').textContent += `${value};`;
    });
    const sum = await session.call('com.lp.add', [20, 22]);
    document.getElementById('result').textContent = String(sum);
    await session.publish('com.lp.to_python', ['from the browser'], {}, {acknowledge: true});
    status.textContent = `joined ${session.id}`;
  };
  connection.onclose = (reason) => { status.textContent = `closed: ${reason}`; };
  connection.open();
</script>
</body></html>
"""

#: joins twice over long-poll: anonymously (the XHR sets the tracking cookie), then by cookie only
JOIN_TWICE = """(async () => {
  const join = (authmethods) => new Promise((resolve) => {
    const connection = new autobahn.Connection({
      realm: 'realm1', authmethods, max_retries: 0,
      transports: [{type: 'longpoll', url: `http://${location.host}/lpc`}],
    });
    connection.onopen = (session, details) => {
      const answer = `${details.authmethod}:${details.authid}`;
      connection.onclose = () => { resolve(answer); };
      connection.close();
    };
    connection.onclose = (reason, details) => { resolve(`closed:${reason}:${details.reason}`); };
    connection.open();
  });
  return [await join(['anonymous']), await join(['cookie'])];
})()"""

#: a cross-origin request over the long-poll body limit: the browser must see the 413, not a network error
CROSS_ORIGIN_413 = """(async () => {
  const url = `http://127.0.0.1:${location.port}/lps/open`;
  const answer = await fetch(url, {method: 'POST', credentials: 'include', body: 'x'.repeat(5000),
                                   headers: {'Content-Type': 'application/json'}});
  return answer.status;
})()"""


@pytest.fixture(scope="module")
def longpoll_router(tmp_path_factory: pytest.TempPathFactory, autobahn_browser_js: Path) -> Any:
    tmp = tmp_path_factory.mktemp("lp-browser")
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    shutil.copyfile(autobahn_browser_js, site / "autobahn.min.js")
    port = free_port()
    router: RouterProcess = _start_with(tmp, {
        "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "paths": {"/": {"type": "static", "directory": str(site)}, "/lp": {"type": "longpoll"},
                  "/ws": {"type": "websocket"},
                  "/lpc": {"type": "longpoll", "auth": {"anonymous": {}, "cookie": {}}},
                  "/lps": {"type": "longpoll", "max_message_size": 1024, "allowed_origins": ["http://localhost:*"]}},
    })  # fmt: skip
    wait_for_port(port)
    yield port
    router.stop()


async def test_browser_on_longpoll_meets_a_websocket_session(longpoll_router: int) -> None:
    require_browser()
    port = longpoll_router
    python = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    received: list[Any] = []
    got_event = asyncio.Event()

    def on_event(text: str) -> None:
        received.append(text)
        got_event.set()

    await python.register("com.lp.add", lambda a, b: a + b)
    await python.subscribe("com.lp.to_python", on_event)

    async def publish_while_the_browser_runs() -> None:
        for value in range(200):  # until the page has subscribed and shows the events
            await python.publish("com.lp.to_browser", value)
            await asyncio.sleep(0.05)

    publisher = asyncio.get_running_loop().create_task(publish_while_the_browser_runs())
    try:
        results = await asyncio.to_thread(run_browser, [
            {"goto": f"http://127.0.0.1:{port}/"},
            {"wait_text": "#status", "contains": "joined", "timeout": 15000},
            {"text": "#transport"},
            {"text": "#result"},
            {"wait_for": "document.getElementById('events').textContent.split(';').length > 3"},
            {"text": "#events"},
        ])  # fmt: skip
    finally:
        publisher.cancel()
    assert results[2] == "longpoll"
    assert results[3] == "42"
    values = [int(v) for v in results[5].split(";") if v]
    assert values == sorted(values) and len(values) >= 3  # in order, none lost between them
    assert values == list(range(values[0], values[0] + len(values)))
    await asyncio.wait_for(got_event.wait(), 5)
    assert received == ["from the browser"]
    await python.leave()


async def test_browser_cookie_authentication_and_cross_origin_errors(longpoll_router: int) -> None:
    require_browser()
    port = longpoll_router
    results = await asyncio.to_thread(run_browser, [
        {"goto": f"http://localhost:{port}/"},  # for AutobahnJS (the page's own session does not matter)
        {"wait_for": "typeof autobahn !== 'undefined'"},
        {"eval": JOIN_TWICE},
        {"eval": CROSS_ORIGIN_413},
    ])  # fmt: skip
    first, second = results[2]
    assert first.startswith("anonymous:") and second == "cookie:" + first.partition(":")[2]
    assert results[3] == 413
