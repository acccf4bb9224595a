"""A small tcpdump-like filter for picking connections: ``host A and port P``.

Grammar: terms joined by ``and``; a term is ``[src|dst] host ADDR`` or
``[src|dst] port N``. Connections have no single direction, so ``src`` means
the side that opened it (the client, ``a``) and ``dst`` the other (``b``);
without a qualifier either side matches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from synack.trace.capture import Connection

Predicate = Callable[[Connection], bool]


def parse_filter(text: str) -> Predicate:
    """A predicate over connections; raises ``ValueError`` naming the bad word."""
    words = text.split()
    if not words:
        raise ValueError("empty filter")
    preds: list[Predicate] = []
    i = 0
    while i < len(words):
        sides: tuple[int, ...] = (0, 1)
        if words[i] in ("src", "dst"):
            sides = (0,) if words[i] == "src" else (1,)
            i += 1
        if i + 1 >= len(words) or words[i] not in ("host", "port"):
            got = words[i] if i < len(words) else "end of filter"
            raise ValueError(f"filter: expected 'host ADDR' or 'port N', got {got!r}")
        kind, value = words[i], words[i + 1]
        preds.append(_term(kind, value, sides))
        i += 2
        if i < len(words):
            if words[i] != "and":
                raise ValueError(f"filter: expected 'and', got {words[i]!r}")
            i += 1
            if i == len(words):
                raise ValueError("filter: nothing after 'and'")
    return lambda conn: all(p(conn) for p in preds)


def _term(kind: str, value: str, sides: tuple[int, ...]) -> Predicate:
    if kind == "host":
        try:
            addr = str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"filter: {value!r} is not an IPv4 address") from None
        return lambda conn: any(conn.endpoint(s)[0] == addr for s in sides)
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError(f"filter: {value!r} is not a port number")
    port = int(value)
    return lambda conn: any(conn.endpoint(s)[1] == port for s in sides)
