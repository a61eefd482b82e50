"""Finding a user's App: ``module[:attribute]`` as `cloverleaf run` and app components name it."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client.app import App


class AppNotFound(Exception):
    """``cloverleaf run`` could not find the application; the message says why."""


def load_app(spec: str, folder: str | None = None) -> App:
    """Import ``module[:attribute]`` (``folder``, by default the current directory, first on the
    path) and return its App.

    The attribute (dotted for nested objects; ``app`` when omitted) is an :class:`App` or a
    callable without arguments returning one. Raise :class:`AppNotFound` with a clear message.
    """
    from ..client.app import App

    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if not module_name or module_name.endswith(".py") or "/" in module_name:
        raise AppNotFound(f"{spec!r} is not MODULE[:ATTRIBUTE] (e.g. myservice:app or examples.service_app:app)")
    if folder is not None:  # the node folder of an embedded component: it stays first
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only when the module itself is missing; a missing import inside it is the module's bug.
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppNotFound(f"cannot import module {module_name!r}: no module named {exc.name!r}") from None
        raise
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppNotFound(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, App) and callable(target) and not isinstance(target, type):
        target = target()
    if not isinstance(target, App):
        raise AppNotFound(
            f"{module_name}:{attribute} is not a cloverleaf.client.App (or a function returning one) "
            f"but a {type(target).__name__!r} object"
        )
    return target


__all__ = ["AppNotFound", "load_app"]
