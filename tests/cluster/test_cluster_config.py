"""`cloverleaf check` on the cluster section: each mistake named with its key and what to write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

BASE = {"realms": [{"name": "realm1"}],
        "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": 8080}}]}


def check(tmp_path: Path, cluster: dict[str, object]) -> tuple[int, str]:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**BASE, "cluster": cluster}))
    done = subprocess.run([sys.executable, "-m", "cloverleaf", "check", str(path)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_valid_cluster_section(tmp_path: Path) -> None:
    code, out = check(tmp_path, {"name": "prod", "node": "web-1", "nats": {
        "servers": ["nats://10.0.0.1:4222", "tls://10.0.0.2:4222"], "user": "router", "password": "s3cret"}})
    assert code == 0 and out.strip().endswith("OK"), out


def test_cluster_mistakes_are_named(tmp_path: Path) -> None:
    code, out = check(tmp_path, {"name": "my cluster", "node": "a", "nats": {"servers": ["localhost:4222"]}})
    assert code == 1
    assert "cluster.name: expected 1 to 64 letters, digits, '_' or '-'" in out and "'my cluster'" in out
    assert "cluster.nats.servers: expected a NATS server URL such as nats://127.0.0.1:4222" in out
    assert "'localhost:4222'" in out and "Traceback" not in out
    code, out = check(tmp_path, {"name": "c", "node": "a", "nats": {"servers": ["nats://127.0.0.1:4222"]},
                                 "heartbeat_interval": 1, "failure_timeout": 1})
    assert code == 1 and "failure_timeout of at least 3 heartbeat intervals (3 s), got 1" in out, out
    code, out = check(tmp_path, {"name": "c", "node": "a", "nats": {"servers": []}})
    assert code == 1 and "cluster.nats.servers" in out, out
    code, out = check(tmp_path, {"name": "c", "node": "a", "nats": {"servers": ["nats://h:1"]}, "replica": 3})
    assert code == 1 and "cluster.replica" in out, out
