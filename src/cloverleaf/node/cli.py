"""The ``cloverleaf`` command: start a router, run a client app, check a config, print the version,
make credentials (``keygen``, ``passwd``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import shutil
import sys
import traceback
from typing import TYPE_CHECKING

from .. import __version__

# The router (config, node) and the client are imported by the subcommand that needs them, so
# `cloverleaf run` does not load the router and `cloverleaf version` loads nothing.
if TYPE_CHECKING:
    from .config import NodeConfig

#: where ``cloverleaf run`` connects without --url / --realm (the embedded default router)
DEFAULT_URL = "ws://127.0.0.1:8080/ws"
DEFAULT_REALM = "realm1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloverleaf", description="Cloverleaf WAMP router")
    parser.add_argument("--version", action="version", version=f"cloverleaf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a router (./cloverleaf.yaml, else the embedded default, "
                                "without --config)")
    start.add_argument("--config", "-c", help="node config file (YAML or JSON; default: ./cloverleaf.yaml, "
                       "./cloverleaf.json, else the embedded default)")
    start.add_argument("--crossbar", metavar="PATH",
                       help="run a Crossbar.io node config (its .crossbar folder or config file) converted in "
                       "memory; nothing is written (docs/migrating-from-crossbar.md)")  # fmt: skip
    start.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override logging.level")
    start.add_argument("--workers", "-w", type=_workers_option, metavar="N|auto",
                       help="worker processes sharing the node's ports (docs/workers.md); overrides the config's "
                       "workers: (default 1: one process)")  # fmt: skip
    run = commands.add_parser(
        "run",
        help="run a client application (an App) against a router",
        description="Import MODULE (from the current directory too), find the App named ATTRIBUTE "
        "(default: app; a function returning an App also works), connect it and serve until SIGINT/SIGTERM.",
    )
    run.add_argument("app", metavar="MODULE[:ATTRIBUTE]", help="e.g. myservice:app or examples.service_app:app")
    run.add_argument("--url", default=os.environ.get("CLOVERLEAF_URL", DEFAULT_URL),
                     help="router URL: ws://, wss://, rs://, rss:// or unix:///path "
                     "(default: $CLOVERLEAF_URL or %(default)s)")  # fmt: skip
    run.add_argument("--realm", default=os.environ.get("CLOVERLEAF_REALM", DEFAULT_REALM),
                     help="realm to join (default: $CLOVERLEAF_REALM or %(default)s)")  # fmt: skip
    run.add_argument("--serializer", choices=["json", "msgpack", "cbor"], default="json")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    init = commands.add_parser(
        "init",
        help="make a node folder with a demo web app",
        description="Write DIR/cloverleaf.yaml, a Python back end (backend.py) the node starts in-process, and a "
        "web page (web/) using AutobahnJS, fetched now with `npm pack autobahn-browser` (or copied from "
        "--autobahn-js). Then: cd DIR && cloverleaf start",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--port", type=int, default=8080, help="the web port (default: %(default)s)")
    init.add_argument("--autobahn-js", metavar="PATH", help="use this autobahn.min.js instead of fetching it")
    init.add_argument("--force", action="store_true", help="write into a directory that is not empty")
    check = commands.add_parser("check", help="validate a config file and print every problem")
    check.add_argument("file", nargs="?", help="the config file (default: ./cloverleaf.yaml, as `start` reads it)")
    convert = commands.add_parser(
        "convert",
        help="turn a Crossbar.io node config into a Cloverleaf config (or a Cloverleaf config into JSON/YAML)",
        description="Read a Crossbar.io node config (a .crossbar folder, or its config.json/config.yaml) and write "
        "the equivalent Cloverleaf config, checked as `cloverleaf check` would; everything that could not be carried "
        "is listed on standard error with its Crossbar key path. Exit status: 0 complete, 1 something not carried, "
        "2 not a Crossbar config. Given a Cloverleaf config, write it in the other format (--to).",
    )
    convert.add_argument("path", metavar="PATH", help="a .crossbar folder, a folder holding one, or a config file")
    convert.add_argument("--output", "-o", metavar="FILE", help="write here (default: standard output); relative "
                         "paths in the result are made relative to FILE's folder")  # fmt: skip
    convert.add_argument("--to", choices=["yaml", "json"],
                         help="output format (default: json for a .json FILE, else yaml)")  # fmt: skip
    commands.add_parser("version", help="print the version")
    keygen = commands.add_parser(
        "keygen",
        help="make an Ed25519 key pair for WAMP-cryptosign",
        description="Print the public key (hex; it goes into the router config, a principal's pubkeys) and "
        "write the private key (hex seed; it stays with the client) to --out with mode 0600, or print it.",
    )
    keygen.add_argument("--out", "-o", metavar="PATH", help="file for the private key (default: print it)")
    keygen.add_argument("--force", action="store_true", help="replace an existing --out file")
    passwd = commands.add_parser(
        "passwd",
        help="print the config entry for a ticket, WAMP-CRA or WAMP-SCRAM principal",
        description="Read the password (ticket) at a prompt, or the first line of stdin when it is not a "
        "terminal, and print the YAML entry to put under the method's principals: (never the password).",
    )
    passwd.add_argument("method", choices=["ticket", "wampcra", "scram"])
    passwd.add_argument("--authid", default="AUTHID", help="the principal's authid (default: %(default)s)")
    passwd.add_argument("--role", default="user", help="the principal's role (default: %(default)s)")
    passwd.add_argument("--kdf", choices=["argon2id13", "argon2id-13", "pbkdf2"],
                        help="scram: argon2id13 (spec, default), argon2id-13 (Autobahn/Crossbar) or pbkdf2; "
                        "ticket: argon2id (default) or pbkdf2(-sha256); wampcra: always pbkdf2")  # fmt: skip
    passwd.add_argument("--iterations", type=int, metavar="N",
                        help="KDF cost: wampcra 1000, scram 4096 (argon2) or 600000 (pbkdf2), ticket 3 (argon2) "
                        "or 600000 (pbkdf2) by default")  # fmt: skip
    passwd.add_argument("--memory", type=int, metavar="KIB", help="scram with argon2: memory cost in KiB (512)")
    passwd.add_argument("--salt", metavar="S", help="this salt (text) instead of a random one (reproducible output)")
    passwd.add_argument("--console", action="store_true",
                        help="ticket: an entry for a web console's principals (no role)")  # fmt: skip
    return parser


def _workers_option(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of workers or 'auto', got {value!r}") from None
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"1 to 256 workers, got {count}")
    return count


def _configure_logging(level: str, worker: str = "") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s " + (f"[{worker}] " if worker else "") + "%(name)s: %(message)s",
        stream=sys.stderr,
    )
    # picows logs every accepted connection at INFO; our own join/leave lines already say it.
    logging.getLogger("picows").setLevel(max(logging.WARNING, logging.getLogger().level))


def _check_files(config: NodeConfig) -> list[str]:
    """What `start` would refuse (or warn about) beyond the config's shape: TLS files that cannot be
    loaded, web consoles with unknown realms or without their AutobahnJS file, missing component
    modules and guest programs, missing static directories."""
    from .config import TcpEndpoint
    from .tls import ReloadingContext, TlsError

    problems = []
    for index, transport in enumerate(config.transports):
        endpoint = transport.endpoint
        if isinstance(endpoint, TcpEndpoint) and endpoint.tls is not None:
            try:
                ReloadingContext(config.resolved_tls(endpoint.tls), f"transports[{index}].endpoint.tls")
            except TlsError as exc:
                problems += exc.problems
    from .console import console_problems  # web consoles: their realms and the AutobahnJS file

    problems += console_problems(config)
    from .components import check_components  # app modules that cannot be found, missing guest programs

    problems += check_components(config)
    from .node import missing_web_files

    problems += missing_web_files(config)
    return problems


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"cloverleaf {__version__}")
        return 0
    if args.command == "run":
        return run_app(args.app, args.url, args.realm, serializer=args.serializer, log_level=args.log_level)
    if args.command in ("keygen", "passwd"):
        from .credentials import CredentialError, keygen, passwd

        try:
            if args.command == "keygen":
                return keygen(args.out, force=args.force)
            return passwd(args.method, authid=args.authid, role=args.role, kdf=args.kdf, iterations=args.iterations,
                          memory=args.memory, salt=args.salt, console=args.console)  # fmt: skip
        except (CredentialError, OSError) as exc:
            print(f"cloverleaf {args.command}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    if args.command == "init":
        from .scaffold import InitError, init_node

        try:
            init_node(args.directory, port=args.port, autobahn_js=args.autobahn_js, force=args.force)
        except (InitError, OSError) as exc:
            print(f"cloverleaf init: {exc}", file=sys.stderr)
            return 1
        print(f"cloverleaf init: wrote a node to {args.directory}; start it with:\n"
              f"  cd {shlex.quote(args.directory)} && {_this_command()} start\n"
              f"then open http://127.0.0.1:{args.port}/")  # fmt: skip
        return 0
    if args.command == "convert":
        from .convert import convert_command

        return convert_command(args.path, args.output, args.to)
    from .config import ConfigError, default_config, load_config
    from .node import install_event_loop_policy, run_node

    if args.command == "check":
        if args.file is None:
            args.file = _config_in_working_directory()
            if args.file is None:
                names = ", ".join(CONFIG_FILE_NAMES)
                print(f"cloverleaf check: no config file given, and none of {names} in {os.getcwd()} "
                      "(`cloverleaf start` would run the embedded default)", file=sys.stderr)  # fmt: skip
                return 1
        try:
            checked = load_config(args.file)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        problems = _check_files(checked)
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"{args.file}: OK")
        return 0
    if args.crossbar is not None:
        if args.config is not None:
            print("cloverleaf start: --config or --crossbar, not both", file=sys.stderr)
            return 1
        return _start_crossbar(args)
    try:
        config_file = args.config or _config_in_working_directory()
        config: NodeConfig = load_config(config_file) if config_file else default_config()
    except ConfigError as exc:
        if config_file and _looks_like_crossbar(config_file):  # its keys are not ours: say that alone
            print(f"{config_file} is a Crossbar.io config: run it with `cloverleaf start --crossbar {config_file}`, "
                  "or convert it with `cloverleaf convert`", file=sys.stderr)  # fmt: skip
        else:
            print(exc, file=sys.stderr)
        return 1
    from .workers import WorkerSpec, worker_count

    worker = WorkerSpec.from_env()
    _configure_logging(args.log_level or config.logging.level, worker.name if worker else "")
    count = worker_count(args.workers or config.workers)
    if worker is None:
        logging.getLogger("cloverleaf.node").info(
            "config: %s", os.path.abspath(config_file) if config_file else "the embedded default"
        )
    if worker is None and count > 1:
        from .natsserver import NatsServerError
        from .workers import Supervisor

        try:
            return Supervisor(config, os.path.abspath(config_file) if config_file else None, count,
                              args.log_level, config.worker_sockets).run()  # fmt: skip
        except (OSError, NatsServerError) as exc:  # address in use, no nats-server, ...
            logging.getLogger("cloverleaf.node").error("cannot start: %s", exc)
            return 1
    if worker is not None:
        from .config import ClusterConfig

        # this process is one of the node's workers: it joins the others through the cluster
        config = config.model_copy(update={"cluster": ClusterConfig.model_validate(worker.cluster)})
    install_event_loop_policy()
    try:
        asyncio.run(run_node(config, worker))
    except OSError as exc:  # typically: address already in use
        logging.getLogger("cloverleaf.node").error("cannot start: %s", exc)
        return 1
    return 0


def _looks_like_crossbar(path: str) -> bool:
    from .convert import NotCrossbarConfig, read_crossbar

    try:
        read_crossbar(path)
    except NotCrossbarConfig:
        return False
    return True


def _start_crossbar(args: argparse.Namespace) -> int:
    """`cloverleaf start --crossbar PATH`: the Crossbar config converted in memory, started as is
    when everything was carried; what was not is logged (the node starts anyway: it is what the
    user asked for, and each loss is named)."""
    from .config import ConfigError
    from .convert import NotCrossbarConfig, load_converted
    from .node import install_event_loop_policy, run_node

    try:
        config, conversion = load_converted(args.crossbar)
    except NotCrossbarConfig as exc:
        print(f"cloverleaf start: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if (args.workers or 1) != 1:
        print("cloverleaf start: --workers needs a config file: `cloverleaf convert` it first", file=sys.stderr)
        return 1
    _configure_logging(args.log_level or config.logging.level)
    log = logging.getLogger("cloverleaf.node")
    log.info("config: the Crossbar.io config %s, converted in memory", os.path.abspath(args.crossbar))
    for line in conversion.report():
        (log.info if line.startswith("note:") else log.warning)("crossbar config: %s", line)
    install_event_loop_policy()
    try:
        asyncio.run(run_node(config, None))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _this_command() -> str:
    """How to run this same `cloverleaf` again from any folder: plain ``cloverleaf`` when that is
    what the shell finds on PATH, else this program's absolute path (a venv that is not active),
    else ``<python> -m cloverleaf``."""
    program = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(program) != "cloverleaf" or not os.access(program, os.X_OK):
        return f"{shlex.quote(sys.executable)} -m cloverleaf"
    on_path = shutil.which("cloverleaf")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(program):
        return "cloverleaf"
    return shlex.quote(program)


#: what `cloverleaf start` looks for in the working directory when no --config is given
CONFIG_FILE_NAMES = ("cloverleaf.yaml", "cloverleaf.yml", "cloverleaf.json")


def _config_in_working_directory() -> str | None:
    for name in CONFIG_FILE_NAMES:
        if os.path.isfile(name):
            return name
    return None


def run_app(spec: str, url: str, realm: str, *, serializer: str = "json", log_level: str = "info") -> int:
    from .apps import AppNotFound, load_app

    _configure_logging(log_level)
    try:
        app = load_app(spec)
    except AppNotFound as exc:
        print(f"cloverleaf run: {exc}", file=sys.stderr)
        return 1
    except Exception:  # the module (or the factory) itself failed: its traceback is the useful part
        traceback.print_exc()
        print(f"cloverleaf run: loading {spec!r} failed (traceback above)", file=sys.stderr)
        return 1
    return app.run(url, realm, serializer=serializer)


if __name__ == "__main__":
    sys.exit(main())
