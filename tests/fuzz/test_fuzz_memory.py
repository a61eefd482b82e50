"""Memory returns to its baseline: many fuzzed sessions on one router leave bounded growth.

One World (router, realm, bystander) lives through all the episodes; after each the router's
tables are back to the bystander's own state (checked by run_episode), and tracemalloc measures the
heap's growth over two windows of many episodes after a warm-up: a leak grows it in both. URIs
come from a fixed vocabulary here, so the router's bounded memos (URI validity, authorization
decisions, match caches) fill up during the warm-up instead of growing with every random URI.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc

from tests.fuzz.budget import COUNTS, SCALE, count
from tests.fuzz.gen import RandomChooser
from tests.fuzz.harness import ALL_SERIALIZERS, FRAMINGS, World, deterministic_ids, router_errors_checked, run_episode

from cloverleaf.wamp.serializers import CBOR, JSON, MSGPACK

WARMUP = 300
#: episodes per measured window (two windows follow the warm-up)
EPISODES = int(300 * SCALE)
#: bytes of growth allowed per episode (a leak of one session's state is far more: a forgotten
#: RouterSession with its core and link is several KB), plus a fixed slack for memos still filling
#: up (measured: about 20 KB over 600 episodes, 35 KB over 1,800)
PER_EPISODE = 64
SLACK = 64 * 1024


async def _episodes(world: World, start: int, n: int) -> int:
    fed = 0
    for seed in range(start, start + n):
        c = RandomChooser(seed)
        episode = await run_episode(world, c, ALL_SERIALIZERS[seed % 3], FRAMINGS[(seed // 3) % 3],
                                    c.integer(1, 10), free_uris=False)  # fmt: skip
        fed += episode.payloads_fed
    return fed


def _heap() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_memory_returns_to_baseline() -> None:
    logger = logging.getLogger("cloverleaf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    tracemalloc.start()
    try:
        with asyncio.Runner() as runner, deterministic_ids(), router_errors_checked():
            for bystander in (MSGPACK,) if SCALE <= 1 else (JSON, MSGPACK, CBOR):
                world = World(bystander, quiet_failures=True, seed=7)
                fed = runner.run(_episodes(world, 0, WARMUP))
                world.router.realms["realm1"].broker.retained.clear()  # kept by design (see the report)
                # Two windows: a leak grows the heap in both, while process-wide tables that grow
                # once to a new high-water mark (CPython's interned strings, which msgpack's map keys
                # go through; the decoders' buffers) grow it in one at most.
                growths = []
                for window in range(2):
                    before = _heap()
                    fed += runner.run(_episodes(world, WARMUP + window * EPISODES, EPISODES))
                    world.router.realms["realm1"].broker.retained.clear()
                    growths.append(_heap() - before)
                growth = min(growths)
                count(f"memory[bystander {bystander.NAME}]", WARMUP + 2 * EPISODES, fed)
                COUNTS[f"memory[bystander {bystander.NAME}]: heap growth per window (bytes, least)"] += growth
                assert growth < SLACK + PER_EPISODE * EPISODES, (
                    f"heap grew {growths[0]:,} and {growths[1]:,} bytes in two windows of {EPISODES} episodes"
                )
    finally:
        tracemalloc.stop()
        logger.setLevel(level)
