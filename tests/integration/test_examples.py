"""examples/ and every Python block of README.md and docs/*.md run as printed, against real routers.

Only the router address changes: ``ws://127.0.0.1:8080/ws`` (and the RawSocket and Unix socket
addresses) become the router's. Each Python block of the documents is preceded by a marker that says
how it runs (a block without one fails test_every_python_block_is_marked):

- ``<!-- test: script -->``: a program, saved to a file and run with Python, against the default router;
- ``<!-- test: script auth -->``: the same against a router started on the config printed (```yaml)
  above the block;
- ``<!-- not tested: reason -->``: not run here, for the reason given (rare: say where it is covered);
- ``<!-- test: script cluster -->``: against two nodes of a cluster (tests/cluster/test_docs_cluster.py);
- ``<!-- test: service NAME -->`` / ``<!-- test: caller NAME -->``: the side-by-side programs; each
  caller runs against each service (Cloverleaf and Autobahn|Python, both ways).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RouterProcess, free_port, launch_router
from tests.processes import REPO, Service

EXAMPLES = REPO / "examples"
DEFAULT_URL = "ws://127.0.0.1:8080/ws"

# -- the examples -----------------------------------------------------------------------------------

# example -> lines its output must contain (each example ends by itself)
EXPECTED: dict[str, list[str]] = {
    "rpc.py": [
        "add(2, 3) = 5",
        "squares: [0, 1, 4, 9, 16]",
        "divide(17, 5): quotient=3 remainder=2 exact=3.4",
        "error: com.example.division_by_zero cannot divide by zero {'dividend': 1}",
        "error: wamp.error.no_such_procedure",
        "whoami: True",
    ],
    "pubsub.py": [
        "published with an acknowledgement: True",
        "received: humidity = 0.4 (publication True)",
        "received: temperature = 21.5 (publication True)",
        "received: tick 1s",
        "received: tick 2s",
    ],
    "progressive.py": [
        "progressive: 3...",
        "progressive: 2...",
        "progressive: 1...",
        "progressive: liftoff",
        "final: None",
        "callback: 2...",
        "callback: liftoff",
        "plain call: liftoff",
        "first of many: 100...",
    ],
    "sync_script.py": [
        "multiply(6, 7) = 42",
        "event: hello from a script",
        "error: wamp.error.no_such_procedure",
        "service not running: wamp.error.no_such_procedure",
        "left: True",
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted([*EXPECTED, "service_app.py"])


async def test_examples_end_by_themselves(router: RouterProcess) -> None:
    """All at once (their URIs differ): the URL as argv for most, from the environment for one."""

    async def run(example: str) -> tuple[str, int, str, str]:
        args, env = ([], {"CLOVERLEAF_URL": router.ws_url}) if example == "sync_script.py" else ([router.ws_url], {})
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / example), *args, cwd=REPO, env={**_environ(), **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
        return example, process.returncode or 0, out.decode(), err.decode()

    failures = []
    for example, code, out, err in await asyncio.gather(*(run(e) for e in sorted(EXPECTED))):
        missing = [line for line in EXPECTED[example] if line not in out.splitlines()]
        if code != 0 or missing or "Traceback" in err:
            failures.append(f"{example}: exit {code}, missing {missing}\nstdout:\n{out}\nstderr:\n{err}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("how", ["python", "cloverleaf run"])
def test_service_app(router: RouterProcess, how: str) -> None:
    if how == "python":
        service = Service.python(str(EXAMPLES / "service_app.py"), router.ws_url)
    else:
        service = Service.python("-m", "cloverleaf", "run", "examples.service_app:app", "--url", router.ws_url,
                                 "--realm", "realm1", cwd=REPO)  # fmt: skip
    try:
        service.wait_for("service ready", 10)
        import cloverleaf
        from cloverleaf.client import ApplicationError, CallOptions

        with cloverleaf.connect(router.ws_url, "realm1", timeout=5) as s:
            assert s.call("com.example.add", 2, 3) == 5
            assert s.call("com.example.count", "visits") == "visits = 1 (caller undisclosed)"
            assert s.call("com.example.count", "visits", options=CallOptions(disclose_me=True)) == (
                f"visits = 2 (caller {s.session_id})"
            )
            with pytest.raises(ApplicationError) as error:
                s.call("com.example.count", "")
            assert error.value.error == "com.example.invalid_counter"
            assert s.call("com.example.stream", 4) == 3
            s.publish("com.example.reset", "visits")
            service.wait_for("counter visits reset", 5)
            assert s.call("com.example.count", "visits") == "visits = 1 (caller undisclosed)"
        if how == "python":  # the sync example talks to the service when it runs
            result = subprocess.run([sys.executable, str(EXAMPLES / "sync_script.py"), router.ws_url], cwd=REPO,
                                    capture_output=True, text=True, timeout=30)  # fmt: skip
            assert "service add(1, 2) = 3" in result.stdout.splitlines(), result.stdout + result.stderr
        assert service.stop(signal.SIGINT, 10) == 0, service.output
    finally:
        service.kill()
    assert "service left: wamp.close.goodbye_and_out" in service.lines, service.output
    assert "Traceback" not in service.output, service.output


# -- the Python blocks of README.md and docs/*.md ----------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: Path
    kind: str  # script, service, caller
    name: str  # the router a script needs ("" the default, auth, cluster, testee); service/caller: the library
    code: str
    line: int
    section: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{self.doc.stem}-{slug}-line{self.line}"


MARKED = re.compile(r"<!-- test: (\w+)(?: (\w+))? -->\n```python\n(.*?)```", re.S)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def doc_blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    blocks = []
    for match in MARKED.finditer(text):
        line = text.count("\n", 0, match.start(3)) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
        blocks.append(Block(doc, match.group(1), match.group(2) or "", match.group(3), line,
                            headings[-1] if headings else doc.stem))  # fmt: skip
    return blocks


BLOCKS = [block for doc in DOCS for block in doc_blocks(doc)]
#: blocks run against the default router by this module (cluster blocks: tests/cluster/test_docs_cluster.py)
SCRIPTS = [b for b in BLOCKS if b.kind == "script" and b.name in ("", "auth")]


def localize(code: str, router: RouterProcess) -> str:
    return (
        code.replace(DEFAULT_URL, router.ws_url)
        .replace("rs://127.0.0.1:8081", router.rs_url)
        .replace("unix:///tmp/cloverleaf.sock", f"unix://{router.unix_path}")
    )


def test_every_python_block_is_marked() -> None:
    """Every Python block of the README and the docs claims to run, so each says how it is run."""
    for doc in DOCS:
        text = doc.read_text()
        not_tested = len(re.findall(r"<!-- not tested: [^>]+ -->\n```python\n", text))
        assert text.count("```python") == len(doc_blocks(doc)) + not_tested, (
            f"a Python block of {doc} has no <!-- test: ... --> (or <!-- not tested: reason -->) marker"
        )
    assert {(b.kind, b.name) for b in BLOCKS} <= {("script", ""), ("script", "auth"), ("script", "cluster"),
                                                   ("service", "cloverleaf"),
                                                   ("service", "autobahn"), ("caller", "cloverleaf"),
                                                   ("caller", "autobahn")}  # fmt: skip
    assert {b.doc.name for b in BLOCKS} >= {"README.md", "client.md", "cluster.md"}
    assert sum(len(re.findall(r"print\(.*\)  # ", b.code)) for b in BLOCKS) >= 10  # promised outputs
    for block in BLOCKS:
        tree = ast.parse(block.code, mode="exec", feature_version=(3, 11))  # a program, as written: no top-level await
        compile(tree, str(block.doc), "exec")
        if block.kind == "script" and block.name in ("", "auth"):
            assert DEFAULT_URL in block.code, f"{block.id} does not use the default router URL"


def check_printed(block: Block, output: str) -> None:
    """A ``print(...)  # text`` line in a block promises an output line ending with ``text``."""
    lines = output.splitlines()
    assert lines, f"{block.id} printed nothing"
    for promised in re.findall(r"^\s*print\(.*\)  # (.+)$", block.code, re.M):
        assert any(line.endswith(promised) for line in lines), f"{block.id}: no {promised!r} in:\n{output}"


def run_script(block: Block, code: str, directory: Path) -> str:
    """Run ``code`` as a file, as a user would; its standard output."""
    script = directory / "block.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=directory, capture_output=True, text=True, timeout=60,
                            env=_environ())  # fmt: skip
    assert result.returncode == 0, f"{block.id}:\n{result.stdout}{result.stderr}"
    check_printed(block, result.stdout)
    return result.stdout


def preceding_yaml(block: Block) -> dict[str, Any]:
    """The node config printed (```yaml) just before ``block`` in its document."""
    text = block.doc.read_text()
    before = text[: text.index(block.code)]
    configs = re.findall(r"```yaml\n(.*?)```", before, re.S)
    assert configs, f"{block.id}: no config block before it"
    loaded: dict[str, Any] = yaml.safe_load(configs[-1])
    return loaded


@pytest.mark.parametrize("block", SCRIPTS, ids=lambda b: b.id)
def test_doc_script_block(router: RouterProcess, block: Block, tmp_path: Path) -> None:
    if block.name == "":
        run_script(block, localize(block.code, router), tmp_path)
        return
    config = preceding_yaml(block)  # auth: the router of the config printed above the block

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config["transports"][0]["endpoint"]["port"] = ws_port
        config["transports"].append({"type": "rawsocket", "endpoint": {"type": "tcp", "port": rs_port}})
        return config

    (tmp_path / "node").mkdir()
    own = launch_router(tmp_path / "node", make_config)
    try:
        run_script(block, localize(block.code, own), tmp_path)
    finally:
        assert own.stop() == 0, own.log()
    assert "Traceback" not in own.log(), own.log()
    assert "as alice/user (ticket)" in own.log() and "as alice/user (wampcra)" in own.log(), own.log()


@pytest.mark.parametrize("service", ["cloverleaf", "autobahn"])
async def test_doc_side_by_side(router: RouterProcess, tmp_path: Path, service: str) -> None:
    """The service of one client library, and the callers of both against it at once."""
    (service_block,) = [b for b in BLOCKS if b.kind == "service" and b.name == service]
    (tmp_path / "service.py").write_text(localize(service_block.code, router))
    callers = sorted(b.name for b in BLOCKS if b.kind == "caller")
    for block in BLOCKS:
        if block.kind == "caller":
            (tmp_path / f"{block.name}_caller.py").write_text(localize(block.code, router))
    server = Service.python("service.py", cwd=tmp_path, env=_environ())
    try:
        await asyncio.to_thread(server.wait_for, "service ready", 10)

        async def call(name: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, f"{name}_caller.py", cwd=tmp_path, env=_environ(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                out, err = await asyncio.wait_for(process.communicate(), 30)
            except TimeoutError:
                process.kill()
                out, err = await process.communicate()
            return process.returncode or 0, out.decode(), err.decode()

        for name, (code, out, err) in zip(callers, await asyncio.gather(*(call(c) for c in callers)), strict=True):
            assert code == 0, f"{name} caller:\n{out}\n{err}"
            assert "2 + 3 = 5" in out.splitlines(), f"{name} caller:\n{out}\n{err}"  # (Autobahn logs to stdout too)
        deadline = asyncio.get_running_loop().time() + 5
        while server.lines.count("event: hi") < len(callers) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert server.lines.count("event: hi") == len(callers), server.output
        code = await asyncio.to_thread(server.stop, signal.SIGINT, 10)
        if service == "cloverleaf":
            assert code == 0, server.output
            assert "Traceback" not in server.output, server.output
    finally:
        server.kill()


def _environ() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


# -- the shell blocks of README.md and docs/*.md ----------------------------------------------------

SHELL_MARKED = re.compile(r"(<!-- (?:test: shell(?: (\w+))?|not tested: [^>]+) -->\n)?```(?:bash|sh)\n(.*?)```", re.S)


@dataclass(frozen=True)
class ShellBlock:
    doc: Path
    marker: str  # "" (unmarked), "shell", "shell node", "not tested: ..."
    code: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.doc.stem}-line{self.line}"


def shell_blocks() -> list[ShellBlock]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in SHELL_MARKED.finditer(text):
            marker = (match.group(1) or "").strip().removeprefix("<!-- ").removesuffix(" -->")
            if marker.startswith("test: "):
                marker = marker.removeprefix("test: ")
            found.append(ShellBlock(doc, marker, match.group(3), text.count("\n", 0, match.start(3)) + 1))
    return found


SHELL_BLOCKS = shell_blocks()


def test_every_shell_block_is_run_or_says_why_not() -> None:
    unmarked = [b.id for b in SHELL_BLOCKS if not b.marker]
    assert not unmarked, f"shell blocks without <!-- test: shell --> or <!-- not tested: reason -->: {unmarked}"
    assert {b.marker for b in SHELL_BLOCKS if not b.marker.startswith("not tested: ")} == {"shell", "shell node"}


def _shell_environ(tmp_path: Path) -> dict[str, str]:
    """The venv's programs first on PATH (as after `source .venv/bin/activate`), HOME in the test's folder."""
    venv_bin = str(Path(sys.executable).parent)
    return {**_environ(), "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "HOME": str(tmp_path)}


@pytest.mark.parametrize("block", [b for b in SHELL_BLOCKS if b.marker == "shell"], ids=lambda b: b.id)
def test_doc_shell_block(block: ShellBlock, tmp_path: Path) -> None:
    """Runs to completion, every command succeeding (bash -e); prompts read from standard input."""
    result = subprocess.run(["bash", "-e", "-c", block.code], cwd=tmp_path, env=_shell_environ(tmp_path),
                            input="secret\n" * 8, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, f"{block.id}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("block", [b for b in SHELL_BLOCKS if b.marker == "shell node"], ids=lambda b: b.id)
def test_doc_shell_node_block(block: ShellBlock, tmp_path: Path) -> None:
    """`cloverleaf init` and `cloverleaf start` as written, from a folder beside a `.venv` (the
    checkout's), on a port the test chose (`init --port`); the node runs until Ctrl-C."""
    from tests.conftest import wait_for_port

    port = free_port()
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    code = re.sub(r"(cloverleaf init mynode)", rf"\1 --port {port}", block.code)
    assert code != block.code, f"{block.id}: no `cloverleaf init mynode` to give a port"
    process = subprocess.Popen(["bash", "-e", "-c", code], cwd=tmp_path, env=_shell_environ(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for_port(port, timeout=120)  # npm fetches AutobahnJS first
        node = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        for pid in node or [str(process.pid)]:  # Ctrl-C to the node
            os.kill(int(pid), signal.SIGINT)
        output = process.communicate(timeout=20)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"{block.id}:\n{output}"
    assert "cloverleaf router ready" in output and "Traceback" not in output, output
