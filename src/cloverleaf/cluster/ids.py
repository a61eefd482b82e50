"""Identifiers the nodes of a cluster agree on without talking to each other."""

from __future__ import annotations

import hashlib
import secrets

MAX_ID = 2**53
_ID_MASK = MAX_ID - 1
_PERSON = b"cloverleaf.id.v1"  # BLAKE2b personalization (16 bytes): domain separation from other uses of the key


def scoped_id(secret: bytes, *parts: str) -> int:
    """A WAMP ID in [1, 2^53] that is a keyed hash of ``parts``.

    Every node holding the same ``secret`` computes the same ID for the same parts, e.g. the
    subscription ID of ``(realm, match policy, topic URI)`` or the registration ID of
    ``(realm, match policy, procedure URI)``, with no coordination. The promises:

    * deterministic: same secret and parts, same ID, on every node and across versions (the hash is
      BLAKE2b-64 keyed with ``secret``, personalised ``cloverleaf.id.v1``, over each part as an
      8-byte big-endian length followed by its UTF-8 bytes; changing this changes every ID);
    * unambiguous: the length prefixes make ``("ab", "c")``, ``("a", "bc")`` and ``("abc",)`` three
      different inputs, so they get independent IDs;
    * uniform over [1, 2^53]: the low 53 bits of the digest plus one (2^64 is a multiple of 2^53,
      so there is no modulo bias);
    * unpredictable without ``secret``: a client cannot choose URIs that collide on purpose;
    * collisions by chance follow the birthday bound, about n^2 / 2^54 for n live IDs: one in
      18 billion for 1,000 IDs, one in 18,000 for a million. An ID found already in use for other
      parts must therefore be checked by the caller (the KV entry stores the parts).

    ``secret`` may be up to 64 bytes (BLAKE2b's key limit; :class:`ValueError` beyond); an empty
    secret gives an unkeyed hash, which is deterministic but guessable.
    """
    h = hashlib.blake2b(digest_size=8, key=secret, person=_PERSON)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return (int.from_bytes(h.digest(), "big") & _ID_MASK) + 1


def incarnation_id() -> str:
    """A fresh random name for one run of one node: 16 lower-case hex characters (64 bits).

    Drawn from the operating system's cryptographic source each call, so a restarted node never
    reuses the name of its previous run (two runs share a name with odds about n^2 / 2^65 for n
    runs ever started). Made of ``[0-9a-f]`` only, it is usable as is in a NATS subject or KV key.
    """
    return secrets.token_hex(8)
