"""The demo's Python back end: publishes a counter every second and offers two procedures.

The node starts it in-process (see `components` in cloverleaf.yaml). It runs just as well as a
separate program against any router:  cloverleaf run backend:app --url ws://127.0.0.1:$port/ws
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import platform

from cloverleaf.client import App, ApplicationError, Session

app = App("backend")
_ticker: asyncio.Task[None] | None = None


@app.register("com.example.add2")
def add2(a: float, b: float) -> float:
    """Add two numbers (the web page calls this)."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)):
        raise ApplicationError("com.example.invalid_argument", "add2 takes two numbers")
    total = a + b
    if not math.isfinite(total):  # 1e308 + 1e308: WAMP's serializers carry no infinity
        raise ApplicationError("com.example.out_of_range", "the sum is too large for a number")
    return total


@app.register("com.example.hello")
def hello(name: str = "browser") -> str:
    return f"Hello {name}, from Python {platform.python_version()}!"


async def _publish_counter(session: Session) -> None:
    counter = 0
    while True:
        await session.publish("com.example.counter", counter)
        counter += 1
        await asyncio.sleep(1.0)


@app.on_join
async def start_counter(session: Session) -> None:
    global _ticker
    if _ticker is None or _ticker.done():
        _ticker = asyncio.get_running_loop().create_task(_publish_counter(session))


@app.on_leave
async def stop_counter(session: Session, reason: str) -> None:
    global _ticker
    if _ticker is not None:
        _ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _ticker
        _ticker = None
