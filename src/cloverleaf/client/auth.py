"""Client-side authentication methods: what to offer in HELLO and how to answer a CHALLENGE.

An authenticator may also have ``on_welcome(details) -> bool``: the session calls it with
WELCOME.Details when the router welcomes the client with that authenticator's method, and aborts
the session (``wamp.error.authentication_failed``) unless it returns True. That is how WAMP-SCRAM
checks the router's server signature, and how WAMP-Cryptosign makes sure the router did prove its
key when the client asked it to. An ``on_challenge`` that raises (typically
:class:`AuthenticationFailed`) aborts the session the same way.

The key derivation functions of WAMP-CRA (salted) and WAMP-SCRAM run synchronously in
``on_challenge``, that is on the event loop, for as long as the KDF takes with the cost parameters
the router sends (WAMP-SCRAM with Argon2 at the common 4096 iterations / 512 KiB takes about a
second). Nothing else in these classes blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..wamp.auth import (
    SCRAM_AUTHMETHODS,
    CryptosignKey,
    InvalidAuthData,
    ScramClientResponse,
    cryptosign_sign_challenge,
    cryptosign_verify_router,
    derive_wampcra_key,
    new_cryptosign_challenge,
    new_scram_nonce,
    scram_client_authenticate,
    scram_verify_server,
    sign_wampcra,
)


class AuthenticationFailed(Exception):
    """The client refuses to go on: the router's CHALLENGE is unusable or the router failed to
    authenticate itself. The session answers with ABORT ``wamp.error.authentication_failed``."""


class ClientAuthenticator(Protocol):
    """One authentication method the client offers (in HELLO.Details.authmethods).

    Optionally also ``on_welcome(details: dict) -> bool`` (see the module docstring).
    """

    method: str
    authid: str | None

    def authextra(self) -> dict[str, Any]:
        """Extra data for HELLO.Details.authextra (called once per HELLO, so once per connection)."""

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Answer a CHALLENGE for this method: (signature, AUTHENTICATE.Extra)."""


class TicketAuth:
    """``ticket``: the router checks a shared secret (send it only over TLS)."""

    method = "ticket"

    def __init__(self, authid: str, ticket: str) -> None:
        self.authid: str | None = authid
        self._ticket = ticket

    def authextra(self) -> dict[str, Any]:
        return {}

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return self._ticket, {}


class WampCraAuth:
    """``wampcra``: challenge-response with a shared secret, plain or salted (PBKDF2)."""

    method = "wampcra"

    def __init__(self, authid: str, secret: str) -> None:
        self.authid: str | None = authid
        self._secret = secret

    def authextra(self) -> dict[str, Any]:
        return {}

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        key: bytes | str = self._secret
        if "salt" in extra:
            key = derive_wampcra_key(
                self._secret, str(extra["salt"]), int(extra.get("iterations", 1000)), int(extra.get("keylen", 32))
            )
        return sign_wampcra(key, str(extra["challenge"])), {}


class ScramAuth:
    """``wamp-scram`` (spec) or ``scram`` (Crossbar.io/Autobahn|Python): password authentication
    in which neither side learns the other's secret, and the router proves it knows the stored key.

    HELLO.authextra carries a fresh client nonce; the ClientProof is computed from the password with
    the KDF and parameters of the CHALLENGE (``argon2id13``, ``argon2id-13`` or ``pbkdf2``, refusing
    suspiciously cheap or absurdly costly ones); the router's ServerSignature in WELCOME.authextra
    (``verifier``, or Crossbar's ``scram_server_signature``) must be right, or the session is
    aborted. The KDF runs synchronously in :meth:`on_challenge` (see the module docstring).
    Channel binding is not offered.
    """

    def __init__(self, authid: str, password: str, authmethod: str = "wamp-scram") -> None:
        if authmethod not in SCRAM_AUTHMETHODS:
            raise ValueError(f"authmethod must be one of {sorted(SCRAM_AUTHMETHODS)}, not {authmethod!r}")
        self.method: str = authmethod
        self.authid: str | None = authid
        self._password = password
        self._client_nonce: str | None = None
        self._response: ScramClientResponse | None = None

    def authextra(self) -> dict[str, Any]:
        self._client_nonce = new_scram_nonce()
        self._response = None
        return {"nonce": self._client_nonce}

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self._client_nonce is None or self.authid is None:
            raise AuthenticationFailed("WAMP-SCRAM CHALLENGE without a HELLO nonce")
        try:
            response = scram_client_authenticate(
                authmethod=self.method,
                authid=self.authid,
                password=self._password,
                client_nonce=self._client_nonce,
                challenge_extra=extra,
            )
        except InvalidAuthData as exc:
            raise AuthenticationFailed(f"unusable WAMP-SCRAM CHALLENGE: {exc}") from exc
        self._response = response
        return response.signature, response.extra

    def on_welcome(self, details: dict[str, Any]) -> bool:
        """True if WELCOME.Details.authextra holds the right ServerSignature for this exchange."""
        authextra = details.get("authextra")
        if self._response is None or not isinstance(authextra, dict):
            return False
        return scram_verify_server(self._response, authextra)


def _load_key(private_key: str | bytes | CryptosignKey) -> CryptosignKey:
    if isinstance(private_key, CryptosignKey):
        return private_key
    if isinstance(private_key, bytes):
        return CryptosignKey.from_seed(private_key)
    return CryptosignKey.from_hex(private_key.strip())


def _check_pubkey(key: str) -> str:
    key = key.strip().lower()
    try:
        ok = len(bytes.fromhex(key)) == 32 and len(key) == 64
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"a router public key must be 64 hex characters, not {key!r}")
    return key


class CryptosignAuth:
    """``cryptosign``: the client proves it holds an Ed25519 private key the router knows the
    public key of (HELLO.authextra.pubkey), by signing the router's random challenge.

    ``private_key`` is the 32-byte seed, as 64 hex characters (what ``cloverleaf keygen`` writes)
    or raw bytes, or a :class:`~cloverleaf.wamp.auth.CryptosignKey`. ``authid`` may be None: the
    router then finds the principal by the public key.

    With ``router_pubkeys`` (hex public keys the client trusts) the router must authenticate too:
    HELLO.authextra carries a fresh 32-byte client challenge, and the CHALLENGE must hold one of
    those keys in ``pubkey`` and a valid ``signature`` over that challenge (spec "Router
    Authentication"); otherwise the session is aborted. TLS channel binding is not offered.
    """

    method = "cryptosign"

    def __init__(
        self,
        authid: str | None,
        private_key: str | bytes | CryptosignKey,
        router_pubkeys: Iterable[str] | None = None,
    ) -> None:
        self.authid: str | None = authid
        self._key = _load_key(private_key)
        if isinstance(router_pubkeys, str):
            router_pubkeys = [router_pubkeys]
        self.router_pubkeys: frozenset[str] | None = None
        if router_pubkeys is not None:
            self.router_pubkeys = frozenset(_check_pubkey(k) for k in router_pubkeys)
            if not self.router_pubkeys:
                raise ValueError("router_pubkeys is empty: no router could ever authenticate (use None to not ask)")
        self._client_challenge: str | None = None
        self._router_verified = False

    @classmethod
    def from_keyfile(
        cls, authid: str | None, path: str | Path, router_pubkeys: Iterable[str] | None = None
    ) -> CryptosignAuth:
        """Read the private key (hex seed) from a file, such as ``cloverleaf keygen --out`` writes."""
        return cls(authid, Path(path).read_text(encoding="ascii").strip(), router_pubkeys)

    @property
    def public_key(self) -> str:
        """The public key (hex) the router must have among the principal's ``pubkeys``."""
        return self._key.public_key_hex

    def authextra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"pubkey": self._key.public_key_hex}
        self._router_verified = False
        if self.router_pubkeys is not None:
            self._client_challenge = new_cryptosign_challenge()
            extra["challenge"] = self._client_challenge
        return extra

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if extra.get("channel_binding") is not None:
            raise AuthenticationFailed(f"the router asks for channel binding {extra['channel_binding']!r}, "
                                       "which the client did not request")  # fmt: skip
        if self.router_pubkeys is not None:
            if self._client_challenge is None or not cryptosign_verify_router(
                extra, self._client_challenge, trusted_pubkeys=self.router_pubkeys
            ):
                raise AuthenticationFailed("the router did not prove a trusted key (CHALLENGE pubkey/signature)")
            self._router_verified = True
        challenge = extra.get("challenge")
        if not isinstance(challenge, str):
            raise AuthenticationFailed("cryptosign CHALLENGE without a challenge")
        try:
            signature = cryptosign_sign_challenge(self._key, challenge)
        except InvalidAuthData as exc:
            raise AuthenticationFailed(f"unusable cryptosign CHALLENGE: {exc}") from exc
        return signature, {}

    def on_welcome(self, details: dict[str, Any]) -> bool:
        """With ``router_pubkeys``: True only if the router proved its key in this handshake's
        CHALLENGE (a WELCOME without that CHALLENGE is refused)."""
        return self.router_pubkeys is None or self._router_verified
