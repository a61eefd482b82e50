"""Crossbar.io node configs turned into Cloverleaf configs (`cloverleaf convert`, `start --crossbar`).

:func:`read_crossbar` reads a Crossbar node config (config version 2, JSON or YAML, the file or
its ``.crossbar`` folder); :func:`convert` maps it onto Cloverleaf's config shape (plain data, the
input of :func:`~cloverleaf.node.config.parse_config`) and lists every finding with its Crossbar key
path: what could not be carried (and what to do instead), and what is carried with a difference
worth knowing. Nothing is dropped without a finding. :func:`render_yaml` writes the result with
comments saying where each part came from.

Paths: Crossbar resolves relative paths (static directories, TLS files, guest working folders,
Python paths) against the node folder (``.crossbar``). The converted config's paths are made
relative to the folder the output is written to (absolute when that is impossible), so they still
resolve when the file is written elsewhere.

Secrets given as ``${NAME}`` stay as written: Cloverleaf's loader reads them from the environment
too. A port given as ``$NAME``/``${NAME}`` (Crossbar reads those from the environment) is read at
conversion time, since Cloverleaf's ports are numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from .config import ConfigError, NodeConfig, load_config, parse_config

#: Crossbar's HTTP bridge classes (crossbar.bridge.rest.*) -> Cloverleaf's own component types
HTTP_BRIDGE_CLASSES = {"MessageForwarder": "http-subscriber", "RESTCallee": "http-callee"}
#: Crossbar's authentication methods that Cloverleaf offers
AUTH_METHODS = ("anonymous", "ticket", "wampcra", "cryptosign", "scram", "tls")
#: Crossbar's serializers that Cloverleaf speaks
SERIALIZERS = ("json", "msgpack", "cbor")
#: Cloverleaf's bounds on a transport's max_message_size
MIN_MESSAGE_SIZE, MAX_MESSAGE_SIZE = 512, 16 * 1024 * 1024
#: a Crossbar environment reference, $NAME or ${NAME} (ports and salted secrets are read through it)
_ENV_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


class NotCrossbarConfig(Exception):
    """The input is not a Crossbar.io node config (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """Something of the Crossbar config that is not carried (``carried`` False) or carried with a
    difference (True), at ``path`` (Crossbar's key path)."""

    path: str
    why: str
    instead: str = ""
    carried: bool = False

    def line(self) -> str:
        kind = "note" if self.carried else "not carried"
        return f"{kind}: {self.path}: {self.why}" + (f"; {self.instead}" if self.instead else "")


@dataclass(slots=True)
class Conversion:
    """A converted config: Cloverleaf config data, where each part came from, and the findings."""

    config: dict[str, Any]
    #: (section, index) of a realm/transport/component -> the Crossbar key path it came from
    origins: dict[tuple[str, int], str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether everything was carried (the exit status is 0 then)."""
        return all(finding.carried for finding in self.findings)

    def report(self) -> list[str]:
        """The findings as lines for standard error: losses first, then notes; notes that say the
        same about several keys are one line listing them."""
        lines = [finding.line() for finding in self.findings if not finding.carried]
        grouped: dict[tuple[str, str], list[str]] = {}
        for finding in self.findings:
            if finding.carried:
                grouped.setdefault((finding.why, finding.instead), []).append(finding.path)
        for (why, instead), paths in grouped.items():
            where = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more: {', '.join(paths[1:])})"
            lines.append(f"note: {where}: {why}" + (f"; {instead}" if instead else ""))
        return lines


# -- reading ---------------------------------------------------------------------------------------


def read_crossbar(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The Crossbar config at ``path`` (a file, or a folder holding ``config.json``/``config.yaml``
    directly or in ``.crossbar/``) and the node folder its relative paths are relative to.
    Raises :class:`NotCrossbarConfig` when it is not one."""
    given = Path(path)
    if given.is_dir():
        for folder in (given, given / ".crossbar"):
            names = ("config.json", "config.yaml", "config.yml")
            found = [folder / name for name in names if (folder / name).is_file()]
            if found:
                given = found[0]
                break
        else:
            raise NotCrossbarConfig(f"{path}: no config.json or config.yaml in it or in its .crossbar folder")
    try:
        text = given.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotCrossbarConfig(f"{given}: cannot read the file: {exc.strerror}") from None
    try:
        data = json.loads(text) if given.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise NotCrossbarConfig(f"{given}: neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("workers", []), list) or (
        "workers" not in data and "controller" not in data
    ):
        raise NotCrossbarConfig(f"{given}: not a Crossbar.io node config (it has no workers: list)")
    version = data.get("version", 1)
    if version != 2:
        raise NotCrossbarConfig(f"{given}: Crossbar config version {version!r}; `crossbar upgrade` makes it version 2")
    return data, given.resolve().parent


# -- converting ------------------------------------------------------------------------------------


class _Converter:
    def __init__(self, cbdir: Path, out_dir: Path | None) -> None:
        self.cbdir = cbdir
        self.out_dir = out_dir
        self.findings: list[Finding] = []
        self.realms: list[dict[str, Any]] = []
        self.transports: list[dict[str, Any]] = []
        self.components: list[dict[str, Any]] = []
        self.origins: dict[tuple[str, int], str] = {}
        self.pythonpath: list[str] = []
        #: a proxy worker was converted: router transports only for proxies are left out
        self.proxied = False

    # findings
    def lost(self, path: str, why: str, instead: str = "") -> None:
        self.findings.append(Finding(path, why, instead or "see docs/migrating-from-crossbar.md", carried=False))

    def note(self, path: str, why: str, instead: str = "") -> None:
        self.findings.append(Finding(path, why, instead, carried=True))

    def unknown_keys(self, where: str, config: dict[str, Any], known: set[str]) -> None:
        for key in config:
            if key not in known:
                self.lost(f"{where}.{key}", "a key Cloverleaf's converter does not know",
                          "check what it did in Crossbar and whether docs/configuration.md has an equivalent")

    # paths
    def place(self, path: str) -> str:
        """A Crossbar path (relative to the node folder) as the output config should write it."""
        if Path(path).expanduser().is_absolute():
            return str(Path(path).expanduser())
        absolute = Path(os.path.normpath(self.cbdir / Path(path).expanduser()))
        if self.out_dir is None:
            return str(absolute)
        try:
            return os.path.relpath(absolute, self.out_dir)
        except ValueError:  # another drive (Windows)
            return str(absolute)

    def absolute(self, path: str) -> str:
        """A Crossbar path made absolute (Unix socket paths: a node binds them relative to the
        folder it runs in, which need not be the config's)."""
        return os.path.normpath(self.cbdir / Path(path).expanduser())

    # -- the node --------------------------------------------------------------------------------
    def node(self, data: dict[str, Any]) -> dict[str, Any]:
        self.unknown_keys("(top level)", data, {"$schema", "version", "controller", "workers"})
        controller = data.get("controller") or {}
        if isinstance(controller, dict):
            for key in controller:
                if key in ("id", "options"):
                    self.note(f"controller.{key}", "the node controller has no equivalent (one process, configured "
                                                   "by this file)")  # fmt: skip
                else:
                    self.lost(f"controller.{key}", "the node controller's services have no equivalent",
                              "see docs/configuration.md")
        for index, worker in enumerate(data.get("workers") or []):
            where = f"workers[{index}]"
            if not isinstance(worker, dict):
                self.lost(where, "not a mapping")
                continue
            kind = worker.get("type")
            if kind == "router":
                self.router(worker, where)
            elif kind == "proxy":
                self.proxy(worker, where)
            elif kind == "websocket-testee":
                self.unknown_keys(where, worker, {"type", "id", "options", "transport"})
                endpoint = self.endpoint((worker.get("transport") or {}).get("endpoint") or {},
                                         f"{where}.transport.endpoint")  # fmt: skip
                for key in worker.get("options") or {}:
                    self.note(f"{where}.options.{key}", "a worker option with no effect here")
                for key in (worker.get("transport") or {}).get("options") or {}:
                    self.note(f"{where}.transport.options.{key}", "the testee answers with the router's own "
                                                                  "WebSocket stack and limits")  # fmt: skip
                if endpoint is not None:
                    self.add_transport({"type": "websocket-testee", "endpoint": endpoint}, where)
            elif kind == "container":
                self.container(worker, where)
            elif kind == "guest":
                self.guest(worker, where)
            else:
                self.lost(where, f"a {kind!r} worker has no equivalent", "see docs/migrating-from-crossbar.md")
        if not self.realms and not self.transports:
            raise NotCrossbarConfig("the config has no router worker with a realm or a transport: nothing to run")
        if not self.realms:
            # a web-only node: Cloverleaf needs a realm; one without roles admits nobody
            self.realms.append({"name": "realm1", "roles": []})
            self.origins[("realms", 0)] = "added: Cloverleaf needs a realm (it has no roles: nobody can join it)"
        self.unique_component_names()
        config: dict[str, Any] = {"realms": self.realms, "transports": self.transports}
        if self.components:
            config["components"] = self.components
        return config

    def unique_component_names(self) -> None:
        """Components without a name of their own are labelled by their class or program;
        several of one kind get -2, -3, ... (Cloverleaf refuses two components of one name)."""
        labels: dict[str, int] = {}
        for component in self.components:
            label = component.get("name")
            if label is None and component["type"] == "guest":  # as GuestComponent.label
                label = " ".join([Path(str(component["executable"])).name, *component["arguments"][:1]])
            elif label is None and component["type"] == "class":  # as ClassComponent.label
                label = component["classname"]
            if label is None:
                continue
            labels[label] = labels.get(label, 0) + 1
            if labels[label] > 1:
                component["name"] = f"{label}-{labels[label]}"

    def proxy(self, worker: dict[str, Any], where: str) -> None:
        """A proxy worker's transports face the clients: they become the node's own (Cloverleaf
        routes in the process that accepts; --workers shares the ports)."""
        self.unknown_keys(where, worker, {"type", "id", "options", "transports", "routes", "connections"})
        for index, transport in enumerate(worker.get("transports") or []):
            self.transport(transport, f"{where}.transports[{index}]")
        for key in ("routes", "connections"):
            if key in worker:
                self.note(f"{where}.{key}", "not needed: the node that accepts a client routes its session (for "
                                            "several processes: `cloverleaf start --workers N`, docs/workers.md)")
        self.proxied = True

    def router(self, worker: dict[str, Any], where: str) -> None:
        self.unknown_keys(where, worker, {"type", "id", "options", "realms", "transports", "components",
                                          "connections"})  # fmt: skip
        options = worker.get("options") or {}
        for key, value in options.items():
            if key == "pythonpath":
                self.pythonpath.extend(self.place(p) for p in value)
            elif key in ("title", "reactor", "expose_controller", "expose_shared"):
                self.note(f"{where}.options.{key}", "a worker option with no effect in Cloverleaf (one process)")
            elif key == "cpu_affinity":
                cpus = ",".join(str(c) for c in value) if isinstance(value, list) else str(value)
                self.note(f"{where}.options.{key}", "the node is not pinned to CPUs by its config",
                          f"start it under `taskset -c {cpus}` to pin it")  # fmt: skip
            else:
                self.lost(f"{where}.options.{key}", "a worker option with no equivalent",
                          "environment variables: set them where `cloverleaf start` runs" if key == "env" else "")
        if worker.get("connections"):
            self.lost(f"{where}.connections", "database connections of router workers have no equivalent",
                      "open them in the components that use them")
        for index, realm in enumerate(worker.get("realms") or []):
            self.realm(realm, f"{where}.realms[{index}]")
        for index, transport in enumerate(worker.get("transports") or []):
            self.transport(transport, f"{where}.transports[{index}]")
        for index, component in enumerate(worker.get("components") or []):
            self.router_component(component, f"{where}.components[{index}]")

    # -- realms and roles ------------------------------------------------------------------------
    def realm(self, realm: dict[str, Any], where: str) -> None:
        self.unknown_keys(where, realm, {"name", "roles", "store", "options", "id", "rlinks"})
        if realm.get("rlinks"):
            self.lost(f"{where}.rlinks", "router-to-router links have no equivalent",
                      "run the nodes as one cluster on NATS instead (docs/cluster.md)")  # fmt: skip
        name = realm.get("name")
        findings_before = len(self.findings)
        out: dict[str, Any] = {"name": name, "roles": [self.role(r, f"{where}.roles[{i}]")
                                                       for i, r in enumerate(realm.get("roles") or [])]}  # fmt: skip
        for key, value in (realm.get("options") or {}).items():
            if key == "uri_check":
                out["uri_check"] = value
            elif key == "event_dispatching_chunk_size":
                self.note(f"{where}.options.{key}", "events are written to every subscriber in one pass "
                                                    "(each connection's queue is bounded instead)")  # fmt: skip
            elif key == "enable_meta_api" and value:
                pass
            else:
                self.lost(f"{where}.options.{key}", "a realm option with no equivalent",
                          "the meta API is always on (authorize wamp.* per role to restrict it)"
                          if key == "enable_meta_api" else "")  # fmt: skip
        store = realm.get("store")
        if store:
            self.store(store, f"{where}.store", out)
        for index, existing in enumerate(self.realms):
            if existing["name"] != name:
                continue
            origin = self.origins.get(("realms", index), "")
            del self.findings[findings_before:]  # (said of the first definition already)
            if existing == out:
                self.note(where, f"the same realm as {origin} (router workers scaled out): listed once")
            else:
                self.lost(where, f"realm {name!r} is defined differently by {origin}",
                          "merge the two definitions' roles into one realm by hand")  # fmt: skip
            return
        self.realms.append(out)
        self.origins[("realms", len(self.realms) - 1)] = where

    def store(self, store: dict[str, Any], where: str, out: dict[str, Any]) -> None:
        history = []
        for index, entry in enumerate(store.get("event-history") or []):
            item = {"uri": entry.get("uri"), "match": entry.get("match", "exact")}
            if "limit" in entry:
                item["limit"] = entry["limit"]
            history.append(item)
            self.unknown_keys(f"{where}.event-history[{index}]", entry, {"uri", "match", "limit"})
        if history:
            out["event_history"] = history
        kind = store.get("type", "memory")
        if kind != "memory":
            out["event_store"] = {"type": "sqlite", "path": self.place(str(Path(store.get("path", ".")) /
                                                                           "event-history.sqlite"))}  # fmt: skip
            self.note(f"{where}.type", f"the {kind!r} store becomes a SQLite event store in the same folder "
                                       "(history kept across restarts, as before; the old store's events are "
                                       "not copied)")  # fmt: skip
        for key in store:
            if key not in ("type", "event-history", "path", "limit", "maxsize"):
                self.lost(f"{where}.{key}", "a store option with no equivalent",
                          "event_history and event_store are what a realm stores (docs/configuration.md)")
            elif key in ("limit", "maxsize"):
                self.note(f"{where}.{key}", "the store's size is bounded by each event-history entry's limit")

    def role(self, role: dict[str, Any], where: str) -> dict[str, Any]:
        self.unknown_keys(where, role, {"name", "permissions", "authorizer", "authorizer-realm", "id",
                                        "allow-by-default"})  # fmt: skip
        out: dict[str, Any] = {"name": role.get("name")}
        if "authorizer" in role:
            out["authorizer"] = role["authorizer"]
            if "authorizer-realm" in role:
                out["authorizer_realm"] = role["authorizer-realm"]
            out["permissions"] = []
            return out
        if role.get("allow-by-default") and not role.get("permissions"):
            # Crossbar's role without permissions that allows everything
            out["permissions"] = [{"uri": "", "match": "prefix", "allow": ["call", "register", "publish", "subscribe"]}]
            return out
        if "allow-by-default" in role:
            self.note(f"{where}.allow-by-default", "ignored where permissions are listed, as in Crossbar")
        out["permissions"] = [self.permission(p, f"{where}.permissions[{i}]")
                              for i, p in enumerate(role.get("permissions") or [])]  # fmt: skip
        return out

    def permission(self, permission: dict[str, Any], where: str) -> dict[str, Any]:
        self.unknown_keys(where, permission, {"uri", "match", "allow", "disclose", "cache", "validate"})
        uri = permission.get("uri", "")
        match = permission.get("match")
        if match is None and "*" in uri:  # a starred URI: its stars say the match (as Autobahn reads it)
            if uri.count("*") == 1 and uri.endswith("*"):
                uri, match = uri[:-1], "prefix"
            else:
                uri, match = uri.replace("*", ""), "wildcard"
        out: dict[str, Any] = {"uri": uri, "match": match or "exact"}
        allow = permission.get("allow") or {}
        out["allow"] = [action for action in ("call", "register", "publish", "subscribe") if allow.get(action)]
        disclose = permission.get("disclose") or {}
        if disclose.get("caller") or disclose.get("publisher"):
            out["disclose"] = {"caller": bool(disclose.get("caller")), "publisher": bool(disclose.get("publisher"))}
        if "cache" in permission:
            self.note(f"{where}.cache", "not needed: static permissions are always looked up from a cache")
        if permission.get("validate"):
            self.lost(f"{where}.validate", "payload validation against schemas has no equivalent",
                      "validate in the callee or subscriber")  # fmt: skip
        return out

    # -- transports ------------------------------------------------------------------------------
    def transport(self, transport: dict[str, Any], where: str) -> None:
        kind = transport.get("type")
        methods = list(transport.get("auth") or {})
        if methods and all(method.endswith("-proxy") for method in methods):
            self.note(where, "a transport for Crossbar's proxy workers only: not needed (the proxy workers' own "
                             "transports are the node's)")  # fmt: skip
            return
        out: dict[str, Any] | None
        if kind == "websocket":
            out = self.websocket_transport(transport, where)
        elif kind == "rawsocket":
            out = self.rawsocket(transport, where, with_endpoint=True)
        elif kind == "web":
            out = self.web(transport, where)
        elif kind == "universal":
            out = self.universal(transport, where)
        elif kind == "websocket.testee":
            out = {"type": "websocket-testee", "endpoint": self.endpoint(transport.get("endpoint") or {},
                                                                         f"{where}.endpoint")}  # fmt: skip
        else:
            self.lost(where, f"a {kind!r} transport has no equivalent", "see docs/migrating-from-crossbar.md")
            return
        if out is None:
            return
        for key in ("id", "max_connections", "debug"):
            if key in transport:
                self.note(f"{where}.{key}", "no equivalent needed" if key != "max_connections" else
                          "connections are not counted per transport (each session's queue is bounded)")  # fmt: skip
        self.add_transport(out, where)

    def add_transport(self, out: dict[str, Any], where: str) -> None:
        """Add a transport, once per endpoint: Crossbar workers sharing a port (``shared: true``)
        each listed the same transport; a different one on a taken endpoint cannot be carried."""
        for index, existing in enumerate(self.transports):
            if not _same_listener(existing["endpoint"], out["endpoint"]):
                continue
            origin = self.origins.get(("transports", index), "")
            if existing == out:
                self.note(where, f"the same transport as {origin} on the same port: listed once (one process "
                                 "routes every connection; `cloverleaf start --workers N` shares a port between "
                                 "processes)")  # fmt: skip
            else:
                self.lost(where, f"another transport on the port of {origin}: a port is one transport",
                          "merge the two transports' paths and auth into one, or give this one a port of its own")
            return
        self.transports.append(out)
        self.origins[("transports", len(self.transports) - 1)] = where

    def endpoint(self, endpoint: dict[str, Any], where: str) -> dict[str, Any] | None:
        kind = endpoint.get("type", "tcp")
        if kind == "unix":
            self.unknown_keys(where, endpoint, {"type", "path", "backlog"})
            if "backlog" in endpoint:
                self.note(f"{where}.backlog", "the listen backlog is the system's default")
            return {"type": "unix", "path": self.absolute(endpoint.get("path", ""))}
        if kind != "tcp":
            self.lost(where, f"a {kind!r} endpoint has no equivalent", "listen on tcp or unix")
            return None
        self.unknown_keys(where, endpoint, {"type", "port", "portrange", "interface", "version", "shared",
                                            "backlog", "tls", "user_timeout"})  # fmt: skip
        port = endpoint.get("port")
        if isinstance(port, str):
            match = _ENV_VARIABLE.fullmatch(port)
            if match is not None and match.group(1) in os.environ and os.environ[match.group(1)].isdigit():
                self.note(f"{where}.port", f"read from the environment variable {match.group(1)} now, at "
                                           "conversion ({os.environ[match.group(1)]}): Cloverleaf's ports are "
                                           "numbers")  # fmt: skip
                port = int(os.environ[match.group(1)])
            elif port.isdigit():
                port = int(port)
            else:
                self.lost(f"{where}.port", f"{port!r} is not a port, or names an environment variable that is not "
                                           "set", "write the port number")  # fmt: skip
                return None
        if "portrange" in endpoint:
            self.lost(f"{where}.portrange", "a port range has no equivalent", "listen on one port")
            return None
        host = endpoint.get("interface") or ("::" if endpoint.get("version") == 6 else "0.0.0.0")
        if not endpoint.get("interface"):
            self.note(f"{where}.interface", f"Crossbar listens on every interface when none is given: {host} "
                                            "(Cloverleaf's own default is 127.0.0.1)")  # fmt: skip
        out: dict[str, Any] = {"type": "tcp", "host": host, "port": port}
        if endpoint.get("shared"):
            self.note(f"{where}.shared", "workers share ports by themselves (`--workers N`, docs/workers.md)")
        if "backlog" in endpoint:
            self.note(f"{where}.backlog", "the listen backlog is the system's default")
        if "user_timeout" in endpoint:
            self.note(f"{where}.user_timeout", "dead peers are found by WebSocket/RawSocket pings instead")
        if endpoint.get("tls"):
            tls = self.tls(endpoint["tls"], f"{where}.tls")
            if tls is None:
                return None
            out["tls"] = tls
        return out

    def tls(self, tls: dict[str, Any], where: str) -> dict[str, Any] | None:
        self.unknown_keys(where, tls, {"key", "certificate", "chain_certificates", "dhparam", "ciphers",
                                       "ca_certificates"})  # fmt: skip
        out: dict[str, Any] = {"certificate": self.place(tls.get("certificate", "")),
                               "key": self.place(tls.get("key", ""))}  # fmt: skip
        if tls.get("chain_certificates"):
            self.lost(f"{where}.chain_certificates", "intermediate certificates are read from the certificate file",
                      "append them to the certificate file (PEM, the server's certificate first)")  # fmt: skip
        cas = tls.get("ca_certificates") or []
        if len(cas) == 1:
            out["ca_certificates"] = self.place(cas[0])
            out["client_certificates"] = "optional"
            self.note(f"{where}.ca_certificates", "client certificates are asked for and optional, as in Crossbar "
                                                  "(`client_certificates: required` refuses clients without one)")
        elif len(cas) > 1:
            self.lost(f"{where}.ca_certificates", "several CA files: Cloverleaf reads one",
                      "concatenate them into one PEM file and name it in ca_certificates")  # fmt: skip
        if "dhparam" in tls:
            self.note(f"{where}.dhparam", "not needed: key exchange is ECDHE (TLS 1.2+) with Python's defaults")
        if "ciphers" in tls:
            self.lost(f"{where}.ciphers", "the cipher list is Python's default (TLS 1.2+)",
                      "restrict ciphers at a TLS-terminating proxy if a policy requires it")
        return out

    def serializers(self, config: dict[str, Any], where: str, out: dict[str, Any]) -> None:
        given = config.get("serializers")
        if given is None:
            return
        kept = [name for name in given if name in SERIALIZERS]
        for name in given:
            if name not in SERIALIZERS:
                self.lost(f"{where}.serializers", f"{name!r} is not spoken",
                          "clients use json, msgpack or cbor instead")  # fmt: skip
        if kept:
            out["serializers"] = kept

    def message_size(self, size: Any, where: str, out: dict[str, Any]) -> None:
        if not isinstance(size, int) or size <= 0:
            return
        bounded = min(max(size, MIN_MESSAGE_SIZE), MAX_MESSAGE_SIZE)
        if bounded != size:
            (self.lost if size > MAX_MESSAGE_SIZE else self.note)(
                where, f"{size} is outside Cloverleaf's bounds: {bounded} bytes", "")
        out["max_message_size"] = bounded

    def websocket_options(self, options: dict[str, Any], where: str, out: dict[str, Any]) -> None:
        harmless = {
            "allow_null_origin": "a browser page opened from a file sends Origin null: allowed_origins decides",
            "enable_webstatus": "a GET without upgrade is answered 426 Upgrade Required",
            "max_frame_size": "frames are bounded by max_message_size",
            "auto_fragment_size": "outgoing messages are sent in one frame",
            "fail_by_drop": "the router closes a failing connection with a close frame, then drops it",
            "close_handshake_timeout": "the close handshake has its own short bound",
            "auto_ping_size": "pings carry a small payload of their own",
            "compression": "permessage-deflate is not offered (measured: it would cost more CPU per fan-out "
                           "delivery than the whole routing, docs/spec-notes.md); clients fall back to no "
                           "compression",
            "echo_close_codereason": "the close code is echoed (RFC 6455)",
            "tcp_nodelay": "always on",
            "enable_hybi10": "RFC 6455 only", "enable_rfc6455": "RFC 6455 only",
            "validate_utf8": "text frames are always checked", "require_masked_client_frames": "always required",
            "mask_server_frames": "server frames are never masked (RFC 6455)", "apply_mask": "as RFC 6455",
            "show_server_version": "no version is shown", "external_port": "not needed",
            "require_websocket_subprotocol": "a WAMP subprotocol is always required",
            "auto_ping_restart_on_any_traffic": "pings are sent after silence (ping_interval)",
            "enable_flash_policy": "no Flash", "flash_policy": "no Flash",
        }
        for key, value in options.items():
            at = f"{where}.{key}"
            if key == "allowed_origins":
                out["allowed_origins"] = list(value)
            elif key == "max_message_size":
                self.message_size(value, at, out)
            elif key == "auto_ping_interval":
                out["ping_interval"] = value / 1000
            elif key == "auto_ping_timeout":
                out["ping_timeout"] = value / 1000
            elif key == "open_handshake_timeout":
                if value:
                    out["handshake_timeout"] = value / 1000
            elif key in harmless:
                self.note(at, harmless[key])
            else:
                self.lost(at, "a WebSocket option with no equivalent",
                          "docs/configuration.md lists the WebSocket options")  # fmt: skip
        interval = out.get("ping_interval", 30.0)
        if "ping_timeout" not in out and interval and interval < 10.0:  # Cloverleaf's default timeout is 10 s
            out["ping_timeout"] = interval
        if "ping_timeout" in out and interval and out["ping_timeout"] > interval:
            out["ping_timeout"] = interval
            self.note(f"{where}.auto_ping_timeout", "shortened to auto_ping_interval (the PONG is awaited within "
                                                    "the interval)")  # fmt: skip
        if "auto_ping_interval" not in options:
            self.note(f"{where}.auto_ping_interval", "Crossbar does not ping when it is not set; Cloverleaf pings "
                                                     "after 30 s of silence", "set ping_interval: 0 to turn that off")

    def websocket_common(self, config: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.serializers(config, where, out)
        self.websocket_options(config.get("options") or {}, f"{where}.options", out)
        auth = self.auth(config.get("auth"), f"{where}.auth", cookie=config.get("cookie"), websocket=True)
        if auth is not None:
            out["auth"] = auth
        return out

    def websocket_transport(self, transport: dict[str, Any], where: str) -> dict[str, Any] | None:
        self.unknown_keys(where, transport, {"type", "id", "endpoint", "url", "serializers", "debug", "options",
                                             "auth", "cookie", "max_connections"})  # fmt: skip
        endpoint = self.endpoint(transport.get("endpoint") or {}, f"{where}.endpoint")
        if endpoint is None:
            return None
        if endpoint["type"] == "unix":
            self.lost(f"{where}.endpoint", "WebSocket over a Unix socket has no equivalent",
                      "use a rawsocket transport on the Unix socket")  # fmt: skip
            return None
        # Crossbar's WebSocket transport answers on any path (its url is only advertised)
        return {"type": "websocket", "endpoint": endpoint, "path": "*", **self.websocket_common(transport, where)}

    def rawsocket(self, transport: dict[str, Any], where: str, with_endpoint: bool) -> dict[str, Any] | None:
        self.unknown_keys(where, transport, {"type", "id", "endpoint", "serializers", "debug", "options", "auth",
                                             "max_message_size", "max_connections"})  # fmt: skip
        out: dict[str, Any] = {}
        if with_endpoint:
            endpoint = self.endpoint(transport.get("endpoint") or {}, f"{where}.endpoint")
            if endpoint is None:
                return None
            out = {"type": "rawsocket", "endpoint": endpoint}
        self.serializers(transport, where, out)
        size = (transport.get("options") or {}).get("max_message_size", transport.get("max_message_size"))
        if size is not None:
            self.message_size(size, f"{where}.options.max_message_size", out)
        for key in (transport.get("options") or {}):
            if key != "max_message_size":
                self.lost(f"{where}.options.{key}", "a RawSocket option with no equivalent",
                          "docs/configuration.md lists the RawSocket options")
        auth = self.auth(transport.get("auth"), f"{where}.auth", cookie=None, websocket=False)
        if auth is not None:
            out["auth"] = auth
        return out

    def web(self, transport: dict[str, Any], where: str) -> dict[str, Any] | None:
        self.unknown_keys(where, transport, {"type", "id", "endpoint", "paths", "options", "max_connections"})
        endpoint = self.endpoint(transport.get("endpoint") or {}, f"{where}.endpoint")
        if endpoint is None:
            return None
        if endpoint["type"] == "unix":
            self.lost(f"{where}.endpoint", "a web transport on a Unix socket has no equivalent",
                      "listen on a TCP port (127.0.0.1 for a local reverse proxy)")
            return None
        paths: dict[str, Any] = {}
        self.paths(transport.get("paths") or {}, f"{where}.paths", "", paths)
        self.web_options(transport.get("options") or {}, f"{where}.options")
        if not paths:
            self.lost(f"{where}.paths", "no path service could be carried: the transport is left out")
            return None
        return {"type": "web", "endpoint": endpoint, "paths": paths}

    def web_options(self, options: dict[str, Any], where: str) -> None:
        for key in options:
            if key in ("access_log", "display_tracebacks"):
                self.note(f"{where}.{key}", "requests are not logged one by one, and errors never show tracebacks")
            elif key == "client_timeout":
                self.note(f"{where}.{key}", "idle HTTP connections are closed after the transport's handshake_timeout")
            else:
                self.lost(f"{where}.{key}", "a web option with no equivalent",
                          "send HSTS from a reverse proxy in front" if key.startswith("hsts") else "")

    def universal(self, transport: dict[str, Any], where: str) -> dict[str, Any] | None:
        self.unknown_keys(where, transport, {"type", "id", "endpoint", "rawsocket", "websocket", "web", "mqtt",
                                             "max_connections"})  # fmt: skip
        endpoint = self.endpoint(transport.get("endpoint") or {}, f"{where}.endpoint")
        if endpoint is None:
            return None
        if "mqtt" in transport:
            self.lost(f"{where}.mqtt", "MQTT is not spoken", "MQTT clients need a bridge of their own")
        rawsocket = None
        if "rawsocket" in transport:
            rawsocket = self.rawsocket(transport["rawsocket"], f"{where}.rawsocket", with_endpoint=False)
        paths: dict[str, Any] = {}
        if "web" in transport:
            web = transport["web"]
            self.paths(web.get("paths") or {}, f"{where}.web.paths", "", paths)
            self.web_options(web.get("options") or {}, f"{where}.web.options")
        for name, ws in (transport.get("websocket") or {}).items():
            at = f'{where}.websocket["{name}"]'
            self.unknown_keys(at, ws, {"type", "id", "serializers", "debug", "options", "auth", "cookie", "url"})
            paths[_join("", name)] = {"type": "websocket", **self.websocket_common(ws, at)}
        if endpoint["type"] == "unix" or not paths:
            if endpoint["type"] == "unix" and ("websocket" in transport or "web" in transport):
                self.lost(where, "WebSocket and web paths on a Unix socket have no equivalent",
                          "only its RawSocket is carried")  # fmt: skip
            if rawsocket is None:
                self.lost(where, "nothing on this universal transport could be carried")
                return None
            return {"type": "rawsocket", "endpoint": endpoint, **rawsocket}
        out: dict[str, Any] = {"type": "universal", "endpoint": endpoint, "paths": paths}
        if rawsocket is not None:
            out["rawsocket"] = rawsocket
        else:
            self.note(where, "Crossbar speaks RawSocket on a universal port only with a rawsocket key; Cloverleaf "
                             "does by default (with a rawsocket transport's defaults)")  # fmt: skip
        return out

    # -- web path services -----------------------------------------------------------------------
    def paths(self, paths: dict[str, Any], where: str, prefix: str, out: dict[str, Any]) -> None:
        for name, service in paths.items():
            at = f'{where}["{name}"]'
            if not isinstance(service, dict):
                self.lost(at, "not a mapping")
                continue
            service = {k: v for k, v in service.items() if k != "id"}  # Crossbar allows an id on any of them
            path = _join(prefix, name)
            kind = service.get("type")
            if kind == "path":
                self.paths(service.get("paths") or {}, f"{at}.paths", path, out)
                continue
            converted = self.path_service(kind, service, at)
            if converted is not None:
                out[path] = converted

    def path_service(self, kind: Any, service: dict[str, Any], at: str) -> dict[str, Any] | None:
        if kind == "static":
            return self.static(service, at)
        if kind == "websocket":
            self.unknown_keys(at, service, {"type", "id", "serializers", "debug", "options", "auth", "cookie", "url"})
            return {"type": "websocket", **self.websocket_common(service, at)}
        if kind == "longpoll":
            return self.longpoll(service, at)
        if kind == "redirect":
            self.unknown_keys(at, service, {"type", "url"})
            return {"type": "redirect", "url": service.get("url")}
        if kind == "nodeinfo":
            self.unknown_keys(at, service, {"type"})
            return {"type": "nodeinfo"}
        if kind == "json":
            self.unknown_keys(at, service, {"type", "value", "options"})
            out: dict[str, Any] = {"type": "json", "value": service.get("value")}
            options = service.get("options") or {}
            self.unknown_keys(f"{at}.options", options, {"prettify", "allow_cross_origin", "discourage_caching"})
            kept = {k: v for k, v in options.items() if k in ("prettify", "allow_cross_origin", "discourage_caching")}
            if kept:
                out["options"] = kept
            return out
        if kind in ("publisher", "caller", "webhook"):
            return self.bridge(kind, service, at)
        if kind == "archive":
            return self.archive(service, at)
        self.lost(at, f"a {kind!r} path service has no equivalent",
                  {"wsgi": "run the WSGI app behind a reverse proxy next to the node",
                   "reverseproxy": "put a reverse proxy in front of the node",
                   "websocket-reverseproxy": "put a reverse proxy in front of the node",
                   "upload": "serve uploads from an application of your own",
                   "resource": "serve it from an application of your own"}.get(str(kind), ""))  # fmt: skip
        return None

    def static(self, service: dict[str, Any], at: str) -> dict[str, Any] | None:
        self.unknown_keys(at, service, {"type", "directory", "package", "resource", "options"})
        if "directory" in service:
            directory = self.place(service["directory"])
        elif "package" in service:
            spec = importlib.util.find_spec(service["package"])
            if spec is None or not spec.submodule_search_locations:
                self.lost(at, f"package {service['package']!r} is not importable here",
                          "install it, or copy its files into a folder and name it in directory")  # fmt: skip
                return None
            directory = str(Path(next(iter(spec.submodule_search_locations))) / service.get("resource", ""))
            self.note(f"{at}.package", f"resolved now, at conversion, to {directory}")
        else:
            self.lost(at, "a static service without directory or package",
                      "name the folder in directory")
            return None
        out: dict[str, Any] = {"type": "static", "directory": directory}
        for key, value in (service.get("options") or {}).items():
            if key == "cache_timeout":
                out["max_age"] = int(value) if value else 0
            elif key == "mime_types":
                pass
            elif key == "enable_directory_listing":
                if value:
                    out["directory_listing"] = True
                    self.note(f"{at}.options.{key}", "hidden entries (a leading dot) are not listed")
            elif key == "mime_types" and value:
                self.lost(f"{at}.options.{key}", "the MIME types of file extensions are Python's (mimetypes)",
                          "rename the files, or register the types on the system")  # fmt: skip
            else:
                self.lost(f"{at}.options.{key}", "a static option with no equivalent",
                          "docs/configuration.md lists the static options")
        return out

    def archive(self, service: dict[str, Any], at: str) -> dict[str, Any]:
        self.unknown_keys(at, service, {"type", "archive", "origin", "download", "cache", "hashes", "object_prefix",
                                        "default_object", "mime_types", "options"})  # fmt: skip
        out: dict[str, Any] = {"type": "archive", "archive": self.place(service.get("archive", ""))}
        for key in ("origin", "download", "hashes", "object_prefix", "default_object", "mime_types"):
            if service.get(key) is not None:
                out[key] = service[key]
        if "cache" in service:
            self.note(f"{at}.cache", "members are always kept in memory once read (up to 64 MB), each at most 16 MB")
        for key in (service.get("options") or {}):
            self.lost(f"{at}.options.{key}", "an archive option with no equivalent",
                      "docs/configuration.md lists the archive keys")  # fmt: skip
        return out

    def longpoll(self, service: dict[str, Any], at: str) -> dict[str, Any]:
        self.unknown_keys(at, service, {"type", "options", "serializers"})
        out: dict[str, Any] = {"type": "longpoll"}
        self.serializers(service, at, out)
        for key, value in (service.get("options") or {}).items():
            if key in ("request_timeout", "session_timeout"):
                if value:
                    out[key] = value
            elif key in ("queue_limit_bytes", "queue_limit_messages"):
                self.note(f"{at}.options.{key}", "the queue is bounded by limits.max_outgoing_bytes, as every "
                                                 "session's")  # fmt: skip
            elif key in ("debug", "debug_transport_id"):
                self.note(f"{at}.options.{key}", "no equivalent needed (log level debug)")
            else:
                self.lost(f"{at}.options.{key}", "a long-poll option with no equivalent",
                          "docs/configuration.md lists the long-poll options")
        return out

    def bridge(self, kind: str, service: dict[str, Any], at: str) -> dict[str, Any]:
        self.unknown_keys(at, service, {"type", "realm", "role", "options"})
        out: dict[str, Any] = {"type": kind, "realm": service.get("realm"), "role": service.get("role")}
        for key, value in (service.get("options") or {}).items():
            where = f"{at}.options.{key}"
            if key in ("key", "secret", "topic"):
                out[key] = value
            elif key == "post_body_limit":
                out["max_body"] = max(int(value), 1024)
            elif key == "timestamp_delta_limit":
                self.note(where, "signed requests are accepted within 15 minutes of their timestamp, once each")
            elif key == "debug":
                self.note(where, "no equivalent needed (log level debug)")
            elif key in ("success_response", "error_response"):
                self.note(where, "the webhook answers 202 with {} (an error: its status and the WAMP error)")
            else:
                self.lost(where, f"a {kind} option with no equivalent",
                          "restrict who reaches the bridge with a firewall or a reverse proxy"
                          if key in ("require_ip", "require_tls") else "")  # fmt: skip
        return out

    # -- authentication --------------------------------------------------------------------------
    def auth(self, auth: Any, where: str, cookie: Any, websocket: bool) -> dict[str, Any] | None:
        if auth is None and cookie is None:
            self.note(where, "no auth key: anonymous clients join as role anonymous (Crossbar's default too)")
            return None
        out: dict[str, Any] = {}
        for method, config in (auth or {}).items():
            at = f"{where}.{method}"
            if method == "cookie":
                continue
            if method.endswith("-proxy"):
                self.note(at, "Crossbar's proxy workers' method: not needed")
                continue
            if method not in AUTH_METHODS:
                self.lost(at, f"the {method!r} method is not offered")
                continue
            if not isinstance(config, dict):
                self.lost(at, "not a mapping")
                continue
            kind = config.get("type", "static")
            if kind == "function":
                self.lost(at, "authenticators given as Python functions have no equivalent",
                          "register the function as a dynamic authenticator (a WAMP procedure)")  # fmt: skip
                continue
            if kind == "dynamic":
                self.unknown_keys(at, config, {"type", "authenticator", "authenticator-realm", "authenticator-role"})
                if method == "anonymous":
                    self.lost(at, "a dynamic authenticator for anonymous has no equivalent",
                              "use ticket with a dynamic authenticator")  # fmt: skip
                    continue
                dynamic: dict[str, Any] = {"type": "dynamic", "authenticator": config.get("authenticator")}
                if "authenticator-realm" in config:
                    dynamic["authenticator_realm"] = config["authenticator-realm"]
                if "authenticator-role" in config:
                    self.note(f"{at}.authenticator-role", "the authenticator is called by the router itself")
                out[method] = dynamic
                continue
            converted = self.static_auth(method, config, at)
            if converted is not None:
                out[method] = converted
        cookie_auth = (auth or {}).get("cookie")
        if cookie is not None or cookie_auth is not None:
            if not websocket:
                self.lost(f"{where}.cookie", "cookies only exist on WebSocket and long-poll",
                          "leave it out")
            else:
                out["cookie"] = self.cookie(cookie or {}, f"{where[: -len('.auth')]}.cookie", cookie_auth is not None)
        if not out:
            self.lost(where, "no authentication method could be carried: the transport refuses every client",
                      "add a method (docs/auth.md)")
        return out

    def static_auth(self, method: str, config: dict[str, Any], at: str) -> dict[str, Any] | None:
        if method == "anonymous":
            self.unknown_keys(at, config, {"type", "role", "authid", "realm"})
            if "authid" in config:
                self.lost(f"{at}.authid", "anonymous sessions get a random authid",
                          "use ticket authentication where a fixed authid matters")
            out = {"role": config.get("role", "anonymous")}
            if "realm" in config:
                out["realm"] = config["realm"]
            return out
        principals_key = {"wampcra": "users"}.get(method, "principals")
        self.unknown_keys(at, config, {"type", principals_key, "trustroots"} if method == "cryptosign"
                          else {"type", principals_key})  # fmt: skip
        if "trustroots" in config:
            self.lost(f"{at}.trustroots", "certificate trust roots (Ethereum) have no equivalent",
                      "list the principals' public keys")  # fmt: skip
        principals: dict[str, Any] = {}
        for authid, principal in (config.get(principals_key) or {}).items():
            where = f'{at}.{principals_key}["{authid}"]'
            converted = self.principal(method, principal, where)
            if converted is not None:
                principals[authid] = converted
        return {"principals": principals}

    def principal(self, method: str, principal: dict[str, Any], where: str) -> dict[str, Any] | None:
        role = principal.get("role")
        if not role:
            self.lost(where, "a principal without role", "give it the role it should join as")
            return None
        out: dict[str, Any] = {"role": role}
        fields = {
            "ticket": {"ticket": "ticket"},
            "wampcra": {"secret": "secret", "salt": "salt", "iterations": "iterations", "keylen": "keylen"},
            "cryptosign": {"authorized_keys": "pubkeys"},
            "tls": {"certificate-sha1": "certificate_sha1"},
            "scram": {},
        }[method]
        if method == "wampcra" and principal.get("salt") is not None:
            principal = self.salted(principal, where)
        for key, value in principal.items():
            if key == "role":
                continue
            if key in fields:
                out[fields[key]] = list(value) if key == "authorized_keys" else value
            elif method == "scram" and key in ("kdf", "iterations", "memory", "salt", "stored-key", "server-key"):
                out.setdefault("scram", {})[key] = value
            elif key in ("extra", "authextra"):
                out["authextra"] = value
            elif key == "realm":
                out["realm"] = value
            else:
                self.lost(f"{where}.{key}", "a principal key with no equivalent",
                          "docs/auth.md lists what a principal holds")
        return out

    def salted(self, user: dict[str, Any], where: str) -> dict[str, Any]:
        """A salted WAMP-CRA user: Crossbar keeps the password and derives the key at each
        challenge (with all of salt, iterations and keylen; else it does not salt); Cloverleaf's
        config keeps the derived key (a password from the environment cannot be derived here)."""
        from ..router.authenticators import salted_wampcra_key

        if not all(key in user for key in ("salt", "iterations", "keylen")):
            self.note(f"{where}.salt", "not used: Crossbar salts only with salt, iterations and keylen together")
            return {k: v for k, v in user.items() if k not in ("salt", "iterations", "keylen")}
        secret = user.get("secret", "")
        if _ENV_VARIABLE.fullmatch(secret):
            self.lost(f"{where}.secret", "a salted secret from the environment: Cloverleaf reads the key derived "
                                         "from the password there, not the password",
                      "give the variable the derived key (Autobahn's derive_key(password, "
                      f"{user['salt']!r}, {user['iterations']}, {user['keylen']}))")  # fmt: skip
            return user
        self.note(f"{where}.secret", "the key derived from the password (PBKDF2) is written instead of the password")
        return {**user, "secret": salted_wampcra_key(secret, user["salt"], user["iterations"], user["keylen"])}

    def cookie(self, cookie: dict[str, Any], where: str, authenticates: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in cookie.items():
            if key == "name":
                out["name"] = value
            elif key == "max_age":
                out["max_age"] = value
            elif key == "store":
                if (value or {}).get("type", "memory") != "memory":
                    self.note(f"{where}.store", "cookies are remembered in memory (in the cluster's KV on a "
                                                "cluster): a restart of a single node forgets them")  # fmt: skip
            else:
                self.note(f"{where}.{key}", "no equivalent needed")
        if not authenticates:
            self.note(where, "the tracking cookie also authenticates (method cookie) in Cloverleaf",
                      "clients that do not ask for cookie authentication are not affected")  # fmt: skip
        return out

    # -- components ------------------------------------------------------------------------------
    def router_component(self, component: dict[str, Any], where: str) -> None:
        kind = component.get("type")
        if kind != "class":
            self.lost(where, f"a {kind!r} router component has no equivalent",
                      "run it as a guest connecting over a transport")  # fmt: skip
            return
        self.class_component(component, where, None, self.pythonpath)

    def class_component(self, component: dict[str, Any], where: str, transport: dict[str, Any] | None,
                        pythonpath: list[str], env: dict[str, str] | None = None) -> None:  # fmt: skip
        """A class component as Cloverleaf's own ``class`` component: a router component (no
        ``transport``) joins through the node's private socket for it, as its role (Crossbar's
        default: anonymous); a container component connects over its transport."""
        self.unknown_keys(where, component, {"type", "id", "classname", "realm", "role", "extra", "transport",
                                             "references", "authid"})  # fmt: skip
        if component.get("references"):
            self.lost(f"{where}.references", "component references have no equivalent",
                      "share what they need through WAMP calls or extra")
        classname = component.get("classname")
        realm = component.get("realm")
        if not classname or not realm:
            self.lost(where, "a class component needs classname and realm",
                      "add them")
            return
        if classname.rpartition(".")[2] in HTTP_BRIDGE_CLASSES and classname.startswith(("crossbar.bridge.rest.",
                                                                                         "crossbar.adapter.rest.")):
            self.http_bridge_component(component, where, classname.rpartition(".")[2])
            return
        if classname.startswith("crossbar."):
            self.lost(where, f"{classname} is a part of Crossbar.io itself, which is not installed here",
                      "the HTTP bridge classes are carried; for the others, a component of your own")  # fmt: skip
            return
        out: dict[str, Any] = {"type": "class"}
        if component.get("id"):
            out["name"] = component["id"]
        out.update(classname=classname, realm=realm)
        if transport is None:
            out["role"] = component.get("role") or "anonymous"  # Crossbar's default for router components
            if component.get("authid"):
                out["authid"] = component["authid"]
        else:
            out["transport"] = transport
            for key in ("role", "authid"):
                if component.get(key):
                    self.note(f"{where}.{key}", "a component connecting over a transport gets the identity "
                                                "that transport's authentication gives it")  # fmt: skip
        if component.get("extra") is not None:
            out["extra"] = component["extra"]
        if pythonpath:
            out["pythonpath"] = pythonpath
        if env:
            out["env"] = env
        self.components.append(out)
        self.origins[("components", len(self.components) - 1)] = (
            f"{where} (class {classname}, run unchanged by Autobahn's Component runner)")

    def http_bridge_component(self, component: dict[str, Any], where: str, kind: str) -> None:
        """Crossbar's HTTP bridge classes become Cloverleaf's own http components (in the node)."""
        extra = component.get("extra") or {}
        out: dict[str, Any] = {"type": HTTP_BRIDGE_CLASSES[kind], "realm": component["realm"]}
        if component.get("id"):
            out["name"] = component["id"]
        if component.get("role"):
            out["role"] = component["role"]
        elif "transport" in component:
            self.note(where, "runs in the node under its trusted internal role (it joined over a transport "
                             "before)", "give it a role: to authorize it like a client")  # fmt: skip
        known = {"MessageForwarder": {"subscriptions", "method", "expectedcode", "debug"},
                 "RESTCallee": {"procedure", "baseurl"}}[kind]  # fmt: skip
        self.unknown_keys(f"{where}.extra", extra, known)
        if kind == "MessageForwarder":
            subscriptions = extra.get("subscriptions") or []
            out["subscriptions"] = [{"topic": item.get("topic"), "url": item.get("url")} for item in subscriptions]
            if "method" in extra:
                out["method"] = extra["method"]
            if extra.get("expectedcode") is not None:
                out["expected_code"] = extra["expectedcode"]
            self.note(where, "a request that fails (connection error, 5xx, 429) is retried up to 3 times with "
                             "backoff; Crossbar's forwarder did not retry", "retries: 0 keeps Crossbar's behaviour")
        else:
            out["procedure"] = extra.get("procedure")
            out["base_url"] = extra.get("baseurl")
            self.note(f"{where}.extra.baseurl", "calls may only reach URLs below the base URL (no '..', no "
                                                "absolute URLs) and redirects are returned, not followed")  # fmt: skip
        if extra.get("debug"):
            self.note(f"{where}.extra.debug", "no equivalent needed (log level debug)")
        self.components.append(out)
        self.origins[("components", len(self.components) - 1)] = f"{where} ({component['classname']})"

    def container(self, worker: dict[str, Any], where: str) -> None:
        self.unknown_keys(where, worker, {"type", "id", "options", "components", "connections"})
        if worker.get("connections"):
            self.lost(f"{where}.connections", "database connections of container workers have no equivalent",
                      "open them in the components that use them")  # fmt: skip
        options = worker.get("options") or {}
        pythonpath = [self.place(p) for p in options.get("pythonpath", [])]
        env = {k: str(v) for k, v in ((options.get("env") or {}).get("vars") or {}).items()}
        for key in options:
            if key == "env":
                if (options["env"] or {}).get("inherit", True) is not True:
                    self.lost(f"{where}.options.env.inherit", "guests inherit the node's whole environment",
                              "start the node with only the variables the components may see")  # fmt: skip
            elif key != "pythonpath":
                self.note(f"{where}.options.{key}", "a worker option with no effect here")
        for index, component in enumerate(worker.get("components") or []):
            at = f"{where}.components[{index}]"
            if component.get("type") != "class":
                self.lost(at, f"a {component.get('type')!r} container component has no equivalent",
                          "run it as a guest connecting over a transport")
                continue
            transport = self.component_transport(component.get("transport") or {}, f"{at}.transport")
            if transport is not None:
                self.class_component(component, at, transport, pythonpath, env)

    def component_transport(self, transport: dict[str, Any], where: str) -> dict[str, Any] | None:
        """A container component's connecting transport, for Autobahn's Component."""
        kind = transport.get("type")
        endpoint = transport.get("endpoint") or {}
        if kind not in ("websocket", "rawsocket"):
            self.lost(where, f"a {kind!r} connecting transport has no equivalent",
                      "connect it over websocket or rawsocket")
            return None
        out: dict[str, Any] = {"type": kind}
        if "url" in transport:
            out["url"] = transport["url"]
        elif kind == "rawsocket":
            out["url"] = "rs://localhost"
        if endpoint.get("type") == "unix":
            out["endpoint"] = {"type": "unix", "path": self.absolute(endpoint.get("path", ""))}
        elif endpoint:
            out["endpoint"] = {"type": "tcp", "host": endpoint.get("host", "127.0.0.1"), "port": endpoint.get("port")}
        if "serializer" in transport or "serializers" in transport:
            out["serializers"] = [transport["serializer"]] if "serializer" in transport else transport["serializers"]
        return out

    def guest(self, worker: dict[str, Any], where: str) -> None:
        self.unknown_keys(where, worker, {"type", "id", "executable", "arguments", "options"})
        options = worker.get("options") or {}
        # Crossbar runs a guest in its workdir, the node folder by default, and finds an executable
        # given with a path there
        workdir = options.get("workdir", ".")
        executable = str(worker.get("executable") or "")
        in_workdir = os.path.join(workdir, executable)
        if not os.path.isabs(executable) and (os.sep in executable or (self.cbdir / in_workdir).is_file()):
            executable = self.place(in_workdir)  # as Crossbar: the workdir first, then PATH for a bare name
        out: dict[str, Any] = {"type": "guest", "executable": executable, "cwd": self.place(workdir),
                               "arguments": list(worker.get("arguments") or [])}  # fmt: skip
        if worker.get("id"):
            out["name"] = worker["id"]
        for key, value in options.items():
            at = f"{where}.options.{key}"
            if key == "workdir":
                pass
            elif key == "env":
                env = value or {}
                if "vars" in env:
                    out["env"] = {k: str(v) for k, v in env["vars"].items()}
                inherit = env.get("inherit", True)
                if inherit is not True:
                    self.lost(f"{at}.inherit", "guests inherit the node's whole environment",
                              "start the node with only the variables the guest may see")  # fmt: skip
            elif key in ("stdout", "stderr"):
                if value not in ("log", "close", "drop"):
                    self.note(at, "the guest's output goes to the node's log")
            elif key == "watch":
                self.lost(at, "guests are not restarted on file changes", "restart the node after a change")
            else:
                self.lost(at, "a guest option with no equivalent", "docs/configuration.md lists the guest options")
        self.note(where, "guests are restarted when they exit (restart.policy: always, with backoff); Crossbar "
                         "did not restart them", "set restart: {policy: never} to keep Crossbar's behaviour")
        self.components.append(out)
        self.origins[("components", len(self.components) - 1)] = where


def _same_listener(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two endpoints would bind the same address (an interface of all, 0.0.0.0 or ::, takes
    the port on every one)."""
    if a.get("type") == "unix" or b.get("type") == "unix":
        return a.get("type") == b.get("type") and a.get("path") == b.get("path")
    if a.get("port") != b.get("port"):
        return False
    hosts = {a.get("host"), b.get("host")}
    return len(hosts) == 1 or bool(hosts & {"0.0.0.0", "::", ""})


def _join(prefix: str, name: str) -> str:
    """A Crossbar path key (``/``, ``ws``, nested under ``prefix``) as a Cloverleaf path."""
    name = name.strip("/")
    joined = "/".join(part for part in (prefix.strip("/"), name) if part)
    return "/" + joined


def convert(data: dict[str, Any], cbdir: Path, out_dir: Path | None) -> Conversion:
    """Convert a Crossbar node config (as :func:`read_crossbar` returns it) whose node folder is
    ``cbdir``; paths are written relative to ``out_dir`` (None: absolute, for a config used in
    memory). Raises :class:`NotCrossbarConfig` when there is nothing to route."""
    converter = _Converter(cbdir, out_dir.resolve() if out_dir is not None else None)
    config = converter.node(data)
    return Conversion(config, converter.origins, converter.findings)


# -- writing ---------------------------------------------------------------------------------------


def render_yaml(conversion: Conversion, header: list[str]) -> str:
    """The converted config as YAML, each realm, transport and component under a comment naming
    the Crossbar key path it came from, ``header`` lines on top as comments."""
    lines = [f"# {line}" if line else "#" for line in header]
    for section in ("realms", "transports", "components"):
        items = conversion.config.get(section)
        if not items:
            continue
        lines.append(f"{section}:")
        for index, item in enumerate(items):
            origin = conversion.origins.get((section, index))
            if origin:
                lines.append(f"  # from {origin}")
            dumped = yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=120)
            lines.extend("  " + line for line in dumped.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"


def render_json(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


# -- the command -----------------------------------------------------------------------------------


def _is_cloverleaf_config(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "transports" in data and "workers" not in data


def load_converted(path: str | Path) -> tuple[NodeConfig, Conversion]:
    """A Crossbar config converted in memory and validated, for ``cloverleaf start --crossbar``;
    its relative paths resolve against the Crossbar node folder, as in Crossbar. Raises
    :class:`NotCrossbarConfig` or :class:`~cloverleaf.node.config.ConfigError`."""
    data, cbdir = read_crossbar(path)
    conversion = convert(data, cbdir, None)
    config = parse_config(conversion.config, f"{path} (converted)")
    config._base_dir = cbdir
    return config, conversion


def convert_command(path: str, output: str | None, to: str | None) -> int:
    """``cloverleaf convert``: 0 complete, 1 something not carried (or the result does not check),
    2 the input is not a Crossbar config (nor, with --to, a Cloverleaf one)."""
    from .cli import _check_files

    fmt = to or ("json" if output is not None and output.endswith(".json") else "yaml")
    out_path = Path(output) if output is not None else None
    out_dir = (out_path.resolve().parent if out_path is not None else Path.cwd())
    if _is_cloverleaf_config(Path(path)):
        return _reformat(Path(path), out_path, fmt)
    try:
        data, cbdir = read_crossbar(path)
        conversion = convert(data, cbdir, out_dir)
    except NotCrossbarConfig as exc:
        print(f"cloverleaf convert: {exc}", file=sys.stderr)
        return 2
    try:
        # (the output's folder is made first: the result's paths are checked from it)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _cannot_write(output, exc)
    header = [
        f"Cloverleaf node config converted from the Crossbar.io config in {cbdir}",
        f"by `cloverleaf convert` {__version__}; relative paths are relative to this file's folder"
        + ("" if out_path is not None else f" ({out_dir})"),
        "Findings (not carried / notes) were printed on standard error; docs/migrating-from-crossbar.md explains them.",
    ]
    text = render_yaml(conversion, header) if fmt == "yaml" else render_json(conversion.config)
    try:
        checked = parse_config(conversion.config, f"{path} (converted)")
        checked._base_dir = out_dir
        problems = _check_files(checked)
    except ConfigError as exc:
        problems = exc.problems
    for line in conversion.report():
        print(line, file=sys.stderr)
    for problem in problems:
        print(f"check: {problem}", file=sys.stderr)
    if out_path is not None:
        try:
            out_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            return _cannot_write(output, exc)
    else:
        sys.stdout.write(text)
    status = 0 if conversion.complete and not problems else 1
    print(f"cloverleaf convert: {'complete' if status == 0 else 'incomplete (see above)'}"
          + (f", written to {out_path}" if out_path is not None else ""), file=sys.stderr)  # fmt: skip
    return status


def _cannot_write(output: str | Path | None, exc: OSError) -> int:
    """Say why ``output`` cannot be written; the exit status for it (1)."""
    print(f"cloverleaf convert: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
    return 1


def _reformat(path: Path, out_path: Path | None, fmt: str) -> int:
    """A Cloverleaf config in the other format (validated first; YAML comments are not carried)."""
    try:
        config_data = yaml.safe_load(path.read_text(encoding="utf-8"))
        load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    text = render_json(config_data) if fmt == "json" else yaml.safe_dump(config_data, sort_keys=False,
                                                                          allow_unicode=True, width=120)  # fmt: skip
    if out_path is not None:
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            return _cannot_write(out_path, exc)
    else:
        sys.stdout.write(text)
    if fmt == "json" and path.suffix != ".json":
        print(f"cloverleaf convert: {path} as JSON (its comments are not carried)", file=sys.stderr)
    return 0
