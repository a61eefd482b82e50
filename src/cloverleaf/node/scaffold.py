"""``cloverleaf init DIR``: write a ready node folder with a demo web app.

The folder holds a config, a Python back end started inside the node, and a web page that uses
AutobahnJS. AutobahnJS comes from the npm package ``autobahn-browser`` (fetched with ``npm pack``
when the folder is made, or copied from a file given with ``--autobahn-js``), so the page never
loads code from a CDN at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

#: the AutobahnJS browser build the demo and the web console use
AUTOBAHN_PACKAGE = "autobahn-browser"
AUTOBAHN_VERSION = "22.11.1"
#: files whose ``$port``-style placeholders are filled in (the web files contain JS template literals)
_TEMPLATED = {"cloverleaf.yaml", "backend.py", "README.md"}


class InitError(Exception):
    """The node folder could not be made; the message says why and what to do."""


def init_node(directory: str | Path, *, port: int = 8080, autobahn_js: str | Path | None = None,
              force: bool = False) -> list[Path]:  # fmt: skip
    """Write the demo node into ``directory``; return the files written.

    Refuses a directory that has files in it unless ``force`` (then existing files of the same
    name are replaced, others left alone).
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InitError(f"{target} is not empty (use --force to write into it anyway)")
    if not 1 <= port <= 65535:
        raise InitError(f"--port must be 1..65535, got {port}")
    values = {"port": str(port), "autobahn_version": AUTOBAHN_VERSION}
    # Everything is written into a staging folder beside the target first and moved in at the end:
    # a failure (no npm, no network) leaves nothing behind that would block the next attempt.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.init-", dir=target.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would become the node folder's mode
    try:
        source_root = resources.files("cloverleaf.node").joinpath("templates", "demo")
        with resources.as_file(source_root) as source:
            for path in sorted(Path(source).rglob("*")):
                if path.is_dir() or "__pycache__" in path.parts:
                    continue
                relative = path.relative_to(source)
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                if relative.as_posix() in _TEMPLATED:
                    destination.write_text(Template(path.read_text("utf-8")).safe_substitute(values), "utf-8")
                else:
                    shutil.copyfile(path, destination)
        js_dir = staging / "web" / "js"
        js_dir.mkdir(parents=True, exist_ok=True)
        install_autobahn_js(js_dir, autobahn_js)
        staged = sorted(path.relative_to(staging) for path in staging.rglob("*") if path.is_file())
        if not target.exists():
            staging.rename(target)
        else:  # an empty folder, or --force: move the files in, replacing those of the same name
            for relative in staged:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, target / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [target / relative for relative in staged]


def install_autobahn_js(js_dir: Path, local_file: str | Path | None = None) -> list[Path]:
    """Put ``autobahn.min.js`` (and its licence) into ``js_dir``: from ``local_file``, or from the
    npm registry with ``npm pack``. Raise :class:`InitError` when neither works."""
    destination = js_dir / "autobahn.min.js"
    if local_file is not None:
        source = Path(local_file)
        if not source.is_file():
            raise InitError(f"--autobahn-js: no such file: {source}")
        shutil.copyfile(source, destination)
        return [destination]
    npm = shutil.which("npm")
    if npm is None:
        raise InitError(
            "npm is needed to fetch AutobahnJS (npm package autobahn-browser); install Node.js, or pass "
            "--autobahn-js PATH to an autobahn.min.js you have"
        )
    spec = f"{AUTOBAHN_PACKAGE}@{AUTOBAHN_VERSION}"
    with tempfile.TemporaryDirectory(prefix="cloverleaf-init-") as scratch:
        try:
            subprocess.run([npm, "pack", spec, "--pack-destination", scratch, "--silent"], check=True,
                           capture_output=True, text=True, timeout=180, cwd=scratch)  # fmt: skip
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["(no output)"]
            raise InitError(f"npm pack {spec} failed: {last[0]} (or pass --autobahn-js PATH)") from None
        except subprocess.TimeoutExpired:
            raise InitError(f"npm pack {spec} took over 3 minutes (or pass --autobahn-js PATH)") from None
        archives = list(Path(scratch).glob("*.tgz"))
        if not archives:
            raise InitError(f"npm pack {spec} wrote no archive")
        written = []
        with tarfile.open(archives[0], "r:gz") as archive:
            wanted = (("package/autobahn.min.js", "autobahn.min.js"), ("package/LICENSE", "LICENSE-autobahn"))
            for member, name in wanted:
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise InitError(f"{spec} has no {member}")
                (js_dir / name).write_bytes(extracted.read())
                written.append(js_dir / name)
    return written
