"""Fuzzing the router in-process: a real Router and realm, a bystander session, and a fuzzed
session fed generated and mutated WAMP messages in every serializer and framing.

See harness.py for the invariants and gen.py for the inputs (and the parts of generation kept out
until known bugs are fixed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.budget import count, fuzz_settings
from tests.fuzz.gen import HypothesisChooser
from tests.fuzz.harness import ALL_SERIALIZERS, FRAMINGS, World, deterministic_ids, router_errors_checked, run_episode


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner, deterministic_ids(), router_errors_checked():
        yield runner


@pytest.fixture(scope="module", autouse=True)
def quiet_router_logs() -> Iterator[None]:
    """Every abort is logged at INFO; thousands of them would only cost time here."""
    logger = logging.getLogger("cloverleaf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("serializer", ALL_SERIALIZERS, ids=lambda s: s.NAME)
def test_fuzzed_session_leaves_router_and_bystander_intact(runner: asyncio.Runner, serializer, framing: str) -> None:
    name = f"router[{serializer.NAME}-{framing}]"

    @fuzz_settings(1000)
    @given(
        data=st.data(),
        bystander=st.sampled_from(ALL_SERIALIZERS),
        bystander_max=st.sampled_from([0, 0, 700]),
        rounds=st.integers(1, 12),
    )
    def fuzz(data: st.DataObject, bystander, bystander_max: int, rounds: int) -> None:
        world = World(bystander, bystander_max_message_size=bystander_max)
        episode = runner.run(run_episode(world, HypothesisChooser(data), serializer, framing, rounds))
        count(name, 1, episode.payloads_fed)

    fuzz()
