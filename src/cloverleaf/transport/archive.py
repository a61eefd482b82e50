"""Files served from a ZIP archive (the web transport's ``archive`` path service, as Crossbar.io's).

A :class:`ZipArchive` answers a GET for a name below its path with the archive member of that
name (below ``object_prefix``), decompressed once and kept in memory while the cache has room.
Members over :data:`MAX_MEMBER` bytes (as the archive declares them) are not served, so an archive
cannot make the router inflate a bomb. Answers carry an ETag made of the member's CRC and size.
"""

from __future__ import annotations

import logging
import mimetypes
import zipfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

log = logging.getLogger("cloverleaf.web")

#: the largest member served, in bytes (decompressed)
MAX_MEMBER = 16 * 1024 * 1024
#: decompressed members kept in memory, at most (bytes); past it members are read each time
CACHE_LIMIT = 64 * 1024 * 1024

Answer = tuple[int, bytes, dict[str, str]]


class ZipArchive:
    """One ZIP file's members, by name."""

    def __init__(self, path: Path, *, object_prefix: str = "", default_object: str | None = None,
                 mime_types: Mapping[str, str] | None = None, max_age: int = 3600) -> None:  # fmt: skip
        self.path = path
        self.object_prefix = object_prefix.strip("/")
        self.default_object = default_object
        #: file name suffix -> Content-Type, the longest matching suffix wins
        self.mime_types = dict(mime_types or {})
        self.max_age = max_age
        self._zip = zipfile.ZipFile(path)
        self._names = frozenset(self._zip.namelist())
        self._cache: dict[str, bytes] = {}
        self._cached_bytes = 0

    def close(self) -> None:
        self._zip.close()

    def member_name(self, relative: str) -> str:
        name = unquote(relative).lstrip("/")
        if (name == "" or name.endswith("/")) and self.default_object:
            name += self.default_object
        return f"{self.object_prefix}/{name}" if self.object_prefix else name

    def content_type(self, name: str) -> str:
        matches = [suffix for suffix in self.mime_types if name.endswith(suffix)]
        if matches:
            return self.mime_types[max(matches, key=len)]
        guessed, _encoding = mimetypes.guess_type(name)
        if guessed is None:
            return "application/octet-stream"
        return f"{guessed}; charset=utf-8" if guessed.startswith("text/") or guessed.endswith("javascript") else guessed

    def answer(self, relative: str, request_headers: Mapping[str, str]) -> Answer:
        """(status, body, headers) for a GET of ``relative`` (the part of the URL path below the
        service's path; its query already removed)."""
        name = self.member_name(relative)
        if name not in self._names or name.endswith("/"):
            return 404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"}
        info = self._zip.getinfo(name)
        if info.file_size > MAX_MEMBER:
            log.warning("archive %s: %s is %d bytes, over the %d served", self.path, name, info.file_size, MAX_MEMBER)
            return 404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"}
        etag = f'"{info.CRC:08x}-{info.file_size:x}"'
        headers = {"ETag": etag, "Cache-Control": f"max-age={self.max_age}" if self.max_age else "no-cache",
                   "Content-Type": self.content_type(name)}  # fmt: skip
        tags = request_headers.get("if-none-match")
        if tags is not None and (tags.strip() == "*" or etag in [t.strip().removeprefix("W/")
                                                                 for t in tags.split(",")]):  # fmt: skip
            return 304, b"", {k: v for k, v in headers.items() if k != "Content-Type"}
        body = self._cache.get(name)
        if body is None:
            with self._zip.open(info) as member:
                body = member.read(MAX_MEMBER + 1)
            if len(body) > MAX_MEMBER:  # the archive lied about the size
                return 404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"}
            if self._cached_bytes + len(body) <= CACHE_LIMIT:
                self._cache[name] = body
                self._cached_bytes += len(body)
        return 200, body, headers
