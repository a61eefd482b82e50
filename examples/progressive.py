"""Progressive call results: an async-generator procedure streams values to its caller.

Usage: python examples/progressive.py [ROUTER_URL]    (default: $CLOVERLEAF_URL or ws://127.0.0.1:8080/ws)
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator

from cloverleaf.client import CallOptions, Result, connect

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLOVERLEAF_URL", "ws://127.0.0.1:8080/ws")
REALM = os.environ.get("CLOVERLEAF_REALM", "realm1")


async def countdown(n: int) -> AsyncIterator[str]:
    # each yielded value is a progressive result when the caller asked for them;
    # otherwise the caller receives only the last one, as the result
    for i in range(n, 0, -1):
        yield f"{i}..."
        await asyncio.sleep(0.01)
    yield "liftoff"


async def main() -> None:
    async with await connect(URL, REALM) as callee, await connect(URL, REALM) as caller:
        await callee.register("com.example.countdown", countdown)

        # 1. iterate over the progressive results; the last Result is the final one (here, empty)
        async for result in caller.call_progressive("com.example.countdown", 3):
            print("progressive:" if result.progress else "final:", result.value)

        # 2. or a callback per progressive result, and await the final result as usual
        def on_progress(result: Result) -> None:
            print("callback:", result.value)

        await caller.call("com.example.countdown", 2, options=CallOptions(on_progress=on_progress))

        # 3. without progressive results, only the last value comes back
        print("plain call:", await caller.call("com.example.countdown", 5))

        # 4. leaving the loop early cancels the call at the router
        async for result in caller.call_progressive("com.example.countdown", 100):
            print("first of many:", result.value)
            break


if __name__ == "__main__":
    asyncio.run(main())
