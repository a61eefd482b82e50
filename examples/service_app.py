"""A service declared as an App: procedures and event handlers with decorators.

Run it either way (it serves until Ctrl-C / SIGTERM, then leaves the realm cleanly):

    python examples/service_app.py [ROUTER_URL]
    cloverleaf run examples.service_app:app --url ROUTER_URL --realm realm1

(default URL: $CLOVERLEAF_URL or ws://127.0.0.1:8080/ws). Try it with examples/sync_script.py.
"""

import os
import sys
from collections.abc import AsyncIterator

from cloverleaf.client import App, ApplicationError, CallDetails, Session

app = App("counter-service")

totals: dict[str, int] = {}


@app.register("com.example.add")
def add(a: int, b: int) -> int:
    return a + b


@app.register("com.example.count")
def count(name: str, details: CallDetails) -> str:
    """Increment counter `name` and say who did it (`details` receives the call's details)."""
    if not name:
        raise ApplicationError("com.example.invalid_counter", "a counter needs a name")
    totals[name] = totals.get(name, 0) + 1
    return f"{name} = {totals[name]} (caller {details.caller or 'undisclosed'})"


@app.register("com.example.stream")
async def stream(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@app.subscribe("com.example.reset")
def reset(name: str) -> None:
    totals.pop(name, None)
    print(f"counter {name} reset", flush=True)


@app.on_join
async def ready(session: Session) -> None:
    # runs after every join (and reconnect), once everything above is registered and subscribed
    print(f"service ready (session {session.session_id})", flush=True)
    await session.publish("com.example.service_ready", app.name)


@app.on_leave
def left(session: Session, reason: str) -> None:
    print(f"service left: {reason}", flush=True)


if __name__ == "__main__":
    URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLOVERLEAF_URL", "ws://127.0.0.1:8080/ws")
    REALM = os.environ.get("CLOVERLEAF_REALM", "realm1")
    sys.exit(app.run(URL, REALM))
