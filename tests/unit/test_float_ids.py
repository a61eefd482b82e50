"""IDs sent as integral floats: JavaScript's CBOR and MessagePack encoders (cbor-x, msgpackr: wampy.js)
write every Number of 2^32 or more as a float64, so a session, subscription or registration ID a JS
peer sends back arrives as a float with an exact integer value. The router reads it as that ID."""

from __future__ import annotations

import cbor2
import pytest

from cloverleaf.wamp.errors import ProtocolError
from cloverleaf.wamp.messages import Unregister, Unsubscribe, integral_id
from cloverleaf.wamp.serializers import CBOR
from cloverleaf.wamp.session import ServerSessionCore


def test_integral_id() -> None:
    assert integral_id(4996444596761210.0) == 4996444596761210
    assert type(integral_id(2.0**53)) is int
    for value in (0.5, 0.0, -3.0, 2.0**53 + 2, float("nan"), float("inf"), "7", True, None):
        assert integral_id(value) is value


def test_unsubscribe_and_unregister_with_float64_ids() -> None:
    core = ServerSessionCore(CBOR, sequential_requests=False)
    core.sent_welcome()
    unsubscribe = core.receive(cbor2.dumps([34, 1, 4996444596761210.0]))
    assert isinstance(unsubscribe, Unsubscribe)
    assert unsubscribe.subscription == 4996444596761210
    assert type(unsubscribe.subscription) is int
    unregister = core.receive(cbor2.dumps([66, 2, float(2**40)]))
    assert isinstance(unregister, Unregister)
    assert unregister.registration == 2**40
    with pytest.raises(ProtocolError, match="must be an integer"):
        core.receive(cbor2.dumps([34, 3, 12.5]))
