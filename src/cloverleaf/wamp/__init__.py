"""The sans-I/O WAMP core: messages, serializers, URI rules, RawSocket framing, session state.

Nothing in this package performs I/O, reads a clock or touches asyncio: bytes go in, typed values
come out, and bytes to send come back. That keeps it fast to test, fuzz and reuse in the client.
"""
