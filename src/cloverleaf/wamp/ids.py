"""WAMP identifiers (spec: basic/ids): integers in [1, 2^53]."""

from __future__ import annotations

import random

MAX_ID = 2**53

_system_random = random.SystemRandom()


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a WAMP ID: an int (not bool) in [1, 2^53]."""
    return type(value) is int and 1 <= value <= MAX_ID


def random_id() -> int:
    """A global-scope ID drawn uniformly from [1, 2^53] with a cryptographic source.

    The randomness comes from the operating system; it is pure in the sense that it performs no
    I/O the caller must await, and tests may pass their own generator where they need determinism.
    """
    return _system_random.randrange(1, MAX_ID + 1)


class SequentialIds:
    """Session-scope IDs: 1, 2, 3, ... wrapping back to 1 after 2^53."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = self._last + 1 if self._last < MAX_ID else 1
        return self._last

    @property
    def last(self) -> int:
        """The ID most recently handed out (0 before the first)."""
        return self._last

    def give_back(self, value: int) -> None:
        """Undo :meth:`next` for an ID that was never used (its message could not be sent)."""
        if value == self._last:
            self._last = value - 1

    def was_issued(self, value: int) -> bool:
        """Whether ``value`` was handed out already (exact until the sequence wraps after 2^53 IDs)."""
        return 1 <= value <= self._last


_fast_random = random.Random()  # seeded from the OS at creation


def fast_random_id() -> int:
    """A global-scope ID from a fast PRNG, for hot paths such as publication IDs.

    Uniform over [1, 2^53] like :func:`random_id`, but not suitable where guessing an ID must be
    hard (session IDs use :func:`random_id`).
    """
    return _fast_random.getrandbits(53) + 1
