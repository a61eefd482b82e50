"""The tracking cookie of cookie authentication, shared by the WebSocket and long-poll transports.

A browser's connection (a WebSocket upgrade, a long-poll ``open``) either brings our cookie, or
is given a new random one with ``Set-Cookie``; the router then remembers who authenticated under
it (:class:`~cloverleaf.router.authenticators.CookieStore`) and admits the same identity later
under ``authmethod: cookie``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..router.authenticators import CookieStore


def read_cookie(values: Iterable[str], name: str) -> str | None:
    """Our tracking cookie from Cookie headers, if present and well-formed (16 to 64 URL-safe characters)."""
    for value in values:
        for part in value.split(";"):
            key, _, cookie = part.strip().partition("=")
            if key == name and 16 <= len(cookie) <= 64 and all(c.isalnum() or c in "-_" for c in cookie):
                return cookie
    return None


def set_cookie_header(name: str, cookie: str, max_age: float, cross_site: bool = False) -> str:
    """The ``Set-Cookie`` value for a new tracking cookie.

    ``SameSite=Lax`` by default: the browser sends it on same-site requests only. ``cross_site``
    (a TLS request from another origin) gives ``SameSite=None; Secure`` instead, without which a
    browser neither stores nor sends the cookie on cross-site requests (``None`` requires
    ``Secure``, and ``Secure`` cookies can only be set over HTTPS).
    """
    same_site = "None; Secure" if cross_site else "Lax"
    return f"{name}={cookie}; Max-Age={int(max_age)}; Path=/; HttpOnly; SameSite={same_site}"


def tracking_cookie(
    values: Iterable[str], name: str, max_age: float, known: Callable[[str], bool], cross_site: bool = False
) -> tuple[str, str | None]:
    """The request's tracking cookie, or a new one: (cookie, the Set-Cookie value to answer with or None).

    A presented cookie is kept only if ``known(cookie)`` (it proved an identity that has not
    expired); any other is replaced by a fresh one. A cookie the router never issued or has
    forgotten could have been planted in the browser by someone else, who would then log in as
    whoever authenticates under it next (session fixation).
    """
    cookie = read_cookie(values, name)
    if cookie is not None and known(cookie):
        return cookie, None
    cookie = secrets.token_urlsafe(24)
    return cookie, set_cookie_header(name, cookie, max_age, cross_site)


@dataclass(frozen=True, slots=True)
class CookieTracking:
    """Cookie authentication on a WebSocket or long-poll endpoint: the tracking cookie's name and
    lifetime, and the store of who each cookie proved (one per endpoint)."""

    name: str
    max_age: float
    store: CookieStore

    def for_request(self, cookie_headers: Iterable[str], cross_site: bool = False) -> tuple[str, str | None]:
        """The request's cookie if it proves an identity now, else a fresh one (see :func:`tracking_cookie`)."""
        return tracking_cookie(cookie_headers, self.name, self.max_age,
                               lambda cookie: self.store.knows(cookie, time.monotonic()), cross_site)  # fmt: skip


def is_cross_origin(origin: str | None, host: str | None, tls: bool) -> bool:
    """Whether a request's ``Origin`` is another origin than the one it was sent to (``Host``, its scheme)."""
    if origin is None:
        return False  # not a browser, or a same-origin request some browsers send without Origin
    parts = urlsplit(origin)
    if parts.scheme != ("https" if tls else "http"):
        return True
    own = (host or "").lower()
    default = ":443" if tls else ":80"
    return parts.netloc.lower().removesuffix(default) != own.removesuffix(default)


__all__ = ["CookieTracking", "is_cross_origin", "read_cookie", "set_cookie_header", "tracking_cookie"]
