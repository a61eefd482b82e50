"""Router nodes of a test cluster: `cloverleaf start` processes with a ``cluster:`` section."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.conftest import RouterProcess, launch_router, router_config


def cluster_router(tmp: Path, nats_url: str, node: str, config: dict[str, Any] | None = None,
                   start_timeout: float = 10.0, **cluster: Any) -> RouterProcess:
    """`cloverleaf start` as node ``node`` of cluster "test" (``config``: more top-level keys)."""
    tmp.mkdir(parents=True, exist_ok=True)
    section = {"name": "test", "node": node, "nats": {"servers": [nats_url]}, **cluster}
    return launch_router(tmp, lambda ws, rs, unix: router_config(ws, rs, unix, cluster=section, **(config or {})),
                         start_timeout=start_timeout)


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait for ``await condition()`` to be true (interest reaches other nodes asynchronously)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
