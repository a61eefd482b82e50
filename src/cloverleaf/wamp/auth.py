"""Authentication math (sans-I/O): WAMP-CRA signatures and key derivation."""

from __future__ import annotations

import base64
import hashlib
import hmac


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
