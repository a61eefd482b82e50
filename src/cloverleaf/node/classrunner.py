"""Run a Crossbar.io class component unchanged: an Autobahn ``ApplicationSession`` subclass,
joined to the node through Autobahn's own ``Component`` runner.

Crossbar runs class components inside its router or container workers. Cloverleaf's ``class``
component (a converted config keeps Crossbar's as such) runs each in a supervised process of its
own (restarted when it exits, like a guest) running this module in the node's Python::

    python -m cloverleaf.node.classrunner --classname myapp.Backend --realm realm1 \\
        --transport '{"type": "rawsocket", "url": "rs://localhost", "endpoint": {"type": "unix", "path": "..."}}' \\
        --extra '{"key": "value"}'

A class derived from ``autobahn.twisted.wamp.ApplicationSession`` runs on Twisted (which Crossbar
users have installed); any other on asyncio. ``--transport`` is an Autobahn ``Component``
transport; ``--extra`` reaches the session as ``self.config.extra``, as in Crossbar.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any


def load_class(classname: str) -> Any:
    """The class ``package.module.Class`` (the working directory and PYTHONPATH are searched)."""
    module_name, _, attribute = classname.rpartition(".")
    if not module_name:
        raise SystemExit(f"classrunner: {classname!r} is not MODULE.CLASS")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"classrunner: cannot import {module_name!r} for {classname}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"classrunner: module {module_name!r} has no {attribute!r}") from None


def is_twisted_session(cls: Any) -> bool:
    """Whether ``cls`` is an Autobahn|Python session for Twisted (else it runs on asyncio)."""
    return any(base.__module__.startswith("autobahn.twisted") for base in getattr(cls, "__mro__", ()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloverleaf.node.classrunner",
                                     description="Run an Autobahn ApplicationSession class against a router.")
    parser.add_argument("--classname", required=True, help="MODULE.CLASS of the ApplicationSession subclass")
    parser.add_argument("--realm", required=True)
    parser.add_argument("--transport", required=True, help="an Autobahn Component transport, as JSON")
    parser.add_argument("--extra", default="null", help="the session's config.extra, as JSON")
    args = parser.parse_args(argv)
    cls = load_class(args.classname)
    transport = json.loads(args.transport)
    extra = json.loads(args.extra)
    if is_twisted_session(cls):
        from autobahn.twisted.component import Component as TwistedComponent
        from autobahn.twisted.component import run as run_twisted

        component = TwistedComponent(session_factory=cls, transports=[transport], realm=args.realm,  # type: ignore[no-untyped-call]
                                     extra=extra)  # fmt: skip
        run_twisted([component])
    else:
        from autobahn.asyncio.component import Component, run

        run([Component(session_factory=cls, transports=[transport], realm=args.realm,  # type: ignore[no-untyped-call]
                       extra=extra)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
