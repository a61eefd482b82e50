"""Authentication methods with credentials: principals from the config or from a WAMP procedure.

A principal is what the router knows about an authid: its role and the credential its method
needs (a ticket hash, a WAMP-CRA key, public keys, SCRAM keys). Static principals come from the
node config; a dynamic authenticator is a procedure (possibly on another realm) the router calls
with ``(realm, authid, details)`` (Crossbar's convention) and that answers with the principal, or
raises an error to refuse. Failures never say which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..wamp import errors
from .auth import Accept, Challenge, HelloInfo, Identity, MaybeAwaitable, Reject

if TYPE_CHECKING:
    from ..wamp import auth as auth_math

ProcedureCaller = Callable[[str, str, list[Any], dict[str, Any], float], Awaitable[Any]]


@dataclass(slots=True, frozen=True)
class Principal:
    """What the router knows of one authid."""

    authid: str
    role: str
    #: ticket: a stored hash (see cloverleaf.wamp.auth) or, discouraged, the ticket itself
    ticket: str | None = None
    #: WAMP-CRA: the secret, or for salted WAMP-CRA the derived key, with its salt parameters
    secret: str | None = None
    salt: str | None = None
    iterations: int = 1000
    keylen: int = 32
    #: cryptosign: the Ed25519 public keys (hex) the authid may use
    pubkeys: tuple[str, ...] = ()
    #: WAMP-SCRAM stored credentials (kdf, iterations, memory, salt, stored-key, server-key)
    scram: dict[str, Any] = field(default_factory=dict)
    #: tls: the SHA-1 fingerprint (hex) the client certificate must have; None accepts any
    #: certificate the transport's CA verified whose common name is the authid
    certificate_sha1: str | None = None
    authextra: dict[str, Any] = field(default_factory=dict)
    #: the only realm the principal may join (None: any realm whose roles include its role)
    realm: str | None = None


def principal_from_answer(authid: str, answer: Any) -> Principal | None:
    """A dynamic authenticator's answer: a role name, or a dict with "role" and credentials."""
    if isinstance(answer, str):
        return Principal(authid, answer)
    if not isinstance(answer, dict) or not isinstance(answer.get("role"), str):
        return None
    pubkeys = answer.get("pubkey") or answer.get("pubkeys") or ()
    if isinstance(pubkeys, str):
        pubkeys = (pubkeys,)
    extra = answer.get("extra") or answer.get("authextra") or {}
    return Principal(
        authid=str(answer.get("authid") or authid),
        role=answer["role"],
        ticket=answer.get("ticket") if isinstance(answer.get("ticket"), str) else None,
        secret=answer.get("secret") if isinstance(answer.get("secret"), str) else None,
        salt=answer.get("salt") if isinstance(answer.get("salt"), str) else None,
        iterations=int(answer.get("iterations", 1000)),
        keylen=int(answer.get("keylen", 32)),
        pubkeys=tuple(str(k) for k in pubkeys),
        scram={k: v for k, v in answer.items() if k in ("kdf", "iterations", "memory", "salt", "stored-key",
                                                        "server-key", "stored_key", "server_key")},
        authextra=extra if isinstance(extra, dict) else {},
        realm=answer["realm"] if isinstance(answer.get("realm"), str) else None,
    )  # fmt: skip


class Principals:
    """Where an authenticator finds principals: the config, or a dynamic authenticator procedure."""

    def __init__(
        self,
        static: dict[str, Principal] | None = None,
        procedure: str | None = None,
        realm: str | None = None,
        call: ProcedureCaller | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.static = static or {}
        self.procedure = procedure
        self.realm = realm
        self.call = call
        self.timeout = timeout

    @property
    def dynamic(self) -> bool:
        return self.procedure is not None

    def find(self, authid: str | None, realm: str) -> Principal | None:
        """The configured principal ``authid``, if it may join ``realm``."""
        principal = self.static.get(authid or "")
        if principal is not None and principal.realm is not None and principal.realm != realm:
            return None
        return principal

    async def ask(self, hello: HelloInfo, method: str, extra: dict[str, Any]) -> Principal | None:
        """Call the dynamic authenticator; None when it refuses."""
        assert self.procedure is not None and self.call is not None
        authid = hello.authid or ""
        details = {
            "authmethod": method, "authid": authid, "authrole": hello.details.get("authrole"),
            "authextra": hello.authextra, "session": hello.session_id,
            "transport": {"type": hello.transport_kind, "peer": hello.peer}, **extra,
        }  # fmt: skip
        try:
            answer = await self.call(self.realm or hello.realm, self.procedure, [hello.realm, authid, details], {},
                                     self.timeout)  # fmt: skip
        except Exception:
            return None
        principal = principal_from_answer(authid, answer)
        if principal is not None and principal.realm is not None and principal.realm != hello.realm:
            return None  # (Crossbar's authenticators may name a realm: one other than asked is refused)
        return principal


def _identity(principal: Principal, method: str, provider: str) -> Identity:
    return Identity(principal.authid, principal.role, method, provider, dict(principal.authextra))


class TicketAuthenticator:
    """``ticket``: the client sends a shared secret in AUTHENTICATE (use it over TLS only)."""

    method = "ticket"

    def __init__(self, principals: Principals) -> None:
        self.principals = principals

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        if not hello.authid:
            return Reject(errors.AUTHENTICATION_FAILED, "ticket authentication needs an authid")
        return Challenge({})

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        if self.principals.dynamic:
            return self._dynamic(hello, signature)
        principal = self.principals.find(hello.authid, hello.realm)
        if principal is None or principal.ticket is None or not verify_ticket(signature, principal.ticket):
            return Reject()
        return Accept(_identity(principal, self.method, "static"))

    async def _dynamic(self, hello: HelloInfo, ticket: str) -> Accept | Reject:
        principal = await self.principals.ask(hello, self.method, {"ticket": ticket})
        if principal is None:
            return Reject()
        return Accept(_identity(principal, self.method, "dynamic"))


def verify_ticket(ticket: str, stored: str) -> bool:
    """Compare a presented ticket with the stored form (a hash from `cloverleaf passwd`, or clear)."""
    from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

    if auth_math.is_ticket_hash(stored):
        try:
            return auth_math.verify_ticket(ticket, stored)
        except auth_math.InvalidAuthData:
            return False
    return auth_math.ticket_equals(stored, ticket)


class WampCraAuthenticator:
    """``wampcra``: HMAC-SHA256 challenge-response on a shared secret (plain or salted/PBKDF2)."""

    method = "wampcra"

    def __init__(self, principals: Principals) -> None:
        self.principals = principals

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        if not hello.authid:
            return Reject(errors.AUTHENTICATION_FAILED, "wampcra authentication needs an authid")
        if self.principals.dynamic:
            return self._dynamic(hello)
        principal = self.principals.find(hello.authid, hello.realm)
        return self._challenge(hello, principal)

    async def _dynamic(self, hello: HelloInfo) -> Challenge | Reject:
        principal = await self.principals.ask(hello, self.method, {})
        if principal is not None and principal.salt is not None and principal.secret is not None:
            # As Crossbar: an authenticator answers the password with its salt parameters, and the
            # router derives the key (a config stores the derived key instead: `cloverleaf passwd`)
            key = salted_wampcra_key(principal.secret, principal.salt, principal.iterations, principal.keylen)
            principal = replace(principal, secret=key)
        return self._challenge(hello, principal)

    def _challenge(self, hello: HelloInfo, principal: Principal | None) -> Challenge | Reject:
        if principal is None or principal.secret is None:
            # An unknown authid is answered like a wrong secret would be, later: a CHALLENGE with a
            # key nobody knows, so a client cannot probe which authids exist.
            principal = Principal(hello.authid or "", "", secret=secrets.token_hex(32))
        challenge = json.dumps({
            "authid": principal.authid, "authrole": principal.role, "authmethod": self.method,
            "authprovider": "dynamic" if self.principals.dynamic else "static",
            "nonce": secrets.token_urlsafe(24),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "session": hello.session_id,
        }, separators=(",", ":"))  # fmt: skip
        extra: dict[str, Any] = {"challenge": challenge}
        if principal.salt is not None:
            extra.update(salt=principal.salt, iterations=principal.iterations, keylen=principal.keylen)
        return Challenge(extra, (principal, challenge))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:

        principal, challenge = state
        if not principal.role or principal.secret is None:
            return Reject()
        from ..wamp.auth import sign_wampcra  # lazy: the crypto libraries load only when the method is used

        expected = sign_wampcra(principal.secret.encode("utf-8"), challenge)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
            return Reject()
        provider = "dynamic" if self.principals.dynamic else "static"
        return Accept(_identity(principal, self.method, provider))


def salted_wampcra_key(password: str, salt: str, iterations: int = 1000, keylen: int = 32) -> str:
    """The key to store for salted WAMP-CRA instead of the password (what `cloverleaf passwd` prints)."""
    from ..wamp.auth import derive_wampcra_key

    return derive_wampcra_key(password, salt, iterations, keylen).decode("ascii")


def _channel_id(hello: HelloInfo, requested: object) -> bytes | Reject | None:
    """The channel ID for a requested TLS channel binding, or a Reject when it cannot be had."""
    from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

    if requested is None:
        return None
    if not isinstance(requested, str) or requested not in hello.channel_binding:
        return Reject(errors.AUTHENTICATION_FAILED, "the requested channel binding is not available")
    return auth_math.cryptosign_channel_id(requested, hello.channel_binding[requested])


class CryptosignAuthenticator:
    """``cryptosign``: the client signs a random challenge with an Ed25519 key the router knows.

    With ``channel_binding`` in HELLO.authextra the signed message is bound to the TLS channel; with
    a ``challenge`` in HELLO.authextra and a router key configured, the router signs it too and puts
    ``pubkey`` and ``signature`` into CHALLENGE.Extra (router authentication).
    """

    method = "cryptosign"

    def __init__(self, principals: Principals, router_key: auth_math.CryptosignKey | None = None) -> None:
        self.principals = principals
        self.router_key = router_key

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        pubkey = hello.authextra.get("pubkey")
        if not isinstance(pubkey, str):
            return Reject(errors.AUTHENTICATION_FAILED, "cryptosign needs authextra.pubkey")
        if self.principals.dynamic:
            return self._dynamic(hello, pubkey)
        principal = self.principals.find(hello.authid, hello.realm)
        if principal is None and not hello.authid:  # no authid: find the principal by its key
            principal = next((p for p in self.principals.static.values() if pubkey.lower() in
                              {k.lower() for k in p.pubkeys}), None)  # fmt: skip
        return self._challenge(hello, principal, pubkey)

    async def _dynamic(self, hello: HelloInfo, pubkey: str) -> Challenge | Reject:
        principal = await self.principals.ask(hello, self.method, {"pubkey": pubkey})
        return self._challenge(hello, principal, pubkey)

    def _challenge(self, hello: HelloInfo, principal: Principal | None, pubkey: str) -> Challenge | Reject:
        from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

        channel_binding = hello.authextra.get("channel_binding")
        channel_id = _channel_id(hello, channel_binding)
        if isinstance(channel_id, Reject):
            return channel_id
        challenge = auth_math.new_cryptosign_challenge()
        extra: dict[str, Any] = {"challenge": challenge, "channel_binding": channel_binding}
        client_challenge = hello.authextra.get("challenge")
        if isinstance(client_challenge, str) and self.router_key is not None:
            try:
                extra.update(auth_math.cryptosign_router_challenge_extra(self.router_key, client_challenge, channel_id))
            except auth_math.InvalidAuthData:
                return Reject(errors.AUTHENTICATION_FAILED, "invalid authextra.challenge")
        known = principal is not None and pubkey.lower() in {k.lower() for k in principal.pubkeys}
        return Challenge(extra, (principal if known else None, pubkey, challenge, channel_id))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

        principal, pubkey, challenge, channel_id = state
        if principal is None:
            return Reject()
        try:
            ok = auth_math.cryptosign_verify(pubkey, challenge, signature, channel_id)
        except auth_math.InvalidAuthData:
            ok = False
        if not ok:
            return Reject()
        identity = _identity(principal, self.method, "dynamic" if self.principals.dynamic else "static")
        return Accept(identity)


class ScramAuthenticator:
    """WAMP-SCRAM (SHA-256 with argon2id or PBKDF2): the router stores keys, never the password.

    Offered under the spec's name ``wamp-scram`` and under ``scram`` (Autobahn's and Crossbar's
    spelling, with their AuthMessage conventions; see :mod:`cloverleaf.wamp.auth`).
    """

    def __init__(self, principals: Principals, method: str = "wamp-scram") -> None:
        self.principals = principals
        self.method = method

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        if not hello.authid:
            return Reject(errors.AUTHENTICATION_FAILED, "SCRAM needs an authid")
        if self.principals.dynamic:
            return self._dynamic(hello)
        return self._challenge(hello, self.principals.find(hello.authid, hello.realm))

    async def _dynamic(self, hello: HelloInfo) -> Challenge | Reject:
        return self._challenge(hello, await self.principals.ask(hello, self.method, {}))

    def _challenge(self, hello: HelloInfo, principal: Principal | None) -> Challenge | Reject:
        from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

        credential = None
        if principal is not None and principal.scram:
            try:
                credential = auth_math.ScramCredential.from_config(principal.scram)
            except auth_math.InvalidAuthData:
                credential = None
        known = credential is not None
        if credential is None:  # answer an unknown authid like a known one, with keys nobody has
            credential = auth_math.ScramCredential("pbkdf2", secrets.token_bytes(16), 4096, None,
                                                   secrets.token_bytes(32), secrets.token_bytes(32))  # fmt: skip
        client_nonce = hello.authextra.get("nonce")
        try:
            extra = auth_math.scram_challenge_extra(
                credential, authmethod=self.method, client_nonce=client_nonce, server_nonce=auth_math.new_scram_nonce()
            )
        except auth_math.InvalidAuthData:
            return Reject(errors.AUTHENTICATION_FAILED, "SCRAM needs authextra.nonce")
        channel_binding = hello.authextra.get("channel_binding")
        if channel_binding is not None:
            extra["channel_binding"] = channel_binding
        return Challenge(extra, (principal if known else None, credential, client_nonce, extra))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        from ..wamp import auth as auth_math  # lazy: the crypto libraries load only when the method is used

        principal, credential, client_nonce, challenge_extra = state
        channel_binding = hello.authextra.get("channel_binding")
        binding_data = hello.channel_binding.get(channel_binding) if isinstance(channel_binding, str) else None
        try:
            result = auth_math.scram_verify_authenticate(
                credential, authmethod=self.method, authid=hello.authid or "", client_nonce=client_nonce,
                challenge_extra=challenge_extra, signature=signature, authenticate_extra=extra,
                channel_binding=channel_binding if isinstance(channel_binding, str) else None,
                channel_binding_data=binding_data,
            )  # fmt: skip
        except auth_math.InvalidAuthData:
            return Reject()
        if principal is None or not result.ok:
            return Reject()
        identity = _identity(principal, self.method, "dynamic" if self.principals.dynamic else "static")
        authextra = dict(identity.authextra)
        authextra.update(result.welcome_authextra)
        return Accept(
            Identity(identity.authid, identity.authrole, identity.authmethod, identity.authprovider, authextra)
        )


def _fingerprint(value: str) -> str:
    return value.replace(":", "").lower()


def certificate_common_name(certificate: dict[str, Any] | None) -> str | None:
    """The subject's commonName of a getpeercert() dict."""
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class TlsAuthenticator:
    """``tls``: the client certificate, verified by the transport's CA, identifies the client.

    The authid is the one asked for in HELLO, else the certificate's common name; a principal may
    pin the certificate's SHA-1 fingerprint (Crossbar's ``certificate-sha1``). A dynamic
    authenticator receives ``certificate`` (``sha1``, ``subject`` common name, the full subject).
    """

    method = "tls"

    def __init__(self, principals: Principals) -> None:
        self.principals = principals

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        der = hello.peer_certificate_der
        if der is None:
            return Reject(errors.AUTHENTICATION_FAILED, "no client certificate")
        import hashlib

        sha1 = hashlib.sha1(der).hexdigest()
        common_name = certificate_common_name(hello.peer_certificate)
        authid = hello.authid or common_name or ""
        if self.principals.dynamic:
            return self._dynamic(hello, sha1, common_name)
        principal = self.principals.find(authid, hello.realm)
        if principal is None:
            return Reject()
        if principal.certificate_sha1 is not None:
            if _fingerprint(principal.certificate_sha1) != sha1:
                return Reject()
        elif common_name != authid:
            return Reject()
        authextra = {**principal.authextra, "certificate": {"sha1": sha1, "subject": common_name}}
        return Accept(Identity(principal.authid, principal.role, self.method, "static", authextra))

    async def _dynamic(self, hello: HelloInfo, sha1: str, common_name: str | None) -> Accept | Reject:
        certificate = {"sha1": sha1, "subject": common_name, "details": hello.peer_certificate}
        principal = await self.principals.ask(hello, self.method, {"certificate": certificate})
        if principal is None:
            return Reject()
        return Accept(_identity(principal, self.method, "dynamic"))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return Reject(errors.PROTOCOL_VIOLATION, "tls authentication sends no CHALLENGE")


class CookieStore:
    """Which identity each WebSocket tracking cookie authenticated (in memory, bounded, expiring).

    Entries are kept under a digest of the cookie (the cookie itself is a bearer secret). In a
    cluster, or a node with workers, ``on_remember`` shares each binding and :meth:`learn` takes
    the others' (``cloverleaf.cluster.cookies``)."""

    def __init__(self, max_age: float = 86400.0, limit: int = 100_000) -> None:
        self.max_age = max_age
        self.limit = limit
        self._identities: dict[str, tuple[Identity, float]] = {}
        #: called with (digest, identity) after each binding this process makes
        self.on_remember: Callable[[str, Identity], None] | None = None

    @staticmethod
    def digest(cookie: str) -> str:
        return hashlib.sha256(cookie.encode()).hexdigest()

    def remember(self, cookie: str, identity: Identity, now: float) -> bool:
        """Bind ``cookie`` to ``identity``; False (and nothing changed) when it already proves another
        identity that has not expired: a cookie someone else planted must not be taken over."""
        current = self.recall(cookie, now)
        if current is not None and (current.authid, current.authrole) != (identity.authid, identity.authrole):
            return False
        digest = self.digest(cookie)
        self._put(digest, identity, now)
        if self.on_remember is not None:
            self.on_remember(digest, identity)
        return True

    def learn(self, digest: str, identity: Identity, issued: float) -> None:
        """Take a binding made elsewhere (``issued``: when, on this process's monotonic clock)."""
        known = self._identities.get(digest)
        if known is None or known[1] <= issued:
            self._put(digest, identity, issued)

    def _put(self, digest: str, identity: Identity, when: float) -> None:
        if digest not in self._identities and len(self._identities) >= self.limit:
            oldest = min(self._identities, key=lambda c: self._identities[c][1])
            del self._identities[oldest]
        self._identities[digest] = (identity, when)

    def knows(self, cookie: str, now: float) -> bool:
        """Whether ``cookie`` proves an identity now (it was issued, authenticated, and has not expired)."""
        return self.recall(cookie, now) is not None

    def recall(self, cookie: str, now: float) -> Identity | None:
        digest = self.digest(cookie)
        entry = self._identities.get(digest)
        if entry is None:
            return None
        if now - entry[1] > self.max_age:
            del self._identities[digest]
            return None
        return entry[0]


class CookieAuthenticator:
    """``cookie``: a browser's WebSocket that earlier authenticated with another method is
    recognized by its tracking cookie and admitted as the same identity (authmethod ``cookie``)."""

    method = "cookie"

    def __init__(self, store: CookieStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        identity = self.store.recall(hello.cookie, self.clock()) if hello.cookie else None
        if identity is None:
            return Reject()
        return Accept(Identity(identity.authid, identity.authrole, self.method, identity.authprovider,
                               dict(identity.authextra)))  # fmt: skip

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return Reject(errors.PROTOCOL_VIOLATION, "cookie authentication sends no CHALLENGE")
