"""Cloverleaf: a fast, spec-exact WAMP v2 router and asyncio client."""

__version__ = "0.1.0"
