"""The client's ScramAuth and CryptosignAuth against the router-side math of ``cloverleaf.wamp.auth``.

Each exchange is simulated message by message: HELLO.authextra from the client object, CHALLENGE.Extra
and the AUTHENTICATE check from the router functions, WELCOME.authextra back to the client. The last
part runs the real :class:`~cloverleaf.client.Session` against a scripted RawSocket router, to check
that a router failing mutual authentication gets an ABORT and ``connect`` raises.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cloverleaf.client import (
    NO_RECONNECT,
    ApplicationError,
    AuthenticationFailed,
    CryptosignAuth,
    ScramAuth,
    connect,
)
from cloverleaf.wamp import auth
from cloverleaf.wamp.rawsocket import RawSocketServer, frame
from cloverleaf.wamp.serializers import SERIALIZERS

AUTH_DATA = Path(__file__).resolve().parents[1] / "data" / "wamp-proto-testsuite" / "auth"
#: the client does no channel binding: the vectors without a channel ID
_ALL_SIGN_VECTORS = json.loads((AUTH_DATA / "cryptosign_vectors.json").read_text())["sign_vectors"]
SIGN_VECTORS = [v for v in _ALL_SIGN_VECTORS if v["channel_id"] is None]
EXCHANGES = json.loads((AUTH_DATA / "cryptosign_exchange_vectors.json").read_text())["exchanges"]

SALT = b"0123456789abcdef"
#: cheap but acceptable to the client's floor (pbkdf2 >= 4096 iterations, argon2 >= 512 KiB)
SCRAM_COSTS = {"argon2id13": (2, 512), "argon2id-13": (2, 512), "pbkdf2": (4096, None)}
SCRAM_CASES = [
    ("wamp-scram", "argon2id13"),
    ("wamp-scram", "pbkdf2"),
    ("scram", "argon2id-13"),
    ("scram", "pbkdf2"),
    ("wamp-scram", "argon2id-13"),
    ("scram", "argon2id13"),
]


def _credential(password: str, kdf: str) -> auth.ScramCredential:
    iterations, memory = SCRAM_COSTS[kdf]
    return auth.derive_scram_credential(password, salt=SALT, kdf=kdf, iterations=iterations, memory=memory)


def _scram_exchange(
    client: ScramAuth, credential: auth.ScramCredential
) -> tuple[dict[str, Any], auth.ScramVerification]:
    """HELLO -> CHALLENGE -> AUTHENTICATE -> router's verdict; returns (CHALLENGE.Extra, verdict)."""
    hello = client.authextra()
    challenge = auth.scram_challenge_extra(
        credential, authmethod=client.method, client_nonce=hello["nonce"], server_nonce=auth.new_scram_nonce()
    )
    signature, extra = client.on_challenge(dict(challenge))
    assert client.authid is not None
    verdict = auth.scram_verify_authenticate(
        credential,
        authmethod=client.method,
        authid=client.authid,
        client_nonce=hello["nonce"],
        challenge_extra=challenge,
        signature=signature,
        authenticate_extra=extra,
    )
    return challenge, verdict


# ---------------------------------------------------------------------------------------------
# ScramAuth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("authmethod", "kdf"), SCRAM_CASES)
def test_scram_full_exchange(authmethod: str, kdf: str) -> None:
    client = ScramAuth("alice", "pässwörd", authmethod)
    assert client.method == authmethod
    verdict = _scram_exchange(client, _credential("pässwörd", kdf))[1]
    assert verdict.ok, verdict.error
    expected_key = "verifier" if authmethod == "wamp-scram" else "scram_server_signature"
    assert set(verdict.welcome_authextra) == {expected_key}
    assert client.on_welcome({"authmethod": authmethod, "authextra": verdict.welcome_authextra}) is True


def test_scram_hello_authextra_is_a_fresh_nonce() -> None:
    client = ScramAuth("alice", "pw")
    first, second = client.authextra(), client.authextra()
    assert set(first) == {"nonce"}
    assert len(base64.b64decode(first["nonce"], validate=True)) == 16
    assert first["nonce"] != second["nonce"]


def test_scram_accepts_the_spec_verifier_with_its_v_prefix() -> None:
    client = ScramAuth("alice", "pw", "wamp-scram")
    verdict = _scram_exchange(client, _credential("pw", "pbkdf2"))[1]
    assert client.on_welcome({"authextra": {"verifier": "v=" + verdict.server_signature}})


@pytest.mark.parametrize(("authmethod", "kdf"), SCRAM_CASES[:4])
def test_scram_wrong_password_is_refused_by_the_router(authmethod: str, kdf: str) -> None:
    client = ScramAuth("alice", "wrong", authmethod)
    verdict = _scram_exchange(client, _credential("right", kdf))[1]
    assert not verdict.ok


@pytest.mark.parametrize("authmethod", ["wamp-scram", "scram"])
def test_scram_wrong_router_signature_is_rejected(authmethod: str) -> None:
    """A router that does not know the stored credential cannot produce the ServerSignature."""
    client = ScramAuth("alice", "pw", authmethod)
    verdict = _scram_exchange(client, _credential("pw", "pbkdf2"))[1]
    assert verdict.ok
    key, good = next(iter(verdict.welcome_authextra.items()))
    raw = bytearray(base64.b64decode(good))
    raw[0] ^= 1
    tampered = base64.b64encode(bytes(raw)).decode()
    # a rogue router: the same challenge parameters, but another server key
    impostor = auth.ScramCredential("pbkdf2", SALT, 4096, None, b"\0" * 32, b"\1" * 32)
    forged = base64.b64encode(auth.scram_server_signature(impostor.server_key, b"anything")).decode()
    for authextra in ({key: tampered}, {key: forged}, {}, {key: 42}, {key: "not base64!"}):
        assert client.on_welcome({"authextra": authextra}) is False, authextra
    assert client.on_welcome({}) is False
    assert client.on_welcome({"authextra": verdict.welcome_authextra}) is True


def test_scram_welcome_without_a_challenge_is_rejected() -> None:
    """A router that skips the CHALLENGE (or an old exchange's verifier) does not pass."""
    client = ScramAuth("alice", "pw")
    verdict = _scram_exchange(client, _credential("pw", "pbkdf2"))[1]
    client.authextra()  # the next HELLO (a reconnection) forgets the previous exchange
    assert client.on_welcome({"authextra": verdict.welcome_authextra}) is False
    assert ScramAuth("bob", "pw").on_welcome({"authextra": verdict.welcome_authextra}) is False


def test_scram_refuses_an_unusable_challenge() -> None:
    client = ScramAuth("alice", "pw")
    credential = _credential("pw", "pbkdf2")
    with pytest.raises(AuthenticationFailed):  # no HELLO nonce yet
        client.on_challenge({})
    nonce = client.authextra()["nonce"]
    good = auth.scram_challenge_extra(credential, authmethod="wamp-scram", client_nonce=nonce,
                                      server_nonce=auth.new_scram_nonce())  # fmt: skip
    bad_challenges = [
        {**good, "nonce": auth.new_scram_nonce() + auth.new_scram_nonce()},  # does not continue our nonce
        {**good, "iterations": 1000},  # a cheap pbkdf2: a rogue router fishing for an easy hash
        {**good, "kdf": "md5"},
        {**good, "salt": "%%%"},
        {**good, "kdf": "argon2id13", "memory": 8},  # below the client's memory floor
    ]
    for extra in bad_challenges:
        with pytest.raises(AuthenticationFailed):
            client.on_challenge(extra)
    signature, _ = client.on_challenge(good)
    assert signature


def test_scram_rejects_an_unknown_authmethod() -> None:
    with pytest.raises(ValueError, match="authmethod"):
        ScramAuth("alice", "pw", "SCRAM-SHA-256")


# ---------------------------------------------------------------------------------------------
# CryptosignAuth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", SIGN_VECTORS, ids=[v["id"] for v in SIGN_VECTORS])
def test_cryptosign_signs_the_spec_vectors(vector: dict[str, Any]) -> None:
    client = CryptosignAuth("alice", vector["private_key"])
    assert client.public_key == vector["public_key"]
    assert client.authextra() == {"pubkey": vector["public_key"]}
    signature, extra = client.on_challenge({"challenge": vector["challenge"], "channel_binding": None})
    assert signature == vector["signature"]
    assert extra == {}


def test_cryptosign_full_exchange_without_router_authentication() -> None:
    key = auth.new_cryptosign_key()
    client = CryptosignAuth(None, key.seed.hex())
    hello = client.authextra()
    assert hello == {"pubkey": key.public_key_hex}
    challenge = auth.new_cryptosign_challenge()
    signature, _ = client.on_challenge({"challenge": challenge, "channel_binding": None})
    assert auth.cryptosign_verify(hello["pubkey"], challenge, signature)
    assert not auth.cryptosign_verify(auth.new_cryptosign_key().public_key_hex, challenge, signature)
    assert client.on_welcome({"authmethod": "cryptosign"}) is True


def test_cryptosign_key_forms(tmp_path: Path) -> None:
    key = auth.new_cryptosign_key()
    path = tmp_path / "client.key"
    path.write_text(key.seed.hex() + "\n")
    for client in (
        CryptosignAuth("a", key.seed),
        CryptosignAuth("a", key.seed.hex().upper() + "\n"),
        CryptosignAuth("a", key),
        CryptosignAuth.from_keyfile("a", path),
    ):
        assert client.public_key == key.public_key_hex
    for bad in ("00" * 31, "zz" * 32, b"\0" * 31):
        with pytest.raises(ValueError):
            CryptosignAuth("a", bad)
    with pytest.raises(ValueError):
        CryptosignAuth("a", key.seed, router_pubkeys=["abc"])
    with pytest.raises(ValueError):
        CryptosignAuth("a", key.seed, router_pubkeys=[])


def test_cryptosign_router_authentication() -> None:
    router_key = auth.new_cryptosign_key()
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed, router_pubkeys=[router_key.public_key_hex.upper()])
    hello = client.authextra()
    assert set(hello) == {"pubkey", "challenge"}
    assert hello["challenge"] != client.authextra()["challenge"]  # fresh per HELLO
    hello = client.authextra()
    router_challenge = auth.new_cryptosign_challenge()
    extra = {
        "challenge": router_challenge,
        "channel_binding": None,
        **auth.cryptosign_router_challenge_extra(router_key, hello["challenge"]),
    }
    assert client.on_welcome({}) is False  # not before the router proved its key
    signature, _ = client.on_challenge(extra)
    assert auth.cryptosign_verify(hello["pubkey"], router_challenge, signature)
    assert client.on_welcome({"authmethod": "cryptosign"}) is True
    client.authextra()  # a new HELLO: the router must prove its key again
    assert client.on_welcome({"authmethod": "cryptosign"}) is False


def test_cryptosign_router_authentication_spec_example() -> None:
    """Example 1 of the spec's message exchanges: the router's signature over our challenge."""
    example = EXCHANGES[0]
    assert example["channel_binding"] is None
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed, router_pubkeys=[example["router_pubkey"]])
    client.authextra()
    client._client_challenge = example["client_challenge"]  # the challenge the spec's client sent
    extra = {"challenge": example["router_challenge"], "channel_binding": None,
             "pubkey": example["router_pubkey"], "signature": example["router_signature"]}  # fmt: skip
    client.on_challenge(extra)
    assert client.on_welcome({})


def test_cryptosign_wrong_router_signature_is_rejected() -> None:
    router_key, other_key = auth.new_cryptosign_key(), auth.new_cryptosign_key()
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed, router_pubkeys=[router_key.public_key_hex])
    hello = client.authextra()
    base = {"challenge": auth.new_cryptosign_challenge(), "channel_binding": None}
    good = auth.cryptosign_router_challenge_extra(router_key, hello["challenge"])
    sig = bytearray(bytes.fromhex(good["signature"]))
    sig[0] ^= 1
    forged = auth.cryptosign_sign_challenge(other_key, hello["challenge"])
    bad_extras = [
        {},  # the router did not sign at all
        {"pubkey": router_key.public_key_hex},
        {**good, "signature": bytes(sig).hex()},  # tampered
        # signed over another challenge (a replay of an older exchange)
        auth.cryptosign_router_challenge_extra(router_key, auth.new_cryptosign_challenge()),
        # a valid signature by a key the client does not trust
        auth.cryptosign_router_challenge_extra(other_key, hello["challenge"]),
        # a trusted pubkey, but signed by another key
        {"pubkey": router_key.public_key_hex, "signature": forged},
        {**good, "signature": "zz"},
    ]
    for bad in bad_extras:
        with pytest.raises(AuthenticationFailed):
            client.on_challenge({**base, **bad})
        assert client.on_welcome({}) is False
    client.on_challenge({**base, **good})
    assert client.on_welcome({}) is True


def test_cryptosign_refuses_unrequested_channel_binding_and_bad_challenges() -> None:
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed)
    client.authextra()
    with pytest.raises(AuthenticationFailed, match="channel binding"):
        client.on_challenge({"challenge": auth.new_cryptosign_challenge(), "channel_binding": "tls-unique"})
    for extra in ({}, {"challenge": "abc"}, {"challenge": 5}):
        with pytest.raises(AuthenticationFailed):
            client.on_challenge(extra)


# ---------------------------------------------------------------------------------------------
# The session's hooks, against a scripted RawSocket router
# ---------------------------------------------------------------------------------------------

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE = 1, 2, 3, 4, 5, 6
JSON = SERIALIZERS["json"]
ROUTER_ROLES = {"broker": {}, "dealer": {}}

Script = Callable[[list[Any]], list[list[Any]]]


class ScriptedRouter:
    """Answers each message the client sends with what ``script`` returns; records everything."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[list[Any]] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framing = RawSocketServer([JSON.RAWSOCKET_ID], 1 << 20)
        try:
            while data := await reader.read(65536):
                payloads = framing.receive(data)
                writer.write(framing.data_to_send())
                for payload in payloads:
                    message = JSON.decode(payload)
                    self.received.append(message)
                    if message[0] == GOODBYE:
                        writer.write(frame(JSON.encode([GOODBYE, {}, "wamp.close.goodbye_and_out"])))
                        continue
                    for reply in self.script(message):
                        writer.write(frame(JSON.encode(reply)))
                await writer.drain()
        finally:
            writer.close()
            self.closed.set()

    def kinds(self) -> list[int]:
        return [m[0] for m in self.received]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Any]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> tuple[ScriptedRouter, str]:
        router = ScriptedRouter(script)
        server = await asyncio.start_server(router.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return router, f"rs://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _welcome(method: str, authextra: dict[str, Any] | None = None) -> list[Any]:
    details: dict[str, Any] = {"roles": ROUTER_ROLES, "authid": "alice", "authrole": "user",
                               "authmethod": method, "authprovider": "static"}  # fmt: skip
    if authextra is not None:
        details["authextra"] = authextra
    return [WELCOME, 4242, details]


def _scram_script(credential: auth.ScramCredential, *, tamper: bool = False, skip_challenge: bool = False) -> Script:
    state: dict[str, Any] = {}

    def script(message: list[Any]) -> list[list[Any]]:
        if message[0] == HELLO:
            details = message[2]
            method = details["authmethods"][0]
            state.update(method=method, authid=details["authid"], nonce=details["authextra"]["nonce"])
            if skip_challenge:
                return [_welcome(method)]
            state["challenge"] = auth.scram_challenge_extra(
                credential, authmethod=method, client_nonce=state["nonce"], server_nonce=auth.new_scram_nonce()
            )
            return [[CHALLENGE, method, state["challenge"]]]
        if message[0] == AUTHENTICATE:
            verdict = auth.scram_verify_authenticate(
                credential, authmethod=state["method"], authid=state["authid"], client_nonce=state["nonce"],
                challenge_extra=state["challenge"], signature=message[1], authenticate_extra=message[2],
            )  # fmt: skip
            if not verdict.ok:
                return [[ABORT, {}, "wamp.error.authentication_failed"]]
            authextra = dict(verdict.welcome_authextra)
            if tamper:
                authextra = {k: base64.b64encode(b"\0" * 32).decode() for k in authextra}
            return [_welcome(state["method"], authextra)]
        return []

    return script


@pytest.mark.parametrize("authmethod", ["wamp-scram", "scram"])
async def test_session_joins_when_the_router_proves_the_scram_credential(scripted: Any, authmethod: str) -> None:
    router, url = await scripted(_scram_script(_credential("pw", "pbkdf2")))
    session = await connect(url, "realm1", authenticators=[ScramAuth("alice", "pw", authmethod)],
                            reconnect=NO_RECONNECT, connect_timeout=5)  # fmt: skip
    assert session.session_id == 4242
    assert session.details["authmethod"] == authmethod
    hello = router.received[0]
    assert hello[2]["authmethods"] == [authmethod] and set(hello[2]["authextra"]) == {"nonce"}
    await session.leave()
    assert router.kinds() == [HELLO, AUTHENTICATE, GOODBYE]


@pytest.mark.parametrize("skip_challenge", [False, True], ids=["wrong-verifier", "no-challenge"])
async def test_session_aborts_when_the_router_fails_scram(scripted: Any, skip_challenge: bool) -> None:
    router, url = await scripted(_scram_script(_credential("pw", "pbkdf2"), tamper=True, skip_challenge=skip_challenge))
    with pytest.raises(ApplicationError) as info:
        await connect(url, "realm1", authenticators=[ScramAuth("alice", "pw")], reconnect=NO_RECONNECT,
                      connect_timeout=5)  # fmt: skip
    assert info.value.error == "wamp.error.authentication_failed"
    await asyncio.wait_for(router.closed.wait(), 5)
    assert router.received[-1][0] == ABORT
    assert router.received[-1][2] == "wamp.error.authentication_failed"
    assert GOODBYE not in router.kinds()


def _cryptosign_script(router_key: auth.CryptosignKey, *, sign_wrong: bool = False) -> Script:
    state: dict[str, Any] = {}

    def script(message: list[Any]) -> list[list[Any]]:
        if message[0] == HELLO:
            authextra = message[2]["authextra"]
            state["pubkey"] = authextra["pubkey"]
            state["challenge"] = auth.new_cryptosign_challenge()
            signed = auth.new_cryptosign_challenge() if sign_wrong else authextra["challenge"]
            extra = {"challenge": state["challenge"], "channel_binding": None,
                     **auth.cryptosign_router_challenge_extra(router_key, signed)}  # fmt: skip
            return [[CHALLENGE, "cryptosign", extra]]
        if message[0] == AUTHENTICATE:
            if not auth.cryptosign_verify(state["pubkey"], state["challenge"], message[1]):
                return [[ABORT, {}, "wamp.error.authentication_failed"]]
            return [_welcome("cryptosign")]
        return []

    return script


async def test_session_joins_with_cryptosign_router_authentication(scripted: Any) -> None:
    router_key = auth.new_cryptosign_key()
    router, url = await scripted(_cryptosign_script(router_key))
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed, router_pubkeys=[router_key.public_key_hex])
    session = await connect(url, "realm1", authenticators=[client], reconnect=NO_RECONNECT, connect_timeout=5)
    assert session.details["authmethod"] == "cryptosign"
    await session.leave()
    assert router.kinds() == [HELLO, AUTHENTICATE, GOODBYE]


@pytest.mark.parametrize("case", ["wrong-signature", "untrusted-key"])
async def test_session_aborts_on_a_wrong_router_signature(scripted: Any, case: str) -> None:
    router_key = auth.new_cryptosign_key()
    if case == "wrong-signature":
        router, url = await scripted(_cryptosign_script(router_key, sign_wrong=True))
    else:
        router, url = await scripted(_cryptosign_script(auth.new_cryptosign_key()))
    client = CryptosignAuth("alice", auth.new_cryptosign_key().seed, router_pubkeys=[router_key.public_key_hex])
    with pytest.raises(ApplicationError) as info:
        await connect(url, "realm1", authenticators=[client], reconnect=NO_RECONNECT, connect_timeout=5)
    assert info.value.error == "wamp.error.authentication_failed"
    await asyncio.wait_for(router.closed.wait(), 5)
    assert router.kinds() == [HELLO, ABORT]  # no AUTHENTICATE: the client never signed for this router
    assert router.received[-1][2] == "wamp.error.authentication_failed"
