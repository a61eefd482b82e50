"""`cloverleaf init`: the demo node folder, started with `cloverleaf start` in it and checked in
headless Chromium (the page receives the Python component's counter and completes a call)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser import run_browser
from tests.conftest import free_port, wait_for_port

DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"


def _cloverleaf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloverleaf", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A node made by `cloverleaf init` (AutobahnJS fetched by npm pack), started in its folder."""
    folder = tmp_path_factory.mktemp("demo") / "node"
    port = free_port()
    made = _cloverleaf("init", str(folder), "--port", str(port))
    assert made.returncode == 0, made.stderr
    log_path = folder.parent / "node.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cloverleaf", "start"], cwd=folder, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"the demo node did not start:\n{log_path.read_text()}") from None
    yield folder, port
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, log_path.read_text()


def test_init_writes_a_complete_node_folder(demo: tuple[Path, int]) -> None:
    folder, port = demo
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {"cloverleaf.yaml", "backend.py", "README.md", "web/index.html", "web/app.js", "web/style.css",
            "web/favicon.svg", "web/js/autobahn.min.js", "web/js/LICENSE-autobahn"} <= names  # fmt: skip
    assert f"port: {port}" in (folder / "cloverleaf.yaml").read_text()
    assert (folder / "web" / "js" / "autobahn.min.js").stat().st_size > 100_000
    checked = _cloverleaf("check", "cloverleaf.yaml", cwd=folder)
    assert checked.returncode == 0, checked.stderr
    # the page loads AutobahnJS from the node, never from a CDN
    page = (folder / "web" / "index.html").read_text()
    assert 'src="js/autobahn.min.js"' in page and "http" not in page.split("<body>")[1]


def test_start_in_the_folder_serves_the_page_and_the_config(demo: tuple[Path, int]) -> None:
    folder, port = demo
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert b"Cloverleaf demo" in response.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/js/autobahn.min.js", timeout=5) as response:
        assert response.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
    # the scaffold's files are revalidated on every load (an edit shows on the next reload), cheaply
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/app.js", timeout=5) as response:
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/app.js", headers={"If-None-Match": etag})
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("expected 304 Not Modified")
    except urllib.error.HTTPError as answer:
        assert answer.code == 304
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.svg", timeout=5) as response:
        assert response.headers["Content-Type"] == "image/svg+xml" and b"<svg" in response.read()
    log = (folder.parent / "node.log").read_text()
    assert f"config: {folder / 'cloverleaf.yaml'}" in log


def test_page_receives_the_counter_and_calls_python(demo: tuple[Path, int], tmp_path: Path) -> None:
    _folder, port = demo
    screenshot = tmp_path / "demo.png"
    results = run_browser([
        {"goto": f"http://127.0.0.1:{port}/"},
        {"wait_text": "#status", "contains": "joined realm1"},
        # the sum of the initial values, without a click
        {"wait_text": "#sum", "contains": "5"},
        # three counter events from the Python component, in order
        {"wait_for": "Number(document.getElementById('events').textContent) >= 3", "timeout": 15000},
        {"eval": "[Number(document.getElementById('counter').textContent),"
                 " Number(document.getElementById('events').textContent)]"},
        {"fill": "#a", "value": "40"},
        {"fill": "#b", "value": "2.5"},
        {"wait_text": "#sum", "contains": "42.5"},  # as the numbers change
        {"fill": "#a", "value": "1e308"},
        {"fill": "#b", "value": "1e308"},
        {"wait_text": "#sum", "contains": "error"},
        {"fill": "#b", "value": "2"},
        {"click": "#add"},
        {"wait_text": "#sum", "contains": "1e+308"},
        {"fill": "#b", "value": "2.5"},
        {"fill": "#a", "value": "40"},
        {"wait_text": "#sum", "contains": "42.5"},
        {"eval": "document.querySelector('link[rel=icon]').href"},
        {"screenshot": str(screenshot)},
    ])  # fmt: skip
    assert results[2] == "5"
    counter, events = results[4]
    assert events >= 3 and counter >= events - 1  # the page may have joined after the first events
    assert results[7] == "42.5"
    assert results[10] == "error: the sum is too large for a number"
    assert results[13] == "1e+308"
    assert results[17].endswith("/favicon.svg")
    if os.environ.get("CLOVERLEAF_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS_IMAGES / "demo.png")


def test_init_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    refused = _cloverleaf("init", str(tmp_path))
    assert refused.returncode == 1
    assert "is not empty (use --force" in refused.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_init_with_a_local_autobahn_js(tmp_path: Path, autobahn_browser_js: Path) -> None:
    made = _cloverleaf("init", str(tmp_path / "node"), "--autobahn-js", str(autobahn_browser_js))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "node" / "web" / "js" / "autobahn.min.js").read_bytes() == autobahn_browser_js.read_bytes()
    missing = _cloverleaf("init", str(tmp_path / "other"), "--autobahn-js", str(tmp_path / "nope.js"))
    assert missing.returncode == 1
    assert "--autobahn-js: no such file" in missing.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["node"]  # nothing half-written is left


def test_a_failed_init_leaves_nothing_and_the_retry_works(tmp_path: Path, autobahn_browser_js: Path) -> None:
    no_npm = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # a Python, but no npm
    failed = subprocess.run([sys.executable, "-m", "cloverleaf", "init", "mynode"], capture_output=True, text=True,
                            cwd=tmp_path, env=no_npm, timeout=60)  # fmt: skip
    assert failed.returncode == 1
    assert "npm is needed to fetch AutobahnJS" in failed.stderr
    assert list(tmp_path.iterdir()) == []
    retried = _cloverleaf("init", "mynode", "--autobahn-js", str(autobahn_browser_js), cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert (tmp_path / "mynode" / "cloverleaf.yaml").is_file()
    assert oct((tmp_path / "mynode").stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def test_init_prints_a_start_command_that_works_where_the_user_stands(tmp_path: Path,
                                                                      autobahn_browser_js: Path) -> None:  # fmt: skip
    """The venv is not active (its bin/ is not on PATH): the printed command names the program itself."""
    program = Path(sys.executable).parent / "cloverleaf"
    port = free_port()
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    made = subprocess.run([str(program), "init", "my node", "--port", str(port), "--autobahn-js",
                           str(autobahn_browser_js)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    line = made.stdout.splitlines()[1].strip()
    assert line == f"cd 'my node' && {program} start", made.stdout
    process = subprocess.Popen(["bash", "-c", line], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_for_port(port)
    finally:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        for child in children or [str(process.pid)]:  # Ctrl-C to the node: it stops cleanly, the shell ends with it
            os.kill(int(child), signal.SIGINT)
        assert process.wait(15) == 0


def test_the_page_comes_back_after_the_node_restarts(tmp_path: Path, autobahn_browser_js: Path) -> None:
    """A normal restart: the node's GOODBYE (system_shutdown) ends AutobahnJS's retrying, so the
    demo page reopens the connection itself and joins the restarted node."""
    import threading
    import time

    folder, port = tmp_path / "node", free_port()
    made = _cloverleaf("init", str(folder), "--port", str(port), "--autobahn-js", str(autobahn_browser_js))
    assert made.returncode == 0, made.stderr
    log_path = tmp_path / "node.log"

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "cloverleaf", "start"], cwd=folder, stdout=log,
                                       stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_for_port(port)
        return process

    process = start()
    results: list[Any] = []
    browser = threading.Thread(target=lambda: results.extend(run_browser([
        {"goto": f"http://127.0.0.1:{port}/"},
        {"wait_text": "#status", "contains": "joined realm1"},
        {"text": "#status"},
        {"eval": "window.seen = []; new MutationObserver(() => seen.push(document.getElementById('status')"
                 ".textContent)).observe(document.getElementById('status'), {childList: true, subtree: true,"
                 " characterData: true}); 0"},
        {"wait_for": "seen.some((text) => text.startsWith('joined realm1'))", "timeout": 30000},
        {"text": "#status"},
        {"eval": "seen"},
        {"wait_for": "Number(document.getElementById('events').textContent) >= 2", "timeout": 15000},
    ], timeout=120)))  # fmt: skip
    browser.start()
    try:
        deadline = time.monotonic() + 30
        while "via websocket" not in log_path.read_text():  # the page joined
            assert time.monotonic() < deadline and browser.is_alive(), log_path.read_text()
            time.sleep(0.05)
        time.sleep(1.0)  # the page watches its status line from now on
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0, log_path.read_text()
        time.sleep(1.0)  # down for a moment: the page's first attempts find nothing
        process = start()
        browser.join(120)
        assert not browser.is_alive()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(15)
    first, again, seen = results[2], results[5], results[6]
    assert first.startswith("joined realm1 as session") and again.startswith("joined realm1 as session")
    assert first != again  # a new session on the restarted node
    assert seen[0] == "the node is restarting, reconnecting…", seen  # what the page said in between
