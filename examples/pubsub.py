"""Publish and subscribe: one session subscribes to topics, another publishes events.

Usage: python examples/pubsub.py [ROUTER_URL]    (default: $CLOVERLEAF_URL or ws://127.0.0.1:8080/ws)
"""

import asyncio
import os
import sys

from cloverleaf.client import EventDetails, PublishOptions, connect

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLOVERLEAF_URL", "ws://127.0.0.1:8080/ws")
REALM = os.environ.get("CLOVERLEAF_REALM", "realm1")


async def main() -> None:
    received: list[str] = []
    all_received = asyncio.Event()

    def on_tick(count: int, unit: str = "s") -> None:
        received.append(f"tick {count}{unit}")
        if len(received) == 4:
            all_received.set()

    async def on_reading(sensor: str, value: float, details: EventDetails) -> None:
        # a coroutine handler runs as a task; a parameter named `details` receives EventDetails
        received.append(f"{sensor} = {value} (publication {details.publication > 0})")
        if len(received) == 4:
            all_received.set()

    async with await connect(URL, REALM) as subscriber, await connect(URL, REALM) as publisher:
        await subscriber.subscribe("com.example.tick", on_tick)
        await subscriber.subscribe("com.example.reading", on_reading)

        for count in (1, 2):
            await publisher.publish("com.example.tick", count, unit="s")
        # acknowledge=True waits for the router and returns the publication ID
        publication = await publisher.publish(
            "com.example.reading", "temperature", 21.5, options=PublishOptions(acknowledge=True)
        )
        print("published with an acknowledgement:", publication is not None)
        await publisher.publish("com.example.reading", "humidity", 0.4)

        await asyncio.wait_for(all_received.wait(), timeout=5)
        for line in sorted(received):
            print("received:", line)


if __name__ == "__main__":
    asyncio.run(main())
