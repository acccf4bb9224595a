"""The one exception the wire layer raises for bytes it cannot accept.

Every parse function in :mod:`synack.wire` either returns a record or raises
:class:`ParseError`; no ``IndexError`` or ``struct.error`` escapes, whatever the
input. Local misuse (encoding a record with an out-of-range field) raises a plain
``ValueError`` instead: a malformed packet is the peer's fault, a bad record is ours.
"""

from __future__ import annotations

__all__ = ["KINDS", "ParseError"]

#: Every value :attr:`ParseError.kind` can take.
KINDS: frozenset[str] = frozenset(
    {
        "truncated",
        "bad data offset",
        "bad option length",
        "bad checksum",
        "bad version",
        "bad header length",
        "bad total length",
        "unsupported",
    }
)


class ParseError(ValueError):
    """Bytes that do not form a valid header, naming the field at fault.

    ``field`` names what was being read ("TCP header", "TCP option MSS",
    "IPv4 total length", "pcap record", ...), ``kind`` is one of :data:`KINDS`
    (so callers can count drops by reason), and ``detail`` is free text with the
    numbers. ``str(e)`` is one line: ``"TCP option MSS: bad option length 3
    (expected 4)"``.
    """

    field: str
    kind: str
    detail: str

    def __init__(self, field: str, kind: str, detail: str = "") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown ParseError kind {kind!r}")
        self.field = field
        self.kind = kind
        self.detail = detail
        message = f"{field}: {kind} {detail}" if detail else f"{field}: {kind}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str, str]]:
        # Exceptions pickle as cls(*self.args); ours takes three arguments, not the message.
        return (type(self), (self.field, self.kind, self.detail))
