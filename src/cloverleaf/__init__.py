"""Cloverleaf: a fast, spec-exact WAMP v2 router and asyncio client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client.sync import SyncSession

__version__ = "0.1.0"

__all__ = ["__version__", "connect"]


def connect(url: str, realm: str, *, timeout: float = 10.0, **kwargs: Any) -> SyncSession:
    """Connect synchronously (for scripts and notebooks) and return a :class:`~cloverleaf.client.sync.SyncSession`.

    >>> with cloverleaf.connect("ws://127.0.0.1:8080/ws", "realm1") as s:
    ...     s.call("com.example.add", 2, 3)

    The client is imported on first use, so ``import cloverleaf`` stays light. The asyncio client
    is :func:`cloverleaf.client.connect`.
    """
    from .client.sync import connect as sync_connect

    return sync_connect(url, realm, timeout=timeout, **kwargs)
