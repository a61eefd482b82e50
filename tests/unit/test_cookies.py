"""The tracking cookie of cookie authentication (shared by WebSocket and long-poll)."""

from __future__ import annotations

from cloverleaf.transport.cookies import is_cross_origin, read_cookie, set_cookie_header, tracking_cookie


def test_read_cookie_takes_only_a_well_formed_value_of_its_name() -> None:
    good = "A" * 16
    assert read_cookie([f"a=1; cbtid={good}; b=2"], "cbtid") == good
    assert read_cookie(["a=1", f"cbtid={good}"], "cbtid") == good
    assert read_cookie(["cbtid=short"], "cbtid") is None
    assert read_cookie(["cbtid=" + "x" * 65], "cbtid") is None
    assert read_cookie(["cbtid=" + "x" * 15 + "!"], "cbtid") is None
    assert read_cookie([f"xcbtid={good}"], "cbtid") is None
    assert read_cookie([], "cbtid") is None


def test_new_cookie_and_its_attributes() -> None:
    cookie, header = tracking_cookie([], "cbtid", 3600.5, known=lambda c: True)
    assert header == f"cbtid={cookie}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"
    assert read_cookie([header.split(";")[0]], "cbtid") == cookie
    assert tracking_cookie([f"cbtid={cookie}"], "cbtid", 3600, known=lambda c: c == cookie) == (cookie, None)
    cross_site = set_cookie_header("n", "v", 10, cross_site=True)
    assert cross_site == "n=v; Max-Age=10; Path=/; HttpOnly; SameSite=None; Secure"


def test_cross_origin() -> None:
    assert not is_cross_origin(None, "example.com", tls=True)
    assert not is_cross_origin("https://example.com", "example.com", tls=True)
    assert not is_cross_origin("https://example.com:443", "Example.com", tls=True)
    assert not is_cross_origin("http://127.0.0.1:8080", "127.0.0.1:8080", tls=False)
    assert is_cross_origin("https://app.example.com", "example.com", tls=True)
    assert is_cross_origin("http://example.com", "example.com", tls=True)  # another scheme
    assert is_cross_origin("https://example.com:8443", "example.com", tls=True)
    assert is_cross_origin("null", "example.com", tls=True)


def test_cookie_store_never_rebinds_a_cookie_that_proves_someone_else() -> None:
    from cloverleaf.router.auth import Identity
    from cloverleaf.router.authenticators import CookieStore

    store = CookieStore(max_age=100)
    mallory = Identity("mallory", "user", "ticket", "static")
    alice = Identity("alice", "user", "ticket", "static")
    assert not store.knows("c1", 0)
    assert store.remember("c1", mallory, 0)
    assert store.knows("c1", 50)
    # alice logs in under a cookie mallory planted: it keeps proving mallory, never alice
    assert not store.remember("c1", alice, 10)
    recalled = store.recall("c1", 10)
    assert recalled is not None and recalled.authid == "mallory"
    assert store.remember("c1", mallory, 20)  # the same identity again: refreshed
    assert not store.knows("c1", 200)  # expired
    assert store.remember("c1", alice, 200)  # an expired binding may be replaced


def test_tracking_cookie_replaces_a_cookie_the_store_does_not_know() -> None:
    from cloverleaf.transport.cookies import tracking_cookie

    planted = "p" * 32
    cookie, set_cookie = tracking_cookie([f"cbtid={planted}"], "cbtid", 60, known=lambda c: False)
    assert cookie != planted and set_cookie is not None and set_cookie.startswith(f"cbtid={cookie};")
    cookie, set_cookie = tracking_cookie([f"cbtid={planted}"], "cbtid", 60, known=lambda c: c == planted)
    assert (cookie, set_cookie) == (planted, None)


def test_cookie_store_shares_digests_and_learns_the_newer_binding() -> None:
    from cloverleaf.router.auth import Identity
    from cloverleaf.router.authenticators import CookieStore

    shared: list[tuple[str, str]] = []
    here, there = CookieStore(max_age=100), CookieStore(max_age=100)
    here.on_remember = lambda digest, identity: shared.append((digest, identity.authid))
    alice = Identity("alice", "user", "ticket", "static")
    assert here.remember("secret-cookie", alice, 10)
    assert shared == [(CookieStore.digest("secret-cookie"), "alice")]
    assert "secret-cookie" not in shared[0][0]  # only a digest leaves the store
    there.learn(shared[0][0], alice, 10)
    recalled = there.recall("secret-cookie", 50)
    assert recalled is not None and recalled.authid == "alice"
    there.learn(shared[0][0], Identity("old", "user", "ticket", "static"), 5)  # older: ignored
    assert there.recall("secret-cookie", 50).authid == "alice"  # type: ignore[union-attr]
    assert not there.knows("secret-cookie", 111)  # expires with max_age from when it was issued
