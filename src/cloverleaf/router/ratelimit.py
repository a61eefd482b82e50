"""Rate-limited log lines for what outside peers can repeat at will.

Neither the standard library's ``logging`` nor a dependency of Cloverleaf limits how often a line
is logged, so a flood of connections that each fail authentication, send garbage before HELLO or
never send HELLO would write one line each, as fast as they come. :class:`RateLimitedLog` caps
that per kind of message and says how many lines it left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0
    level: int = logging.DEBUG


class RateLimitedLog:
    """Logs at most ``burst`` lines per ``interval`` seconds for each kind of message.

    ``kind`` is a short fixed description chosen by the caller ("join refused", "no HELLO"), never
    something a peer sent, so the number of kinds stays bounded. Lines past the burst are counted,
    and one summary line ("suppressed 1234 similar messages (join refused) within 60 s") is
    logged when the interval ends: by a timer on the running event loop, or, without one, with the
    next line of that kind.
    """

    def __init__(
        self, logger: logging.Logger, burst: int = 10, interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def log(self, kind: str, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        """``logger.log(level, msg, *args)``, unless ``burst`` lines of ``kind`` were logged in this interval.

        ``exc_info`` adds the exception being handled (its traceback) to the lines that are logged.
        """
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        window = self._windows.get(kind)
        if window is not None and now - window.start >= self.interval:
            self._summarize(kind, window)
            window = None
        if window is None:
            window = self._windows[kind] = _Window(now)
        if window.logged < self.burst:
            window.logged += 1
            self.logger.log(level, msg, *args, stacklevel=2, exc_info=exc_info)
            return
        window.suppressed += 1
        window.level = max(window.level, level)
        if window.suppressed == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # summarized with the next line of this kind
            loop.call_later(max(0.0, window.start + self.interval - now), self._end_window, kind, window)

    def info(self, kind: str, msg: str, *args: object) -> None:
        self.log(kind, logging.INFO, msg, *args)

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self.log(kind, logging.WARNING, msg, *args)

    def debug(self, kind: str, msg: str, *args: object) -> None:
        self.log(kind, logging.DEBUG, msg, *args)

    def _end_window(self, kind: str, window: _Window) -> None:
        if self._windows.get(kind) is window:
            del self._windows[kind]
            self._summarize(kind, window)

    def _summarize(self, kind: str, window: _Window) -> None:
        if window.suppressed:
            self.logger.log(window.level, "suppressed %d similar messages (%s) within %g s",
                            window.suppressed, kind, self.interval)  # fmt: skip
