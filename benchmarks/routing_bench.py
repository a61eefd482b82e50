#!/usr/bin/env python3
"""Routing cost with many subscriptions and registrations present, in-process (no sockets).

Measures the router layer alone (decode, validate, route, encode) for a PUBLISH to an exact topic
with one subscriber and a CALL+YIELD to an exact procedure, first on an empty realm, then with
10,000 exact and 1,000 pattern (prefix and wildcard) subscriptions and registrations present.
Prints the minimum of several repetitions (the least disturbed by other processes).

    .venv/bin/python benchmarks/routing_bench.py [--iterations 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import RouterSession, SessionOptions
from cloverleaf.wamp.serializers import JSON, Serializer

ROLES = {role: {"features": {}} for role in ("caller", "callee", "publisher", "subscriber")}


class MemoryLink:
    kind = "memory"
    peer = "memory"
    peer_max_message_size = 0

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.count = 0

    def write(self, payload: bytes) -> None:
        self.count += 1

    def backlog(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        pass

    def abort(self, reason: str) -> None:
        pass


class Session:
    """A joined router session driven with encoded messages, counting its request IDs."""

    def __init__(self, router: Router) -> None:
        self.link = MemoryLink(JSON)
        self.session: RouterSession = router.open_session(self.link, SessionOptions([AnonymousAuthenticator()]))
        self.session.receive(JSON.encode([1, "realm1", {"roles": ROLES}]))
        self.request = 0

    def send(self, message: list[Any]) -> None:
        self.session.receive(JSON.encode(message))

    def next_request(self) -> int:
        self.request += 1
        return self.request


def build(populated: bool) -> tuple[Session, Session, Session]:
    router = Router()
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]})))
    subscriber, publisher, callee = Session(router), Session(router), Session(router)
    if populated:
        filler = Session(router)
        for i in range(10_000):
            filler.send([32, filler.next_request(), {}, f"com.filler.topic{i}"])
            filler.send([64, filler.next_request(), {}, f"com.filler.proc{i}"])
        for i in range(500):
            filler.send([32, filler.next_request(), {"match": "prefix"}, f"com.filler.prefix{i}"])
            filler.send([32, filler.next_request(), {"match": "wildcard"}, f"com.filler..w{i}"])
            filler.send([64, filler.next_request(), {"match": "prefix"}, f"com.filler.prefix{i}"])
            filler.send([64, filler.next_request(), {"match": "wildcard"}, f"com.filler..w{i}"])
    subscriber.send([32, subscriber.next_request(), {}, "com.bench.topic"])
    callee.send([64, callee.next_request(), {}, "com.bench.proc"])
    return subscriber, publisher, callee


def measure(populated: bool, iterations: int, repeat: int) -> tuple[float, float]:
    subscriber, publisher, callee = build(populated)
    publish_payloads = [JSON.encode([16, 0, {}, "com.bench.topic", [i]]) for i in range(iterations)]
    best_publish = best_call = float("inf")
    for _ in range(repeat):
        # request IDs must run on: rebuild the payloads with the next IDs
        payloads = []
        for i in range(iterations):
            payloads.append(publish_payloads[i].replace(b"[16,0,", b"[16,%d," % publisher.next_request(), 1))
        before = subscriber.link.count
        start = time.perf_counter()
        for payload in payloads:
            publisher.session.receive(payload)
        best_publish = min(best_publish, (time.perf_counter() - start) / iterations)
        assert subscriber.link.count - before == iterations
        calls = [JSON.encode([48, publisher.next_request(), {}, "com.bench.proc", [i]]) for i in range(iterations)]
        first_invocation = callee.session.request_ids.last + 1
        yields = [JSON.encode([70, first_invocation + i, {}, [i]]) for i in range(iterations)]
        start = time.perf_counter()
        for call, answer in zip(calls, yields, strict=True):
            publisher.session.receive(call)
            callee.session.receive(answer)
        best_call = min(best_call, (time.perf_counter() - start) / iterations)
    return best_publish * 1e6, best_call * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    empty = measure(False, args.iterations, args.repeat)
    full = measure(True, args.iterations, args.repeat)
    print("| realm state | PUBLISH -> 1 EVENT, µs | CALL + YIELD round trip, µs |")
    print("|---|---|---|")
    print(f"| empty | {empty[0]:.2f} | {empty[1]:.2f} |")
    print(f"| 10,000 exact + 1,000 pattern subscriptions and registrations | {full[0]:.2f} | {full[1]:.2f} |")
    print(f"| ratio | {full[0] / empty[0]:.2f} | {full[1] / empty[1]:.2f} |")


if __name__ == "__main__":
    main()
