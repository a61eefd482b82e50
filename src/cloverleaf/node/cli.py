"""The ``cloverleaf`` command: start a router, check a config, print the version."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .. import __version__
from .config import ConfigError, NodeConfig, default_config, load_config
from .node import install_event_loop_policy, run_node


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloverleaf", description="Cloverleaf WAMP router")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a router (on the embedded default without --config)")
    start.add_argument("--config", "-c", help="node config file (YAML or JSON)")
    start.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override logging.level")
    check = commands.add_parser("check", help="validate a config file and print every problem")
    check.add_argument("file")
    commands.add_parser("version", help="print the version")
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # picows logs every accepted connection at INFO; our own join/leave lines already say it.
    logging.getLogger("picows").setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"cloverleaf {__version__}")
        return 0
    if args.command == "check":
        try:
            load_config(args.file)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{args.file}: OK")
        return 0
    try:
        config: NodeConfig = load_config(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    _configure_logging(args.log_level or config.logging.level)
    install_event_loop_policy()
    try:
        asyncio.run(run_node(config))
    except OSError as exc:  # typically: address already in use
        logging.getLogger("cloverleaf.node").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
