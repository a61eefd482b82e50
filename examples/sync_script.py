"""The synchronous facade: no async/await, for scripts and notebooks.

Usage: python examples/sync_script.py [ROUTER_URL]    (default: $CLOVERLEAF_URL or ws://127.0.0.1:8080/ws)

It also talks to examples/service_app.py when that is running.
"""

import os
import sys
import threading

import cloverleaf
from cloverleaf.client import ApplicationError, CallOptions, PublishOptions

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLOVERLEAF_URL", "ws://127.0.0.1:8080/ws")
REALM = os.environ.get("CLOVERLEAF_REALM", "realm1")

# `timeout` bounds connecting and every request below (default 10 s)
with cloverleaf.connect(URL, REALM, timeout=5) as s:
    # handlers run on the client's event-loop thread: keep them short
    s.register("com.example.sync.multiply", lambda a, b: a * b)
    print("multiply(6, 7) =", s.call("com.example.sync.multiply", 6, 7))

    got_event = threading.Event()

    def on_note(text: str) -> None:
        print("event:", text)
        got_event.set()

    s.subscribe("com.example.sync.note", on_note)
    # exclude_me=False: receive our own event, since we are subscribed too
    s.publish("com.example.sync.note", "hello from a script", options=PublishOptions(exclude_me=False))
    got_event.wait(5)

    try:
        s.call("com.example.sync.missing")
    except ApplicationError as exc:
        print("error:", exc.error)

    try:  # the service of examples/service_app.py, if it runs
        print("service add(1, 2) =", s.call("com.example.add", 1, 2, options=CallOptions(timeout=2)))
    except ApplicationError as exc:
        print("service not running:", exc.error)
print("left:", not s.is_connected)
