"""Node configuration: defaults, YAML/JSON loading, error messages, and the ``check``/``version`` CLI.

Every error must name the file, the key path and what was expected
(``node.yaml: transports[0].endpoint.port: Input should be less than or equal to 65535 (got 70000)``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloverleaf import __version__
from cloverleaf.node import cli
from cloverleaf.node.config import (
    ALL_SERIALIZERS,
    DEFAULT_CONFIG,
    ConfigError,
    NodeConfig,
    RawSocketTransport,
    TcpEndpoint,
    UnixEndpoint,
    WebSocketTransport,
    default_config,
    load_config,
    parse_config,
)

MINIMAL: dict[str, Any] = {
    "realms": [{"name": "realm1"}],
    "transports": [{"type": "websocket", "endpoint": {"port": 8080}}],
}


def _problems(data: Any, source: str = "node.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    assert info.value.source == source
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems)
    for line, problem in zip(lines, info.value.problems, strict=True):
        assert line == f"{source}: {problem}"  # every line names the file
    return lines


def _only_problem(data: Any, source: str = "node.yaml") -> str:
    lines = _problems(data, source)
    assert len(lines) == 1, lines
    return lines[0]


def _with_transport(**fields: Any) -> dict[str, Any]:
    return {**MINIMAL, "transports": [{"type": "websocket", "endpoint": {"port": 8080}, **fields}]}


# -- defaults ------------------------------------------------------------------------------------


def test_default_config() -> None:
    config = default_config()
    assert isinstance(config, NodeConfig)
    assert [realm.name for realm in config.realms] == ["realm1"]
    realm = config.realms[0]
    assert realm.uri_check == "loose"
    assert [role.name for role in realm.roles] == ["anonymous"]
    permission = realm.roles[0].permissions[0]
    assert (permission.uri, permission.match) == ("", "prefix")
    assert sorted(permission.allow) == ["call", "publish", "register", "subscribe"]
    websocket, rawsocket = config.transports
    assert isinstance(websocket, WebSocketTransport)
    assert (websocket.endpoint.host, websocket.endpoint.port, websocket.path) == ("127.0.0.1", 8080, "/ws")
    assert isinstance(rawsocket, RawSocketTransport)
    assert isinstance(rawsocket.endpoint, TcpEndpoint)
    assert (rawsocket.endpoint.host, rawsocket.endpoint.port) == ("127.0.0.1", 8081)


def test_defaults_of_a_minimal_config() -> None:
    config = parse_config(MINIMAL)
    transport = config.transports[0]
    assert isinstance(transport, WebSocketTransport)
    assert transport.serializers == ["json", "msgpack", "cbor"]
    assert transport.max_message_size == 1024 * 1024
    assert transport.handshake_timeout == 10.0
    assert transport.ping_interval == 30.0
    assert transport.ping_timeout == 10.0
    assert transport.sequential_request_ids is False  # as Crossbar (issue 11): the spec's check is an option
    assert transport.path == "/ws"
    assert transport.allowed_origins == ["*"]
    assert transport.auth.anonymous is not None
    assert transport.auth.anonymous.role == "anonymous"
    assert transport.endpoint.type == "tcp"
    assert transport.endpoint.host == "127.0.0.1"
    assert config.realms[0].uri_check == "loose"
    assert config.limits.max_outgoing_bytes == 4 * 1024 * 1024
    assert config.limits.queue_policy == "drop_events"
    assert config.logging.level == "info"
    assert config.shutdown_timeout == 5.0


def test_default_lists_are_not_shared() -> None:
    # The models are frozen, but a list field stays mutable: a default must be a fresh list, or
    # appending to one transport's serializers changes every other transport and the module default.
    a, b = parse_config(MINIMAL), parse_config(MINIMAL)
    assert a.transports[0].serializers == b.transports[0].serializers == ["json", "msgpack", "cbor"]
    assert a.transports[0].serializers is not ALL_SERIALIZERS
    assert a.transports[0].serializers is not b.transports[0].serializers


def test_default_config_dict_is_not_mutated() -> None:
    before = json.dumps(DEFAULT_CONFIG, sort_keys=True)
    default_config()
    assert json.dumps(DEFAULT_CONFIG, sort_keys=True) == before


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError for frozen models
        config.shutdown_timeout = 1.0  # type: ignore[misc]


def test_full_config() -> None:
    data = {
        "realms": [
            {"name": "realm1"},
            {"name": "com.example", "uri_check": "strict", "roles": [
                {"name": "user", "permissions": [{"uri": "com.example.", "match": "prefix", "allow": ["call"]}]},
            ]},
        ],
        "transports": [
            {"type": "websocket", "endpoint": {"type": "tcp", "host": "0.0.0.0", "port": 0}, "path": "/wamp",
             "serializers": ["cbor"], "max_message_size": 512, "allowed_origins": ["https://example.com"],
             "sequential_request_ids": False},
            {"type": "rawsocket", "endpoint": {"type": "unix", "path": "/tmp/x.sock"},
             "max_message_size": 16 * 1024 * 1024, "auth": {"anonymous": {"role": "guest"}}},
        ],
        "limits": {"max_outgoing_bytes": 65536, "queue_policy": "close"},
        "logging": {"level": "debug"},
        "shutdown_timeout": 0,
    }
    config = parse_config(data)
    assert config.realms[1].roles[0].permissions[0].allow == ["call"]
    assert isinstance(config.transports[1].endpoint, UnixEndpoint)
    assert config.transports[1].auth.anonymous is not None
    assert config.transports[1].auth.anonymous.role == "guest"
    assert config.transports[0].sequential_request_ids is False
    assert config.limits.queue_policy == "close"


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml_file_loads(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"node{suffix}"
    path.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    assert load_config(path).model_dump() == parse_config(MINIMAL).model_dump()
    assert load_config(str(path)).model_dump() == parse_config(MINIMAL).model_dump()
    # relative paths in the file are relative to its folder
    assert load_config(path).base_dir == tmp_path.resolve()
    assert load_config(path).resolve("web") == tmp_path.resolve() / "web"


def test_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(MINIMAL), encoding="utf-8")
    assert load_config(path).model_dump() == parse_config(MINIMAL).model_dump()


def test_yaml_with_comments_and_anchors(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "# a node\n"
        "realms:\n"
        "  - name: realm1   # the realm\n"
        "transports:\n"
        "  - type: websocket\n"
        "    endpoint: &ep {host: 127.0.0.1, port: 8080}\n"
        "  - type: rawsocket\n"
        "    endpoint: {type: tcp, port: 8081}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert [t.type for t in config.transports] == ["websocket", "rawsocket"]


def test_rawsocket_endpoint_type_defaults_to_tcp_or_is_reported_as_missing() -> None:
    # TcpEndpoint.type defaults to "tcp" and a WebSocket endpoint may omit it; a RawSocket endpoint
    # (a tcp|unix union) should either default the same way or report the missing key plainly.
    data = {**MINIMAL, "transports": [{"type": "rawsocket", "endpoint": {"port": 8081}}]}
    try:
        config = parse_config(data, "node.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("node.yaml: transports[0].endpoint.type: "), str(exc)
    else:
        assert isinstance(config.transports[0].endpoint, TcpEndpoint)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: cannot read the file")


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("realms:\n  - name: realm1\n transports: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, column ")
    assert "invalid YAML" in message


def test_invalid_yaml_tab_indent_names_line(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("realms:\n  - name: realm1\ntransports:\n\t- type: websocket\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: line 4, column ")


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text('{\n  "realms": [{"name": "realm1"}],\n  "transports": [,]\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, column ")
    assert "invalid JSON" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    if text.strip() in ("", "# only a comment"):
        assert str(info.value).startswith(f"{path}: the file is empty: a node config has at least realms: and")
    else:
        assert str(info.value).startswith(f"{path}: (top level): expected keys such as realms: and transports:, got ")


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "logging": {"level": "loud"}}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: logging.level: ")


# -- error messages ------------------------------------------------------------------------------


def test_unknown_key_top_level() -> None:
    assert _only_problem({**MINIMAL, "realm": []}).startswith("node.yaml: realm: unknown key")


def test_unknown_key_nested() -> None:
    line = _only_problem(_with_transport(endpoint={"port": 8080, "hots": "::1"}))
    assert line.startswith("node.yaml: transports[0].endpoint.hots: unknown key")


def test_unknown_key_names_the_allowed_keys() -> None:
    # "expectation" for an unknown key: which keys are allowed there (a typo such as "hots" should
    # point at "host").
    line = _only_problem(_with_transport(endpoint={"port": 8080, "hots": "::1"}))
    assert "host" in line.removeprefix("node.yaml: transports[0].endpoint.hots"), line
    line = _only_problem({**MINIMAL, "realm": []})
    assert "realms" in line.removeprefix("node.yaml: realm:"), line
    # also inside a web transport's path services (a path's "websocket" is not the transport's)
    web = {"type": "web", "endpoint": {"port": 8080}, "paths": {
        "/": {"type": "static", "directory": ".", "max_ags": 1}, "/ws": {"type": "websocket", "pings": 1}}}
    lines = _problems({**MINIMAL, "transports": [web]})
    assert 'transports[0].paths["/"].max_ags: unknown key (expected one of: directory, directory_listing, ' \
           "index, max_age, type)" in lines[0], lines
    assert 'transports[0].paths["/ws"].pings: unknown key (expected one of: allowed_origins, auth, ' in lines[1]
    assert "ping_interval" in lines[1] and "endpoint" not in lines[1], lines


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"transports": MINIMAL["transports"]}, "realms"),
        ({"realms": MINIMAL["realms"]}, "transports"),
        ({**MINIMAL, "realms": [{}]}, "realms[0].name"),
        ({**MINIMAL, "transports": [{"type": "rawsocket"}]}, "transports[0].endpoint"),
        (_with_transport(endpoint={"host": "::1"}), "transports[0].endpoint.port"),
        ({**MINIMAL, "transports": [{"type": "rawsocket", "endpoint": {"type": "unix"}}]},
         "transports[0].endpoint.path"),
        ({**MINIMAL, "realms": [{"name": "r", "roles": [{"permissions": []}]}]}, "realms[0].roles[0].name"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_missing_key(data: dict[str, Any], path: str) -> None:
    assert _only_problem(data) == f"node.yaml: {path}: required key is missing"


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        (_with_transport(endpoint={"port": "abc"}), "transports[0].endpoint.port", "valid integer"),
        (_with_transport(endpoint={"port": 80.5}), "transports[0].endpoint.port", "valid integer"),
        (_with_transport(endpoint={"port": [80]}), "transports[0].endpoint.port", "valid integer"),
        (_with_transport(max_message_size="1MB"), "transports[0].max_message_size", "valid integer"),
        (_with_transport(sequential_request_ids="sometimes"), "transports[0].sequential_request_ids", "boolean"),
        (_with_transport(serializers="json"), "transports[0].serializers", "valid list"),
        (_with_transport(path=5), "transports[0].path", "valid string"),
        ({**MINIMAL, "realms": "realm1"}, "realms", "valid list"),
        ({**MINIMAL, "realms": [{"name": 1}]}, "realms[0].name", "valid string"),
        ({**MINIMAL, "shutdown_timeout": "soon"}, "shutdown_timeout", "valid number"),
        ({**MINIMAL, "logging": "debug"}, "logging", "dictionary"),
        ({**MINIMAL, "limits": {"max_outgoing_bytes": None}}, "limits.max_outgoing_bytes", "valid integer"),
    ],
)
def test_wrong_type(data: dict[str, Any], path: str, expected: str) -> None:
    line = _only_problem(data)
    assert line.startswith(f"node.yaml: {path}: "), line
    assert expected in line, line


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (_with_transport(endpoint={"port": True}), "transports[0].endpoint.port"),  # would listen on port 1
        (_with_transport(endpoint={"port": "8080"}), "transports[0].endpoint.port"),
        (_with_transport(sequential_request_ids="yes"), "transports[0].sequential_request_ids"),
        (_with_transport(sequential_request_ids=0), "transports[0].sequential_request_ids"),
        (_with_transport(max_message_size=65536.0), "transports[0].max_message_size"),
    ],
    ids=["port-true", "port-string", "bool-yes-string", "bool-zero", "int-float"],
)
def test_wrong_type_is_not_coerced(data: dict[str, Any], path: str) -> None:
    # YAML/JSON already have typed scalars: a string, bool or float where an int/bool is expected is
    # a mistake in the file and must be reported, not silently converted.
    line = _only_problem(data)
    assert line.startswith(f"node.yaml: {path}: "), line


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        (_with_transport(endpoint={"port": 70000}), "transports[0].endpoint.port", "less than or equal to 65535"),
        (_with_transport(endpoint={"port": -1}), "transports[0].endpoint.port", "greater than or equal to 0"),
        (_with_transport(max_message_size=100), "transports[0].max_message_size", "greater than or equal to 512"),
        (_with_transport(max_message_size=2**24 + 1), "transports[0].max_message_size", "less than or equal to"),
        (_with_transport(ping_timeout=0), "transports[0].ping_timeout", "greater than 0"),
        (_with_transport(serializers=[]), "transports[0].serializers", "at least 1"),
        (_with_transport(path="ws"), "transports[0].path", "expected a path starting with '/'"),
        ({**MINIMAL, "realms": []}, "realms", "at least 1"),
        ({**MINIMAL, "transports": []}, "transports", "at least 1"),
        ({**MINIMAL, "limits": {"max_outgoing_bytes": 1}}, "limits.max_outgoing_bytes", "greater than or equal to"),
        ({**MINIMAL, "shutdown_timeout": -1}, "shutdown_timeout", "greater than or equal to 0"),
    ],
)
def test_out_of_range(data: dict[str, Any], path: str, expected: str) -> None:
    line = _only_problem(data)
    assert line.startswith(f"node.yaml: {path}: "), line
    assert expected in line, line


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        ({**MINIMAL, "logging": {"level": "verbose"}}, "logging.level", "'debug', 'info', 'warning' or 'error'"),
        (_with_transport(serializers=["json", "xml"]), "transports[0].serializers[1]", "'json', 'msgpack' or 'cbor'"),
        ({**MINIMAL, "realms": [{"name": "r", "uri_check": "lenient"}]}, "realms[0].uri_check", "'loose' or 'strict'"),
        ({**MINIMAL, "limits": {"queue_policy": "drop"}}, "limits.queue_policy", "'drop_events' or 'close'"),
        ({**MINIMAL, "realms": [{"name": "r", "roles": [{"name": "u", "permissions": [{"uri": "a",
                                                                                   "allow": ["read"]}]}]}]},
         "realms[0].roles[0].permissions[0].allow[0]", "'call', 'register', 'publish' or 'subscribe'"),
    ],
)
def test_bad_enum(data: dict[str, Any], path: str, expected: str) -> None:
    line = _only_problem(data)
    assert line.startswith(f"node.yaml: {path}: "), line
    assert expected in line, line
    assert "(got " in line, line


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        ({**MINIMAL, "transports": [{"type": "http", "endpoint": {"port": 1}}]}, "transports[0].type",
         "unknown type 'http' (expected one of: websocket, rawsocket, web, universal, websocket-testee)"),
        ({**MINIMAL, "transports": [{"endpoint": {"port": 1}}]}, "transports[0]", "type"),
        ({**MINIMAL, "transports": [{"type": "rawsocket", "endpoint": {"type": "pipe"}}]}, "transports[0].endpoint",
         "unknown type 'pipe' (expected one of: tcp, unix)"),
    ],
    ids=["bad-type", "no-type", "bad-endpoint-type"],
)
def test_bad_union_tag(data: dict[str, Any], path: str, expected: str) -> None:
    line = _only_problem(data)
    assert line.startswith(f"node.yaml: {path}"), line
    assert expected in line, line


@pytest.mark.parametrize("name", ["", "a..b", "a b", ".realm", "realm.", "realm#1", "realm1\n"], ids=repr)
def test_bad_realm_uri(name: str) -> None:
    line = _only_problem({**MINIMAL, "realms": [{"name": name}]})
    assert line.startswith("node.yaml: realms[0].name: expected a WAMP URI"), line
    assert f"(got {name!r})" in line, line


def test_duplicate_realm_names() -> None:
    line = _only_problem({**MINIMAL, "realms": [{"name": "r1"}, {"name": "r2"}, {"name": "r1"}]})
    assert "'r1'" in line and "unique" in line, line
    # The key path is the realms list (or the duplicate entry), not "(top level)".
    assert line.startswith("node.yaml: realms"), line


def test_duplicate_realm_names_reported_with_other_problems() -> None:
    # "check prints every problem": a duplicate realm must not hide behind an unrelated error.
    lines = _problems({**MINIMAL, "realms": [{"name": "r1"}, {"name": "r1"}], "logging": {"level": "loud"}})
    assert len(lines) == 2, lines
    assert any("'r1'" in line for line in lines), lines


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "realms": [{"name": ""}],
        "transports": [{"type": "websocket", "endpoint": {"port": -1}, "path": "ws"}],
        "logging": {"level": 3},
        "extra": 1,
    }
    lines = _problems(data)
    assert [line.split(": ")[1] for line in lines] == [
        "realms[0].name", "transports[0].endpoint.port", "transports[0].path", "logging.level", "extra",
    ]


def test_problem_values_are_shortened() -> None:
    line = _only_problem({**MINIMAL, "logging": {"level": "x" * 500}})
    assert len(line) < 250


@pytest.mark.parametrize(("data", "got"), [([], "a list"), ("realms", "a single text"), (3, "a number")], ids=repr)
def test_top_level_must_be_a_mapping(data: Any, got: str) -> None:
    assert _only_problem(data) == f"node.yaml: (top level): expected keys such as realms: and transports:, got {got}"


@pytest.mark.parametrize(("data", "expected"), [
    ({**MINIMAL, "transports": [{"type": "websockets", "endpoint": {"port": 1}}]},
     "transports[0].type: unknown type 'websockets' (expected one of: websocket, rawsocket, web, universal, "
     "websocket-testee)"),
    ({**MINIMAL, "transports": [{"endpoint": {"port": 1}}]},
     "transports[0]: the type key is missing (expected one of: websocket, rawsocket, web, universal, "
     "websocket-testee)"),
    ({**MINIMAL, "transports": [{"type": "web", "endpoint": {"port": 1}, "paths": {"/": {"type": "statc"}}}]},
     'transports[0].paths["/"].type: unknown type \'statc\' (expected one of: websocket, static, redirect, nodeinfo, '
     "metrics, publisher, caller, webhook, console, longpoll, json, archive)"),
])  # fmt: skip
def test_an_unknown_or_missing_type_names_the_types(data: Any, expected: str) -> None:
    assert _only_problem(data) == f"node.yaml: {expected}"


# -- CLI (subprocess) ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloverleaf", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_cli_version() -> None:
    result = _cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cloverleaf {__version__}"
    assert __version__ == "0.1.0"


def test_cli_check_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    result = _cli("check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: OK"
    assert result.stderr == ""


def test_cli_check_prints_every_error(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "realms:\n"
        "  - name: 'a b'\n"
        "transports:\n"
        "  - type: websocket\n"
        "    endpoint: {port: 70000}\n"
        "    bogus: 1\n"
        "logging: {level: loud}\n",
        encoding="utf-8",
    )
    result = _cli("check", str(path))
    assert result.returncode == 1
    assert "OK" not in result.stdout
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    output = "\n".join(lines)
    for key in ("realms[0].name", "transports[0].endpoint.port", "transports[0].bogus", "logging.level"):
        assert f"{path}: {key}: " in output


# The remaining cases call the same entry point in-process (a subprocess costs ~0.4 s each).


def test_cli_check_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("realms: [\n", encoding="utf-8")
    assert cli.main(["check", str(path)]) == 1
    assert f"{path}: line " in capsys.readouterr().err


def test_cli_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: cannot read the file" in capsys.readouterr().err


def test_cli_check_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(MINIMAL), encoding="utf-8")
    assert cli.main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK"


def test_cli_check_without_a_file_checks_what_start_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check"]) == 1
    assert "no config file given, and none of cloverleaf.yaml, cloverleaf.yml, cloverleaf.json in" in (
        capsys.readouterr().err
    )
    (tmp_path / "cloverleaf.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    assert cli.main(["check"]) == 0
    assert capsys.readouterr().out.strip() == "cloverleaf.yaml: OK"


def test_cli_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    from cloverleaf import __version__

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cloverleaf {__version__}"
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"cloverleaf {__version__}"


def test_cli_requires_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_check_reports_unloadable_tls_files(tmp_path: Path) -> None:
    config = tmp_path / "tls.yaml"
    config.write_text(
        "realms: [{name: realm1}]\n"
        "transports:\n"
        "  - {type: websocket, endpoint: {type: tcp, port: 9443, tls: {certificate: /nope/c.pem, key: /nope/k.pem}}}\n"
    )
    result = subprocess.run([sys.executable, "-m", "cloverleaf", "check", str(config)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert f"{config}: transports[0].endpoint.tls.certificate: cannot read /nope/c.pem" in result.stderr
    assert f"{config}: transports[0].endpoint.tls.key: cannot read /nope/k.pem" in result.stderr  # both, not the first
    assert "Traceback" not in result.stderr


def test_cli_check_reports_a_missing_static_directory_relative_to_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web = {"type": "web", "endpoint": {"type": "tcp", "port": 8080},
           "paths": {"/": {"type": "static", "directory": "site"}, "/ws": {"type": "websocket"}}}  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "transports": [web]}), encoding="utf-8")
    assert cli.main(["check", str(path)]) == 1
    assert f'{path}: transports[0].paths["/"].directory: no such directory: {tmp_path / "site"}' in (
        capsys.readouterr().err
    )
    (tmp_path / "site").mkdir()  # relative to the config file's folder, not the working directory
    assert cli.main(["check", str(path)]) == 0


def test_cookie_auth_on_rawsocket_is_refused_not_ignored() -> None:
    rawsocket = {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081},
                 "auth": {"anonymous": {}, "cookie": {}}}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "transports": [rawsocket]})
    assert "transports[0]: expected auth.cookie only on websocket" in str(info.value)


def test_hello_timeout_defaults_to_the_handshake_timeout() -> None:
    config = parse_config({"realms": [{"name": "realm1"}], "transports": [
        {"type": "websocket", "endpoint": {"port": 8080}, "handshake_timeout": 4.0},
        {"type": "rawsocket", "endpoint": {"port": 8081}, "hello_timeout": 2.5},
        {"type": "web", "endpoint": {"port": 8082}, "paths": {"/lp": {"type": "longpoll", "hello_timeout": 1}}},
    ]})  # fmt: skip
    websocket, rawsocket, web = config.transports
    assert isinstance(websocket, WebSocketTransport) and websocket.join_timeout == 4.0
    assert isinstance(rawsocket, RawSocketTransport) and rawsocket.join_timeout == 2.5
    assert web.paths["/lp"].join_timeout == 1.0  # type: ignore[union-attr]
    assert _problems({**MINIMAL, "transports": [{"type": "rawsocket", "endpoint": {"port": 1}, "hello_timeout": 0}]}) \
        == ["node.yaml: transports[0].hello_timeout: Input should be greater than 0 (got 0)"]


@pytest.mark.parametrize(
    ("transport", "where"),
    [
        ({"type": "websocket", "endpoint": {"port": 8080}}, "transports[0]"),
        ({"type": "websocket-testee", "endpoint": {"port": 8080}}, "transports[0]"),
        ({"type": "web", "endpoint": {"port": 8080}, "paths": {"/ws": {"type": "websocket"}}},
         'transports[0].paths["/ws"]'),
    ],
)
def test_websocket_ping_timeout_must_fit_in_the_interval(transport: dict[str, Any], where: str) -> None:
    # picows refuses a reply timeout longer than the idle time on every connection (a traceback
    # per client, no session ever opened): refused when the config is read instead
    target = transport["paths"]["/ws"] if transport["type"] == "web" else transport
    target.update(ping_interval=5, ping_timeout=40)
    problems = _problems({"realms": [{"name": "realm1"}], "transports": [transport]})
    assert len(problems) == 1 and problems[0].startswith(f"node.yaml: {where}")
    assert "ping_timeout (40) at most ping_interval (5)" in problems[0]
    target.update(ping_interval=0)  # no pings: the timeout does not matter
    parse_config({"realms": [{"name": "realm1"}], "transports": [transport]}, "node.yaml")


def test_environment_references_are_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVERLEAF_TEST_TICKET", "s3cret")
    data = yaml.safe_load("""
realms: [{name: realm1}]
transports:
  - type: websocket
    endpoint: {port: 8080}
    auth:
      ticket:
        principals:
          joe: {role: anonymous, ticket: "${CLOVERLEAF_TEST_TICKET}"}
          ann: {role: anonymous, ticket: "x${CLOVERLEAF_TEST_TICKET}"}
""")
    config = parse_config(data)
    ticket = config.transports[0].auth.ticket  # type: ignore[union-attr]
    assert ticket is not None
    assert ticket.principals["joe"].ticket == "s3cret"
    assert ticket.principals["ann"].ticket == "x${CLOVERLEAF_TEST_TICKET}"  # only whole values


def test_an_unset_environment_variable_names_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOVERLEAF_TEST_UNSET", raising=False)
    data = {"realms": [{"name": "realm1"}], "transports": [{
        "type": "websocket", "endpoint": {"port": 8080},
        "auth": {"ticket": {"principals": {"joe": {"role": "anonymous", "ticket": "${CLOVERLEAF_TEST_UNSET}"}}}},
    }]}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "node.yaml")
    assert caught.value.problems == [
        'transports[0].auth.ticket.principals["joe"].ticket: the environment variable CLOVERLEAF_TEST_UNSET is not set'
    ]


def test_two_transports_on_one_address_are_refused() -> None:
    def transports(*endpoints: dict[str, Any]) -> dict[str, Any]:
        return {"realms": [{"name": "realm1"}],
                "transports": [{"type": "rawsocket", "endpoint": e} for e in endpoints]}  # fmt: skip

    for clash in (({"host": "0.0.0.0", "port": 9000}, {"host": "127.0.0.1", "port": 9000}),
                  ({"port": 9000}, {"port": 9000}),
                  ({"type": "unix", "path": "/tmp/x.sock"}, {"type": "unix", "path": "/tmp/x.sock"})):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            parse_config(transports(*clash), "node.yaml")
        assert caught.value.problems == ["(top level): expected transports[1].endpoint: the address of transports[0] "
                                         "(one transport per address: serve several paths with a web transport)"]
    parse_config(transports({"host": "127.0.0.1", "port": 9000}, {"host": "127.0.0.2", "port": 9000}))
    parse_config(transports({"port": 0}, {"port": 0}))  # each gets a port of its own
