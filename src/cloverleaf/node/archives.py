"""The ``archive`` path service's file: downloaded from its ``origin`` when missing (as Crossbar
does at start), checked against its ``hashes``, then opened (:class:`~cloverleaf.transport.archive.ZipArchive`)."""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

from ..transport.archive import ZipArchive
from .config import ArchivePath

log = logging.getLogger("cloverleaf.node")

#: seconds a download may take at start
DOWNLOAD_TIMEOUT = 30.0
#: the largest archive downloaded, in bytes
MAX_DOWNLOAD = 256 * 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def download(url: str, path: Path) -> None:
    """Fetch ``url`` into ``path`` (through a ``.part`` file renamed at the end); raises on failure."""
    import aiohttp

    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status} from {url}")
        size = 0
        with open(part, "wb") as file:
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_DOWNLOAD:
                    raise OSError(f"{url} is over {MAX_DOWNLOAD} bytes")
                file.write(chunk)
    os.replace(part, path)


async def open_archive(service: ArchivePath, path: Path, where: str) -> ZipArchive | None:
    """The archive to serve, downloading it first if it is missing and ``download`` is on; None
    (the path answers 503) when it cannot be had, with one ERROR line saying why."""
    if not path.exists() and service.download and service.origin is not None:
        log.info("%s: downloading %s from %s", where, path, service.origin)
        try:
            await download(service.origin, path)
        except Exception as exc:
            path.with_name(path.name + ".part").unlink(missing_ok=True)
            log.error("%s: downloading %s failed: %s (the path answers 503)", where, service.origin,
                      exc or type(exc).__name__)  # fmt: skip
            return None
    if not path.is_file():
        log.error("%s: no such archive: %s (the path answers 503)", where, path)
        return None
    if service.hashes and sha256_of(path) not in {h.lower() for h in service.hashes}:
        log.error("%s: %s matches none of the configured hashes (the path answers 503)", where, path)
        return None
    try:
        return ZipArchive(path, object_prefix=service.object_prefix, default_object=service.default_object,
                          mime_types=service.mime_types, max_age=service.max_age)  # fmt: skip
    except (OSError, zipfile.BadZipFile) as exc:
        log.error("%s: %s is not a readable ZIP archive: %s (the path answers 503)", where, path, exc)
        return None
