"""Remote procedure calls: one session registers procedures, another calls them.

Usage: python examples/rpc.py [ROUTER_URL]    (default: $CLOVERLEAF_URL or ws://127.0.0.1:8080/ws)
"""

import asyncio
import os
import sys

from cloverleaf.client import ApplicationError, CallDetails, CallOptions, Result, connect

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLOVERLEAF_URL", "ws://127.0.0.1:8080/ws")
REALM = os.environ.get("CLOVERLEAF_REALM", "realm1")


def add(a: int, b: int) -> int:
    return a + b


async def slow_square(x: int) -> int:
    await asyncio.sleep(0.05)  # a coroutine handler runs as a task: other calls go on meanwhile
    return x * x


def divide(a: float, b: float) -> Result:
    if b == 0:
        # the caller receives this URI, args and kwargs
        raise ApplicationError("com.example.division_by_zero", "cannot divide by zero", dividend=a)
    return Result([a // b, a % b], {"exact": a / b})  # several results at once


def whoami(details: CallDetails) -> str:
    # a parameter named `details` receives who called (the caller disclosed itself below)
    return f"session {details.caller} called {details.procedure}"


async def main() -> None:
    async with await connect(URL, REALM) as callee, await connect(URL, REALM) as caller:
        await callee.register("com.example.calc.add", add)
        await callee.register("com.example.calc.slow_square", slow_square)
        await callee.register("com.example.calc.divide", divide)
        await callee.register("com.example.whoami", whoami)

        print("add(2, 3) =", await caller.call("com.example.calc.add", 2, 3))
        squares = await asyncio.gather(*(caller.call("com.example.calc.slow_square", i) for i in range(5)))
        print("squares:", squares)
        result = await caller.call("com.example.calc.divide", 17, 5)
        print(f"divide(17, 5): quotient={result.args[0]} remainder={result.args[1]} exact={result.kwargs['exact']}")
        try:
            await caller.call("com.example.calc.divide", 1, 0)
        except ApplicationError as exc:
            print("error:", exc.error, exc.args[0], exc.kwargs)
        try:
            await caller.call("com.example.nothing_here")
        except ApplicationError as exc:
            print("error:", exc.error)
        me = await caller.call("com.example.whoami", options=CallOptions(disclose_me=True))
        print("whoami:", me == f"session {caller.session_id} called com.example.whoami")


if __name__ == "__main__":
    asyncio.run(main())
