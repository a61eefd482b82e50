"""Client-side authentication methods: what to offer in HELLO and how to answer a CHALLENGE."""

from __future__ import annotations

from typing import Any, Protocol

from ..wamp.auth import derive_wampcra_key, sign_wampcra


class ClientAuthenticator(Protocol):
    """One authentication method the client offers (in HELLO.Details.authmethods)."""

    method: str
    authid: str | None

    def authextra(self) -> dict[str, Any]:
        """Extra data for HELLO.Details.authextra."""

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
