"""The README's Autobahn|Python example runs as printed (only the router address is the test's), and
what it prints includes its event (test_examples.py runs every block; this one checks the event too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import RouterProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_calls_and_subscribes(router: RouterProcess, tmp_path: Path) -> None:
    blocks = [code for code in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "autobahn" in code]
    assert len(blocks) == 1, "README.md has no Autobahn|Python example"
    code = blocks[0]
    assert "ws://127.0.0.1:8080/ws" in code
    script = tmp_path / "example.py"
    script.write_text(code.replace("ws://127.0.0.1:8080/ws", router.ws_url))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "2 + 3 = 5" in result.stdout
    assert "event: hi" in result.stdout
    assert len(code.strip().splitlines()) <= 25
