"""Long-running Python subprocesses for tests: wait for a line of output, interrupt, collect.

Output (stdout and stderr merged) is read by a thread, so a test can wait for a line with a
timeout while the process keeps running, and no pipe ever fills up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Service:
    """A subprocess whose output lines are collected as they arrive."""

    def __init__(self, args: list[str], cwd: Path | str = REPO, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.process = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def python(cls, *args: str, cwd: Path | str = REPO, env: dict[str, str] | None = None) -> Service:
        return cls([sys.executable, *args], cwd, env)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """Return the first line containing ``text``; fail if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            finished = not self._reader.is_alive()  # read before looking: no line can arrive after it
            for line in list(self.lines):
                if text in line:
                    return line
            if finished:
                raise AssertionError(
                    f"process ended ({self.process.wait(1)}) without a line with {text!r}; output:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r} within {timeout}s; output:\n{self.output}")
            time.sleep(0.01)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig`` (if still running) and wait for the exit code; kill after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running {timeout}s after signal {sig}; output:\n{self.output}") from None
        self._reader.join(2)
        return code

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to end by itself; kill it and fail after ``timeout``."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"did not end within {timeout}s; output:\n{self.output}") from None
        self._reader.join(2)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
