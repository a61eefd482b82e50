"""CANCEL with ``{"mode": ""}``: what kraftfahrstrasse 0.9.0 sends when its CancelCall() is given no mode
(build/module/generic/Caller.js: ``{ mode: killMode || '' }``). The spec lists only "skip", "kill" and
"killnowait" (advanced/rpc_call_canceling.md); the router reads the empty string as "no mode given" and
applies its default (killnowait), as for a CANCEL without the key (docs/spec-notes.md). Before, it answered
with an ERROR for the CANCEL, which kraftfahrstrasse has no handler for: it aborted its own session."""

from __future__ import annotations

from tests.advanced_helpers import CALL, CANCEL, ERROR, INTERRUPT, INVOCATION, peer
from tests.conftest import RouterProcess


async def test_cancel_with_empty_mode_is_the_default_mode(router: RouterProcess) -> None:
    callee = await peer(router)
    caller = await peer(router)
    procedure = "com.cancel.empty.long"
    await callee.register(procedure)
    for options in ({"mode": ""}, {}):
        request = await caller.send_call(procedure)
        invocation = await callee.recv()
        await caller.send([CANCEL, request, options])
        answer = await caller.recv()
        assert answer[:5] == [ERROR, CALL, request, {}, "wamp.error.canceled"], (options, answer)
        assert await callee.recv() == [INTERRUPT, invocation[1], {"mode": "killnowait"}], options
        await callee.send([ERROR, INVOCATION, invocation[1], {}, "wamp.error.canceled"])  # late: dropped
        await caller.nothing()
    await callee.close()
    await caller.close()
