"""Headless Chromium for the browser tests, driven by playwright-core (tests/js/browser.mjs).

Debian's ``chromium`` is the browser (``.ci/run`` installs it). Without it the browser tests are
skipped locally, and fail under CI (``CI`` set), where a missing browser is a broken set-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The Chromium executable; skip (or, under CI, fail) when the browser or playwright-core is missing."""
    path = chromium_path()
    problem = None
    if path is None:
        problem = "Debian's chromium is not installed (apt-get install chromium)"
    elif shutil.which("node") is None or not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        problem = "playwright-core is not installed (cd tests/js && npm ci)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert path is not None
    return path


def run_browser(steps: list[dict[str, Any]], timeout: float = 90.0) -> list[Any]:
    """Run ``steps`` (see tests/js/browser.mjs) on one page; return each step's result."""
    executable = require_browser()
    completed = subprocess.run(
        ["node", str(JS_DIR / "browser.mjs"), json.dumps(steps)],
        capture_output=True, text=True, timeout=timeout, cwd=JS_DIR, env={**os.environ, "CHROMIUM": executable},
    )  # fmt: skip
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"browser driver failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    report = json.loads(lines[-1])
    if not report["ok"]:
        console = "\n".join(report["console"])
        raise AssertionError(
            f"browser step {report['step']} {steps[report['step']]} failed: {report['error']}\n"
            f"page text:\n{report.get('page', '')}\nconsole:\n{console}"
        )
    results: list[Any] = report["results"]
    return results
