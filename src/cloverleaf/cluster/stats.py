"""Counters of a node's cluster traffic (no NATS import: the node keeps them across incarnations)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ClusterStats:
    """Counters for logs and /metrics (``cloverleaf_cluster_*``)."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    undecodable: int = 0
    nodes_seen: int = 0
    nodes_lost: int = 0
    fenced: int = 0
