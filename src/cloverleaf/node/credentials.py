"""``cloverleaf keygen`` and ``cloverleaf passwd``: make the credentials a node config stores.

``keygen`` makes an Ed25519 key pair for WAMP-Cryptosign: the private key (hex seed) stays with
the client, the public key goes into the router config (a principal's ``pubkeys``). ``passwd``
reads a password or ticket (prompt, or one line of stdin when it is not a terminal) and prints the
YAML for one entry under ``principals:``: never the password itself, only what the router needs to
check it (a ticket hash, a salted WAMP-CRA key, a WAMP-SCRAM credential).
"""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..wamp import auth

#: ``--kdf`` spelling -> ticket hash scheme
_TICKET_SCHEMES: dict[str, auth.TicketScheme] = {
    "argon2id13": "argon2id",
    "argon2id-13": "argon2id",
    "pbkdf2": "pbkdf2-sha256",
}
#: defaults: WAMP-CRA as Autobahn|Python and Autobahn|JS derive keys; WAMP-SCRAM Argon2 as the
#: spec example and Autobahn's derive_scram_credential; PBKDF2 as OWASP (2023) recommends
WAMPCRA_ITERATIONS = 1000
WAMPCRA_KEYLEN = 32
SCRAM_ARGON2_ITERATIONS = 4096
SCRAM_ARGON2_MEMORY = 512
SCRAM_PBKDF2_ITERATIONS = 600_000


class CredentialError(Exception):
    """A usage error of keygen/passwd; the message is printed as is."""


def keygen(out: str | None, *, force: bool = False, stdout: TextIO | None = None) -> int:
    """Generate a key pair; write the seed to ``out`` (mode 0600) or print it; print the public key last."""
    stdout = stdout or sys.stdout
    key = auth.new_cryptosign_key()
    seed_hex = key.seed.hex()
    if out is not None:
        path = Path(out)
        if path.exists() and not force:
            raise CredentialError(f"{path} exists; use --force to replace it")
        if force:
            path.unlink(missing_ok=True)
        # O_EXCL: never write the secret into a file someone else prepared (or through a symlink)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(seed_hex + "\n")
        print(f"private key (hex seed) written to {path} (mode 0600): secret, it stays with the client:", file=stdout)
        print(f'  CryptosignAuth.from_keyfile(authid, "{path}")', file=stdout)
    else:
        print("private key (hex seed): secret, it stays with the client: CryptosignAuth(authid, <private key>)",
              file=stdout)  # fmt: skip
        print(seed_hex, file=stdout)
    print(f"public key (hex), for the router config: auth.cryptosign.principals.<authid>.pubkeys: "
          f"[{key.public_key_hex}]", file=stdout)  # fmt: skip
    print(key.public_key_hex, file=stdout)
    return 0


def _read_line(stdin: TextIO) -> str:
    """One line of ``stdin`` and not a byte more: a buffered readline() on a pipe takes everything
    available, and a second command reading the same pipe (`cloverleaf passwd` twice in a script
    fed one secret per line) would find it empty."""
    try:
        fd = stdin.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (a StringIO in a test)
        return stdin.readline()
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode("utf-8", errors="replace")


def read_secret(what: str, *, stdin: TextIO | None = None) -> str:
    """The password/ticket: prompted twice on a terminal, else the first line of stdin."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        secret = getpass.getpass(f"{what}: ")
        if getpass.getpass(f"{what} (again): ") != secret:
            raise CredentialError(f"the two {what.lower()}s differ")
    else:
        secret = _read_line(stdin)
        if secret.endswith("\n"):
            secret = secret[:-1]
        if secret.endswith("\r"):
            secret = secret[:-1]
    if not secret:
        raise CredentialError(f"empty {what.lower()}")
    return secret


def principal_entry(
    method: str,
    secret: str,
    *,
    authid: str,
    role: str,
    kdf: str | None = None,
    iterations: int | None = None,
    memory: int | None = None,
    salt: str | None = None,
) -> tuple[dict[str, Any], str]:
    """``({authid: {role, credential...}}, where it goes)`` for ``method`` (ticket, wampcra, scram).

    ``salt`` (text; its UTF-8 bytes for SCRAM and tickets) replaces the random salt, for
    reproducible output.
    """
    if iterations is not None and iterations < 1:
        raise CredentialError("--iterations must be at least 1")
    entry: dict[str, Any] = {"role": role}
    if method == "ticket":
        scheme = _TICKET_SCHEMES[kdf or "argon2id13"]
        try:
            if salt is None and iterations is None:
                entry["ticket"] = auth.new_ticket_hash(secret, scheme)
            else:
                salt_bytes = os.urandom(16) if salt is None else salt.encode("utf-8")
                entry["ticket"] = auth.hash_ticket(secret, salt=salt_bytes, scheme=scheme, iterations=iterations)
        except auth.InvalidAuthData as exc:
            raise CredentialError(str(exc)) from None
        where = "auth.ticket.principals"
    elif method == "wampcra":
        if kdf not in (None, "pbkdf2"):
            raise CredentialError("salted WAMP-CRA always uses PBKDF2 (leave out --kdf)")
        wampcra_salt = salt if salt is not None else secrets.token_urlsafe(16)
        rounds = iterations or WAMPCRA_ITERATIONS
        key = auth.derive_wampcra_key(secret, wampcra_salt, rounds, WAMPCRA_KEYLEN).decode("ascii")
        entry.update(secret=key, salt=wampcra_salt, iterations=rounds, keylen=WAMPCRA_KEYLEN)
        where = "auth.wampcra.principals"
    elif method == "scram":
        kdf = kdf or "argon2id13"
        if kdf == "pbkdf2":
            rounds, cost = iterations or SCRAM_PBKDF2_ITERATIONS, None
        else:
            rounds, cost = iterations or SCRAM_ARGON2_ITERATIONS, memory or SCRAM_ARGON2_MEMORY
        try:
            credential = auth.derive_scram_credential(
                secret,
                salt=salt.encode("utf-8") if salt is not None else auth.new_scram_salt(),
                kdf=kdf,
                iterations=rounds,
                memory=cost,
            )
        except auth.InvalidAuthData as exc:
            raise CredentialError(str(exc)) from None
        entry["scram"] = {k: v for k, v in credential.to_config().items() if v is not None}
        where = "auth.scram.principals"
    else:  # pragma: no cover - argparse restricts the choices
        raise CredentialError(f"unknown method {method!r}")
    return {authid: entry}, where


def passwd(
    method: str,
    *,
    authid: str,
    role: str,
    kdf: str | None = None,
    iterations: int | None = None,
    memory: int | None = None,
    salt: str | None = None,
    console: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Read a secret from the terminal (or ``stdin``) and print a principal entry to paste into a
    node config: a transport's principals, or with ``console`` a web console user (no role: the
    console gives its users its own)."""
    stdout = stdout or sys.stdout
    if memory is not None and (method != "scram" or kdf == "pbkdf2"):
        raise CredentialError("--memory is the Argon2 memory cost of WAMP-SCRAM (scram with an argon2 --kdf)")
    if console and method != "ticket":
        raise CredentialError("--console: web console users log in with a ticket (cloverleaf passwd ticket --console)")
    secret = read_secret("Ticket" if method == "ticket" else "Password", stdin=stdin)
    entry, where = principal_entry(
        method, secret, authid=authid, role=role, kdf=kdf, iterations=iterations, memory=memory, salt=salt
    )
    if console:
        del entry[authid]["role"]
        print(f"# web console user {authid!r}: put it under transports[...].paths[\"/console\"].principals of the "
              "node config", file=stdout)  # fmt: skip
    else:
        print(f"# {method} principal {authid!r}: put it under transports[...].{where} of the node config "
              + ("(for a web console user: --console)" if method == "ticket" else ""), file=stdout)  # fmt: skip
    if method == "scram" and entry[authid]["scram"]["kdf"] == "argon2id13":
        print("# (kdf argon2id13 is the spec's; Autobahn|Python and Crossbar.io clients need --kdf argon2id-13 "
              "or pbkdf2)", file=stdout)  # fmt: skip
    stdout.write(yaml.safe_dump(entry, default_flow_style=False, sort_keys=False, allow_unicode=True))
    return 0
