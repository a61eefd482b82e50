"""The Python blocks of the documents marked ``<!-- test: script cluster -->`` (docs/cluster.md's
walk-through), run as written against two nodes of a cluster: node a at ``ws://127.0.0.1:18081/ws``
and node c at ``ws://127.0.0.1:18083/ws`` in the document, the test's free ports here."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cluster.nats import NatsServer
from tests.cluster.nodes import cluster_router
from tests.integration.test_examples import BLOCKS, Block, run_script

CLUSTER_BLOCKS = [b for b in BLOCKS if b.kind == "script" and b.name == "cluster"]


def test_the_cluster_walk_through_has_a_block() -> None:
    assert [b.doc.name for b in CLUSTER_BLOCKS] == ["cluster.md"]


@pytest.mark.parametrize("block", CLUSTER_BLOCKS, ids=lambda b: b.id)
def test_doc_cluster_block(block: Block, tmp_path: Path, nats_server: NatsServer) -> None:
    a = cluster_router(tmp_path / "a", nats_server.url, "a")
    c = cluster_router(tmp_path / "c", nats_server.url, "c")
    try:
        code = block.code.replace("ws://127.0.0.1:18081/ws", a.ws_url).replace("ws://127.0.0.1:18083/ws", c.ws_url)
        run_script(block, code, tmp_path)
    finally:
        for node in (a, c):
            assert node.stop() == 0, node.log()
