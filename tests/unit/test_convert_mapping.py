"""`cloverleaf convert`: the mapping of Crossbar.io config shapes, the findings, exit statuses and
paths (in process; tests/integration/test_convert.py starts what it writes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloverleaf.node import cli
from cloverleaf.node.config import parse_config
from cloverleaf.node.convert import NotCrossbarConfig, convert, read_crossbar
from cloverleaf.router.authenticators import salted_wampcra_key


def router(*, realms: list[Any] | None = None, transports: list[Any] | None = None, **more: Any) -> dict[str, Any]:
    return {"version": 2, "workers": [{"type": "router", "realms": realms or [{"name": "realm1", "roles": []}],
                                       "transports": transports or [], **more}]}  # fmt: skip


def write(folder: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    (folder / ".crossbar").mkdir(parents=True, exist_ok=True)
    path = folder / ".crossbar" / name
    path.write_text(json.dumps(config) if name.endswith(".json") else yaml.safe_dump(config))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["convert", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


TCP = {"type": "tcp", "interface": "127.0.0.1", "port": 8080}


def test_permissions_roles_and_store() -> None:
    realm = {"name": "realm1", "roles": [
        {"name": "frontend", "permissions": [
            {"uri": "com.example.*", "allow": {"call": True, "subscribe": True}},   # the older prefix spelling
            {"uri": "com.example.add2", "match": "exact", "allow": {"register": True, "publish": False},
             "disclose": {"caller": True}, "cache": True},
            {"uri": "com..on", "match": "wildcard", "allow": {"subscribe": True}}]},
        {"name": "nothing"},   # no permissions: nothing allowed (Cloverleaf's default would allow all)
        {"name": "dynamic", "authorizer": "com.example.authorize", "authorizer-realm": "auth"},
    ], "store": {"type": "memory", "event-history": [{"uri": "com.example.oncounter", "match": "exact",
                                                      "limit": 50}]}}  # fmt: skip
    conversion = convert(router(realms=[realm]), Path("/node/.crossbar"), Path("/node"))
    roles = conversion.config["realms"][0]["roles"]
    assert roles[0]["permissions"] == [
        {"uri": "com.example.", "match": "prefix", "allow": ["call", "subscribe"]},
        {"uri": "com.example.add2", "match": "exact", "allow": ["register"],
         "disclose": {"caller": True, "publisher": False}},
        {"uri": "com..on", "match": "wildcard", "allow": ["subscribe"]},
    ]  # fmt: skip
    assert roles[1] == {"name": "nothing", "permissions": []}
    assert roles[2] == {"name": "dynamic", "authorizer": "com.example.authorize", "authorizer_realm": "auth",
                        "permissions": []}  # fmt: skip
    assert conversion.config["realms"][0]["event_history"] == [{"uri": "com.example.oncounter", "match": "exact",
                                                                 "limit": 50}]  # fmt: skip
    assert conversion.complete
    parse_config({**conversion.config, "transports": [{"type": "websocket", "endpoint": {"port": 1}}]})


def test_what_is_not_carried_is_named_with_its_key_path_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = router(transports=[
        {"type": "websocket", "endpoint": {**TCP, "port": 8080}, "serializers": ["json", "ubjson"],
         "options": {"auto_ping_interval": 10000, "frobnicate": 1}},
        {"type": "mqtt", "endpoint": {**TCP, "port": 1883}},
        {"type": "web", "endpoint": {**TCP, "port": 8081}, "paths": {
            "/": {"type": "wsgi", "module": "app", "object": "app"},
            "ws": {"type": "websocket"}}},
    ])  # fmt: skip
    config["workers"].append({"type": "xbrmm"})
    write(tmp_path, config)
    status, out, err = run(capsys, str(tmp_path), "-o", str(tmp_path / "out.yaml"))
    assert status == 1
    assert out == ""
    lines = err.splitlines()
    assert 'not carried: workers[0].transports[0].serializers: \'ubjson\' is not spoken; clients use json, msgpack ' \
           'or cbor instead' in lines
    assert any(line.startswith("not carried: workers[0].transports[0].options.frobnicate: ") for line in lines)
    assert any(line.startswith("not carried: workers[0].transports[1]: a 'mqtt' transport") for line in lines)
    assert any(line.startswith('not carried: workers[0].transports[2].paths["/"]: a \'wsgi\' path service') and
               "reverse proxy" in line for line in lines)  # fmt: skip
    assert any(line.startswith("not carried: workers[1]: a 'xbrmm' worker") for line in lines)
    assert lines[-1].startswith("cloverleaf convert: incomplete")
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert [t["type"] for t in written["transports"]] == ["websocket", "web"]  # what could be carried is there
    assert written["transports"][0]["serializers"] == ["json"]


def test_not_a_crossbar_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.json").write_text('{"hello": 1}')
    status, _out, err = run(capsys, str(tmp_path / "a.json"))
    assert status == 2 and "not a Crossbar.io node config" in err
    (tmp_path / "v1.json").write_text('{"controller": {}, "workers": []}')
    assert run(capsys, str(tmp_path / "v1.json"))[0] == 2  # version 1: `crossbar upgrade` first
    assert run(capsys, str(tmp_path / "nothing-here"))[0] == 2
    with pytest.raises(NotCrossbarConfig, match="nothing to run"):
        convert({"version": 2, "workers": [{"type": "guest", "executable": "x"}]}, tmp_path, None)


def test_paths_resolve_from_the_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = tmp_path / "node"
    (node / "web").mkdir(parents=True)
    tls = {"certificate": "server.crt", "key": "server.key", "ca_certificates": ["ca.crt"]}
    write(node, router(transports=[
        {"type": "web", "endpoint": {**TCP, "tls": tls}, "paths": {"/": {"type": "static", "directory": "../web"}}},
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": "../router.sock"}},
    ]))  # fmt: skip
    out = tmp_path / "deploy" / "cloverleaf.yaml"
    out.parent.mkdir()
    _status, _out, err = run(capsys, str(node / ".crossbar"), "-o", str(out))
    written = yaml.safe_load(out.read_text())
    web, rawsocket = written["transports"]
    assert web["paths"]["/"]["directory"] == "../node/web"
    assert web["endpoint"]["tls"] == {"certificate": "../node/.crossbar/server.crt",
                                      "key": "../node/.crossbar/server.key",
                                      "ca_certificates": "../node/.crossbar/ca.crt", "client_certificates": "optional"}
    assert rawsocket["endpoint"]["path"] == str(node / "router.sock")  # absolute: bound where the node runs
    assert "check: " in err  # the TLS files do not exist: the result is checked as `cloverleaf check` would


def test_universal_transport_and_nested_paths() -> None:
    transport = {
        "type": "universal", "endpoint": TCP,
        "rawsocket": {"serializers": ["msgpack"], "options": {"max_message_size": 4096}},
        "websocket": {"ws": {"type": "websocket", "options": {"auto_ping_interval": 5000, "auto_ping_timeout": 9000}}},
        "web": {"paths": {"/": {"type": "redirect", "url": "/info"}, "info": {"type": "nodeinfo"},
                          "api": {"type": "path", "paths": {"/": {"type": "json", "value": 1},
                                                            "v2": {"type": "json", "value": 2}}}}},
    }  # fmt: skip
    conversion = convert(router(transports=[transport]), Path("/n/.crossbar"), Path("/n"))
    [out] = conversion.config["transports"]
    assert out["type"] == "universal" and out["endpoint"] == {"type": "tcp", "host": "127.0.0.1", "port": 8080}
    assert out["rawsocket"] == {"serializers": ["msgpack"], "max_message_size": 4096}
    assert out["paths"]["/ws"]["ping_interval"] == 5.0
    assert out["paths"]["/ws"]["ping_timeout"] == 5.0  # shortened to the interval, with a note
    assert set(out["paths"]) == {"/", "/info", "/api", "/api/v2", "/ws"}
    assert conversion.complete
    # a universal port with RawSocket alone is a rawsocket transport
    alone = convert(router(transports=[{"type": "universal", "endpoint": TCP, "rawsocket": {}}]), Path("/n"), None)
    assert alone.config["transports"][0]["type"] == "rawsocket"


def test_auth_methods_map_onto_principals() -> None:
    auth = {
        "anonymous": {"type": "static", "role": "guest"},
        "ticket": {"type": "static", "principals": {"joe": {"ticket": "${JOE_TICKET}", "role": "user"}}},
        "wampcra": {"type": "static", "users": {"ann": {"secret": "s", "role": "user", "salt": "x", "iterations": 10,
                                                        "keylen": 32}}},
        "cryptosign": {"type": "static", "principals": {"dev": {"authorized_keys": ["ab" * 32], "role": "device",
                                                                "realm": "realm1", "extra": {"k": 1}}}},
        "scram": {"type": "static", "principals": {"sam": {"kdf": "argon2id-13", "iterations": 4096, "memory": 512,
                                                           "salt": "00", "stored-key": "11", "server-key": "22",
                                                           "role": "user"}}},
        "tls": {"type": "static", "principals": {"client": {"certificate-sha1": "AA:BB", "role": "backend"}}},
        "cookie": {},
    }  # fmt: skip
    transport = {"type": "websocket", "endpoint": TCP, "auth": auth, "cookie": {"name": "sid", "max_age": 60,
                                                                                "store": {"type": "file"}}}
    conversion = convert(router(transports=[transport]), Path("/n"), None)
    converted = conversion.config["transports"][0]["auth"]
    assert converted["anonymous"] == {"role": "guest"}
    assert converted["ticket"] == {"principals": {"joe": {"role": "user", "ticket": "${JOE_TICKET}"}}}
    # Crossbar keeps a salted user's password; Cloverleaf's config the key derived from it
    assert converted["wampcra"]["principals"]["ann"] == {"role": "user", "secret": salted_wampcra_key("s", "x", 10, 32),
                                                         "salt": "x", "iterations": 10, "keylen": 32}  # fmt: skip
    assert converted["cryptosign"]["principals"]["dev"] == {"role": "device", "pubkeys": ["ab" * 32],
                                                            "realm": "realm1", "authextra": {"k": 1}}  # fmt: skip
    assert converted["scram"]["principals"]["sam"]["scram"]["stored-key"] == "11"
    assert converted["tls"]["principals"]["client"] == {"role": "backend", "certificate_sha1": "AA:BB"}
    assert converted["cookie"] == {"name": "sid", "max_age": 60}
    assert conversion.complete


def test_class_components_stay_class_components_and_guests_stay_guests(tmp_path: Path) -> None:
    config = router(components=[{"type": "class", "classname": "app.Backend", "realm": "realm1", "role": "backend",
                                 "extra": {"a": 1}},
                                {"type": "class", "classname": "app.Other", "realm": "realm1", "id": "other"}],
                    options={"pythonpath": [".."]}, transports=[{"type": "rawsocket", "endpoint": TCP}])  # fmt: skip
    config["workers"] += [
        {"type": "container", "options": {"pythonpath": ["../lib"], "env": {"vars": {"B": "2"}}}, "components": [
            {"type": "class", "classname": "lib.Worker", "realm": "realm1",
             "transport": {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8080},
                           "url": "ws://127.0.0.1:8080/ws"}}]},
        {"type": "guest", "executable": "node", "arguments": ["backend.js"],
         "options": {"workdir": "../node", "env": {"vars": {"A": "1"}}}},
    ]  # fmt: skip
    conversion = convert(config, tmp_path / ".crossbar", tmp_path)
    backend, other, worker, guest = conversion.config["components"]
    # a router component joins through the node's private socket for it: no transport, no paths
    # of this machine in the written config
    assert backend == {"type": "class", "classname": "app.Backend", "realm": "realm1", "role": "backend",
                       "extra": {"a": 1}, "pythonpath": ["."]}  # fmt: skip
    assert other == {"type": "class", "name": "other", "classname": "app.Other", "realm": "realm1",
                     "role": "anonymous", "pythonpath": ["."]}  # fmt: skip
    assert [t["type"] for t in conversion.config["transports"]] == ["rawsocket"]  # (none added for them)
    # a container component connects over its transport
    assert worker == {"type": "class", "classname": "lib.Worker", "realm": "realm1",
                      "transport": {"type": "websocket", "url": "ws://127.0.0.1:8080/ws",
                                    "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8080}},
                      "pythonpath": ["lib"], "env": {"B": "2"}}  # fmt: skip
    assert guest == {"type": "guest", "executable": "node", "arguments": ["backend.js"], "cwd": "node",
                     "env": {"A": "1"}}  # fmt: skip
    assert conversion.complete
    checked = parse_config(conversion.config, "converted")
    assert [type(c).__name__ for c in checked.components] == ["ClassComponent"] * 3 + ["GuestComponent"]


def test_output_folder_is_made_and_an_unwritable_one_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, router(transports=[{"type": "rawsocket", "endpoint": TCP}]))
    out = tmp_path / "new" / "deeper" / "node.yaml"
    status, _out, err = run(capsys, str(tmp_path), "-o", str(out))
    assert status == 0 and out.is_file(), err
    status, _out, err = run(capsys, str(out), "-o", str(tmp_path / "json" / "node.json"))  # --to: the same
    assert status == 0 and (tmp_path / "json" / "node.json").is_file(), err
    (tmp_path / "a-file").write_text("")
    unwritable = tmp_path / "a-file" / "node.yaml"
    status, _out, err = run(capsys, str(tmp_path), "-o", str(unwritable))
    assert status == 1
    assert err.strip().splitlines()[-1].startswith(f"cloverleaf convert: cannot write {unwritable}:"), err
    assert "Traceback" not in err


def test_yaml_input_and_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, router(transports=[{"type": "rawsocket", "endpoint": TCP}]), "config.yaml")
    data, cbdir = read_crossbar(tmp_path)
    assert cbdir == (tmp_path / ".crossbar").resolve() and data["version"] == 2
    status, out, _err = run(capsys, str(tmp_path), "--to", "json")
    assert status == 0
    assert json.loads(out)["transports"][0]["type"] == "rawsocket"


def test_to_json_and_back_between_cloverleaf_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "node.yaml"
    source.write_text("# comment\nrealms: [{name: realm1}]\ntransports:\n  - {type: rawsocket, endpoint: {port: 9}}\n")
    status, _out, err = run(capsys, str(source), "-o", str(tmp_path / "node.json"))
    assert status == 0 and "comments are not carried" in err
    assert json.loads((tmp_path / "node.json").read_text())["realms"] == [{"name": "realm1"}]
    status, out, _err = run(capsys, str(tmp_path / "node.json"), "--to", "yaml")
    assert status == 0 and yaml.safe_load(out) == yaml.safe_load(source.read_text())


def test_crossbar_http_bridge_classes_become_http_components(tmp_path: Path) -> None:
    config = router(realms=[{"name": "realm1", "roles": [{"name": "bridge"}]}], components=[
        {"type": "class", "classname": "crossbar.bridge.rest.MessageForwarder", "realm": "realm1", "role": "bridge",
         "extra": {"subscriptions": [{"url": "https://example.com/hook", "topic": "com.example.t1"}],
                   "method": "PUT", "expectedcode": 200, "debug": True}}])  # fmt: skip
    config["workers"].append({"type": "container", "components": [
        {"type": "class", "classname": "crossbar.bridge.rest.RESTCallee", "realm": "realm1",
         "extra": {"procedure": "com.example.rest", "baseurl": "https://example.com/api"},
         "transport": {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8080},
                       "url": "ws://127.0.0.1:8080/ws"}}]})  # fmt: skip
    conversion = convert(config, tmp_path, tmp_path)
    subscriber, callee = conversion.config["components"]
    assert subscriber == {"type": "http-subscriber", "realm": "realm1", "role": "bridge", "method": "PUT",
                          "subscriptions": [{"topic": "com.example.t1", "url": "https://example.com/hook"}],
                          "expected_code": 200}  # fmt: skip
    assert callee == {"type": "http-callee", "realm": "realm1", "procedure": "com.example.rest",
                      "base_url": "https://example.com/api"}  # fmt: skip
    assert conversion.complete
    checked = parse_config({**conversion.config, "transports": [{"type": "websocket", "endpoint": {"port": 1}}]})
    assert [c.type for c in checked.components] == ["http-subscriber", "http-callee"]


def test_shapes_found_in_real_configs(tmp_path: Path) -> None:
    """What a survey of 275 configs of the Crossbar, Autobahn and crossbar-examples repositories
    showed: starred URIs, allow-by-default, router components' default role, any-path WebSocket
    transports, guests' folders, proxy workers, web-only nodes, testee workers."""
    realm = {"name": "realm1", "roles": [
        {"name": "anonymous", "allow-by-default": True},
        {"name": "user", "permissions": [{"uri": "com.*.foo.*", "allow": {"call": True}},
                                         {"uri": "com.*.bar", "allow": {"call": True}},
                                         {"uri": "*", "allow": {"subscribe": True}}]}]}  # fmt: skip
    config = router(realms=[realm], transports=[
        {"type": "websocket", "endpoint": TCP},
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": "router.sock"},
         "auth": {"anonymous-proxy": {"type": "static"}, "cryptosign-proxy": {"type": "static"}}},
    ], components=[{"type": "class", "classname": "app.Backend", "realm": "realm1"},
                   {"type": "class", "classname": "app.Backend", "realm": "realm1"}])  # fmt: skip
    config["workers"] += [
        {"type": "proxy", "transports": [{"type": "web", "endpoint": {**TCP, "port": 9000}, "paths": {
            "ws": {"type": "websocket", "auth": {"ticket": {"type": "static", "principals": {
                "joe": {"ticket": "t", "role": "user"}}}}}}}],
         "routes": {"realm1": {"anonymous": "backend"}}, "connections": {"backend": {}}},
        {"type": "guest", "executable": "../bin/hello", "arguments": ["../client.php"]},
        {"type": "guest", "executable": "php", "arguments": ["../client.php"], "options": {"workdir": ".."}},
        {"type": "websocket-testee", "transport": {"type": "websocket", "endpoint": {**TCP, "port": 9001}}},
    ]  # fmt: skip
    conversion = convert(config, tmp_path / ".crossbar", tmp_path)
    anonymous, user = conversion.config["realms"][0]["roles"]
    assert anonymous["permissions"] == [{"uri": "", "match": "prefix",
                                         "allow": ["call", "register", "publish", "subscribe"]}]  # fmt: skip
    assert [(p["uri"], p["match"]) for p in user["permissions"]] == [
        ("com..foo.", "wildcard"), ("com..bar", "wildcard"), ("", "prefix")]
    transports = conversion.config["transports"]
    assert transports[0]["path"] == "*"  # Crossbar's WebSocket transport answers on any path
    # the router's transport for proxies is left out; the proxy's client-facing one is the node's
    assert [t["type"] for t in transports] == ["websocket", "web", "websocket-testee"]
    assert transports[1]["paths"]["/ws"]["auth"]["ticket"]["principals"]["joe"]["role"] == "user"
    backend, backend2, hello, php = conversion.config["components"]
    assert ("name" not in backend, backend2["name"]) == (True, "app.Backend-2")
    assert hello["executable"] == "bin/hello" and hello["cwd"] == ".crossbar"
    assert php["executable"] == "php" and php["cwd"] == "."
    assert conversion.complete, conversion.report()
    parse_config(conversion.config)
    # a web-only node gets a realm nobody can join (Cloverleaf needs one)
    web_only = convert({"version": 2, "workers": [{"type": "router", "transports": [
        {"type": "web", "endpoint": TCP, "paths": {"/": {"type": "nodeinfo"}}}]}]}, tmp_path, None)  # fmt: skip
    assert web_only.config["realms"] == [{"name": "realm1", "roles": []}]


def test_archive_path_service(tmp_path: Path) -> None:
    archive = {"type": "archive", "archive": "autobahn.zip", "origin": "https://example.com/a.zip", "download": True,
               "cache": True, "hashes": ["ab" * 32], "object_prefix": "autobahn-js-browser-master",
               "default_object": "autobahn.min.js", "mime_types": {".min.js": "text/javascript"}}  # fmt: skip
    config = router(transports=[{"type": "web", "endpoint": TCP, "paths": {"shared": archive}}])
    conversion = convert(config, tmp_path / ".crossbar", tmp_path)
    converted = conversion.config["transports"][0]["paths"]["/shared"]
    assert converted == {"type": "archive", "archive": ".crossbar/autobahn.zip", "origin": "https://example.com/a.zip",
                         "download": True, "hashes": ["ab" * 32], "object_prefix": "autobahn-js-browser-master",
                         "default_object": "autobahn.min.js", "mime_types": {".min.js": "text/javascript"}}  # fmt: skip
    assert conversion.complete
    parse_config(conversion.config)


def test_shared_ports_crossbar_classes_and_guests_found_in_their_workdir(tmp_path: Path) -> None:
    web = {"type": "web", "endpoint": {"type": "tcp", "port": 8080, "shared": True},
           "paths": {"ws": {"type": "websocket"}}}  # fmt: skip
    config = router(transports=[web], components=[
        {"type": "class", "classname": "crossbar.adapter.postgres.PostgreSQLPublisher", "realm": "realm1"}])
    config["workers"] += [
        {"type": "router", "transports": [web]},   # a second worker on the shared port: the same transport
        {"type": "router", "transports": [{**web, "paths": {"other": {"type": "nodeinfo"}}}]},  # not the same
        {"type": "guest", "executable": "Hello.exe", "options": {"workdir": "../bin"}},
    ]  # fmt: skip
    (tmp_path / "bin").mkdir()
    (tmp_path / ".crossbar").mkdir()
    (tmp_path / "bin" / "Hello.exe").write_text("")
    conversion = convert(config, tmp_path / ".crossbar", tmp_path)
    assert len(conversion.config["transports"]) == 1
    lost = {f.path: f.why for f in conversion.findings if not f.carried}
    assert "a port is one transport" in lost["workers[2].transports[0]"]
    assert "part of Crossbar.io itself" in lost["workers[0].components[0]"]
    assert "workers[1].transports[0]" not in lost  # the identical copy is a note
    [guest] = conversion.config["components"]
    assert guest["executable"] == "bin/Hello.exe" and guest["cwd"] == "bin"  # Crossbar looks in the workdir first


def test_a_twisted_class_component_needs_twisted_here(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The converted config is checked as `cloverleaf check` would: a Twisted component (most
    Crossbar ones are) in a Python without Twisted makes the result incomplete, saying what to install."""
    (tmp_path / "txconv_backend.py").write_text("from autobahn.twisted.wamp import ApplicationSession\n")
    (tmp_path / "aioconv_backend.py").write_text("from autobahn.asyncio.wamp import ApplicationSession\n")
    write(tmp_path, router(options={"pythonpath": [".."]}, transports=[{"type": "rawsocket", "endpoint": TCP}],
                           components=[{"type": "class", "classname": "txconv_backend.Backend", "realm": "realm1"},
                                       {"type": "class", "classname": "aioconv_backend.Backend", "realm": "realm1"}]))
    out = tmp_path / "node.yaml"
    status, _out, err = run(capsys, str(tmp_path), "-o", str(out))
    assert status == 0, err
    monkeypatch.setitem(sys.modules, "twisted.internet", None)  # (find_spec answers None: not installed)
    status, _out, err = run(capsys, str(tmp_path), "-o", str(out))
    assert status == 1
    assert "check: components[0].classname: txconv_backend.Backend is written for Twisted, which is not " \
           "installed" in err
    assert "components[1]" not in err
    assert len(yaml.safe_load(out.read_text())["components"]) == 2  # carried either way: installing Twisted is enough


def test_a_realm_in_two_router_workers(tmp_path: Path) -> None:
    realm = {"name": "realm1", "roles": [{"name": "anonymous", "allow-by-default": True}]}
    config = router(realms=[realm])
    config["workers"] += [{"type": "router", "realms": [realm]},  # scaled out: the same realm
                          {"type": "router", "realms": [{"name": "realm1", "roles": []}]}]  # not the same
    conversion = convert(config, tmp_path, None)
    assert conversion.config["realms"] == [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
        {"uri": "", "match": "prefix", "allow": ["call", "register", "publish", "subscribe"]}]}]}]
    assert [f.path for f in conversion.findings if not f.carried] == ["workers[2].realms[0]"]
    assert any(f.path == "workers[1].realms[0]" and f.carried for f in conversion.findings)


def test_start_config_on_a_crossbar_file_points_to_crossbar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, router(transports=[{"type": "rawsocket", "endpoint": TCP}]))
    assert cli.main(["start", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"{path} is a Crossbar.io config: run it with `cloverleaf start --crossbar {path}`, "
                           "or convert it with `cloverleaf convert`")
