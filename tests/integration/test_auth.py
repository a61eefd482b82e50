"""Authentication and authorization end to end, with Autobahn|Python as the client."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError as AutobahnError
from autobahn.wamp.types import PublishOptions
from tests.conftest import AutobahnSessions, RouterProcess, start_router
from tests.rawclient import RawClient

from cloverleaf.router.authenticators import salted_wampcra_key

SALT, ITERATIONS, KEYLEN = "salt123", 100, 32

AUTH = {
    "anonymous": {"role": "anonymous"},
    "ticket": {"principals": {"joe": {"role": "user", "ticket": "joes-ticket"}}},
    "wampcra": {"principals": {
        "peter": {"role": "user", "secret": "peters-secret"},
        "salty": {"role": "admin", "secret": salted_wampcra_key("saltys-password", SALT, ITERATIONS, KEYLEN),
                  "salt": SALT, "iterations": ITERATIONS, "keylen": KEYLEN},
    }},
}  # fmt: skip

ROLES = [
    {"name": "anonymous", "permissions": [
        {"uri": "com.public.", "match": "prefix", "allow": ["call", "subscribe"]},
        {"uri": "com.auth.authenticate", "allow": ["register"]},
        {"uri": "com.auth.authorize", "allow": ["register"]},
    ]},
    {"name": "user", "permissions": [
        {"uri": "com.", "match": "prefix", "allow": ["call", "register", "publish", "subscribe"]},
        {"uri": "com.secret.", "match": "prefix", "allow": []},
        {"uri": "com..exposed", "match": "wildcard", "allow": ["call", "register", "publish", "subscribe"],
         "disclose": {"caller": True, "publisher": True}},
        {"uri": "com..readonly", "match": "wildcard", "allow": ["subscribe"]},
    ]},
    {"name": "admin"},
]  # fmt: skip


@pytest.fixture(scope="module")
def auth_router(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("auth")
    router = start_router(tmp, realms=[{"name": "realm1", "roles": ROLES}], ws_options={"auth": AUTH},
                          rs_options={"auth": AUTH})  # fmt: skip
    yield router
    router.stop()


def _transport(router: RouterProcess) -> dict[str, Any]:
    return {"type": "websocket", "url": router.ws_url, "serializers": ["json"]}


async def test_ticket(auth_router: RouterProcess, autobahn: AutobahnSessions) -> None:
    session = await autobahn.open(_transport(auth_router), authentication={"ticket": {"authid": "joe",
                                                                                       "ticket": "joes-ticket"}})
    assert session._authid == "joe" and session._authrole == "user" and session._authmethod == "ticket"


@pytest.mark.parametrize(("authid", "secret", "role"), [("peter", "peters-secret", "user"),
                                                        ("salty", "saltys-password", "admin")])
async def test_wampcra_plain_and_salted(auth_router: RouterProcess, autobahn: AutobahnSessions, authid: str,
                                        secret: str, role: str) -> None:
    session = await autobahn.open(_transport(auth_router), authentication={"wampcra": {"authid": authid,
                                                                                        "secret": secret}})
    assert session._authid == authid and session._authrole == role and session._authmethod == "wampcra"


@pytest.mark.parametrize(
    ("method", "hello_extra", "signature"),
    [("ticket", {"authid": "joe"}, "wrong"), ("ticket", {"authid": "nobody"}, "joes-ticket"),
     ("wampcra", {"authid": "peter"}, "AAAA"), ("wampcra", {"authid": "nobody"}, "AAAA")],
)
async def test_failures_do_not_say_what_was_wrong(auth_router: RouterProcess, method: str,
                                                  hello_extra: dict[str, Any], signature: str) -> None:
    client = await RawClient.rawsocket(auth_router.rs_port)
    await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": [method], **hello_extra}])
    challenge = await client.recv()
    assert challenge[0] == 4 and challenge[1] == method  # unknown authids are challenged too
    abort = await client.request([5, signature, {}])
    assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"
    assert abort[1] == {"message": "authentication failed"}


async def test_no_offered_method_is_available(auth_router: RouterProcess) -> None:
    client = await RawClient.rawsocket(auth_router.rs_port)
    abort = await client.request([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cryptosign-x"]}])
    assert abort[0] == 3 and abort[2] == "wamp.error.no_auth_method"


async def test_the_clients_order_of_methods_decides(auth_router: RouterProcess) -> None:
    client = await RawClient.rawsocket(auth_router.rs_port)
    answer = await client.request([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket", "anonymous"],
                                                 "authid": "joe"}])  # fmt: skip
    assert answer[0] == 4 and answer[1] == "ticket"
    client = await RawClient.rawsocket(auth_router.rs_port)
    answer = await client.request([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["anonymous", "ticket"],
                                                 "authid": "joe"}])  # fmt: skip
    assert answer[0] == 2 and answer[2]["authmethod"] == "anonymous"


# -- authorization --------------------------------------------------------------------------------------


ACTIONS = ["call", "register", "publish", "subscribe"]
# (uri, match kind exercised, actions the "user" role may do)
RULES = [
    ("com.example.thing", "prefix", {"call", "register", "publish", "subscribe"}),
    ("com.secret.thing", "longer prefix", set()),
    ("com.foo.exposed", "wildcard", {"call", "register", "publish", "subscribe"}),
    ("com.foo.readonly", "wildcard over prefix", {"subscribe"}),
    ("org.example.thing", "no rule", set()),
]
_unique = itertools.count()


@pytest.mark.parametrize(("uri", "kind", "allowed"), RULES, ids=[r[1] for r in RULES])
@pytest.mark.parametrize("action", ACTIONS)
async def test_every_action_and_match_kind_is_enforced(auth_router: RouterProcess, uri: str, kind: str,
                                                       allowed: set[str], action: str) -> None:
    client = await RawClient.rawsocket(auth_router.rs_port)
    await client.send([1, "realm1", {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}},
                                     "authmethods": ["ticket"], "authid": "joe"}])  # fmt: skip
    assert (await client.recv())[0] == 4
    assert (await client.request([5, "joes-ticket", {}]))[0] == 2
    code = {"call": 48, "register": 64, "publish": 16, "subscribe": 32}[action]
    options = {"acknowledge": True} if action == "publish" else {}
    request = client.request_id()
    answer = await client.request([code, request, options, uri])
    if action in allowed:
        if action == "call":
            assert answer[4] == "wamp.error.no_such_procedure"  # allowed, but nobody registered it
        else:
            assert answer[0] in (17, 33, 65), answer
    else:
        assert answer[:3] == [8, code, request] and answer[4] == "wamp.error.not_authorized", answer
        assert action in answer[5][0] and uri in answer[5][0]
    await client.close()


async def test_denied_publications_reach_nobody_and_denied_calls_invoke_nobody(
    auth_router: RouterProcess, autobahn: AutobahnSessions
) -> None:
    joe = {"ticket": {"authid": "joe", "ticket": "joes-ticket"}}
    admin_role_peer = await autobahn.open(_transport(auth_router), authentication=joe)
    anonymous = await autobahn.open(_transport(auth_router))
    received: list[Any] = []
    invoked: list[Any] = []
    await admin_role_peer.subscribe(lambda *a: received.append(a), "com.public.news")
    await admin_role_peer.register(lambda: invoked.append(1), "com.public.proc")
    # anonymous may not publish at all, nor call outside com.public.
    with pytest.raises(AutobahnError) as info:
        await anonymous.publish("com.public.news", "x", options=PublishOptions(acknowledge=True))
    assert info.value.error == "wamp.error.not_authorized"
    anonymous.publish("com.public.news", "unacknowledged")
    await admin_role_peer.register(lambda: invoked.append(2), "com.private.proc")
    with pytest.raises(AutobahnError) as info:
        await anonymous.call("com.private.proc")
    assert info.value.error == "wamp.error.not_authorized"
    # the allowed path still works, proving the peers are connected
    await anonymous.call("com.public.proc")
    await asyncio.sleep(0.3)
    assert received == []
    assert invoked == [1]


async def test_disclosure_by_permission(auth_router: RouterProcess, autobahn: AutobahnSessions) -> None:
    joe = {"ticket": {"authid": "joe", "ticket": "joes-ticket"}}
    callee = await autobahn.open(_transport(auth_router), authentication=joe)
    caller = await autobahn.open(_transport(auth_router), authentication=joe)
    from autobahn.wamp.types import RegisterOptions

    seen: list[Any] = []
    await callee.register(lambda details: seen.append(details.caller) or "ok", "com.x.exposed",
                          options=RegisterOptions(details_arg="details"))  # fmt: skip
    assert await caller.call("com.x.exposed") == "ok"
    assert seen == [caller._session_id]


# -- dynamic authenticator and authorizer ---------------------------------------------------------------


async def test_dynamic_authenticator_and_authorizer(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    realms = [
        {"name": "realm1", "roles": [{"name": "user", "authorizer": "com.auth.authorize",
                                      "authorizer_realm": "auth"},
                                     {"name": "anonymous", "permissions": []}]},
        {"name": "auth", "roles": [{"name": "anonymous"}]},
    ]  # fmt: skip
    auth = {"anonymous": {"role": "anonymous"},
            "ticket": {"type": "dynamic", "authenticator": "com.auth.authenticate", "authenticator_realm": "auth"}}
    router = start_router(tmp_path, realms=realms, ws_options={"auth": auth})
    try:
        backend = await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="auth")
        calls: list[Any] = []

        def authenticate(realm: str, authid: str, details: dict[str, Any]) -> Any:
            calls.append((realm, authid, details.get("ticket"), details.get("authextra")))
            if details.get("ticket") != f"{authid}-ok":
                from autobahn.wamp.exception import ApplicationError

                raise ApplicationError("com.auth.invalid_ticket", "no")
            return {"role": "user", "extra": {"hello": authid}}

        decisions: list[Any] = []

        def authorize(session: dict[str, Any], uri: str, action: str, options: dict[str, Any]) -> Any:
            decisions.append((session["authid"], uri, action))
            return {"allow": uri.startswith("com.allowed."), "cache": True}

        await backend.register(authenticate, "com.auth.authenticate")
        await backend.register(authorize, "com.auth.authorize")
        user = await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="realm1",
                                   authentication={"ticket": {"authid": "alice", "ticket": "alice-ok",
                                                              "authextra": {"device": "phone"}}})  # fmt: skip
        assert user._authrole == "user" and user._authid == "alice"
        assert calls == [("realm1", "alice", "alice-ok", {"device": "phone"})]
        # authorization by the procedure, in order, with a cache
        await user.register(lambda: "yes", "com.allowed.proc")
        with pytest.raises(AutobahnError) as info:
            await user.register(lambda: "no", "com.denied.proc")
        assert info.value.error == "wamp.error.not_authorized"
        assert await user.call("com.allowed.proc") == "yes"
        assert await user.call("com.allowed.proc") == "yes"
        assert decisions.count(("alice", "com.allowed.proc", "call")) == 1  # cached
        # a wrong ticket is refused
        client = await RawClient.websocket(router.ws_url)
        await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "bob"}])
        assert (await client.recv())[0] == 4
        abort = await client.request([5, "bob-wrong", {}])
        assert abort[2] == "wamp.error.authentication_failed"
    finally:
        router.stop()


# -- cryptosign and SCRAM with Autobahn|Python ---------------------------------------------------------


async def test_cryptosign_and_scram_with_autobahn(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    from cloverleaf.wamp.auth import CryptosignKey, derive_scram_credential, new_cryptosign_key

    client_key = new_cryptosign_key()
    # Autobahn's dialect ("scram", kdf "argon2id-13"); a small time cost keeps the test fast
    credential = derive_scram_credential("annas-password", salt=b"0123456789abcdef", kdf="argon2id-13",
                                         iterations=8, memory=512)  # fmt: skip
    scram_principal = credential.to_config()
    auth = {
        "cryptosign": {"principals": {"device1": {"role": "user", "pubkeys": [client_key.public_key_hex]}},
                       "router_key": new_cryptosign_key().seed.hex()},
        "scram": {"principals": {"anna": {"role": "user", "scram": scram_principal}}},
    }  # fmt: skip
    router = start_router(tmp_path, realms=[{"name": "realm1", "roles": [{"name": "user"}]}], ws_options={"auth": auth})
    try:
        transport = {"type": "websocket", "url": router.ws_url, "serializers": ["json"]}
        device = await autobahn.open(transport, authentication={
            "cryptosign": {"authid": "device1", "privkey": client_key.seed.hex()}})  # fmt: skip
        assert device._authid == "device1" and device._authmethod == "cryptosign"
        anna = await autobahn.open(transport, authentication={"scram": {"authid": "anna", "password": "annas-password",
                                                                        "kdf": "argon2id-13"}})  # fmt: skip
        assert anna._authid == "anna" and anna._authrole == "user" and anna._authmethod == "scram"
        # a key the router does not know is refused
        stranger = CryptosignKey.from_hex(new_cryptosign_key().seed.hex())
        client = await RawClient.websocket(router.ws_url)
        await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cryptosign"], "authid": "device1",
                                         "authextra": {"pubkey": stranger.public_key_hex}}])  # fmt: skip
        challenge = await client.recv()
        assert challenge[0] == 4
        from cloverleaf.wamp.auth import cryptosign_sign_challenge

        abort = await client.request([5, cryptosign_sign_challenge(stranger, challenge[2]["challenge"]), {}])
        assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"
    finally:
        router.stop()


async def test_cookie_authentication(tmp_path: Path) -> None:
    import websockets

    from cloverleaf.wamp.serializers import JSON

    auth = {"ticket": {"principals": {"joe": {"role": "user", "ticket": "joes-ticket"}}}, "cookie": {}}
    router = start_router(tmp_path, realms=[{"name": "realm1", "roles": [{"name": "user"}]}], ws_options={"auth": auth})
    try:
        async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"]) as ws:
            set_cookie = ws.response.headers["Set-Cookie"]
            assert set_cookie.startswith("cbtid=") and "HttpOnly" in set_cookie
            await ws.send(JSON.encode([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"],
                                                     "authid": "joe"}]).decode())  # fmt: skip
            assert JSON.decode((await ws.recv()).encode())[0] == 4
            await ws.send(JSON.encode([5, "joes-ticket", {}]).decode())
            assert JSON.decode((await ws.recv()).encode())[2]["authmethod"] == "ticket"
        cookie = set_cookie.split(";")[0]
        async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"],
                                      additional_headers={"Cookie": cookie}) as ws:  # fmt: skip
            assert "Set-Cookie" not in ws.response.headers  # the known cookie is kept
            await ws.send(JSON.encode([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cookie", "ticket"]}])
                          .decode())  # fmt: skip
            welcome = JSON.decode((await ws.recv()).encode())
            assert welcome[0] == 2 and welcome[2]["authid"] == "joe" and welcome[2]["authmethod"] == "cookie"
        # an unknown cookie does not authenticate
        async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"],
                                      additional_headers={"Cookie": "cbtid=" + "x" * 32}) as ws:  # fmt: skip
            await ws.send(JSON.encode([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cookie"]}]).decode())
            abort = JSON.decode((await ws.recv()).encode())
            assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"
    finally:
        router.stop()


async def test_repeated_failures_are_slowed_down(auth_router: RouterProcess) -> None:
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(5):
        client = await RawClient.rawsocket(auth_router.rs_port)
        await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
        assert (await client.recv())[0] == 4
        started = loop.time()
        abort = await client.request([5, "wrong", {}])
        delays.append(loop.time() - started)
        assert abort[2] == "wamp.error.authentication_failed"
        await client.close()
    assert max(delays[:2]) < 0.3  # the first failures are answered at once
    assert delays[-1] >= 0.4  # later ones wait (0.5 s, doubling)
    # a success forgets the host
    client = await RawClient.rawsocket(auth_router.rs_port)
    await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
    await client.recv()
    assert (await client.request([5, "joes-ticket", {}]))[0] == 2


async def test_a_principal_bound_to_a_realm_joins_only_that_realm(tmp_path: Path, autobahn: AutobahnSessions) -> None:
    """A principal's ``realm`` (Crossbar's principals have one) limits it to that realm, even where
    its role exists too; an unbound principal joins both."""
    auth = {"ticket": {"principals": {"joe": {"role": "user", "ticket": "joes", "realm": "realm1"},
                                      "ann": {"role": "user", "ticket": "anns"}}}}  # fmt: skip
    realms = [{"name": "realm1", "roles": [{"name": "user"}]}, {"name": "other", "roles": [{"name": "user"}]}]
    router = start_router(tmp_path, realms=realms, ws_options={"auth": auth})
    try:
        transport = _transport(router)
        joe = {"ticket": {"authid": "joe", "ticket": "joes"}}
        assert (await autobahn.open(transport, realm="realm1", authentication=joe))._authid == "joe"
        with pytest.raises(ConnectionError):
            await autobahn.open(transport, realm="other", authentication=joe)
        ann = {"ticket": {"authid": "ann", "ticket": "anns"}}
        for realm in ("realm1", "other"):
            assert (await autobahn.open(transport, realm=realm, authentication=ann))._authid == "ann"
    finally:
        router.stop()


async def test_dynamic_wampcra_answers_the_password_with_its_salt_as_for_crossbar(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """A Crossbar WAMP-CRA authenticator answers the user's password with salt, iterations and
    keylen; the router derives the key (a static config holds the derived key instead)."""
    realms = [{"name": "realm1", "roles": [{"name": "user"}]}, {"name": "auth", "roles": [{"name": "anonymous"}]}]
    auth = {"anonymous": {"role": "anonymous"},
            "wampcra": {"type": "dynamic", "authenticator": "com.auth.cra", "authenticator_realm": "auth"}}
    router = start_router(tmp_path, realms=realms, ws_options={"auth": auth})
    try:
        backend = await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="auth")
        users = {"plain": {"secret": "plain-password", "role": "user"},
                 "salty": {"secret": "salty-password", "role": "user", "salt": SALT, "iterations": ITERATIONS,
                           "keylen": KEYLEN}}  # fmt: skip
        await backend.register(lambda realm, authid, details: users[authid], "com.auth.cra")
        for authid, password in (("plain", "plain-password"), ("salty", "salty-password")):
            session = await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="realm1",
                                          authentication={"wampcra": {"authid": authid, "secret": password}})
            assert (session._authid, session._authmethod) == (authid, "wampcra")
        with pytest.raises(ConnectionError):
            await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="realm1",
                                authentication={"wampcra": {"authid": "salty", "secret": "wrong"}})
    finally:
        router.stop()


async def test_anonymous_bound_to_a_realm_on_a_websocket_transport_of_any_path(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """Crossbar's anonymous ``realm`` and its WebSocket transport answering on any path (``path: "*"``)."""
    realms = [{"name": "realm1"}, {"name": "other"}]
    router = start_router(tmp_path, realms=realms, ws_options={"path": "*", "auth": {
        "anonymous": {"role": "anonymous", "realm": "realm1"}}})  # fmt: skip
    try:
        base = router.ws_url.removesuffix("/ws")
        for path in ("/ws", "/", "/any/thing"):
            session = await autobahn.open({"type": "websocket", "url": base + path}, realm="realm1")
            assert session._authmethod == "anonymous"
        with pytest.raises(ConnectionError):
            await autobahn.open({"type": "websocket", "url": router.ws_url}, realm="other")
    finally:
        router.stop()
