"""Progressive call invocations and payload passthru mode, with hand-built messages."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import RouterProcess
from tests.rawclient import RawClient

CLUSTER_READY = True  # also run against two router nodes of a cluster (tests/conftest.py)

CALL, INVOCATION, YIELD, RESULT, ERROR, REGISTER, PUBLISH, SUBSCRIBE, EVENT = 48, 68, 70, 50, 8, 64, 16, 32, 36

FEATURES = {"progressive_call_invocations": True, "call_canceling": True, "payload_passthru_mode": True,
            "progressive_call_results": True}
ROLES: dict[str, Any] = {role: {"features": FEATURES} for role in ("caller", "callee", "publisher", "subscriber")}
PLAIN: dict[str, Any] = {role: {"features": {}} for role in ("caller", "callee", "publisher", "subscriber")}


async def _pair(router: RouterProcess, kind: str, callee_roles: dict[str, Any] = ROLES,
                caller_roles: dict[str, Any] = ROLES) -> tuple[RawClient, RawClient, str]:
    if kind == "websocket":
        callee, caller = await RawClient.websocket(router.ws_url), await RawClient.websocket(router.ws_url, "msgpack")
    else:
        callee, caller = await RawClient.rawsocket(router.rs_port), await RawClient.rawsocket(router.rs_port, "cbor")
    await callee.join(roles=callee_roles)
    await caller.join(roles=caller_roles)
    procedure = f"com.example.progressive.{kind}.{callee.session_id}"
    registered = await callee.request([REGISTER, callee.request_id(), {}, procedure])
    assert registered[0] == 65
    return callee, caller, procedure


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_progressive_call_invocations_reach_one_callee_under_one_id(router: RouterProcess, kind: str) -> None:
    callee, caller, procedure = await _pair(router, kind)
    request = caller.request_id()
    await caller.send([CALL, request, {"progress": True}, procedure, ["chunk 1"]])
    first = await callee.recv()
    assert first[0] == INVOCATION and first[3].get("progress") is True and first[4] == ["chunk 1"]
    await caller.send([CALL, request, {"progress": True}, procedure, ["chunk 2"]])
    second = await callee.recv()
    assert second[:2] == [INVOCATION, first[1]] and second[3].get("progress") is True and second[4] == ["chunk 2"]
    await caller.send([CALL, request, {}, procedure, ["last"]])
    final = await callee.recv()
    assert final[:2] == [INVOCATION, first[1]] and "progress" not in final[3] and final[4] == ["last"]
    await callee.send([YIELD, first[1], {}, ["3 chunks"]])
    assert await caller.recv() == [RESULT, request, {}, ["3 chunks"]]
    # the next new call takes the next ID as usual
    request = caller.request_id()
    await caller.send([CALL, request, {}, procedure])
    invocation = await callee.recv()
    assert invocation[0] == INVOCATION and invocation[1] != first[1]
    for client in (callee, caller):
        await client.close()


async def test_progressive_call_to_a_callee_without_the_feature(router: RouterProcess) -> None:
    callee, caller, procedure = await _pair(router, "rawsocket", callee_roles=PLAIN)
    request = caller.request_id()
    answer = await caller.request([CALL, request, {"progress": True}, procedure, ["chunk"]])
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == "wamp.error.feature_not_supported"
    for client in (callee, caller):
        await client.close()


async def test_progressive_call_from_a_caller_without_the_feature_is_a_violation(router: RouterProcess) -> None:
    callee, caller, procedure = await _pair(router, "websocket", caller_roles=PLAIN)
    answer = await caller.request([CALL, caller.request_id(), {"progress": True}, procedure, ["chunk"]])
    assert answer[0] == 3 and answer[2] == "wamp.error.protocol_violation"
    await callee.close()


async def test_reusing_the_id_of_a_finished_call_is_a_new_call(router: RouterProcess) -> None:
    # Request IDs need not be sequential by default (as Crossbar; docs/spec-notes.md): the ID of a
    # call that has ended is free again, and only an ID still in flight is refused
    # (test_errors_raw.py); with sequential_request_ids: true this is a violation (test_session_state.py)
    callee, caller, procedure = await _pair(router, "rawsocket")
    request = caller.request_id()
    for answer in ("first", "second"):
        await caller.send([CALL, request, {}, procedure])
        invocation = await callee.recv()
        assert invocation[0] == INVOCATION
        await callee.send([YIELD, invocation[1], {}, [answer]])
        assert await caller.recv() == [RESULT, request, {}, [answer]]
    await callee.close()


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_payload_passthru_is_forwarded_untouched(router: RouterProcess, kind: str) -> None:
    callee, caller, procedure = await _pair(router, kind)
    ppt = {"ppt_scheme": "x_custom", "ppt_serializer": "native", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "k1"}
    blob = b"\x00\x01opaque\xff"
    request = caller.request_id()
    await caller.send([CALL, request, dict(ppt), procedure, [blob]])
    invocation = await callee.recv()
    assert invocation[0] == INVOCATION and invocation[4] == [blob]
    assert {k: invocation[3][k] for k in ppt} == ppt
    await callee.send([YIELD, invocation[1], dict(ppt), [blob]])
    result = await caller.recv()
    assert result[:2] == [RESULT, request] and result[3] == [blob] and {k: result[2][k] for k in ppt} == ppt

    topic = f"com.example.ppt.{kind}"
    subscribed = await callee.request([SUBSCRIBE, callee.request_id(), {}, topic])
    assert subscribed[0] == 33
    await caller.send([PUBLISH, caller.request_id(), dict(ppt), topic, [blob]])
    event = await callee.recv()
    assert event[0] == EVENT and event[4] == [blob] and {k: event[3][k] for k in ppt} == ppt
    for client in (callee, caller):
        await client.close()


async def test_payload_passthru_to_a_callee_without_the_feature(router: RouterProcess) -> None:
    callee, caller, procedure = await _pair(router, "websocket", callee_roles=PLAIN)
    request = caller.request_id()
    answer = await caller.request([CALL, request, {"ppt_scheme": "x_custom"}, procedure, [b"x"]])
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == "wamp.error.feature_not_supported"
    for client in (callee, caller):
        await client.close()


async def test_payload_passthru_from_a_publisher_without_the_feature_is_a_violation(router: RouterProcess) -> None:
    client = await RawClient.rawsocket(router.rs_port)
    await client.join(roles=PLAIN)
    answer = await client.request([PUBLISH, client.request_id(), {"ppt_scheme": "x", "acknowledge": True},
                                   "com.example.t", [b"x"]])
    assert answer[0] == 3 and answer[2] == "wamp.error.protocol_violation"
