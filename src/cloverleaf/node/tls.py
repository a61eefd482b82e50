"""Server-side TLS for TCP endpoints, with certificates reloaded while the router runs.

One :class:`ssl.SSLContext` per TLS configuration lives as long as the node. A reload calls
``load_cert_chain`` again on that same object: OpenSSL copies the certificate into each new
connection when it starts, so the next handshake serves the new certificate and connections
already open keep theirs.

A failed ``load_cert_chain`` is not harmless: OpenSSL may already have replaced the certificate
when it finds that the key does not match, leaving the context with no usable pair (every
handshake then fails with "no shared cipher"). So a reload reads both files once, tries the pair
on a scratch context first, and only then loads the very same bytes into the live context; should
that still fail, the last good pair is loaded back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator

from .config import TlsConfig

log = logging.getLogger("cloverleaf.node.tls")

#: TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all good)
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

#: what identifies one version of a file: device, inode, size, modification time
FileStamp = tuple[int, int, int, int] | None


class TlsError(OSError):
    """TLS could not be set up at start (unreadable file, bad certificate or key, key mismatch).

    An :class:`OSError`, so ``cloverleaf start`` reports it in one line, as it does a port in use;
    :attr:`problems` lists each file's problem (``cloverleaf check`` prints one line each).
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def _stamp(path: str) -> FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


@contextlib.contextmanager
def _private_files(*contents: bytes) -> Iterator[list[str]]:
    """Paths holding ``contents`` for as long as the block runs (``load_cert_chain`` wants paths).

    Linux: anonymous memory files, so key material never touches a disk; elsewhere: files in a
    fresh directory only this user can read, removed at the end.
    """
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds: list[int] = []
        try:
            for data in contents:
                fd = os.memfd_create("cloverleaf-tls", os.MFD_CLOEXEC)
                fds.append(fd)
                os.write(fd, data)
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="cloverleaf-tls-") as directory:  # pragma: no cover - not Linux
        paths = []
        for index, data in enumerate(contents):
            path = os.path.join(directory, f"{index}.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            paths.append(path)
        yield paths


def _load_pair(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    with _private_files(certificate, key) as (cert_path, key_path):
        context.load_cert_chain(cert_path, key_path)


def _describe_certificate(certificate: bytes) -> str:
    """Subject, serial number and expiry of the first certificate in a PEM chain, for the log."""
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(certificate)
        expires = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        return f"{cert.subject.rfc4514_string()}, serial {cert.serial_number:x}, expires {expires}"
    except Exception:  # only for the log; the certificate itself was accepted by OpenSSL
        return "certificate loaded"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        if "PEM lib" in str(exc):  # OpenSSL's word for "found no PEM block of the expected kind"
            return "not a PEM certificate or key (PEM lib)"
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def base_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context: TLS 1.2 or later, forward-secret AEAD ciphers, client certificates as configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.verify_mode = _VERIFY_MODES[config.client_certificates]
    return context


class ReloadingContext:
    """An :class:`ssl.SSLContext` whose certificate and key follow their files.

    ``where`` names the config key (e.g. "transports[0].endpoint.tls") in errors raised at start.
    """

    def __init__(self, config: TlsConfig, where: str = "tls") -> None:
        self.config = config
        self.context = base_context(config)
        #: successful reloads since start (the first load not counted)
        self.reloads = 0
        self._task: asyncio.Task[None] | None = None
        problems: list[str] = []  # every file's problem at once, not the first one only
        if config.ca_certificates is not None:
            try:
                self.context.load_verify_locations(cafile=config.ca_certificates)
            except (OSError, ValueError) as exc:
                problems.append(f"{where}.ca_certificates: cannot load {config.ca_certificates}: {_error_text(exc)}")
        self._stamps = self._stat()
        pair: list[bytes] = []
        for name, path in (("certificate", config.certificate), ("key", config.key)):
            try:
                pair.append(_read(path))
            except OSError as exc:
                problems.append(f"{where}.{name}: cannot read {path}: {_error_text(exc)}")
        if problems:
            raise TlsError(*problems)
        try:
            _load_pair(self.context, pair[0], pair[1])
        except (OSError, ValueError) as exc:
            raise TlsError(
                f"{where}: cannot use certificate {config.certificate} with key {config.key}: {_error_text(exc)}"
            ) from None
        self._good = (pair[0], pair[1])
        log.info("TLS certificate %s: %s", config.certificate, _describe_certificate(pair[0]))

    def _stat(self) -> tuple[FileStamp, FileStamp]:
        return _stamp(self.config.certificate), _stamp(self.config.key)

    def files_changed(self) -> bool:
        return self._stat() != self._stamps

    def reload(self, why: str = "requested") -> bool:
        """Load the certificate and key again; on any failure log it and keep serving the old pair.

        True when a new pair is now served.
        """
        config = self.config
        self._stamps = self._stat()  # before reading: a change while we read is seen next time
        try:
            certificate, key = _read(config.certificate), _read(config.key)
        except OSError as exc:
            log.error(
                "TLS reload (%s) failed: cannot read %s: %s; still serving the previous certificate",
                why, exc.filename, _error_text(exc),
            )  # fmt: skip
            return False
        if (certificate, key) == self._good:
            log.info("TLS reload (%s): %s unchanged", why, config.certificate)
            return False
        try:
            _load_pair(base_context(config), certificate, key)  # a scratch context: the live one stays intact
        except (OSError, ValueError) as exc:
            log.error(
                "TLS reload (%s) failed: certificate %s with key %s: %s; still serving the previous certificate",
                why, config.certificate, config.key, _error_text(exc),
            )  # fmt: skip
            return False
        try:
            _load_pair(self.context, certificate, key)
        except (OSError, ValueError) as exc:  # pragma: no cover - the same bytes just loaded elsewhere
            _load_pair(self.context, *self._good)
            log.error("TLS reload (%s) failed: %s; still serving the previous certificate", why, _error_text(exc))
            return False
        self._good = (certificate, key)
        self.reloads += 1
        log.info("TLS certificate %s reloaded (%s): %s", config.certificate, why, _describe_certificate(certificate))
        return True

    def start_polling(self) -> None:
        """Check the files every ``reload_interval`` seconds (nothing when it is 0)."""
        if self.config.reload_interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(self.config.reload_interval))

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.files_changed():
                try:
                    self.reload("files changed")
                except Exception:  # pragma: no cover - reload() logs its own failures; keep polling regardless
                    log.exception("TLS reload of %s failed", self.config.certificate)

    async def stop_polling(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
