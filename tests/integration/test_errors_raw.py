"""Error answers that Autobahn|Python would refuse to provoke: built by hand with the raw client."""

from __future__ import annotations

import pytest
from tests.conftest import RouterProcess
from tests.rawclient import RawClient

CALL, REGISTER, SUBSCRIBE, PUBLISH, ERROR = 48, 64, 32, 16, 8


async def _client(router: RouterProcess, kind: str, serializer: str) -> RawClient:
    if kind == "websocket":
        return await RawClient.websocket(router.ws_url, serializer)
    if kind == "unix":
        return await RawClient.rawsocket(unix_path=router.unix_path, serializer=serializer)
    return await RawClient.rawsocket(router.rs_port, serializer)


@pytest.mark.parametrize("kind", ["websocket", "rawsocket", "unix"])
@pytest.mark.parametrize(
    ("request_type", "uri"),
    [(CALL, "com..bad"), (REGISTER, "com.example. space"), (SUBSCRIBE, "#bad"), (PUBLISH, "a.b."),
     (REGISTER, ""), (CALL, "a#b")],
)
async def test_invalid_uri_gets_error_and_session_survives(router: RouterProcess, kind: str, request_type: int,
                                                           uri: str) -> None:
    client = await _client(router, kind, "json")
    await client.join()
    request = client.request_id()
    options = {"acknowledge": True} if request_type == PUBLISH else {}
    answer = await client.request([request_type, request, options, uri])
    assert answer[:3] == [ERROR, request_type, request]
    assert answer[4] == "wamp.error.invalid_uri"
    # the session carries on: a valid request still works
    request = client.request_id()
    answer = await client.request([CALL, request, {}, "com.example.nobody"])
    assert answer[4] == "wamp.error.no_such_procedure"
    await client.close()


async def test_reserved_wamp_namespace_cannot_be_registered(router: RouterProcess) -> None:
    client = await _client(router, "rawsocket", "cbor")
    await client.join()
    request = client.request_id()
    answer = await client.request([REGISTER, request, {}, "wamp.session.get"])
    assert answer[0] == ERROR and answer[4] == "wamp.error.invalid_uri"
    await client.close()


async def test_unsupported_match_and_invoke_policies(router: RouterProcess) -> None:
    client = await _client(router, "websocket", "msgpack")
    await client.join()
    for message in ([REGISTER, client.request_id(), {"invoke": "fastest"}, "com.example.p"],
                    [REGISTER, client.request_id(), {"match": "regex"}, "com.example.p"],
                    [SUBSCRIBE, client.request_id(), {"match": "fuzzy"}, "com.example.t"]):
        answer = await client.request(message)
        assert answer[0] == ERROR and answer[4] == "wamp.error.invalid_argument"
    await client.close()


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_any_request_id_by_default_but_not_one_in_flight(router: RouterProcess, kind: str) -> None:
    # As Crossbar: IDs in [1, 2^53] in any order (wampy keeps counting across a reconnect, beltway2
    # skips one when a publish fails locally); what breaks routing, a CALL reusing the ID of a call
    # still in flight, is refused (issue 11, item 2)
    callee = await _client(router, kind, "json")
    await callee.join()
    registered = await callee.request([REGISTER, 90071992547409, {}, "com.example.ids.slow"])
    assert registered[0] == 65  # REGISTERED
    caller = await _client(router, kind, "msgpack")
    await caller.join()
    answer = await caller.request([PUBLISH, 7, {"acknowledge": True}, "com.example.ids.topic"])
    assert answer[:2] == [17, 7]  # PUBLISHED
    answer = await caller.request([PUBLISH, 3, {"acknowledge": True}, "com.example.ids.topic"])
    assert answer[:2] == [17, 3]
    await caller.send([CALL, 2**53, {}, "com.example.ids.slow"])
    invocation = await callee.recv()
    assert invocation[0] == 68  # INVOCATION
    await caller.send([CALL, 2**53, {}, "com.example.ids.slow"])  # the same ID while the first is in flight
    abort = await caller.recv()
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    assert "already in use" in abort[1]["message"]
    await callee.close()
