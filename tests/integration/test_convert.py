"""`cloverleaf convert` and `cloverleaf start --crossbar` on Crossbar.io configs as users have them:
the one `crossbar init` writes (generated here, by the Crossbar.io of the test venv), and one of our
own with a universal transport, nested web paths, every auth method, a dynamic authenticator, a
class component run unchanged by Autobahn and a guest. Each is converted, checked and started, and
real clients (Autobahn|Python, AutobahnJS under Node) go through what it exposes; the `crossbar
init` config also runs on Crossbar.io beside Cloverleaf, answering the same client the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import JS_DIR, AutobahnSessions, free_port, wait_for_port
from tests.integration.test_client_crossbar import CROSSBAR_VENV, START_TIMEOUT, ensure_crossbar_venv

pytestmark = pytest.mark.timeout(300)


def cloverleaf(*args: str, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cloverleaf", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})  # fmt: skip


class Started:
    """A `cloverleaf start` (or `crossbar start`) process, in a process group of its own."""

    def __init__(self, command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode


def crossbar_init(directory: Path) -> Path:
    """`crossbar init` into ``directory``, on free 127.0.0.1 ports (the only change made to what it
    writes: tests bind loopback only); returns the config file."""
    exe = ensure_crossbar_venv(CROSSBAR_VENV)
    subprocess.run([str(exe), "init", "--appdir", str(directory)], check=True, capture_output=True, timeout=120)
    config_file = directory / ".crossbar" / "config.json"
    config = json.loads(config_file.read_text())
    for transport in config["workers"][0]["transports"]:
        transport["endpoint"]["interface"] = "127.0.0.1"
        transport["endpoint"]["port"] = free_port()
    config_file.write_text(json.dumps(config, indent=4))
    return config_file


def ports_of(config_file: Path) -> dict[str, int]:
    transports = json.loads(config_file.read_text())["workers"][0]["transports"]
    return {t["type"]: t["endpoint"]["port"] for t in transports}


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


async def exercise(autobahn: AutobahnSessions, ws_url: str, rs_port: int) -> dict[str, Any]:
    """What a client sees of a node serving the `crossbar init` config: a callee on RawSocket (CBOR),
    a caller and a subscriber on WebSocket (JSON)."""
    callee = await autobahn.open({"type": "rawsocket", "url": f"rs://127.0.0.1:{rs_port}", "serializer": "cbor",
                                  "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": rs_port}})  # fmt: skip
    caller = await autobahn.open({"type": "websocket", "url": ws_url, "serializers": ["json"]})
    await callee.register(lambda a, b: a + b, "com.example.add2")
    events: list[Any] = []
    await caller.subscribe(events.append, "com.example.oncounter")
    await callee.publish("com.example.oncounter", 7, options=__import__("autobahn").wamp.types.PublishOptions(
        acknowledge=True))
    for _ in range(100):
        if events:
            break
        await asyncio.sleep(0.02)
    return {"sum": await caller.call("com.example.add2", 2, 3), "events": events,
            "authrole": caller._authrole}  # fmt: skip


async def run_js(url: str, *args: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed for the AutobahnJS run"
    process = await asyncio.create_subprocess_exec(node, "interop.mjs", url, "realm1", *args, cwd=JS_DIR,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert result["ok"], (result, err.decode()[-2000:])
    return result


async def test_crossbar_init_config_converts_completely_and_serves_real_clients(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    config_file = crossbar_init(tmp_path / "app")
    ports = ports_of(config_file)
    out = tmp_path / "elsewhere" / "cloverleaf.yaml"
    out.parent.mkdir()
    converted = cloverleaf("convert", str(tmp_path / "app"), "-o", str(out))
    assert converted.returncode == 0, converted.stderr
    assert "not carried" not in converted.stderr
    assert "cloverleaf convert: complete" in converted.stderr
    text = out.read_text()
    assert text.startswith("# Cloverleaf node config converted from the Crossbar.io config")
    assert "# from workers[0].transports[1]" in text
    config = yaml.safe_load(text)
    # the static folder resolves from the output's folder, not from where the Crossbar config was
    assert config["transports"][1]["paths"]["/"]["directory"] == "../app/web"
    assert cloverleaf("check", str(out)).returncode == 0
    node = Started([sys.executable, "-m", "cloverleaf", "start", "--config", str(out)], tmp_path, tmp_path / "node.log")
    try:
        wait_for_port(ports["web"])
        wait_for_port(ports["rawsocket"])
        seen = await exercise(autobahn, f"ws://127.0.0.1:{ports['web']}/ws", ports["rawsocket"])
        assert seen == {"sum": 5, "events": [7], "authrole": "anonymous"}
        await run_js(f"ws://127.0.0.1:{ports['web']}/ws")
        status, listing = http_get(ports["web"], "/")
        assert status == 200 and "README.md" in listing  # enable_directory_listing carried
        status, info = http_get(ports["web"], "/info")
        assert status == 200 and "realm1" in info
    finally:
        assert node.stop() == 0, node.log()
        assert "Traceback" not in node.log()


async def test_start_crossbar_beside_crossbar_on_the_same_config(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    """`cloverleaf start --crossbar` runs the `crossbar init` node without writing anything, and a
    client sees the same as on Crossbar.io started on a copy of it (other ports)."""
    ours = crossbar_init(tmp_path / "ours")
    theirs = crossbar_init(tmp_path / "theirs")
    before = sorted(p.name for p in (tmp_path / "ours").rglob("*"))
    node = Started([sys.executable, "-m", "cloverleaf", "start", "--crossbar", str(tmp_path / "ours")],
                   tmp_path / "ours", tmp_path / "cloverleaf.log")  # fmt: skip
    crossbar = Started([str(CROSSBAR_VENV / "bin" / "crossbar"), "start", "--cbdir", str(theirs.parent)],
                       tmp_path / "theirs", tmp_path / "crossbar.log")  # fmt: skip
    try:
        results = {}
        for name, config_file, process in (("cloverleaf", ours, node), ("crossbar", theirs, crossbar)):
            ports = ports_of(config_file)
            wait_for_port(ports["web"], START_TIMEOUT)
            wait_for_port(ports["rawsocket"], START_TIMEOUT)
            deadline = time.monotonic() + START_TIMEOUT
            while True:  # Crossbar listens before its realm is ready
                try:
                    results[name] = await exercise(autobahn, f"ws://127.0.0.1:{ports['web']}/ws", ports["rawsocket"])
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} did not serve the client:\n{process.log()[-3000:]}") from None
                    await asyncio.sleep(0.5)
            status, listing = http_get(ports["web"], "/")
            results[name]["listing"] = status == 200 and "README.md" in listing
        assert results["cloverleaf"] == results["crossbar"] == {"sum": 5, "events": [7], "authrole": "anonymous",
                                                                "listing": True}  # fmt: skip
        assert "converted in memory" in node.log()
    finally:
        assert node.stop() == 0, node.log()
        crossbar.stop()
    assert sorted(p.name for p in (tmp_path / "ours").rglob("*")) == before  # nothing written


# -- a config with every shape ---------------------------------------------------------------------

BACKEND = '''
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError


class Backend(ApplicationSession):
    """A Crossbar class component, unchanged: a procedure and a dynamic authenticator."""

    async def onJoin(self, details):
        extra = self.config.extra or {}

        def authenticate(realm, authid, details):
            if details.get("ticket") == extra["good_ticket"]:
                return {"role": "user", "extra": {"via": "dynamic"}}
            raise ApplicationError("com.example.invalid_ticket", "no")

        await self.register(authenticate, "com.example.authenticate")
        await self.register(lambda: {"role": details.authrole, "extra": extra["greeting"]}, "com.example.whoami")
'''


GUEST = "import pathlib, time\npathlib.Path('guest-ran').write_text('yes')\ntime.sleep(600)"
SALTED_PASSWORD = "salted-password"


def every_shape_config(directory: Path, ws_port: int, universal_port: int, key_hex: str,
                       scram: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """A Crossbar config of our own covering the shapes of real ones (the Crossbar, Autobahn|Python
    and AutobahnJS repositories' .crossbar configs and Crossbar's docs)."""

    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "options": {"pythonpath": [".."]},
                "realms": [{
                    "name": "realm1",
                    "roles": [
                        {"name": "anonymous", "permissions": [
                            {"uri": "com.example.", "match": "prefix",
                             "allow": {"call": True, "register": False, "publish": True, "subscribe": True},
                             "disclose": {"caller": True, "publisher": True}, "cache": True},
                            {"uri": "com.example.js.", "match": "prefix",   # AutobahnJS's own procedures
                             "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
                        {"name": "user", "permissions": [
                            {"uri": "*", "allow": {"call": True, "subscribe": True, "publish": True}}]},
                        {"name": "backend", "permissions": [
                            {"uri": "", "match": "prefix",
                             "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
                    ],
                    "store": {"type": "memory", "event-history": [{"uri": "com.example.history", "limit": 10}]},
                }],
                "transports": [
                    {
                        "type": "universal",
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": universal_port},
                        "rawsocket": {"serializers": ["cbor", "msgpack", "json"]},
                        "websocket": {"ws": {"type": "websocket", "serializers": ["json", "msgpack"],
                                             "options": {"auto_ping_interval": 20000, "auto_ping_timeout": 10000}}},
                        "web": {"paths": {
                            "/": {"type": "static", "directory": "../web"},
                            "info": {"type": "nodeinfo"},
                            "api": {"type": "path", "paths": {
                                "/": {"type": "json", "value": {"api": True}},
                                "v1": {"type": "json", "value": {"version": 1},
                                       "options": {"prettify": True}}}},
                            "old": {"type": "redirect", "url": "/info"},
                            "lp": {"type": "longpoll", "options": {"request_timeout": 5, "session_timeout": 20}},
                            "publish": {"type": "publisher", "realm": "realm1", "role": "backend"},
                            "call": {"type": "caller", "realm": "realm1", "role": "backend",
                                     "options": {"key": "k1", "secret": "${CONVERT_TEST_BRIDGE_SECRET}",
                                                 "post_body_limit": 8192}},
                            "hook": {"type": "webhook", "realm": "realm1", "role": "backend",
                                     "options": {"topic": "com.example.hook"}},
                        }},
                    },
                    {
                        "type": "websocket",
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": ws_port},
                        "url": f"ws://127.0.0.1:{ws_port}/auth",
                        "auth": {
                            "ticket": {"type": "dynamic", "authenticator": "com.example.authenticate"},
                            "wampcra": {"type": "static", "users": {
                                "joe": {"secret": "${CONVERT_TEST_CRA_SECRET}", "role": "user"},
                                # Crossbar keeps a salted user's password and derives the key itself
                                "salted": {"secret": SALTED_PASSWORD, "role": "user", "salt": "salt123",
                                           "iterations": 100, "keylen": 16}}},
                            "cryptosign": {"type": "static", "principals": {
                                "device1": {"authorized_keys": [key_hex], "role": "user"}}},
                            "scram": {"type": "static", "principals": {"anna": {**scram, "role": "user"}}},
                            "anonymous": {"type": "static", "role": "anonymous"},
                        },
                    },
                ],
                "components": [{"type": "class", "classname": "backend.Backend", "realm": "realm1",
                                "role": "backend", "extra": {"good_ticket": "let-me-in", "greeting": "hello"}}],
            },
            {
                "type": "guest",
                "executable": sys.executable,
                "arguments": ["-c", GUEST],
                "options": {"workdir": "..", "env": {"vars": {"GUEST_VAR": "1"}}},
            },
        ],
    }


async def test_a_config_with_every_shape_and_auth_method(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    from cloverleaf.wamp.auth import derive_scram_credential, new_cryptosign_key

    app = tmp_path / "app"
    (app / ".crossbar").mkdir(parents=True)
    (app / "web").mkdir()
    (app / "web" / "index.html").write_text("<html><body>converted</body></html>\n")
    (app / "backend.py").write_text(BACKEND)
    key = new_cryptosign_key()
    scram = derive_scram_credential("annas-password", salt=b"0123456789abcdef", kdf="argon2id-13", iterations=8,
                                    memory=512).to_config()  # fmt: skip
    ws_port, universal_port = free_port(), free_port()
    config = every_shape_config(app, ws_port, universal_port, key.public_key_hex, scram)
    (app / ".crossbar" / "config.yaml").write_text(yaml.safe_dump(config))  # Crossbar reads YAML too
    out = tmp_path / "out" / "node.yaml"
    out.parent.mkdir()
    env = {"CONVERT_TEST_BRIDGE_SECRET": "bridge-secret", "CONVERT_TEST_CRA_SECRET": "joes-secret"}
    converted = cloverleaf("convert", str(app / ".crossbar" / "config.yaml"), "-o", str(out), env=env)
    assert converted.returncode == 0, converted.stderr
    assert "not carried" not in converted.stderr
    text = out.read_text()
    assert "${CONVERT_TEST_CRA_SECRET}" in text and "joes-secret" not in text  # secrets stay in the environment
    check = cloverleaf("check", str(out), env=env)
    assert check.returncode == 0, check.stderr
    node = Started([sys.executable, "-m", "cloverleaf", "start", "--config", str(out)], tmp_path, tmp_path / "node.log",
                   env=env)  # fmt: skip
    try:
        wait_for_port(ws_port)
        wait_for_port(universal_port)
        auth_ws = {"type": "websocket", "url": f"ws://127.0.0.1:{ws_port}/auth", "serializers": ["json"]}
        anonymous = await autobahn.open(auth_ws)
        # the class component joins through its Unix socket as role backend, with its extra
        deadline = time.monotonic() + 30
        while True:
            try:
                assert await anonymous.call("com.example.whoami") == {"role": "backend", "extra": "hello"}
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError(node.log()[-3000:]) from None
                await asyncio.sleep(0.2)
        ticket = await autobahn.open(auth_ws, authentication={"ticket": {"authid": "x", "ticket": "let-me-in"}})
        assert (ticket._authrole, ticket._authmethod) == ("user", "ticket")
        joe = await autobahn.open(auth_ws, authentication={"wampcra": {"authid": "joe", "secret": "joes-secret"}})
        assert joe._authrole == "user"
        salted = await autobahn.open(auth_ws, authentication={"wampcra": {"authid": "salted",
                                                                          "secret": SALTED_PASSWORD}})
        assert salted._authmethod == "wampcra"
        device = await autobahn.open(auth_ws, authentication={"cryptosign": {"authid": "device1",
                                                                             "privkey": key.seed.hex()}})
        assert device._authmethod == "cryptosign"
        anna = await autobahn.open(auth_ws, authentication={"scram": {"authid": "anna", "password": "annas-password",
                                                                      "kdf": "argon2id-13"}})  # fmt: skip
        assert anna._authmethod == "scram"
        # the universal port: RawSocket (CBOR) and WebSocket on it, the web paths beside them
        rs = await autobahn.open({"type": "rawsocket", "url": f"rs://127.0.0.1:{universal_port}", "serializer": "cbor",
                                  "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": universal_port}})
        assert await rs.call("com.example.whoami") == {"role": "backend", "extra": "hello"}
        ws = await autobahn.open({"type": "websocket", "url": f"ws://127.0.0.1:{universal_port}/ws",
                                  "serializers": ["msgpack"]})  # fmt: skip
        assert await ws.call("com.example.whoami") == {"role": "backend", "extra": "hello"}
        await run_js(f"ws://127.0.0.1:{universal_port}/ws", "--serializers", "json,msgpack")
        assert http_get(universal_port, "/api/v1") == (200, json.dumps({"version": 1}, indent=2))
        assert json.loads(http_get(universal_port, "/api")[1]) == {"api": True}
        assert "converted" in http_get(universal_port, "/")[1]
        assert http_get(universal_port, "/old")[0] == 200  # redirected to /info
        # the guest ran in its working folder
        deadline = time.monotonic() + 10
        while not (app / "guest-ran").exists():
            assert time.monotonic() < deadline, node.log()
            await asyncio.sleep(0.1)
    finally:
        assert node.stop() == 0, node.log()
        assert "Traceback" not in node.log(), node.log()


TWISTED_BACKEND = """
from autobahn.twisted.wamp import ApplicationSession
from twisted.internet.defer import inlineCallbacks


class Backend(ApplicationSession):
    \"\"\"A Crossbar class component as most are written: Twisted, inlineCallbacks.\"\"\"

    @inlineCallbacks
    def onJoin(self, details):
        yield self.register(lambda x: {"doubled": x * 2, "via": "twisted", "role": details.authrole},
                            "com.example.twisted.double")
"""


async def test_a_twisted_class_component_runs_unchanged_under_start_crossbar(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """Most Crossbar class components are Twisted ApplicationSessions: the class runner runs them on
    Twisted's reactor, joined over the Unix socket of their role."""
    app = tmp_path / "app"
    (app / ".crossbar").mkdir(parents=True)
    (app / "txbackend.py").write_text(TWISTED_BACKEND)
    port = free_port()
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    config = {"version": 2, "workers": [{
        "type": "router", "options": {"pythonpath": [".."]},
        "realms": [{"name": "realm1", "roles": [
            {"name": "anonymous", "permissions": [{"uri": "com.example.", "match": "prefix", "allow": {"call": True}}]},
            {"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": everything}]}]}],
        "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port}}],
        "components": [{"type": "class", "classname": "txbackend.Backend", "realm": "realm1", "role": "backend"}],
    }]}  # fmt: skip
    (app / ".crossbar" / "config.json").write_text(json.dumps(config))
    node = Started([sys.executable, "-m", "cloverleaf", "start", "--crossbar", str(app)], app, tmp_path / "node.log")
    try:
        wait_for_port(port)
        caller = await autobahn.open({"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws", "serializers": ["json"]})
        deadline = time.monotonic() + 30
        while True:
            try:
                result = await caller.call("com.example.twisted.double", 21)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError(node.log()[-3000:]) from None
                await asyncio.sleep(0.2)
        assert result == {"doubled": 42, "via": "twisted", "role": "backend"}
    finally:
        assert node.stop() == 0, node.log()
        assert "Traceback" not in node.log(), node.log()
