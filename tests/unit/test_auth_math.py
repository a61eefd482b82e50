"""The sans-I/O authentication math of ``cloverleaf.wamp.auth``.

* Vectors reproduce exactly: WAMP-Cryptosign ``test_vectors_1`` and the worked examples of the spec
  (``tests/data/wamp-proto-testsuite/auth/cryptosign_vectors.json`` and
  ``cryptosign_exchange_vectors.json``), the SCRAM-SHA-256 vector of RFC 7677 that the WAMP-SCRAM page
  points to (``scram_vectors.json``), and the PBKDF2 vectors of RFC 6070 (HMAC-SHA1) and RFC 7914
  section 11 (HMAC-SHA256). See ``tests/data/wamp-proto-testsuite/SOURCE.md``.
* Cross-checks against Autobahn|Python's own implementation (``autobahn.wamp.auth``,
  ``autobahn.wamp.cryptosign``) on random inputs, and, for SASLprep, against passlib's.
* Negative tests: a wrong key, proof, signature or ticket, a tampered challenge and a channel binding
  mismatch are all refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import string
import sys
import types
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from cloverleaf.wamp import auth

AUTH_DATA = Path(__file__).resolve().parents[1] / "data" / "wamp-proto-testsuite" / "auth"
CRYPTOSIGN = json.loads((AUTH_DATA / "cryptosign_vectors.json").read_text())
EXCHANGES = json.loads((AUTH_DATA / "cryptosign_exchange_vectors.json").read_text())["exchanges"]
SCRAM = json.loads((AUTH_DATA / "scram_vectors.json").read_text())

SLOW = os.environ.get("CLOVERLEAF_SLOW_TESTS") == "1"


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------
# PBKDF2: RFC 6070 (HMAC-SHA1) and RFC 7914 section 11 (HMAC-SHA256)
# ---------------------------------------------------------------------------------------------

PBKDF2_VECTORS = [
    # RFC 6070 section 2
    ("sha1", b"password", b"salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
    ("sha1", b"password", b"salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
    ("sha1", b"password", b"salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"),
    pytest.param(
        "sha1",
        b"password",
        b"salt",
        16777216,
        20,
        "eefe3d61cd4da4e4e9945b3d6ba2158c2634e984",
        marks=pytest.mark.skipif(not SLOW, reason="16M iterations (~8 s); set CLOVERLEAF_SLOW_TESTS=1"),
        id="rfc6070-16777216",
    ),
    (
        "sha1",
        b"passwordPASSWORDpassword",
        b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
        4096,
        25,
        "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
    ),
    ("sha1", b"pass\0word", b"sa\0lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"),
    # RFC 7914 section 11
    (
        "sha256",
        b"passwd",
        b"salt",
        1,
        64,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    ),
    (
        "sha256",
        b"Password",
        b"NaCl",
        80000,
        64,
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
    ),
]


@pytest.mark.parametrize(("hash_name", "password", "salt", "iterations", "keylen", "expected"), PBKDF2_VECTORS)
def test_pbkdf2_rfc_vectors(
    hash_name: str, password: bytes, salt: bytes, iterations: int, keylen: int, expected: str
) -> None:
    assert auth.pbkdf2(password, salt, iterations, keylen, hash_name).hex() == expected
    # str inputs are UTF-8 encoded (all vectors are ASCII)
    assert auth.pbkdf2(password.decode(), salt.decode(), iterations, keylen, hash_name).hex() == expected


def test_pbkdf2_rejects_nonsense() -> None:
    with pytest.raises(auth.InvalidAuthData):
        auth.pbkdf2("pw", "salt", 0, 32)
    with pytest.raises(auth.InvalidAuthData):
        auth.pbkdf2("pw", "salt", 1, 0)


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_pbkdf2_matches_autobahn(hash_name: str) -> None:
    from autobahn.wamp.auth import pbkdf2 as ab_pbkdf2

    rng = random.Random(6070)
    for _ in range(25):
        password = rng.randbytes(rng.randrange(0, 40))
        salt = rng.randbytes(rng.randrange(1, 24))
        iterations = rng.randrange(1, 300)
        keylen = rng.randrange(1, 80)
        assert auth.pbkdf2(password, salt, iterations, keylen, hash_name) == ab_pbkdf2(
            password, salt, iterations, keylen, hashfunc=hash_name
        )


# ---------------------------------------------------------------------------------------------
# WAMP-CRA
# ---------------------------------------------------------------------------------------------


def test_wampcra_challenge_has_the_spec_members() -> None:
    when = datetime(2014, 6, 22, 16, 36, 25, 448123, tzinfo=UTC)
    challenge = auth.wampcra_challenge(
        authid="peter",
        authrole="user",
        authprovider="userdb",
        nonce="LHRTC9zeOIrt_9U3",
        timestamp=when,
        session=3251278072152162,
    )
    obj = json.loads(challenge)
    # the values of the spec's CHALLENGE example
    assert obj == {
        "authid": "peter",
        "authrole": "user",
        "authmethod": "wampcra",
        "authprovider": "userdb",
        "nonce": "LHRTC9zeOIrt_9U3",
        "timestamp": "2014-06-22T16:36:25.448Z",
        "session": 3251278072152162,
    }
    assert list(obj) == ["authid", "authrole", "authmethod", "authprovider", "nonce", "timestamp", "session"]
    # a ready timestamp string is used as is; non-ASCII stays readable (signature is over UTF-8)
    text = auth.wampcra_challenge(authid="jürgen", authrole="r", authprovider="p", nonce="n", timestamp="T", session=1)
    assert "jürgen" in text and json.loads(text)["timestamp"] == "T"
    with pytest.raises(auth.InvalidAuthData):
        auth.wampcra_challenge(authid="a", authrole="r", authprovider="p", nonce="n", timestamp="T", session=True)


def test_wampcra_timestamp_format() -> None:
    assert auth.format_wampcra_timestamp(datetime(2014, 6, 22, 16, 51, 41, 643999)) == "2014-06-22T16:51:41.643Z"
    cest = timezone(timedelta(hours=2))
    assert auth.format_wampcra_timestamp(datetime(2014, 6, 22, 18, 51, 41, 5000, tzinfo=cest)) == (
        "2014-06-22T16:51:41.005Z"
    )


def test_wampcra_extra_and_client_signature() -> None:
    challenge = auth.wampcra_challenge(
        authid="peter", authrole="user", authprovider="static", nonce="x", timestamp="t", session=7
    )
    assert auth.wampcra_challenge_extra(challenge) == {"challenge": challenge}
    salted = auth.wampcra_challenge_extra(challenge, salt="salt123", iterations=100, keylen=32)
    assert salted == {"challenge": challenge, "salt": "salt123", "iterations": 100, "keylen": 32}

    plain_sig = auth.wampcra_client_signature("secret", {"challenge": challenge})
    assert plain_sig == auth.sign_wampcra("secret", challenge)
    assert auth.verify_wampcra("secret", challenge, plain_sig)

    salted_sig = auth.wampcra_client_signature("secret", salted)
    key = auth.derive_wampcra_key("secret", "salt123", 100, 32)
    # the router may store only the derived key
    assert auth.verify_wampcra(key, challenge, salted_sig)
    assert not auth.verify_wampcra("secret", challenge, salted_sig)
    # defaults when the salted challenge leaves out iterations/keylen (Autobahn's derive_key defaults)
    assert auth.wampcra_client_signature("secret", {"challenge": challenge, "salt": "s"}) == auth.sign_wampcra(
        auth.derive_wampcra_key("secret", "s", 1000, 32), challenge
    )
    for bad in ({}, {"challenge": 5}, {"challenge": "c", "salt": 5}, {"challenge": "c", "salt": "s", "keylen": "3"}):
        with pytest.raises(auth.InvalidAuthData):
            auth.wampcra_client_signature("secret", bad)


def test_wampcra_negative() -> None:
    challenge = auth.wampcra_challenge(
        authid="peter", authrole="user", authprovider="static", nonce="n1", timestamp="t", session=1
    )
    signature = auth.sign_wampcra("secret", challenge)
    assert auth.verify_wampcra("secret", challenge, signature)
    assert not auth.verify_wampcra("Secret", challenge, signature)  # wrong key
    tampered = challenge.replace('"user"', '"admin"')
    assert tampered != challenge
    assert not auth.verify_wampcra("secret", tampered, signature)  # tampered challenge
    assert not auth.verify_wampcra("secret", challenge, signature[:-2] + "==")
    assert not auth.verify_wampcra("secret", challenge, "")
    assert not auth.verify_wampcra("secret", challenge, None)
    assert not auth.verify_wampcra("secret", challenge, b"bytes")
    assert not auth.verify_wampcra("secret", challenge, "ünïcode")


def test_wampcra_matches_autobahn() -> None:
    from autobahn.wamp.auth import AuthWampCra, compute_wcs, derive_key
    from autobahn.wamp.types import Challenge

    rng = random.Random(2014)
    alphabet = string.ascii_letters + string.digits + "äöü€ ,.=+/"
    for _ in range(40):
        secret = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
        salt = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 20)))
        iterations = rng.randrange(1, 200)
        keylen = rng.randrange(8, 64)
        challenge = auth.wampcra_challenge(
            authid="".join(rng.choice(alphabet) for _ in range(8)),
            authrole="user",
            authprovider="static",
            nonce=base64.b64encode(rng.randbytes(24)).decode(),
            timestamp=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8)),
            session=rng.randrange(1, 2**53),
        )
        # key derivation and signing
        key = auth.derive_wampcra_key(secret, salt, iterations, keylen)
        assert key == derive_key(secret, salt, iterations, keylen)
        assert auth.sign_wampcra(secret, challenge) == compute_wcs(secret, challenge).decode()
        assert auth.sign_wampcra(key, challenge) == compute_wcs(key, challenge.encode()).decode()
        # a whole Autobahn client against our router-side check
        extra = auth.wampcra_challenge_extra(challenge, salt=salt, iterations=iterations, keylen=keylen)
        client = AuthWampCra(authid="x", secret=secret)
        signature = client.on_challenge(None, Challenge("wampcra", extra))
        assert auth.verify_wampcra(key, challenge, signature)
        assert signature == auth.wampcra_client_signature(secret, extra)
        plain = AuthWampCra(authid="x", secret=secret).on_challenge(
            None, Challenge("wampcra", auth.wampcra_challenge_extra(challenge))
        )
        assert auth.verify_wampcra(secret, challenge, plain)


def test_wampcra_nonce_helper() -> None:
    nonces = {auth.new_wampcra_nonce() for _ in range(10)}
    assert len(nonces) == 10 and all(len(n) == 32 for n in nonces)


# ---------------------------------------------------------------------------------------------
# WAMP-SCRAM
# ---------------------------------------------------------------------------------------------

SCRAM_VECTOR: dict[str, Any] = SCRAM["vectors"][0]


def _rfc_credential() -> auth.ScramCredential:
    v = SCRAM_VECTOR
    return auth.derive_scram_credential(
        v["password"], salt=base64.b64decode(v["salt"]), kdf=v["kdf"], iterations=v["iterations"]
    )


def test_scram_rfc7677_vector_math() -> None:
    v = SCRAM_VECTOR
    auth_message = auth.scram_auth_message(
        authmethod=v["authmethod"],
        authid=v["authid"],
        client_nonce=v["client_nonce"],
        nonce=v["nonce"],
        salt=v["salt"],
        iterations=v["iterations"],
        channel_binding=v["channel_binding"],
        cbind_data=v["cbind_data"],
    )
    assert auth_message == v["auth_message"].encode()
    # the AuthMessage is made of the RFC's own messages, exactly as RFC 5802 section 3 says
    rfc = v["rfc_messages"]
    client_final_without_proof = rfc["client-final-message"].rsplit(",p=", 1)[0]
    assert auth_message.decode() == ",".join(
        [rfc["client-first-message"].removeprefix("n,,"), rfc["server-first-message"], client_final_without_proof]
    )
    salted = auth.scram_salted_password(
        v["password"], kdf=v["kdf"], salt=base64.b64decode(v["salt"]), iterations=v["iterations"]
    )
    client_key = auth.scram_client_key(salted)
    proof = auth.scram_client_proof(client_key, auth_message)
    assert base64.b64encode(proof).decode() == v["client_proof"]
    server_signature = auth.scram_server_signature(auth.scram_server_key(salted), auth_message)
    assert base64.b64encode(server_signature).decode() == v["server_signature"]
    assert rfc["server-final-message"] == "v=" + v["server_signature"]
    # ClientProof = ClientKey XOR ClientSignature
    stored_key = auth.scram_stored_key(client_key)
    assert stored_key == hashlib.sha256(client_key).digest()
    assert _xor(proof, auth.scram_client_signature(stored_key, auth_message)) == client_key
    # the spec page's AUTHENTICATE / WELCOME example values are this vector's
    assert SCRAM["spec_examples"]["authenticate_signature"] == v["client_proof"]
    assert SCRAM["spec_examples"]["welcome_authextra_verifier"] == "v=" + v["server_signature"]


def test_scram_rfc7677_vector_router_and_client() -> None:
    v = SCRAM_VECTOR
    credential = _rfc_credential()
    challenge_extra = {
        "nonce": v["nonce"],
        "salt": v["salt"],
        "kdf": "pbkdf2",
        "iterations": v["iterations"],
        "memory": None,
    }
    response = auth.scram_client_authenticate(
        authmethod="wamp-scram",
        authid=v["authid"],
        password=v["password"],
        client_nonce=v["client_nonce"],
        challenge_extra=challenge_extra,
    )
    assert response.signature == v["client_proof"]
    assert response.extra == {"nonce": v["nonce"], "channel_binding": None, "cbind_data": None}
    result = auth.scram_verify_authenticate(
        credential,
        authmethod="wamp-scram",
        authid=v["authid"],
        client_nonce=v["client_nonce"],
        challenge_extra=challenge_extra,
        signature=response.signature,
        authenticate_extra=response.extra,
    )
    assert result.ok and result.error is None
    assert result.server_signature == v["server_signature"]
    assert result.welcome_authextra == {"verifier": v["server_signature"]}
    assert auth.scram_verify_server(response, result.welcome_authextra)
    # the spec example's "v=" form of the verifier is accepted as well
    assert auth.scram_verify_server(response, {"verifier": SCRAM["spec_examples"]["welcome_authextra_verifier"]})


def test_scram_escape_and_authmessage_variants() -> None:
    assert auth.scram_escape("a,b=c") == "a=2Cb=3Dc"
    spec = auth.scram_auth_message(
        authmethod="wamp-scram",
        authid="a,b=c",
        client_nonce="cn",
        nonce="cnsn",
        salt="c2FsdA==",
        iterations=10,
        channel_binding="tls-unique",
        cbind_data=b"\x01\x02",
    )
    cbind_input = base64.b64encode(b"p=tls-unique,,\x01\x02").decode()
    assert spec == f"n=a=2Cb=3Dc,r=cn,r=cnsn,s=c2FsdA==,i=10,c={cbind_input},r=cnsn".encode()
    autobahn_style = auth.scram_auth_message(
        authmethod="scram", authid="user", client_nonce="cn", nonce="cnsn", salt="c2FsdA==", iterations=10
    )
    assert autobahn_style == b"n=user,r=cn,r=cnsn,s=c2FsdA==,i=10,c=,r=cnsn"
    with pytest.raises(auth.InvalidAuthData):
        auth.scram_auth_message(
            authmethod="wamp-scram", authid="u", client_nonce="c", nonce="cs", salt="s", iterations=1,
            channel_binding="tls-unique",
        )  # fmt: skip
    with pytest.raises(auth.InvalidAuthData):
        auth.scram_auth_message(authmethod="SCRAM", authid="u", client_nonce="c", nonce="cs", salt="s", iterations=1)


def _spec_exchange(
    credential: auth.ScramCredential,
    password: str,
    *,
    authid: str = "alice",
    channel_binding: str | None = None,
    client_cbind: bytes | None = None,
) -> tuple[dict[str, Any], auth.ScramClientResponse, str]:
    client_nonce = auth.new_scram_nonce()
    extra = auth.scram_challenge_extra(
        credential, authmethod="wamp-scram", client_nonce=client_nonce, server_nonce=auth.new_scram_nonce()
    )
    response = auth.scram_client_authenticate(
        authmethod="wamp-scram",
        authid=authid,
        password=password,
        client_nonce=client_nonce,
        challenge_extra=extra,
        channel_binding=channel_binding,
        cbind_data=client_cbind,
        min_memory=8,  # the tests use cheap Argon2 parameters
    )
    return extra, response, client_nonce


@pytest.mark.parametrize(
    ("kdf", "iterations", "memory"), [("argon2id13", 2, 64), ("argon2id-13", 2, 64), ("pbkdf2", 4096, None)]
)
def test_scram_round_trip_and_negatives(kdf: str, iterations: int, memory: int | None) -> None:
    salt = auth.new_scram_salt()
    credential = auth.derive_scram_credential("pässword", salt=salt, kdf=kdf, iterations=iterations, memory=memory)
    assert auth.ScramCredential.from_config(credential.to_config()) == credential
    extra, response, client_nonce = _spec_exchange(credential, "pässword")
    assert extra["nonce"].startswith(client_nonce)
    assert extra["memory"] == memory
    assert extra["salt"] == base64.b64encode(salt).decode()

    def verify(**overrides: Any) -> auth.ScramVerification:
        kwargs: dict[str, Any] = {
            "authmethod": "wamp-scram",
            "authid": "alice",
            "client_nonce": client_nonce,
            "challenge_extra": extra,
            "signature": response.signature,
            "authenticate_extra": response.extra,
        }
        kwargs.update(overrides)
        return auth.scram_verify_authenticate(credential, **kwargs)

    ok = verify()
    assert ok.ok, ok.error
    assert auth.scram_verify_server(response, ok.welcome_authextra)

    # wrong password -> wrong proof
    _, wrong, _ = _spec_exchange(credential, "password")
    assert not verify(signature=wrong.signature).ok
    # a proof for a different exchange (other nonces) does not replay
    _, other, _ = _spec_exchange(credential, "pässword")
    assert not verify(signature=other.signature).ok
    # tampered proof / malformed proof / wrong types
    proof = bytearray(base64.b64decode(response.signature))
    proof[0] ^= 1
    assert not verify(signature=base64.b64encode(bytes(proof)).decode()).ok
    assert not verify(signature=response.signature[:-4]).ok
    assert not verify(signature=None).ok
    assert not verify(signature=base64.b64encode(b"short").decode()).ok
    # authid that differs from HELLO
    assert not verify(authid="mallory").ok
    # AUTHENTICATE.Extra.nonce must echo the CHALLENGE nonce
    assert not verify(authenticate_extra={**response.extra, "nonce": client_nonce + "AAAA"}).ok
    # the router must not be fooled into another binding
    assert not verify(authenticate_extra={**response.extra, "channel_binding": "tls-unique"}).ok
    assert not verify(authenticate_extra={**response.extra, "cbind_data": "AAAA"}).ok

    # the router's verifier: wrong or missing is refused by the client
    assert not auth.scram_verify_server(response, {})
    assert not auth.scram_verify_server(response, {"verifier": base64.b64encode(bytes(32)).decode()})
    assert not auth.scram_verify_server(response, {"verifier": "not base64!"})
    # a credential derived from another password, or another KDF flavour, does not verify
    other_credential = auth.derive_scram_credential("other", salt=salt, kdf=kdf, iterations=iterations, memory=memory)
    assert not auth.scram_verify_authenticate(
        other_credential,
        authmethod="wamp-scram",
        authid="alice",
        client_nonce=client_nonce,
        challenge_extra=extra,
        signature=response.signature,
        authenticate_extra=response.extra,
    ).ok


def test_scram_argon2_flavours_differ() -> None:
    salt = bytes(range(16))
    spec = auth.scram_salted_password("pw", kdf="argon2id13", salt=salt, iterations=2, memory=64)
    autobahn = auth.scram_salted_password("pw", kdf="argon2id-13", salt=salt, iterations=2, memory=64)
    assert len(spec) == 32
    assert autobahn == base64.b64encode(spec).rstrip(b"=") and len(autobahn) == 43
    # SASLprep applies to the spec flavour only: U+00A0 (no-break space) maps to a plain space
    assert auth.scram_salted_password("p\u00a0w", kdf="argon2id13", salt=salt, iterations=2, memory=64) == (
        auth.scram_salted_password("p w", kdf="argon2id13", salt=salt, iterations=2, memory=64)
    )
    assert auth.scram_salted_password("p\u00a0w", kdf="argon2id-13", salt=salt, iterations=2, memory=64) != (
        auth.scram_salted_password("p w", kdf="argon2id-13", salt=salt, iterations=2, memory=64)
    )
    for bad in (
        {"kdf": "argon2id", "iterations": 2, "memory": 64},
        {"kdf": "argon2id13", "iterations": 2, "memory": None},
        {"kdf": "argon2id13", "iterations": 0, "memory": 64},
        {"kdf": "pbkdf2", "iterations": True, "memory": None},
    ):
        with pytest.raises(auth.InvalidAuthData):
            auth.scram_salted_password("pw", salt=salt, **bad)


def test_scram_channel_binding() -> None:
    credential = auth.derive_scram_credential("pw", salt=bytes(16), kdf="pbkdf2", iterations=4096)
    cb = os.urandom(12)  # e.g. tls-unique of TLS 1.2
    extra, response, client_nonce = _spec_exchange(credential, "pw", channel_binding="tls-unique", client_cbind=cb)
    assert response.extra["channel_binding"] == "tls-unique"
    assert response.extra["cbind_data"] == base64.b64encode(cb).decode()

    def verify(server_cb: bytes | None, binding: str | None = "tls-unique") -> auth.ScramVerification:
        return auth.scram_verify_authenticate(
            credential,
            authmethod="wamp-scram",
            authid="alice",
            client_nonce=client_nonce,
            challenge_extra=extra,
            signature=response.signature,
            authenticate_extra=response.extra,
            channel_binding=binding,
            channel_binding_data=server_cb,
        )

    good = verify(cb)
    assert good.ok, good.error
    assert auth.scram_verify_server(response, good.welcome_authextra)
    mismatch = verify(os.urandom(12))  # another TLS channel (a man in the middle)
    assert not mismatch.ok and mismatch.error == "channel binding data mismatch"
    assert not verify(None).ok  # router has no binding data
    assert not verify(None, binding=None).ok  # router did not agree to bind but the client did

    # the client refuses a CHALLENGE that names another binding, and inconsistent arguments
    with pytest.raises(auth.InvalidAuthData):
        auth.scram_client_authenticate(
            authmethod="wamp-scram",
            authid="alice",
            password="pw",
            client_nonce=client_nonce,
            challenge_extra={**extra, "channel_binding": "tls-server-end-point"},
            channel_binding="tls-unique",
            cbind_data=cb,
        )
    with pytest.raises(auth.InvalidAuthData):
        auth.scram_client_authenticate(
            authmethod="wamp-scram",
            authid="alice",
            password="pw",
            client_nonce=client_nonce,
            challenge_extra=extra,
            channel_binding="tls-unique",
        )


def test_scram_client_refuses_bad_challenges() -> None:
    client_nonce = auth.new_scram_nonce()
    base = {
        "nonce": client_nonce + auth.new_scram_nonce(),
        "salt": base64.b64encode(bytes(16)).decode(),
        "kdf": "argon2id13",
        "iterations": 3,
        "memory": 1024,
    }

    def attempt(**changes: Any) -> None:
        auth.scram_client_authenticate(
            authmethod="wamp-scram",
            authid="alice",
            password="pw",
            client_nonce=client_nonce,
            challenge_extra={**base, **changes},
        )

    attempt()
    for changes in (
        {"nonce": auth.new_scram_nonce() + client_nonce},  # does not start with our nonce
        {"nonce": client_nonce},  # no server part
        {"salt": "not base64"},
        {"salt": "c2FsdA"},  # not canonical (no padding)
        {"kdf": "scrypt"},
        {"iterations": "3"},
        {"memory": 8},  # unusually low memory: a rogue router fishing for a cheap hash
        {"memory": 1 << 30},  # absurd memory
        {"kdf": "pbkdf2", "iterations": 1000},  # below RFC 7677's 4096
    ):
        with pytest.raises(auth.InvalidAuthData):
            attempt(**changes)


def test_scram_router_refuses_bad_client_nonce() -> None:
    credential = auth.derive_scram_credential("pw", salt=bytes(16), kdf="pbkdf2", iterations=4096)
    for bad in (None, "", "not base64!", 5):
        with pytest.raises(auth.InvalidAuthData):
            auth.scram_challenge_extra(credential, authmethod="wamp-scram", client_nonce=bad, server_nonce="AAAA")


def test_scram_credential_config() -> None:
    credential = auth.derive_scram_credential("pw", salt=b"0123456789abcdef", kdf="argon2id13", iterations=2, memory=64)
    config = credential.to_config()
    assert config["salt"] == b"0123456789abcdef".hex()
    assert len(config["stored-key"]) == 64 and len(config["server-key"]) == 64
    for bad in (
        {**config, "kdf": "md5"},
        {**config, "memory": None},
        {**config, "stored-key": "00"},
        {**config, "iterations": 0},
        {k: v for k, v in config.items() if k != "salt"},
    ):
        with pytest.raises(auth.InvalidAuthData):
            auth.ScramCredential.from_config(bad)
    underscored = {k.replace("-", "_"): v for k, v in config.items()}
    assert auth.ScramCredential.from_config(underscored) == credential


class _Log:
    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def error(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Session:
    log = _Log()


def test_scram_credential_matches_autobahn() -> None:
    pytest.importorskip("passlib")
    from autobahn.wamp.auth import derive_scram_credential

    salt = os.urandom(16)
    ours = auth.derive_scram_credential("s3cr3t pässword", salt=salt, kdf="argon2id-13", iterations=4096, memory=512)
    assert ours.to_config() == derive_scram_credential("user@example.com", "s3cr3t pässword", salt)


def test_scram_autobahn_client_against_our_router() -> None:
    pytest.importorskip("passlib")
    from autobahn.wamp.auth import AuthScram
    from autobahn.wamp.types import Challenge

    rng = random.Random(5802)
    for i in range(6):
        authid = "".join(rng.choice(string.ascii_letters + "äö@.") for _ in range(rng.randrange(1, 12)))
        password = "".join(rng.choice(string.printable.strip() + "äöü€") for _ in range(rng.randrange(1, 20)))
        credential = auth.derive_scram_credential(
            password, salt=rng.randbytes(16), kdf="argon2id-13", iterations=rng.randrange(1, 4), memory=64
        )
        client = AuthScram(authid=authid, password=password)
        client_nonce = client.authextra["nonce"]
        extra = auth.scram_challenge_extra(
            credential, authmethod="scram", client_nonce=client_nonce, server_nonce=auth.new_scram_nonce()
        )
        proof = client.on_challenge(None, Challenge("scram", extra)).decode()
        result = auth.scram_verify_authenticate(
            credential,
            authmethod="scram",
            authid=authid,
            client_nonce=client_nonce,
            challenge_extra=extra,
            signature=proof,
            authenticate_extra={},
        )
        assert result.ok, result.error
        assert set(result.welcome_authextra) == {"scram_server_signature"}
        # Autobahn's own check of the router's signature (None means accepted)
        assert client.on_welcome(_Session(), result.welcome_authextra) is None
        assert client.on_welcome(_Session(), {"scram_server_signature": base64.b64encode(bytes(32)).decode()})
        # our client in the Autobahn dialect computes the very same proof
        ours = auth.scram_client_authenticate(
            authmethod="scram",
            authid=authid,
            password=password,
            client_nonce=client_nonce,
            challenge_extra=extra,
            min_memory=8,
        )
        assert ours.signature == proof and ours.extra == {}
        assert auth.scram_verify_server(ours, result.welcome_authextra)
        # and a spec-dialect exchange does not verify as an Autobahn one
        if i == 0:
            assert not auth.scram_verify_authenticate(
                credential,
                authmethod="wamp-scram",
                authid=authid,
                client_nonce=client_nonce,
                challenge_extra=extra,
                signature=proof,
                authenticate_extra={"nonce": extra["nonce"], "channel_binding": None},
            ).ok


def test_scram_client_accepts_crossbar_nonce() -> None:
    """Crossbar.io sends base64(raw client nonce + raw server nonce), not a string concatenation."""
    client_nonce = base64.b64encode(os.urandom(16)).decode()  # ends in "=="
    crossbar_nonce = base64.b64encode(base64.b64decode(client_nonce) + os.urandom(16)).decode()
    assert not crossbar_nonce.startswith(client_nonce)
    response = auth.scram_client_authenticate(
        authmethod="scram",
        authid="u",
        password="pw",
        client_nonce=client_nonce,
        challenge_extra={
            "nonce": crossbar_nonce,
            "salt": base64.b64encode(os.urandom(16)).decode(),
            "kdf": "argon2id-13",
            "iterations": 2,
            "memory": 512,
        },
    )
    assert len(base64.b64decode(response.signature)) == 32


def test_scram_autobahn_dialect_has_no_channel_binding() -> None:
    credential = auth.derive_scram_credential("pw", salt=bytes(16), kdf="argon2id-13", iterations=1, memory=64)
    extra = auth.scram_challenge_extra(credential, authmethod="scram", client_nonce="AAAA", server_nonce="BBBB")
    assert extra == {
        "nonce": "AAAABBBB",
        "salt": base64.b64encode(bytes(16)).decode(),
        "kdf": "argon2id-13",
        "iterations": 1,
        "memory": 64,
    }
    pbkdf2_credential = auth.derive_scram_credential("pw", salt=bytes(16), kdf="pbkdf2", iterations=4096)
    assert "memory" not in auth.scram_challenge_extra(
        pbkdf2_credential, authmethod="scram", client_nonce="AAAA", server_nonce="BBBB"
    )
    result = auth.scram_verify_authenticate(
        credential,
        authmethod="scram",
        authid="u",
        client_nonce="AAAA",
        challenge_extra=extra,
        signature=base64.b64encode(bytes(32)).decode(),
        authenticate_extra={},
        channel_binding="tls-unique",
        channel_binding_data=b"x",
    )
    assert not result.ok


# SASLprep (RFC 4013)


def test_saslprep_rfc4013_examples() -> None:
    # RFC 4013 section 3
    assert auth.saslprep("I\u00adX") == "IX"  # SOFT HYPHEN mapped to nothing
    assert auth.saslprep("user") == "user"
    assert auth.saslprep("USER") == "USER"  # case preserved
    assert auth.saslprep("\u00aa") == "a"  # NFKC
    assert auth.saslprep("\u2168") == "IX"  # NFKC
    with pytest.raises(auth.InvalidAuthData):
        auth.saslprep("\u0007")  # prohibited character
    with pytest.raises(auth.InvalidAuthData):
        auth.saslprep("\u0627\u0031")  # bidi: RandALCat must start and end the string
    assert auth.saslprep("a\u00a0b") == "a b"  # non-ASCII space mapped to SPACE
    with pytest.raises(auth.InvalidAuthData):
        auth.saslprep("\u0221")  # unassigned in Unicode 3.2
    assert auth.saslprep("\u0221", allow_unassigned=True) == "\u0221"


def test_saslprep_matches_passlib() -> None:
    passlib_utils = pytest.importorskip("passlib.utils")
    pool = [
        *(string.ascii_letters + string.digits + string.punctuation + " "),
        *("\u00a0", "\u2003", "\u3000", "\u00ad", "\u200b", "\ufeff", "\u034f"),  # spaces, mapped to nothing
        *("\u00aa", "\u2168", "\ufb01", "\u00c5", "A\u030a", "\u1e9b\u0323"),  # NFKC
        *("\u0007", "\u007f", "\u0085", "\ue000", "\ufdd0", "\ufff9", "\u2ff0", "\u200e", "\U000e0001"),  # prohibited
        *("\u05d0", "\u0627", "\u0661", "\u0221", "é", "ß", "€", "日本"),  # bidi, unassigned, other
    ]
    rng = random.Random(4013)
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 6)))
        try:
            expected: str | None = passlib_utils.saslprep(text)
        except ValueError:
            expected = None
        try:
            actual: str | None = auth.saslprep(text)
        except auth.InvalidAuthData:
            actual = None
        assert actual == expected, repr(text)


# ---------------------------------------------------------------------------------------------
# WAMP-Cryptosign
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", CRYPTOSIGN["sign_vectors"], ids=lambda v: v["id"])
def test_cryptosign_spec_vectors(vector: dict[str, Any]) -> None:
    key = auth.CryptosignKey.from_hex(vector["private_key"])
    assert key.public_key_hex == vector["public_key"]
    assert key.seed.hex() == vector["private_key"]
    channel_id = bytes.fromhex(vector["channel_id"]) if vector["channel_id"] else None
    assert auth.cryptosign_message(vector["challenge"], channel_id).hex() == vector["signed_message"]
    signature = auth.cryptosign_sign_challenge(key, vector["challenge"], channel_id)
    assert signature == vector["signature"]  # Ed25519 is deterministic: byte-exact
    assert auth.cryptosign_verify(vector["public_key"], vector["challenge"], signature, channel_id)
    assert auth.cryptosign_verify(key.public_key, vector["challenge"], signature.upper(), channel_id)
    # channel binding mismatch: with binding expected but none used, or the other way round
    other_channel = None if channel_id else os.urandom(32)
    assert not auth.cryptosign_verify(vector["public_key"], vector["challenge"], signature, other_channel)
    if channel_id:
        flipped = bytes([channel_id[0] ^ 1]) + channel_id[1:]
        assert not auth.cryptosign_verify(vector["public_key"], vector["challenge"], signature, flipped)


@pytest.mark.parametrize("example", CRYPTOSIGN["verify_only_examples"], ids=lambda v: v["id"])
def test_cryptosign_spec_examples_verify(example: dict[str, Any]) -> None:
    assert auth.cryptosign_verify(example["public_key"], example["challenge"], example["signature"])


@pytest.mark.parametrize("exchange", EXCHANGES, ids=lambda v: v["id"])
def test_cryptosign_spec_exchanges(exchange: dict[str, Any]) -> None:
    channel_id = bytes.fromhex(exchange["channel_id"]) if exchange["channel_id"] else None
    if exchange["channel_id"] and exchange["channel_binding"]:
        # the channel ID is the same on both sides: the client's and the router's signed messages agree
        client_msg = bytes.fromhex(exchange["client_signature"])[64:]
        router_msg = bytes.fromhex(exchange["router_signature"])[64:]
        assert _xor(client_msg, bytes.fromhex(exchange["router_challenge"])) == channel_id
        assert _xor(router_msg, bytes.fromhex(exchange["client_challenge"])) == channel_id
    # client authentication: AUTHENTICATE.Signature over CHALLENGE.Extra.challenge (XOR channel ID)
    assert auth.cryptosign_verify(
        exchange["client_pubkey"], exchange["router_challenge"], exchange["client_signature"], channel_id
    )
    # router authentication: CHALLENGE.Extra.signature over HELLO.Details.authextra.challenge
    challenge_extra = {
        "challenge": exchange["router_challenge"],
        "channel_binding": exchange["channel_binding"],
        "pubkey": exchange["router_pubkey"],
        "signature": exchange["router_signature"],
    }
    assert auth.cryptosign_verify_router(
        challenge_extra,
        exchange["client_challenge"],
        trusted_pubkeys=[exchange["router_pubkey"]],
        channel_id=channel_id,
    )
    assert auth.cryptosign_verify_router(
        challenge_extra, exchange["client_challenge"], trusted_pubkeys=None, channel_id=channel_id
    )
    # an untrusted router key, the wrong client challenge, a wrong channel: refused
    assert not auth.cryptosign_verify_router(
        challenge_extra,
        exchange["client_challenge"],
        trusted_pubkeys=[exchange["client_pubkey"]],
        channel_id=channel_id,
    )
    assert not auth.cryptosign_verify_router(
        challenge_extra, exchange["router_challenge"], trusted_pubkeys=None, channel_id=channel_id
    )
    wrong_channel = os.urandom(32) if channel_id is None else None
    assert not auth.cryptosign_verify_router(
        challenge_extra, exchange["client_challenge"], trusted_pubkeys=None, channel_id=wrong_channel
    )
    assert not auth.cryptosign_verify(
        exchange["client_pubkey"], exchange["router_challenge"], exchange["client_signature"], wrong_channel
    )
    # the router's signature does not pass as the client's (other key, other message)
    assert not auth.cryptosign_verify(
        exchange["client_pubkey"], exchange["client_challenge"], exchange["router_signature"], channel_id
    )


def test_cryptosign_router_authentication_round_trip() -> None:
    router_key = auth.new_cryptosign_key()
    client_challenge = auth.new_cryptosign_challenge()
    channel_id = auth.cryptosign_channel_id("tls-exporter", os.urandom(32))
    extra = auth.cryptosign_router_challenge_extra(router_key, client_challenge, channel_id)
    assert extra["pubkey"] == router_key.public_key_hex
    assert len(extra["signature"]) == 192
    challenge_extra = {"challenge": auth.new_cryptosign_challenge(), "channel_binding": "tls-exporter", **extra}
    assert auth.cryptosign_verify_router(
        challenge_extra, client_challenge, trusted_pubkeys=[router_key.public_key_hex.upper()], channel_id=channel_id
    )
    assert not auth.cryptosign_verify_router(
        challenge_extra, client_challenge, trusted_pubkeys=[], channel_id=channel_id
    )
    assert not auth.cryptosign_verify_router(challenge_extra, client_challenge, trusted_pubkeys=None, channel_id=None)
    for broken in ({"pubkey": None}, {"signature": None}, {"pubkey": "zz"}, {"signature": extra["signature"][:-2]}):
        assert not auth.cryptosign_verify_router(
            {**challenge_extra, **broken}, client_challenge, trusted_pubkeys=None, channel_id=channel_id
        )


def test_cryptosign_negative() -> None:
    key = auth.CryptosignKey.from_seed(os.urandom(32))
    other = auth.new_cryptosign_key()
    challenge = auth.new_cryptosign_challenge()
    signature = auth.cryptosign_sign_challenge(key, challenge)
    assert auth.cryptosign_verify(key.public_key_hex, challenge, signature)
    assert not auth.cryptosign_verify(other.public_key_hex, challenge, signature)  # wrong key
    # tampered challenge: a signature over another challenge is refused, even if genuinely signed
    other_challenge = auth.new_cryptosign_challenge()
    assert not auth.cryptosign_verify(key.public_key_hex, other_challenge, signature)
    # the embedded message swapped for the expected one: the Ed25519 signature no longer fits
    forged = signature[:128] + other_challenge
    assert not auth.cryptosign_verify(key.public_key_hex, other_challenge, forged)
    # a flipped bit in the signature
    raw = bytearray(bytes.fromhex(signature))
    raw[5] ^= 0x10
    assert not auth.cryptosign_verify(key.public_key_hex, challenge, raw.hex())
    # malformed signatures are just wrong
    for bad in (None, 5, "", signature[:128], signature + "00", "g" * 192, " " + signature[1:]):
        assert not auth.cryptosign_verify(key.public_key_hex, challenge, bad)
    # malformed keys / challenges are errors
    for bad_challenge in ("00" * 31, "zz" * 32, "0x" + "00" * 31, "00 " * 32):
        with pytest.raises(auth.InvalidAuthData):
            auth.cryptosign_verify(key.public_key_hex, bad_challenge, signature)
    with pytest.raises(auth.InvalidAuthData):
        auth.cryptosign_verify("00" * 31, challenge, signature)
    with pytest.raises(auth.InvalidAuthData):
        auth.cryptosign_message(challenge, b"\x00" * 12)
    with pytest.raises(auth.InvalidAuthData):
        auth.CryptosignKey.from_seed(b"\x00" * 31)
    with pytest.raises(auth.InvalidAuthData):
        auth.CryptosignKey.from_hex("00" * 33)


def test_cryptosign_channel_id() -> None:
    finished = os.urandom(12)
    assert auth.cryptosign_channel_id("tls-unique", finished) == hashlib.sha256(finished).digest()
    exporter = os.urandom(32)
    assert auth.cryptosign_channel_id("tls-exporter", exporter) == exporter
    for binding, data in (("tls-unique", b""), ("tls-exporter", b"\x00" * 31), ("tls-server-end-point", b"x" * 32)):
        with pytest.raises(auth.InvalidAuthData):
            auth.cryptosign_channel_id(binding, data)


async def test_cryptosign_matches_autobahn() -> None:
    pytest.importorskip("nacl")
    import asyncio

    import txaio

    txaio.use_asyncio()
    txaio.config.loop = asyncio.get_running_loop()
    try:
        import autobahn.wamp.mnemonic  # noqa: F401  (needs base58 and ecdsa, which we do not install)
    except ImportError:
        # autobahn.wamp.cryptosign imports mnemonic_to_private_key only for seed phrases; stand in for it
        stub = types.ModuleType("autobahn.wamp.mnemonic")
        stub.mnemonic_to_private_key = None  # type: ignore[attr-defined]
        sys.modules["autobahn.wamp.mnemonic"] = stub
    from autobahn.wamp.cryptosign import CryptosignKey as AbKey
    from autobahn.wamp.types import Challenge

    rng = random.Random(8032)
    for i in range(30):
        seed = rng.randbytes(32)
        challenge = rng.randbytes(32).hex()
        finished = rng.randbytes(12) if i % 2 else None
        channel_id = auth.cryptosign_channel_id("tls-unique", finished) if finished else None
        ab_key = AbKey.from_bytes(seed)
        ours = auth.CryptosignKey.from_seed(seed)
        assert ab_key.public_key() == ours.public_key_hex
        ab_signature = await ab_key.sign_challenge(
            Challenge("cryptosign", {"challenge": challenge}),
            channel_id=channel_id,
            channel_id_type="tls-unique" if channel_id else None,
        )
        assert ab_signature == auth.cryptosign_sign_challenge(ours, challenge, channel_id)
        assert auth.cryptosign_verify(ab_key.public_key(binary=True), challenge, ab_signature, channel_id)


# ---------------------------------------------------------------------------------------------
# Ticket hashes
# ---------------------------------------------------------------------------------------------


def test_ticket_pbkdf2_hash() -> None:
    stored = auth.hash_ticket("tïcket", salt=b"saltsaltsaltsalt", scheme="pbkdf2-sha256", iterations=1000)
    scheme, rounds, salt_b64, hash_b64 = stored.split("$")
    assert (scheme, rounds) == ("pbkdf2-sha256", "1000")
    assert base64.b64decode(salt_b64) == b"saltsaltsaltsalt"
    assert base64.b64decode(hash_b64) == hashlib.pbkdf2_hmac("sha256", "tïcket".encode(), b"saltsaltsaltsalt", 1000)
    assert auth.is_ticket_hash(stored)
    assert auth.verify_ticket("tïcket", stored)
    assert not auth.verify_ticket("ticket", stored)
    assert not auth.verify_ticket("", stored)
    assert not auth.verify_ticket(None, stored)
    # (PBKDF2 inherits HMAC's zero-padding of short keys, so "tïcket\x00" would also pass: harmless,
    # since it takes knowing the ticket)
    # default cost
    assert auth.hash_ticket("t", salt=b"s" * 16, scheme="pbkdf2-sha256").split("$")[1] == "600000"


def test_ticket_argon2_hash() -> None:
    stored = auth.hash_ticket("secret-ticket", salt=b"0123456789abcdef", iterations=1, memory=64, parallelism=1)
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert auth.is_ticket_hash(stored)
    assert auth.verify_ticket("secret-ticket", stored)
    assert not auth.verify_ticket("secret-ticket2", stored)
    assert not auth.verify_ticket(42, stored)
    # interoperable with argon2-cffi's PasswordHasher both ways
    assert PasswordHasher().verify(stored, "secret-ticket")
    from_hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("another")
    assert auth.verify_ticket("another", from_hasher)
    assert not auth.verify_ticket("Another", from_hasher)
    random_salted = auth.new_ticket_hash("x", scheme="pbkdf2-sha256")
    assert random_salted != auth.new_ticket_hash("x", scheme="pbkdf2-sha256")
    assert auth.verify_ticket("x", random_salted)


def test_ticket_malformed_stored_values() -> None:
    for stored in (
        "plain-ticket",
        "pbkdf2-sha256$0$AAAA$AAAA",
        "pbkdf2-sha256$10$AAAA",
        "$argon2id$nonsense",
        "sha1$1$a$b",
    ):
        assert not auth.is_ticket_hash(stored)
        with pytest.raises(auth.InvalidAuthData):
            auth.verify_ticket("x", stored)
    with pytest.raises(auth.InvalidAuthData):
        auth.hash_ticket("x", salt=b"", scheme="pbkdf2-sha256")
    with pytest.raises(auth.InvalidAuthData):
        auth.hash_ticket("x", salt=b"short", scheme="argon2id")


def test_ticket_equals() -> None:
    assert auth.ticket_equals("abc", "abc")
    assert not auth.ticket_equals("abc", "abd")
    assert not auth.ticket_equals("abc", "ab")
    assert not auth.ticket_equals("abc", None)
    assert auth.ticket_equals("äbc", "äbc")
