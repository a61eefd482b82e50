"""Authentication math (sans-I/O): WAMP-CRA, WAMP-SCRAM, WAMP-Cryptosign and stored ticket hashes.

Everything here is a pure function of its arguments: no sockets, no asyncio, no clock. Nonces,
salts, challenges and timestamps are parameters. The few helpers that draw randomness (the
``new_*`` functions at the end of each section) only call :func:`os.urandom` / :mod:`secrets`
and are kept apart from the math so that the math can be tested with fixed inputs.

Costly functions (PBKDF2 with many iterations, Argon2) block the calling thread; a router should
run them in an executor.

Spec pages: ``rfc/text/advanced/authentication_{cra,scram,cryptosign,ticket}.md`` of
wamp-proto/wamp-proto (vendored under ``tests/data/wamp-proto-testsuite/auth/``). Where Autobahn|Python
and Crossbar.io (the reference implementations) differ from the spec text, the divergence is named
in the docstring of the section concerned; the functions take the authmethod spelling or KDF name
that selects the variant, so one router can serve both kinds of client.

Errors: malformed input (bad hex/base64, wrong lengths, unknown KDF, ...) raises
:class:`InvalidAuthData` (a :class:`ValueError`); a *well-formed but wrong* proof/signature/ticket
makes the ``verify_*`` functions return ``False`` (or a result whose ``ok`` is ``False``) instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type as Argon2Type
from argon2.low_level import hash_secret, hash_secret_raw
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

__all__ = [
    "ARGON2_VERSION",
    "CRYPTOSIGN_CHANNEL_BINDINGS",
    "SCRAM_AUTHMETHODS",
    "SCRAM_KDFS",
    "CryptosignKey",
    "InvalidAuthData",
    "ScramClientResponse",
    "ScramCredential",
    "ScramVerification",
    "cryptosign_channel_id",
    "cryptosign_message",
    "cryptosign_router_challenge_extra",
    "cryptosign_sign_challenge",
    "cryptosign_verify",
    "cryptosign_verify_router",
    "derive_scram_credential",
    "derive_wampcra_key",
    "format_wampcra_timestamp",
    "hash_ticket",
    "is_ticket_hash",
    "new_cryptosign_challenge",
    "new_cryptosign_key",
    "new_scram_nonce",
    "new_scram_salt",
    "new_ticket_hash",
    "new_wampcra_nonce",
    "pbkdf2",
    "saslprep",
    "scram_auth_message",
    "scram_challenge_extra",
    "scram_client_authenticate",
    "scram_client_key",
    "scram_client_proof",
    "scram_client_signature",
    "scram_escape",
    "scram_salted_password",
    "scram_server_key",
    "scram_server_signature",
    "scram_stored_key",
    "scram_verify_authenticate",
    "scram_verify_server",
    "sign_wampcra",
    "ticket_equals",
    "verify_ticket",
    "verify_wampcra",
    "wampcra_challenge",
    "wampcra_challenge_extra",
    "wampcra_client_signature",
]


class InvalidAuthData(ValueError):
    """Input to the authentication math is malformed (not merely wrong)."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _hex_bytes(value: object, length: int, what: str) -> bytes:
    """Strictly decode ``length`` bytes of hex (either case; no whitespace, no ``0x``)."""
    if not isinstance(value, str) or len(value) != 2 * length or not _HEX_RE.fullmatch(value):
        raise InvalidAuthData(f"{what} must be {length} bytes as {2 * length} hex characters")
    return bytes.fromhex(value)


def _b64decode(value: object, what: str) -> bytes:
    """Decode canonical base64 (RFC 4648, padded, no whitespace), as WAMP-SCRAM requires."""
    if not isinstance(value, str):
        raise InvalidAuthData(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise InvalidAuthData(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise InvalidAuthData(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _xor(left: bytes, right: bytes) -> bytes:
    if len(left) != len(right):
        raise InvalidAuthData(f"cannot XOR {len(left)} bytes with {len(right)} bytes")
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def pbkdf2(password: str | bytes, salt: str | bytes, iterations: int, keylen: int, hash_name: str = "sha256") -> bytes:
    """PBKDF2-HMAC (RFC 8018 / RFC 2898) with any :mod:`hashlib` hash; ``str`` inputs are UTF-8 encoded.

    WAMP uses it with SHA-256 for salted WAMP-CRA, for WAMP-SCRAM's ``pbkdf2`` KDF and for
    ``pbkdf2-sha256`` ticket hashes.
    """
    if iterations < 1 or keylen < 1:
        raise InvalidAuthData("PBKDF2 needs iterations >= 1 and keylen >= 1")
    return hashlib.pbkdf2_hmac(hash_name, _utf8(password), _utf8(salt), iterations, keylen)


# --------------------------------------------------------------------------------------------
# WAMP-CRA
# --------------------------------------------------------------------------------------------
#
# Spec: the router sends CHALLENGE.Extra.challenge, a JSON object serialized to a string, with
# authid, authrole, authmethod, authprovider, nonce, timestamp (ISO 8601 UTC) and session. The
# client answers base64(HMAC-SHA256(secret, challenge)). With a salted password the router adds
# salt, iterations and keylen, and the key is PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen).
#
# Divergences / unspecified points, resolved as Autobahn|Python and Crossbar.io do:
# * the spec only says "a key derived from the password"; Autobahn's derive_key and Crossbar use
#   the *base64 text* of the PBKDF2 output as the HMAC key (not the raw bytes), and the salt as its
#   UTF-8 text (not base64-decoded). derive_wampcra_key does the same.
# * the spec does not fix the JSON layout; Crossbar uses json.dumps(..., ensure_ascii=False) with
#   the default separators, and Autobahn clients sign the string verbatim, so any layout works.
# * the timestamp format in the spec example is millisecond precision with a "Z" suffix
#   (2014-06-22T16:51:41.643Z), as Autobahn's utcnow(); format_wampcra_timestamp produces it.
# * the spec's CHALLENGE example has keylen/iterations as optional; Crossbar only sends the salt
#   when all three are configured, and Autobahn requires all three once "salt" is present. The
#   client helper defaults iterations=1000 and keylen=32 (Autobahn's derive_key defaults).


def derive_wampcra_key(secret: str, salt: str, iterations: int = 1000, keylen: int = 32) -> bytes:
    """The salted WAMP-CRA key: base64 of PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen).

    Spec: advanced/authentication_cra, "Salted WAMP-CRA"; as Autobahn does, the base64 text is
    itself the key used for signing.
    """
    derived = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt.encode("utf-8"), iterations, keylen)
    return base64.b64encode(derived)


def sign_wampcra(key: bytes | str, challenge: str) -> str:
    """base64(HMAC-SHA256(key, challenge)), the AUTHENTICATE signature of WAMP-CRA."""
    raw_key = key.encode("utf-8") if isinstance(key, str) else key
    digest = hmac.new(raw_key, challenge.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_wampcra(key: bytes | str, challenge: str, signature: object) -> bool:
    """Constant-time check of an AUTHENTICATE signature against the challenge the router sent.

    ``key`` is the shared secret, or for salted WAMP-CRA the output of :func:`derive_wampcra_key`
    (which a router may store instead of the secret). A signature that is not a string is wrong.
    """
    if not isinstance(signature, str):
        return False
    expected = sign_wampcra(key, challenge).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))


def format_wampcra_timestamp(when: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z`` suffix, e.g. ``2014-06-22T16:51:41.643Z``.

    A naive ``datetime`` is taken to be in UTC already.
    """
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def wampcra_challenge(
    *,
    authid: str,
    authrole: str,
    authprovider: str,
    nonce: str,
    timestamp: str | datetime,
    session: int,
    authmethod: str = "wampcra",
) -> str:
    """The CHALLENGE.Extra.challenge string: a JSON object with the seven members the spec lists.

    Members are in the spec's order; ``timestamp`` may be a ready string or a ``datetime``
    (formatted with :func:`format_wampcra_timestamp`). Non-ASCII text is kept as is (like Crossbar);
    the signature is over the UTF-8 bytes of the returned string.
    """
    if isinstance(timestamp, datetime):
        timestamp = format_wampcra_timestamp(timestamp)
    if isinstance(session, bool) or not isinstance(session, int):
        raise InvalidAuthData("session must be an integer")
    obj = {
        "authid": authid,
        "authrole": authrole,
        "authmethod": authmethod,
        "authprovider": authprovider,
        "nonce": nonce,
        "timestamp": timestamp,
        "session": session,
    }
    return json.dumps(obj, ensure_ascii=False)


def wampcra_challenge_extra(
    challenge: str, *, salt: str | None = None, iterations: int = 1000, keylen: int = 32
) -> dict[str, Any]:
    """CHALLENGE.Extra for WAMP-CRA; with a ``salt``, also the PBKDF2 parameters (salted WAMP-CRA)."""
    extra: dict[str, Any] = {"challenge": challenge}
    if salt is not None:
        extra.update(salt=salt, iterations=iterations, keylen=keylen)
    return extra


def wampcra_client_signature(secret: str, extra: Mapping[str, Any]) -> str:
    """The client's AUTHENTICATE signature for a WAMP-CRA CHALLENGE.Extra (plain or salted)."""
    challenge = extra.get("challenge")
    if not isinstance(challenge, str):
        raise InvalidAuthData("WAMP-CRA CHALLENGE.Extra.challenge must be a string")
    key: bytes | str = secret
    salt = extra.get("salt")
    if salt is not None:
        if not isinstance(salt, str):
            raise InvalidAuthData("WAMP-CRA salt must be a string")
        iterations = extra.get("iterations", 1000)
        keylen = extra.get("keylen", 32)
        if not (isinstance(iterations, int) and isinstance(keylen, int)) or isinstance(iterations, bool):
            raise InvalidAuthData("WAMP-CRA iterations and keylen must be integers")
        if iterations < 1 or not 1 <= keylen <= 1024:
            raise InvalidAuthData("WAMP-CRA iterations/keylen out of range")
        key = derive_wampcra_key(secret, salt, iterations, keylen)
    return sign_wampcra(key, challenge)


def new_wampcra_nonce(length: int = 32) -> str:
    """A random WAMP-CRA nonce: ``length`` characters of URL-safe base64 (randomness helper)."""
    return secrets.token_urlsafe(length)[:length]


# --------------------------------------------------------------------------------------------
# WAMP-SCRAM
# --------------------------------------------------------------------------------------------

SCRAM_AUTHMETHODS: Final = frozenset({"wamp-scram", "scram"})
"""Accepted authmethod spellings: ``wamp-scram`` (spec) and ``scram`` (Autobahn|Python, Crossbar.io)."""

SCRAM_KDFS: Final = frozenset({"argon2id13", "argon2id-13", "pbkdf2"})
"""Accepted KDF names: ``argon2id13`` (spec), ``argon2id-13`` (Autobahn/Crossbar) and ``pbkdf2``."""

ARGON2_VERSION: Final = 0x13
"""Argon2 version 1.3 (19 decimal), the ``13`` in the KDF names."""

ScramAuthmethod = Literal["wamp-scram", "scram"]

_SCRAM_AUTHEXTRA_KEYS: Final = ("verifier", "scram_server_signature")


def _check_scram_authmethod(authmethod: str) -> bool:
    """True for the spec dialect (``wamp-scram``), False for Autobahn's (``scram``)."""
    if authmethod not in SCRAM_AUTHMETHODS:
        raise InvalidAuthData(f"unknown SCRAM authmethod {authmethod!r}")
    return authmethod == "wamp-scram"


# SASLprep (RFC 4013), a stringprep (RFC 3454) profile, built on the stdlib's stringprep tables.


def _saslprep_mapped(char: str) -> str:
    # U+200B ZERO WIDTH SPACE is in both tables; RFC 4013 does not say which mapping wins. Mapping it
    # to nothing first is what passlib (used by Autobahn|Python) and pymongo do; libidn and
    # PostgreSQL map it to SPACE instead.
    if stringprep.in_table_b1(char):  # "commonly mapped to nothing"
        return ""
    if stringprep.in_table_c12(char):  # non-ASCII space characters map to SPACE
        return " "
    return char


_SASLPREP_PROHIBITED: Final = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21,  # ASCII control characters
    stringprep.in_table_c22,  # non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate codes
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties / deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """SASLprep (RFC 4013): map, NFKC-normalize, reject prohibited characters, check bidi.

    Unassigned code points (RFC 3454 table A.1, i.e. Unicode 3.2) are rejected unless
    ``allow_unassigned`` (RFC 4013 allows them only in "queries", and every WAMP-SCRAM use here
    ends up in a stored credential). Raises :class:`InvalidAuthData` for a string SASLprep refuses.
    """
    mapped = unicodedata.ucd_3_2_0.normalize("NFKC", "".join(_saslprep_mapped(c) for c in text))
    if not mapped:
        return mapped
    for char in mapped:
        if any(prohibited(char) for prohibited in _SASLPREP_PROHIBITED):
            raise InvalidAuthData(f"SASLprep: prohibited character U+{ord(char):04X}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise InvalidAuthData(f"SASLprep: unassigned code point U+{ord(char):04X}")
    # RFC 3454 section 6: bidirectional text
    if any(stringprep.in_table_d1(c) for c in mapped):
        if any(stringprep.in_table_d2(c) for c in mapped):
            raise InvalidAuthData("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])):
            raise InvalidAuthData("SASLprep: right-to-left text must start and end with a right-to-left character")
    return mapped


def scram_salted_password(password: str, *, kdf: str, salt: bytes, iterations: int, memory: int | None = None) -> bytes:
    """``SaltedPassword = KDF(Normalize(password), salt, params...)``, 32 bytes (or see below).

    * ``pbkdf2``: PBKDF2-HMAC-SHA256(SASLprep(password), salt, iterations, 32).
    * ``argon2id13`` (spec): the raw 32-byte Argon2id v1.3 hash of SASLprep(password) with
      time cost ``iterations``, memory ``memory`` KiB, parallelism 1.
    * ``argon2id-13`` (Autobahn|Python/Crossbar.io): same Argon2id parameters, but, as
      ``autobahn.wamp.auth`` does (``_hash_argon2id13_secret``, ``derive_scram_credential``), the
      password is *not* SASLprep-ed and the SaltedPassword is the ASCII of the unpadded base64 of
      the hash (the last field of the PHC string), 43 bytes, not the raw hash.

    ``salt`` is the raw salt; CHALLENGE.Extra carries it base64-encoded.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InvalidAuthData("SCRAM iterations must be a positive integer")
    if kdf == "pbkdf2":
        return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations, 32)
    if kdf in ("argon2id13", "argon2id-13"):
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 8:
            raise InvalidAuthData("Argon2 needs a memory cost (KiB) of at least 8")
        if len(salt) < 8:
            raise InvalidAuthData("Argon2 needs a salt of at least 8 bytes")
        secret = (saslprep(password) if kdf == "argon2id13" else password).encode("utf-8")
        raw = hash_secret_raw(
            secret=secret,
            salt=salt,
            time_cost=iterations,
            memory_cost=memory,
            parallelism=1,
            hash_len=32,
            type=Argon2Type.ID,
            version=ARGON2_VERSION,
        )
        if kdf == "argon2id13":
            return raw
        return base64.b64encode(raw).rstrip(b"=")
    raise InvalidAuthData(f"unknown SCRAM KDF {kdf!r}")


def scram_client_key(salted_password: bytes) -> bytes:
    """``ClientKey = HMAC(SaltedPassword, "Client Key")``."""
    return _hmac_sha256(salted_password, b"Client Key")


def scram_stored_key(client_key: bytes) -> bytes:
    """``StoredKey = SHA256(ClientKey)``."""
    return hashlib.sha256(client_key).digest()


def scram_server_key(salted_password: bytes) -> bytes:
    """``ServerKey = HMAC(SaltedPassword, "Server Key")``."""
    return _hmac_sha256(salted_password, b"Server Key")


def scram_client_signature(stored_key: bytes, auth_message: bytes) -> bytes:
    """``ClientSignature = HMAC(StoredKey, AuthMessage)``."""
    return _hmac_sha256(stored_key, auth_message)


def scram_client_proof(client_key: bytes, auth_message: bytes) -> bytes:
    """``ClientProof = ClientKey XOR HMAC(SHA256(ClientKey), AuthMessage)`` (raw; base64 on the wire)."""
    return _xor(client_key, scram_client_signature(scram_stored_key(client_key), auth_message))


def scram_server_signature(server_key: bytes, auth_message: bytes) -> bytes:
    """``ServerSignature = HMAC(ServerKey, AuthMessage)`` (raw; base64 on the wire)."""
    return _hmac_sha256(server_key, auth_message)


def scram_escape(name: str) -> str:
    """RFC 5802 ``saslname`` escaping: ``=`` becomes ``=3D`` and ``,`` becomes ``=2C``."""
    return name.replace("=", "=3D").replace(",", "=2C")


def scram_auth_message(
    *,
    authmethod: str,
    authid: str,
    client_nonce: str,
    nonce: str,
    salt: str,
    iterations: int,
    channel_binding: str | None = None,
    cbind_data: bytes | None = None,
) -> bytes:
    """The SCRAM ``AuthMessage`` (UTF-8 bytes) that ClientProof and ServerSignature sign.

    ``client_nonce`` is HELLO.Details.authextra.nonce, ``nonce`` the combined nonce of CHALLENGE.Extra
    (and AUTHENTICATE.Extra), ``salt`` the base64 *string* as sent in CHALLENGE.Extra, and
    ``channel_binding``/``cbind_data`` the binding type and the *raw* channel binding data.

    ``wamp-scram`` (spec, "AuthMessage" section, exactly RFC 5802 section 7)::

        n=<Escape(authid)>,r=<client_nonce>,r=<nonce>,s=<salt>,i=<iterations>,c=<Base64(CBindInput)>,r=<nonce>
        CBindInput = ("n" | "p=" + channel_binding) + ",," + cbind_data

    so without binding the ``c=`` attribute is ``c=biws`` (base64 of ``n,,``), which makes RFC 7677's
    SCRAM-SHA-256 test vector reproduce.

    ``scram`` (Autobahn|Python ``AuthScram.on_challenge`` / Crossbar.io ``PendingAuthScram``):
    the authid is SASLprep-ed but not escaped, and the ``c=`` attribute is the channel binding
    *name* as is (``c=`` when there is none); cbind_data is not used.
    """
    spec = _check_scram_authmethod(authmethod)
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise InvalidAuthData("SCRAM iterations must be an integer")
    if spec:
        if (channel_binding is None) != (cbind_data is None):
            raise InvalidAuthData("cbind_data must be given if and only if channel_binding is")
        cbind_flag = "n" if channel_binding is None else f"p={channel_binding}"
        cbind_input = f"{cbind_flag},,".encode() + (cbind_data or b"")
        client_first_bare = f"n={scram_escape(authid)},r={client_nonce}"
        client_final_no_proof = f"c={_b64encode(cbind_input)},r={nonce}"
    else:
        client_first_bare = f"n={saslprep(authid)},r={client_nonce}"
        client_final_no_proof = f"c={channel_binding or ''},r={nonce}"
    server_first = f"r={nonce},s={salt},i={iterations}"
    return f"{client_first_bare},{server_first},{client_final_no_proof}".encode()


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What a router stores per user for WAMP-SCRAM: no password, only salt, KDF, cost and two keys.

    ``memory`` is the Argon2 memory cost in KiB (``None`` for ``pbkdf2``). The KDF name selects
    the SaltedPassword convention (see :func:`scram_salted_password`): a credential made with
    ``argon2id-13`` works for Autobahn/Crossbar-style clients, one made with ``argon2id13`` for
    spec clients; ``pbkdf2`` is the same for both.
    """

    kdf: str
    salt: bytes
    iterations: int
    memory: int | None
    stored_key: bytes
    server_key: bytes

    def to_config(self) -> dict[str, Any]:
        """The credential in Crossbar.io's ``principals`` format: hex salt and keys."""
        return {
            "kdf": self.kdf,
            "salt": self.salt.hex(),
            "iterations": self.iterations,
            "memory": self.memory,
            "stored-key": self.stored_key.hex(),
            "server-key": self.server_key.hex(),
        }

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> ScramCredential:
        """Read :meth:`to_config` output, which is also what ``autobahn.wamp.auth.derive_scram_credential``
        returns and what Crossbar.io's config holds (``stored_key``/``server_key`` spellings accepted too)."""
        try:
            kdf = data["kdf"]
            salt = bytes.fromhex(data["salt"])
            iterations = data["iterations"]
            memory = data.get("memory")
            stored_key = bytes.fromhex(data.get("stored-key", data.get("stored_key")))
            server_key = bytes.fromhex(data.get("server-key", data.get("server_key")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidAuthData(f"invalid SCRAM credential: {exc}") from exc
        if kdf not in SCRAM_KDFS:
            raise InvalidAuthData(f"unknown SCRAM KDF {kdf!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise InvalidAuthData("SCRAM iterations must be a positive integer")
        if kdf != "pbkdf2" and (isinstance(memory, bool) or not isinstance(memory, int) or memory < 8):
            raise InvalidAuthData("an Argon2 SCRAM credential needs a memory cost (KiB)")
        if len(stored_key) != 32 or len(server_key) != 32:
            raise InvalidAuthData("SCRAM stored-key and server-key must be 32 bytes each")
        return cls(kdf, salt, iterations, memory if kdf != "pbkdf2" else None, stored_key, server_key)


def derive_scram_credential(
    password: str, *, salt: bytes, kdf: str = "argon2id13", iterations: int = 4096, memory: int | None = 512
) -> ScramCredential:
    """Derive the stored WAMP-SCRAM credential from a password (at user registration).

    Defaults follow Autobahn's ``derive_scram_credential`` (time cost 4096, 512 KiB) with the
    spec's KDF name; for ``pbkdf2`` the memory is ignored (use at least 4096 iterations, RFC 7677).
    """
    memory = None if kdf == "pbkdf2" else memory
    salted = scram_salted_password(password, kdf=kdf, salt=salt, iterations=iterations, memory=memory)
    client_key = scram_client_key(salted)
    return ScramCredential(kdf, salt, iterations, memory, scram_stored_key(client_key), scram_server_key(salted))


def scram_challenge_extra(
    credential: ScramCredential, *, authmethod: str, client_nonce: object, server_nonce: str
) -> dict[str, Any]:
    """CHALLENGE.Extra for WAMP-SCRAM: ``nonce`` (client nonce + server nonce), ``salt``, ``kdf``, ...

    ``client_nonce`` is HELLO.Details.authextra.nonce (checked: canonical base64, as the spec and
    Crossbar.io require); ``server_nonce`` the router's own base64 nonce (:func:`new_scram_nonce`).
    The combined nonce is the string concatenation, as in the spec example (``egVDf3DMJh0=SBmkFIh7sSo=``).

    For ``wamp-scram`` the extra has ``memory: null`` for pbkdf2, like the spec example. For
    ``scram`` (Autobahn clients) ``memory`` is left out for pbkdf2: Autobahn does
    ``int(extra.get("memory", -1))``, which fails on ``null``, and it rejects any key other than
    nonce/kdf/salt/iterations/memory/channel_binding.
    """
    spec = _check_scram_authmethod(authmethod)
    if not isinstance(client_nonce, str) or not client_nonce:
        raise InvalidAuthData("HELLO.Details.authextra.nonce must be a non-empty base64 string")
    _b64decode(client_nonce, "client nonce")
    _b64decode(server_nonce, "server nonce")
    extra: dict[str, Any] = {
        "nonce": client_nonce + server_nonce,
        "salt": _b64encode(credential.salt),
        "kdf": credential.kdf,
        "iterations": credential.iterations,
    }
    if spec or credential.memory is not None:
        extra["memory"] = credential.memory
    return extra


@dataclass(frozen=True, slots=True)
class ScramVerification:
    """Outcome of :func:`scram_verify_authenticate`.

    ``welcome_authextra`` is what to merge into WELCOME.Details.authextra on success
    (``{"verifier": ...}`` for ``wamp-scram``, ``{"scram_server_signature": ...}`` for ``scram``);
    ``error`` names why it failed (for logs; do not tell the client more than an ABORT).
    """

    ok: bool
    server_signature: str = ""
    welcome_authextra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def scram_verify_authenticate(
    credential: ScramCredential,
    *,
    authmethod: str,
    authid: str,
    client_nonce: str,
    challenge_extra: Mapping[str, Any],
    signature: object,
    authenticate_extra: Mapping[str, Any],
    channel_binding: str | None = None,
    channel_binding_data: bytes | None = None,
) -> ScramVerification:
    """Router side: check AUTHENTICATE for WAMP-SCRAM and compute the ServerSignature.

    ``authid`` and ``client_nonce`` are what HELLO carried, ``challenge_extra`` what the router sent
    in CHALLENGE.Extra (from :func:`scram_challenge_extra`), ``signature`` AUTHENTICATE.Signature
    (base64 ClientProof), ``authenticate_extra`` AUTHENTICATE.Extra. ``channel_binding`` is the type
    the client requested in HELLO.Details.authextra.channel_binding (and the router accepted), and
    ``channel_binding_data`` the data the router sees on its side of the TLS channel.

    ``wamp-scram`` checks, per spec: AUTHENTICATE.Extra.nonce equals the CHALLENGE nonce,
    AUTHENTICATE.Extra.channel_binding equals the HELLO one, ``cbind_data`` is present iff a binding
    is in use and equals ``channel_binding_data`` (constant time; the AuthMessage is built from the
    router's own data), then the ClientProof: ``SHA256(ClientSignature XOR proof) == StoredKey``.

    ``scram`` (Autobahn|Python sends an empty AUTHENTICATE.Extra, Crossbar.io checks nothing else):
    only the ClientProof, over Autobahn's AuthMessage (see :func:`scram_auth_message`); channel
    binding is not supported in this dialect (Crossbar.io leaves it as a TODO) and is refused.
    """
    spec = _check_scram_authmethod(authmethod)

    def fail(error: str) -> ScramVerification:
        return ScramVerification(False, error=error)

    nonce = challenge_extra.get("nonce")
    salt = challenge_extra.get("salt")
    if not isinstance(nonce, str) or not isinstance(salt, str):
        return fail("CHALLENGE.Extra lacks nonce/salt")
    if spec:
        if authenticate_extra.get("nonce") != nonce:
            return fail("AUTHENTICATE.Extra.nonce does not match the CHALLENGE nonce")
        if authenticate_extra.get("channel_binding") != channel_binding:
            return fail("AUTHENTICATE.Extra.channel_binding does not match HELLO")
        cbind_b64 = authenticate_extra.get("cbind_data")
        if channel_binding is None:
            if cbind_b64 is not None:
                return fail("cbind_data without channel binding")
            cbind_data = None
        else:
            if channel_binding_data is None:
                return fail("channel binding requested but no channel binding data on this transport")
            try:
                received = _b64decode(cbind_b64, "cbind_data")
            except InvalidAuthData as exc:
                return fail(str(exc))
            if not hmac.compare_digest(received, channel_binding_data):
                return fail("channel binding data mismatch")
            cbind_data = channel_binding_data
    else:
        if channel_binding is not None:
            return fail("channel binding is not supported with authmethod 'scram'")
        cbind_data = None
    try:
        proof = _b64decode(signature, "ClientProof")
    except InvalidAuthData as exc:
        return fail(str(exc))
    if len(proof) != 32:
        return fail("ClientProof must be 32 bytes")
    try:
        auth_message = scram_auth_message(
            authmethod=authmethod,
            authid=authid,
            client_nonce=client_nonce,
            nonce=nonce,
            salt=salt,
            iterations=credential.iterations,
            channel_binding=channel_binding,
            cbind_data=cbind_data,
        )
    except InvalidAuthData as exc:
        return fail(str(exc))
    recovered_client_key = _xor(scram_client_signature(credential.stored_key, auth_message), proof)
    if not hmac.compare_digest(scram_stored_key(recovered_client_key), credential.stored_key):
        return fail("invalid ClientProof")
    server_signature = _b64encode(scram_server_signature(credential.server_key, auth_message))
    key = "verifier" if spec else "scram_server_signature"
    return ScramVerification(True, server_signature, {key: server_signature})


@dataclass(frozen=True, slots=True)
class ScramClientResponse:
    """Client side: what to send in AUTHENTICATE, and what to keep to check the router's verifier."""

    signature: str
    extra: dict[str, Any]
    auth_message: bytes
    server_key: bytes = field(repr=False)


def _nonce_continues(client_nonce: str, nonce: str) -> bool:
    if nonce.startswith(client_nonce) and len(nonce) > len(client_nonce):
        return True
    # Crossbar.io sends base64(raw client nonce + raw server nonce), which is not a string prefix
    # extension when the client nonce has base64 padding.
    try:
        raw_client = _b64decode(client_nonce, "client nonce")
        raw = _b64decode(nonce, "nonce")
    except InvalidAuthData:
        return False
    return raw.startswith(raw_client) and len(raw) > len(raw_client)


def scram_client_authenticate(
    *,
    authmethod: str,
    authid: str,
    password: str,
    client_nonce: str,
    challenge_extra: Mapping[str, Any],
    channel_binding: str | None = None,
    cbind_data: bytes | None = None,
    min_iterations: int | None = None,
    min_memory: int = 512,
    max_memory: int = 1 << 21,
    max_iterations: int = 10_000_000,
) -> ScramClientResponse:
    """Client side: from the password and CHALLENGE.Extra, the AUTHENTICATE signature (ClientProof).

    Raises :class:`InvalidAuthData` (the client should ABORT) when the CHALLENGE is malformed, uses
    an unknown KDF, its nonce does not continue the client nonce, or its cost parameters are
    unusually low (a rogue router fishing for a cheap hash; spec: "SHOULD respond with an ABORT")
    or absurdly high. ``min_iterations`` defaults to 4096 for pbkdf2 (RFC 7677) and 1 for Argon2;
    memory is in KiB. ``channel_binding``/``cbind_data`` are what the client asked for in HELLO and
    the raw data from its TLS layer.

    For ``wamp-scram`` the AUTHENTICATE.Extra is ``{nonce, channel_binding, cbind_data}`` (spec);
    for ``scram`` it is empty (Autobahn) and channel binding is not supported.
    """
    spec = _check_scram_authmethod(authmethod)
    nonce = challenge_extra.get("nonce")
    salt_b64 = challenge_extra.get("salt")
    kdf = challenge_extra.get("kdf")
    iterations = challenge_extra.get("iterations")
    memory = challenge_extra.get("memory")
    if not isinstance(nonce, str) or not _nonce_continues(client_nonce, nonce):
        raise InvalidAuthData("CHALLENGE nonce does not start with the client nonce")
    if not isinstance(salt_b64, str):
        raise InvalidAuthData("CHALLENGE salt must be a base64 string")
    salt = _b64decode(salt_b64, "salt")
    if kdf not in SCRAM_KDFS:
        raise InvalidAuthData(f"unknown SCRAM KDF {kdf!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise InvalidAuthData("SCRAM iterations must be an integer")
    floor = min_iterations if min_iterations is not None else (4096 if kdf == "pbkdf2" else 1)
    if not floor <= iterations <= max_iterations:
        raise InvalidAuthData(f"SCRAM iterations {iterations} outside [{floor}, {max_iterations}]")
    if kdf != "pbkdf2":
        if isinstance(memory, bool) or not isinstance(memory, int) or not min_memory <= memory <= max_memory:
            raise InvalidAuthData(f"Argon2 memory {memory!r} outside [{min_memory}, {max_memory}] KiB")
    else:
        memory = None
    if not spec and channel_binding is not None:
        raise InvalidAuthData("channel binding is not supported with authmethod 'scram'")
    if spec:
        if challenge_extra.get("channel_binding", channel_binding) != channel_binding:
            raise InvalidAuthData("CHALLENGE channel_binding differs from the one requested")
        if (channel_binding is None) != (cbind_data is None):
            raise InvalidAuthData("cbind_data must be given if and only if channel_binding is")
    salted = scram_salted_password(password, kdf=kdf, salt=salt, iterations=iterations, memory=memory)
    auth_message = scram_auth_message(
        authmethod=authmethod,
        authid=authid,
        client_nonce=client_nonce,
        nonce=nonce,
        salt=salt_b64,
        iterations=iterations,
        channel_binding=channel_binding,
        cbind_data=cbind_data,
    )
    proof = scram_client_proof(scram_client_key(salted), auth_message)
    extra: dict[str, Any] = {}
    if spec:
        extra = {
            "nonce": nonce,
            "channel_binding": channel_binding,
            "cbind_data": None if cbind_data is None else _b64encode(cbind_data),
        }
    return ScramClientResponse(_b64encode(proof), extra, auth_message, scram_server_key(salted))


def scram_verify_server(response: ScramClientResponse, welcome_authextra: Mapping[str, Any]) -> bool:
    """Client side: check the router's ServerSignature in WELCOME.Details.authextra (mutual auth).

    Accepts ``verifier`` (spec; with or without the RFC 5802 ``v=`` prefix that the spec's example
    shows) and ``scram_server_signature`` (Crossbar.io). False if absent or wrong.
    """
    for key in _SCRAM_AUTHEXTRA_KEYS:
        value = welcome_authextra.get(key)
        if isinstance(value, str):
            if key == "verifier" and value.startswith("v="):
                value = value[2:]
            try:
                received = _b64decode(value, key)
            except InvalidAuthData:
                return False
            return hmac.compare_digest(received, scram_server_signature(response.server_key, response.auth_message))
    return False


def new_scram_nonce(nbytes: int = 16) -> str:
    """A random base64 nonce (16 bytes recommended by the spec) (randomness helper)."""
    return _b64encode(os.urandom(nbytes))


def new_scram_salt(nbytes: int = 16) -> bytes:
    """A random per-user salt (128 bits, as the spec recommends for Argon2) (randomness helper)."""
    return os.urandom(nbytes)


# --------------------------------------------------------------------------------------------
# WAMP-Cryptosign
# --------------------------------------------------------------------------------------------
#
# Spec: the router's challenge is 32 random bytes, hex in CHALLENGE.Extra.challenge. The client
# signs it (Ed25519) -- XORed bytewise with the 32-byte TLS channel ID first when channel binding is
# active -- and sends hex(signature (64 bytes) || signed message (32 bytes)), 192 hex characters.
# Router authentication: the client puts its own 32-byte hex challenge in
# HELLO.Details.authextra.challenge, and the router returns CHALLENGE.Extra.pubkey (its public key)
# and CHALLENGE.Extra.signature (same format, over that challenge XOR the channel ID if bound).
#
# Divergences / unspecified points:
# * The router's signature travels in CHALLENGE.Extra.signature (spec, Crossbar.io), *not* in
#   WELCOME.Details.authextra.
# * The spec says "the TLS channel ID (32 bytes)" but tls-unique (RFC 5929: the first Finished
#   message) is 12 bytes in TLS 1.2. Autobahn|Python and Crossbar.io use SHA-256 of the tls-unique
#   bytes as the channel ID (autobahn.asyncio.util.transport_channel_id); cryptosign_channel_id does
#   the same. For tls-exporter (RFC 9266, 32 bytes by definition) the exported value is used as is;
#   neither Autobahn nor Crossbar.io implements tls-exporter (they refuse it).
# * Autobahn uses 32 zero bytes as channel ID when TLS is not up, which makes "binding" a no-op;
#   Crossbar.io silently signs/expects the bare challenge when it has no channel ID. Here a missing
#   channel ID with a binding requested is the caller's decision; these functions never invent one.

CRYPTOSIGN_CHANNEL_BINDINGS: Final = frozenset({"tls-unique", "tls-exporter"})


def cryptosign_channel_id(channel_binding: str, binding_data: bytes) -> bytes:
    """The 32-byte channel ID for ``channel_binding`` from the TLS layer's raw binding data.

    ``tls-unique``: SHA-256 of the tls-unique bytes (``ssl.SSLObject.get_channel_binding("tls-unique")``),
    as Autobahn|Python/Crossbar.io compute it. ``tls-exporter``: the 32-byte RFC 9266 exporter value.
    """
    if channel_binding == "tls-unique":
        if not binding_data:
            raise InvalidAuthData("no tls-unique data")
        return hashlib.sha256(binding_data).digest()
    if channel_binding == "tls-exporter":
        if len(binding_data) != 32:
            raise InvalidAuthData("tls-exporter channel binding data must be 32 bytes")
        return bytes(binding_data)
    raise InvalidAuthData(f"unknown cryptosign channel binding {channel_binding!r}")


def cryptosign_message(challenge: str, channel_id: bytes | None = None) -> bytes:
    """The 32 bytes to sign: the hex challenge, XORed with the channel ID if one is given."""
    raw = _hex_bytes(challenge, 32, "cryptosign challenge")
    if channel_id is None:
        return raw
    if len(channel_id) != 32:
        raise InvalidAuthData("cryptosign channel ID must be 32 bytes")
    return _xor(raw, channel_id)


def _public_key(key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    raw = _hex_bytes(key, 32, "Ed25519 public key") if isinstance(key, str) else key
    if len(raw) != 32:
        raise InvalidAuthData("Ed25519 public key must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, slots=True)
class CryptosignKey:
    """An Ed25519 key pair for WAMP-Cryptosign (client key, or the router's key for router auth)."""

    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> CryptosignKey:
        """From the 32-byte private seed (what the spec's test vectors call ``private_key``)."""
        if len(seed) != 32:
            raise InvalidAuthData("Ed25519 seed must be 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_hex(cls, seed_hex: str) -> CryptosignKey:
        """From the seed as 64 hex characters (Autobahn's ``privkey`` argument)."""
        return cls.from_seed(_hex_bytes(seed_hex, 32, "Ed25519 seed"))

    @property
    def seed(self) -> bytes:
        return self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_key_hex(self) -> str:
        """What goes in HELLO.Details.authextra.pubkey (or CHALLENGE.Extra.pubkey for a router)."""
        return self.public_key.hex()

    def sign(self, data: bytes) -> bytes:
        """The bare 64-byte Ed25519 signature."""
        return self.private_key.sign(data)


def cryptosign_sign_challenge(key: CryptosignKey, challenge: str, channel_id: bytes | None = None) -> str:
    """The AUTHENTICATE signature: hex(Ed25519 signature || signed message), 192 hex characters."""
    message = cryptosign_message(challenge, channel_id)
    return (key.sign(message) + message).hex()


def cryptosign_verify(
    public_key: bytes | str | Ed25519PublicKey, challenge: str, signature: object, channel_id: bytes | None = None
) -> bool:
    """Check a cryptosign signature string over ``challenge`` (XOR ``channel_id`` if given).

    The embedded message must equal the expected one (so a signature over a different challenge,
    or without the channel binding, is refused) and the Ed25519 signature must verify. A malformed
    signature is just wrong (False); a malformed key or challenge raises :class:`InvalidAuthData`.
    """
    expected = cryptosign_message(challenge, channel_id)
    verifier = _public_key(public_key)
    try:
        raw = _hex_bytes(signature, 96, "cryptosign signature")
    except InvalidAuthData:
        return False
    if not hmac.compare_digest(raw[64:], expected):
        return False
    try:
        verifier.verify(raw[:64], expected)
    except InvalidSignature:
        return False
    return True


def cryptosign_router_challenge_extra(
    router_key: CryptosignKey, client_challenge: str, channel_id: bytes | None = None
) -> dict[str, str]:
    """Router authentication: ``{"pubkey", "signature"}`` to merge into CHALLENGE.Extra.

    ``client_challenge`` is HELLO.Details.authextra.challenge; with channel binding the router signs
    it XOR the channel ID (spec "Router Authentication", Crossbar.io).
    """
    return {
        "pubkey": router_key.public_key_hex,
        "signature": cryptosign_sign_challenge(router_key, client_challenge, channel_id),
    }


def cryptosign_verify_router(
    challenge_extra: Mapping[str, Any],
    client_challenge: str,
    *,
    trusted_pubkeys: Collection[str] | None,
    channel_id: bytes | None = None,
) -> bool:
    """Client side of router authentication: CHALLENGE.Extra.signature over our HELLO challenge.

    ``trusted_pubkeys`` are the router keys (hex) the client trusts; ``None`` trusts whatever
    CHALLENGE.Extra.pubkey says (proves only that the router holds *some* key: pin keys for real
    router authentication). Malformed or missing fields give False.
    """
    pubkey = challenge_extra.get("pubkey")
    if not isinstance(pubkey, str):
        return False
    if trusted_pubkeys is not None and pubkey.lower() not in {k.lower() for k in trusted_pubkeys}:
        return False
    try:
        return cryptosign_verify(pubkey, client_challenge, challenge_extra.get("signature"), channel_id)
    except InvalidAuthData:
        return False


def new_cryptosign_challenge() -> str:
    """32 random bytes as 64 hex characters (randomness helper)."""
    return secrets.token_hex(32)


def new_cryptosign_key() -> CryptosignKey:
    """A fresh random key pair (randomness helper)."""
    return CryptosignKey(Ed25519PrivateKey.generate())


# --------------------------------------------------------------------------------------------
# Ticket: stored (hashed) tickets
# --------------------------------------------------------------------------------------------
#
# The spec (authentication_ticket.md) leaves how the router checks the ticket to the router; Crossbar
# compares against a clear-text ticket in its config. These helpers let a config hold a hash instead:
#
# * ``pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>`` (32-byte PBKDF2-HMAC-SHA256 of the
#   UTF-8 ticket), and
# * an Argon2 PHC string as argon2-cffi's PasswordHasher writes it, ``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>``
#   (``$argon2i$`` / ``$argon2d$`` are verified too).

TicketScheme = Literal["argon2id", "pbkdf2-sha256"]

_PBKDF2_TICKET_RE: Final = re.compile(r"pbkdf2-sha256\$([1-9][0-9]{0,9})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")
_ARGON2_PREFIXES: Final = ("$argon2id$", "$argon2i$", "$argon2d$")
_PBKDF2_TICKET_ITERATIONS: Final = 600_000


def hash_ticket(
    ticket: str,
    *,
    salt: bytes,
    scheme: TicketScheme = "argon2id",
    iterations: int | None = None,
    memory: int = 65536,
    parallelism: int = 4,
) -> str:
    """The stored form of ``ticket`` with the given ``salt`` (deterministic; see :func:`new_ticket_hash`).

    ``pbkdf2-sha256``: ``iterations`` defaults to 600 000 (OWASP 2023). ``argon2id``: ``iterations``
    (time cost) defaults to 3, ``memory`` (KiB) to 64 MiB and ``parallelism`` to 4, argon2-cffi's
    RFC 9106 "low memory" profile; the result is a PHC string that argon2-cffi's PasswordHasher verifies.
    """
    if scheme == "pbkdf2-sha256":
        rounds = iterations if iterations is not None else _PBKDF2_TICKET_ITERATIONS
        if not 1 <= rounds < 10**10:
            raise InvalidAuthData("pbkdf2-sha256 iterations out of range")
        if not salt:
            raise InvalidAuthData("a ticket hash needs a salt")
        digest = pbkdf2(ticket, salt, rounds, 32)
        return f"pbkdf2-sha256${rounds}${_b64encode(salt)}${_b64encode(digest)}"
    if scheme == "argon2id":
        if len(salt) < 8:
            raise InvalidAuthData("Argon2 needs a salt of at least 8 bytes")
        encoded = hash_secret(
            secret=ticket.encode("utf-8"),
            salt=salt,
            time_cost=iterations if iterations is not None else 3,
            memory_cost=memory,
            parallelism=parallelism,
            hash_len=32,
            type=Argon2Type.ID,
            version=ARGON2_VERSION,
        )
        return encoded.decode("ascii")
    raise InvalidAuthData(f"unknown ticket hash scheme {scheme!r}")


def is_ticket_hash(stored: str) -> bool:
    """True if ``stored`` is a ticket hash this module can verify (for config validation)."""
    if _PBKDF2_TICKET_RE.fullmatch(stored):
        return True
    if stored.startswith(_ARGON2_PREFIXES):
        try:
            extract_parameters(stored)
        except (InvalidHashError, ValueError):
            return False
        return True
    return False


def verify_ticket(presented: object, stored: str) -> bool:
    """Check a presented ticket (AUTHENTICATE.Signature) against a stored ticket hash.

    Argument order as passlib's ``verify(secret, hash)``: the presented ticket first. Constant time in
    the comparison. A ticket that is not a string is wrong (False); a ``stored`` value that is not a
    ticket hash raises :class:`InvalidAuthData` (a configuration error: check the config with
    :func:`is_ticket_hash`, and use :func:`ticket_equals` for clear-text tickets).
    """
    match = _PBKDF2_TICKET_RE.fullmatch(stored)
    if match is not None:
        rounds = int(match.group(1))
        salt = _b64decode(match.group(2), "ticket hash salt")
        expected = _b64decode(match.group(3), "ticket hash")
        if not isinstance(presented, str):
            return False
        actual = pbkdf2(presented.encode("utf-8", "surrogatepass"), salt, rounds, len(expected))
        return hmac.compare_digest(actual, expected)
    if stored.startswith(_ARGON2_PREFIXES):
        try:
            extract_parameters(stored)  # verify() reports a malformed hash as a mere mismatch
        except (InvalidHashError, ValueError) as exc:
            raise InvalidAuthData("malformed Argon2 ticket hash") from exc
        if not isinstance(presented, str):
            return False
        try:
            return PasswordHasher().verify(stored, presented.encode("utf-8", "surrogatepass"))
        except (InvalidHashError, VerificationError):
            return False
    raise InvalidAuthData("not a ticket hash (expected 'pbkdf2-sha256$...' or '$argon2id$...')")


def ticket_equals(expected: str, presented: object) -> bool:
    """Constant-time comparison of a presented ticket with a clear-text one."""
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8", "surrogatepass"))


def new_ticket_hash(ticket: str, scheme: TicketScheme = "argon2id") -> str:
    """:func:`hash_ticket` with a fresh random 16-byte salt (randomness helper)."""
    return hash_ticket(ticket, salt=os.urandom(16), scheme=scheme)
