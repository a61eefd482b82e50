"""Role policies (disclosure, trust levels) and revocation through the meta API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RouterProcess, start_router
from tests.rawclient import RawClient

CALL, INVOCATION, REGISTER, PUBLISH, SUBSCRIBE, EVENT, RESULT = 48, 68, 64, 16, 32, 36, 50
ROLES: dict[str, Any] = {
    "caller": {"features": {}},
    "callee": {"features": {"registration_revocation": True}},
    "publisher": {"features": {}},
    "subscriber": {"features": {"subscription_revocation": True}},
}


async def test_role_disclosure_and_trust_levels(tmp_path: Path) -> None:
    realm = {"name": "realm1", "roles": [{"name": "anonymous", "disclose_caller": True, "disclose_publisher": True,
                                          "trustlevel": 2}]}
    router = start_router(tmp_path, realms=[realm])
    try:
        callee, caller = await RawClient.rawsocket(router.rs_port), await RawClient.websocket(router.ws_url)
        await callee.join(roles=ROLES)
        await caller.join(roles=ROLES)
        assert (await callee.request([REGISTER, callee.request_id(), {}, "com.example.p"]))[0] == 65
        await caller.send([CALL, caller.request_id(), {}, "com.example.p"])
        invocation = await callee.recv()
        assert invocation[0] == INVOCATION
        assert invocation[3]["caller"] == caller.session_id and invocation[3]["caller_authrole"] == "anonymous"
        assert invocation[3]["trustlevel"] == 2
        assert (await callee.request([SUBSCRIBE, callee.request_id(), {}, "com.example.t"]))[0] == 33
        await caller.send([PUBLISH, caller.request_id(), {}, "com.example.t", [1]])
        event = await callee.recv()
        assert event[0] == EVENT and event[3]["publisher"] == caller.session_id and event[3]["trustlevel"] == 2
    finally:
        router.stop()


async def test_registration_and_subscription_revocation(router: RouterProcess) -> None:
    victim, admin = await RawClient.rawsocket(router.rs_port), await RawClient.rawsocket(router.rs_port)
    await victim.join(roles=ROLES)
    await admin.join(roles=ROLES)
    registered = await victim.request([REGISTER, victim.request_id(), {}, "com.example.revoked"])
    subscribed = await victim.request([SUBSCRIBE, victim.request_id(), {}, "com.example.revoked_topic"])
    answer = await admin.request([CALL, admin.request_id(), {}, "wamp.registration.remove_callee",
                                  [registered[2], victim.session_id], {"reason": "com.example.moved"}])
    assert answer[0] == RESULT
    assert await victim.recv() == [67, 0, {"registration": registered[2], "reason": "com.example.moved"}]
    answer = await admin.request([CALL, admin.request_id(), {}, "wamp.subscription.remove_subscriber",
                                  [subscribed[2], victim.session_id]])
    assert answer[0] == RESULT
    assert await victim.recv() == [35, 0, {"subscription": subscribed[2]}]
    answer = await admin.request([CALL, admin.request_id(), {}, "com.example.revoked"])
    assert answer[4] == "wamp.error.no_such_procedure"
    for client in (victim, admin):
        await client.close()
