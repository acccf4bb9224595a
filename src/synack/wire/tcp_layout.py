"""Where each byte of a TCP header sits: the option layout, padding and checksum check.

:func:`~synack.wire.tcp.parse_tcp` turns a header into values; this module keeps
their positions, for tools that show a header field by field (``synack header``).
:func:`tcp_option_layout` walks the option bytes (RFC 9293 section 3.2) and
returns every option in wire order with its byte offset inside the header, its
kind, its length and its decoded value, and the padding that brings the header
to a 32-bit boundary. The padding starts at the EOL option (kind 0, "end of
option list") and runs to the end of the header; RFC 9293 says every byte of it
is zero, and :attr:`OptionLayout.padding_nonzero` counts the ones that are not.

An option that appears twice is listed twice here, whereas the parsed
:class:`~synack.wire.tcp.TcpSegment` keeps only the last one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import ParseError
from .tcp import (
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    OPTION_NAMES,
    TCP_HEADER_LEN,
)

__all__ = ["OptionLayout", "OptionSlot", "tcp_checksum_check", "tcp_option_layout"]

_U16 = struct.Struct("!H")
_U32X2 = struct.Struct("!II")
_FIXED_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERM: 2, OPT_TIMESTAMP: 10}

#: What :attr:`OptionSlot.value` holds: an int (MSS, window scale shift), a
#: (TSval, TSecr) pair, SACK blocks, raw data of an unknown kind, or None.
OptionValue = int | tuple[int, int] | tuple[tuple[int, int], ...] | bytes | None


@dataclass(frozen=True, slots=True)
class OptionSlot:
    """One option as it sits in the header.

    ``offset`` counts from the first byte of the TCP header (so the first option
    is at 20); ``length`` is the option's total size in bytes, 1 for NOP and EOL.
    ``value`` is decoded for the kinds synack knows and the raw option data
    (after kind and length) for the others.
    """

    offset: int
    kind: int
    length: int
    value: OptionValue = None

    @property
    def name(self) -> str:
        """``"MSS"``, ``"NOP"``, ... or ``"kind 30"`` for a kind synack does not decode."""
        return OPTION_NAMES.get(self.kind) or f"kind {self.kind}"


@dataclass(frozen=True, slots=True)
class OptionLayout:
    """The options of a header, in wire order, and the padding after them.

    ``padding_offset``/``padding_len``: the bytes from the EOL option (or from the
    end of the last option, then ``padding_len`` is 0) to the end of the header.
    """

    options: tuple[OptionSlot, ...]
    header_len: int
    padding_offset: int
    padding_len: int
    padding_nonzero: int = 0

    @property
    def options_len(self) -> int:
        """Bytes between the fixed 20-byte header and the end of the header."""
        return self.header_len - TCP_HEADER_LEN


def _bad(kind: int, detail: str) -> ParseError:
    name = OPTION_NAMES.get(kind) or f"kind {kind}"
    return ParseError(f"TCP option {name}", "bad option length", detail)


def _value(kind: int, data: Buffer, i: int, length: int) -> OptionValue:
    """Decode the option at ``data[i:i+length]``; raise ParseError for a bad length."""
    expected = _FIXED_LEN.get(kind)
    if expected is not None and length != expected:
        raise _bad(kind, f"{length} at offset {i} (expected {expected})")
    if kind == OPT_MSS:
        return int(_U16.unpack_from(data, i + 2)[0])
    if kind == OPT_WSCALE:
        return int(data[i + 2])
    if kind == OPT_TIMESTAMP:
        val, ecr = _U32X2.unpack_from(data, i + 2)
        return (val, ecr)
    if kind == OPT_SACK_PERM:
        return None
    if kind == OPT_SACK:
        if length < 10 or (length - 2) % 8:
            raise _bad(kind, f"{length} at offset {i} (expected 2 + 8n, n >= 1)")
        return tuple(_U32X2.iter_unpack(data[i + 2 : i + length]))
    return bytes(data[i + 2 : i + length])


def tcp_option_layout(header: Buffer) -> OptionLayout:
    """Walk the options of the TCP header at the start of ``header``.

    ``header`` may go on past the header (a whole segment); the data offset
    field says where the header ends. Raises :class:`ParseError` for a header
    shorter than 20 bytes or than its data offset, and for an option whose
    length byte is missing, under 2, past the end of the header, or wrong for
    its kind.
    """
    n = len(header)
    if n < TCP_HEADER_LEN:
        raise ParseError("TCP header", "truncated", f"({n} bytes, need at least 20)")
    doff = header[12] >> 4
    end = doff << 2
    if doff < 5:
        raise ParseError("TCP data offset", "bad data offset", f"{doff} (minimum 5)")
    if end > n:
        raise ParseError("TCP data offset", "bad data offset",
                         f"{doff} ({end} bytes, only {n} captured)")
    slots: list[OptionSlot] = []
    i = TCP_HEADER_LEN
    while i < end:
        kind = header[i]
        if kind == OPT_EOL:
            slots.append(OptionSlot(i, kind, 1))
            # Everything from the EOL on is padding, which RFC 9293 says is zeros.
            nonzero = sum(1 for b in bytes(header[i + 1 : end]) if b)
            return OptionLayout(tuple(slots), end, i, end - i, nonzero)
        if kind == OPT_NOP:
            slots.append(OptionSlot(i, kind, 1))
            i += 1
            continue
        if i + 1 >= end:
            raise _bad(kind, f"(no length byte at offset {i + 1}, the header ends at {end})")
        length = header[i + 1]
        if length < 2:
            raise _bad(kind, f"{length} at offset {i} (minimum 2)")
        if i + length > end:
            raise _bad(kind, f"{length} at offset {i} (the header ends at {end})")
        slots.append(OptionSlot(i, kind, length, _value(kind, header, i, length)))
        i += length
    return OptionLayout(tuple(slots), end, end, 0)


def tcp_checksum_check(segment: Buffer, src: str, dst: str) -> tuple[bool, int]:
    """Verify the checksum of a whole TCP ``segment`` (header and payload) sent
    from ``src`` to ``dst``, over the IPv4 pseudo-header (RFC 9293 section 3.1).

    Returns ``(correct, expected)``: whether the checksum field is right, and the
    value it should hold. ``segment`` must be the complete segment (cut to the IP
    total length): a checksum cannot be checked on part of one.
    """
    n = len(segment)
    if n < TCP_HEADER_LEN:
        raise ParseError("TCP header", "truncated", f"({n} bytes, need at least 20)")
    initial = pseudo_header_sum(src, dst, 6, n)
    correct = internet_checksum(segment, initial) == 0
    zeroed = bytearray(segment[:TCP_HEADER_LEN])
    zeroed[16:18] = b"\0\0"
    # The header part is 20 bytes (even), so its partial sum adds to the rest's.
    rest = segment[TCP_HEADER_LEN:]
    expected = internet_checksum(rest, initial + int.from_bytes(zeroed, "big"))
    return correct, expected
