"""TCP segments (RFC 9293 section 3.1): bytes <-> :class:`TcpSegment`.

A :class:`TcpSegment` is a frozen record of every header field and every option
synack understands (MSS, window scale, SACK-permitted, SACK, timestamps); options
it does not understand are kept as ``(kind, data)`` so they can be displayed and
re-encoded. Parsing validates lengths and, when given the IP addresses, the
checksum; encoding lays options out exactly as Linux does, so a capture of synack
reads like a capture of the kernel.

Option layout written by :func:`encode_tcp` (each item only if its field is set)::

    MSS(4)                                              # SYN, SYN-ACK
    SACK_PERM(2) TS(10)  |  NOP NOP TS(10)  |  NOP NOP SACK_PERM(2)
    NOP WSCALE(3)                                       # SYN, SYN-ACK
    NOP NOP SACK(2+8n)
    unknown options verbatim (a Fast Open one of 4n+2 bytes then NOP NOP, as
    Linux pads it), then EOL padding to a 32-bit boundary

On a SYN this is Linux's ``mss, sackOK, TS val ecr, nop, wscale``; on an ACK it
is ``nop, nop, TS val ecr, nop, nop, sack``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from ._records import positional_constructor
from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import ParseError

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "MAX_OPTIONS_LEN",
    "OPTION_NAMES",
    "OPT_EOL",
    "OPT_MSS",
    "OPT_NOP",
    "OPT_SACK",
    "OPT_SACK_PERM",
    "OPT_TIMESTAMP",
    "OPT_WSCALE",
    "PSH",
    "RST",
    "SYN",
    "TCP_HEADER_LEN",
    "URG",
    "Flags",
    "TcpSegment",
    "encode_tcp",
    "flags_short",
    "flags_str",
    "parse_tcp",
]  # fmt: skip


class Flags(enum.IntFlag):
    """TCP control bits (RFC 9293 section 3.1; ECE/CWR from RFC 3168)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# Plain ints: `seg.flags & SYN` without enum machinery on the fast path.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

TCP_HEADER_LEN = 20
MAX_OPTIONS_LEN = 40  # data offset is 4 bits: at most 15 words of header

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERM, OPT_SACK = 0, 1, 2, 3, 4, 5
OPT_TIMESTAMP = 8
#: Display names of the option kinds this module decodes (IANA "TCP Option Kind Numbers").
OPTION_NAMES: dict[int, str] = {
    OPT_EOL: "EOL", OPT_NOP: "NOP", OPT_MSS: "MSS", OPT_WSCALE: "WSCALE",
    OPT_SACK_PERM: "SACK_PERM", OPT_SACK: "SACK", OPT_TIMESTAMP: "TIMESTAMP",
}  # fmt: skip
_FIXED_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERM: 2, OPT_TIMESTAMP: 10}

# src port, dst port, seq, ack, data offset|reserved, flags, window, checksum, urgent
_HEADER = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U32X2 = struct.Struct("!II")
_U32X3 = struct.Struct("!III")
_MSS = struct.Struct("!BBH")
_NOP_NOP = bytes((OPT_NOP, OPT_NOP))
_WSCALE = struct.Struct("!BBBB")  # NOP, kind, len, shift
_TS = struct.Struct("!BBBBII")  # two lead bytes (NOP NOP or SACK_PERM), kind, len, val, ecr
_NOP_NOP_TS_WORD = 0x0101080A  # the usual first word of an ACK's options
_HEADER_NOP_NOP_TS = struct.Struct("!HHIIBBHHHIII")  # the header, that word, TS val, ecr
# A SYN's options as Linux lays them out when all four are on: MSS, SACK_PERM, TS, NOP WS
# (kind, len, value for each; the same bytes _MSS, _TS and _WSCALE pack one by one).
_SYN_OPTS = struct.Struct("!BBHBBBBIIBBBB")
_SYN_WORDS = struct.Struct("!HHHHIIHBB")   # the same 20 bytes, for parse_tcp()'s check
_SYN_KINDS = (OPT_MSS, OPT_SACK_PERM, OPT_TIMESTAMP, OPT_NOP, OPT_WSCALE)
_NOP_NOP_TS_KINDS = (OPT_NOP, OPT_NOP, OPT_TIMESTAMP)
_NOP_NOP_SACK_PERM = b"\x01\x01\x04\x02"


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP segment: header fields, decoded options and payload.

    ``flags`` is a plain int bit mask (``SYN | ACK``); ``window`` is the raw 16-bit
    field, before any window scaling. Records compare and hash by content; the
    three fields at the end are filled in by :func:`parse_tcp` for display and do
    not take part in comparison (encoding computes its own).
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: int = 0
    window: int = 0
    urgent: int = 0
    payload: bytes = b""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamps: tuple[int, int] | None = None  # (tsval, tsecr)
    unknown_options: tuple[tuple[int, bytes], ...] = ()  # (kind, data), written verbatim
    reserved: int = 0  # the 4 bits between data offset and CWR
    data_offset: int = field(default=0, compare=False)  # 32-bit words, as parsed
    checksum: int = field(default=0, compare=False)  # as parsed
    option_kinds: tuple[int, ...] = field(default=(), compare=False)  # wire order, as parsed

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN) // SYN + (self.flags & FIN)

    def has(self, flag: int) -> bool:
        """True if every bit of ``flag`` is set (``seg.has(SYN | ACK)``)."""
        return (self.flags & flag) == flag


# Parsers build records with every field known; see _records.py for why not TcpSegment(...).
_make_segment = positional_constructor(TcpSegment)
#: ``make_segment(*fields)``: a :class:`TcpSegment` from all 18 fields in field order, no
#: defaults or checks -- for the stack's per-segment output (see _records.py).
make_segment = _make_segment


def _option_name(kind: int) -> str:
    return OPTION_NAMES.get(kind) or f"kind {kind}"


def _bad_length(kind: int, detail: str) -> ParseError:
    return ParseError(f"TCP option {_option_name(kind)}", "bad option length", detail)


def _parse_options(
    data: Buffer, i: int, end: int
) -> tuple[
    int | None,
    int | None,
    bool,
    tuple[tuple[int, int], ...],
    tuple[int, int] | None,
    tuple[tuple[int, bytes], ...],
    tuple[int, ...],
]:
    """Decode the options in ``data[i:end]`` (RFC 9293 section 3.2)."""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamps: tuple[int, int] | None = None
    unknown: list[tuple[int, bytes]] = []
    kinds: list[int] = []
    while i < end:
        kind = data[i]
        kinds.append(kind)
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise _bad_length(kind, "(no length byte before the end of the options)")
        length = data[i + 1]
        if length < 2:
            raise _bad_length(kind, f"{length} (minimum 2)")
        if i + length > end:
            raise _bad_length(kind, f"{length} (only {end - i} bytes of options left)")
        expected = _FIXED_LEN.get(kind)
        if expected is not None and length != expected:
            raise _bad_length(kind, f"{length} (expected {expected})")
        if kind == OPT_TIMESTAMP:
            timestamps = _U32X2.unpack_from(data, i + 2)
        elif kind == OPT_MSS:
            mss = _U16.unpack_from(data, i + 2)[0]
        elif kind == OPT_WSCALE:
            wscale = data[i + 2]
        elif kind == OPT_SACK_PERM:
            sack_permitted = True
        elif kind == OPT_SACK:
            if length < 10 or (length - 2) % 8:
                raise _bad_length(kind, f"{length} (expected 2 + 8n, n >= 1)")
            sack_blocks = tuple(_U32X2.iter_unpack(data[i + 2 : i + length]))
        else:
            unknown.append((kind, bytes(data[i + 2 : i + length])))
        i += length
    return mss, wscale, sack_permitted, sack_blocks, timestamps, tuple(unknown), tuple(kinds)


def parse_tcp(
    data: Buffer,
    src: str | None = None,
    dst: str | None = None,
    *,
    verify_checksum: bool = True,
) -> TcpSegment:
    """Parse one TCP segment (header, options, payload) from ``data``.

    ``data`` is exactly the segment: an IP payload already cut to the IP total
    length. The checksum is verified only when ``src`` and ``dst`` (dotted-quad
    IPv4 addresses for the pseudo-header) are given and ``verify_checksum`` is
    true. Raises :class:`ParseError` for anything malformed, never another error.
    An option that appears twice counts once, the last one winning, as in Linux.
    """
    n = len(data)
    if n < TCP_HEADER_LEN:
        raise ParseError("TCP header", "truncated", f"({n} bytes, need at least 20)")
    sport, dport, seq, ack, off, flags, window, csum, urgent = _HEADER.unpack_from(data)
    doff = off >> 4
    hlen = doff << 2
    if doff < 5:
        raise ParseError("TCP data offset", "bad data offset", f"{doff} (minimum 5)")
    if hlen > n:
        raise ParseError(
            "TCP data offset", "bad data offset", f"{doff} ({hlen} bytes, segment has {n})"
        )
    if (
        verify_checksum
        and src is not None
        and dst is not None
        and internet_checksum(data, pseudo_header_sum(src, dst, 6, n))
    ):
        zeroed = bytearray(data)
        zeroed[16:18] = b"\0\0"
        good = internet_checksum(zeroed, pseudo_header_sum(src, dst, 6, n))
        raise ParseError("TCP checksum", "bad checksum", f"0x{csum:04x} (expected 0x{good:04x})")
    payload = bytes(data[hlen:])
    if hlen == 20:
        return _make_segment(
            sport, dport, seq, ack, flags, window, urgent, payload,
            None, None, False, (), None, (), off & 0x0F, doff, csum, (),
        )  # fmt: skip
    if hlen == 32:
        word, tsval, tsecr = _U32X3.unpack_from(data, 20)
        if word != _NOP_NOP_TS_WORD:
            return _parsed_with_options(data, hlen, sport, dport, seq, ack, off, flags,
                                        window, csum, urgent, payload)
        # The shape of nearly every segment after the handshake: NOP NOP TS.
        return _make_segment(
            sport, dport, seq, ack, flags, window, urgent, payload,
            None, None, False, (), (tsval, tsecr), (),
            off & 0x0F, doff, csum, _NOP_NOP_TS_KINDS,
        )  # fmt: skip
    if hlen == 40:
        # The options of nearly every SYN and SYN,ACK: MSS, SACK_PERM, TS, NOP WS.
        mss_kl, mss, sp_kl, ts_kl, tsval, tsecr, nop_ws, ws_len, ws = _SYN_WORDS.unpack_from(
            data, 20)
        if mss_kl == 0x0204 and sp_kl == 0x0402 and ts_kl == 0x080A and nop_ws == 0x0103 \
                and ws_len == 3:
            return _make_segment(
                sport, dport, seq, ack, flags, window, urgent, payload,
                mss, ws, True, (), (tsval, tsecr), (),
                off & 0x0F, doff, csum, _SYN_KINDS,
            )  # fmt: skip
    return _parsed_with_options(data, hlen, sport, dport, seq, ack, off, flags, window, csum,
                                urgent, payload)


def _parsed_with_options(
    data: Buffer, hlen: int, sport: int, dport: int, seq: int, ack: int, off: int,
    flags: int, window: int, csum: int, urgent: int, payload: bytes,
) -> TcpSegment:  # fmt: skip
    """parse_tcp()'s general case: options decoded one by one."""
    mss, wscale, sack_perm, sack, ts, unknown, kinds = _parse_options(data, 20, hlen)
    return _make_segment(
        sport, dport, seq, ack, flags, window, urgent, payload,
        mss, wscale, sack_perm, sack, ts, unknown, off & 0x0F, off >> 4, csum, kinds,
    )  # fmt: skip


def _encode_options(seg: TcpSegment) -> bytes:
    """Options in Linux's layout (see the module docstring), EOL-padded."""
    ts = seg.timestamps
    if seg.mss is not None and ts is not None and seg.sack_permitted \
            and seg.wscale is not None and not seg.sack_blocks and not seg.unknown_options:
        # A SYN or SYN,ACK with all four (20 bytes, no padding): one pack.
        return _SYN_OPTS.pack(OPT_MSS, 4, seg.mss, OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10,
                              ts[0], ts[1], OPT_NOP, OPT_WSCALE, 3, seg.wscale)
    parts: list[bytes] = []
    if seg.mss is not None:
        parts.append(_MSS.pack(OPT_MSS, 4, seg.mss))
    if ts is not None:
        if seg.sack_permitted:
            parts.append(_TS.pack(OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10, ts[0], ts[1]))
        else:
            parts.append(_TS.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, ts[0], ts[1]))
    elif seg.sack_permitted:
        parts.append(_NOP_NOP_SACK_PERM)
    if seg.wscale is not None:
        parts.append(_WSCALE.pack(OPT_NOP, OPT_WSCALE, 3, seg.wscale))
    if seg.sack_blocks:
        blocks = seg.sack_blocks
        parts.append(bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks))))
        parts.extend(_U32X2.pack(left, right) for left, right in blocks)
    last = len(seg.unknown_options) - 1
    for i, (kind, data) in enumerate(seg.unknown_options):
        if len(data) > MAX_OPTIONS_LEN - 2:
            raise ValueError(f"TCP option kind {kind}: {len(data)} bytes of data is too long")
        fast_open = i == last and len(data) % 4 == 0 and (
            kind == 34 or kind == 254 and data[:2] == b"\xf9\x89") \
            and sum(map(len, parts)) % 4 == 0
        parts.append(bytes((kind, len(data) + 2)))
        parts.append(data)
        if fast_open:
            # Linux tcp_options_write(): a Fast Open option of 4n+2 bytes, written last
            # on a 32-bit boundary, is padded with two NOPs where others get EOL padding.
            parts.append(_NOP_NOP)
    options = b"".join(parts)
    if len(options) > MAX_OPTIONS_LEN:
        raise ValueError(f"TCP options need {len(options)} bytes, the limit is 40")
    pad = -len(options) & 3
    return options + bytes(pad) if pad else options


def _encode_header(seg: TcpSegment) -> bytearray:
    """The header with its options, checksum field zero; ValueError naming a bad field."""
    if (
        seg.mss is None and seg.timestamps is None and seg.wscale is None
        and not seg.sack_permitted and not seg.sack_blocks and not seg.unknown_options
    ):  # fmt: skip
        options = b""
    else:
        try:
            options = _encode_options(seg)
        except struct.error as exc:
            raise ValueError(f"TCP option field out of range: {exc}") from exc
    hlen = TCP_HEADER_LEN + len(options)
    reserved = seg.reserved
    if not 0 <= reserved <= 0x0F:
        raise ValueError(f"TCP reserved bits must be 0..15, not {reserved}")
    header = bytearray(hlen)
    try:
        _HEADER.pack_into(
            header, 0, seg.src_port, seg.dst_port, seg.seq, seg.ack,
            (hlen << 2) | reserved, seg.flags, seg.window, 0, seg.urgent,
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"TCP header field out of range: {exc}") from exc
    header[TCP_HEADER_LEN:] = options
    return header


def _encode_tcp_parts(
    seg: TcpSegment, src: str, dst: str, csum_partial: bool = False
) -> tuple[bytearray, bytes]:
    """Encode the header (checksum filled in) and return it with the payload.

    ``csum_partial``: leave the checksum to the device (virtio-net NEEDS_CSUM): the
    field gets the folded pseudo-header sum and the payload is never summed.
    """
    payload = seg.payload
    ts = seg.timestamps
    reserved = seg.reserved
    header = None
    if (
        ts is not None and seg.mss is None and seg.wscale is None and not seg.sack_permitted
        and not seg.sack_blocks and not seg.unknown_options and 0 <= reserved <= 0x0F
    ):  # fmt: skip
        # Nearly every segment after the handshake: header and NOP NOP TS in one pack.
        header = bytearray(32)
        try:
            _HEADER_NOP_NOP_TS.pack_into(
                header, 0, seg.src_port, seg.dst_port, seg.seq, seg.ack,
                (32 << 2) | reserved, seg.flags, seg.window, 0, seg.urgent,
                _NOP_NOP_TS_WORD, ts[0], ts[1],
            )  # fmt: skip
        except struct.error:
            header = None  # a field out of range: the general path below says which
    if header is None:
        header = _encode_header(seg)
    hlen = len(header)
    if csum_partial:
        x = pseudo_header_sum(src, dst, 6, hlen + len(payload))
        while x > 0xFFFF:
            x = (x & 0xFFFF) + (x >> 16)
        _U16.pack_into(header, 16, x)
        return header, payload
    # The header length is a multiple of 4, so header and payload sums can be added.
    initial = pseudo_header_sum(src, dst, 6, hlen + len(payload)) + int.from_bytes(header, "big")
    _U16.pack_into(header, 16, internet_checksum(payload, initial))
    return header, payload


def encode_tcp(seg: TcpSegment, src: str, dst: str) -> bytes:
    """Encode ``seg`` to bytes, computing the data offset and the checksum over the
    IPv4 pseudo-header for ``src`` -> ``dst``.

    The parse-only fields (``data_offset``, ``checksum``, ``option_kinds``) are
    ignored. Raises ``ValueError`` if a field is out of range or the options need
    more than 40 bytes. ``unknown_options`` are written verbatim, even with a known
    kind, which is how tests craft malformed options.
    """
    header, payload = _encode_tcp_parts(seg, src, dst)
    return b"".join((header, payload))


def _names(flags: int, table: tuple[tuple[int, str], ...], sep: str) -> str:
    return sep.join(name for bit, name in table if flags & bit) or "none"


_LONG = ((FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (PSH, "PSH"),
         (ACK, "ACK"), (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))  # fmt: skip
_SHORT = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"),
          (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))  # fmt: skip
_FLAGS_STR = tuple(_names(f, _LONG, ",") for f in range(256))
_FLAGS_SHORT = tuple(_names(f, _SHORT, "") for f in range(256))


def flags_str(flags: int) -> str:
    """Long form, names in bit order from FIN up, as Wireshark lists them:
    ``"SYN,ACK"``, ``"FIN,PSH,ACK"``, ``"SYN,ECE,CWR"``; ``"none"`` for no flags."""
    return _FLAGS_STR[flags & 0xFF]


def flags_short(flags: int) -> str:
    """tcpdump's form, same order: ``"S"``, ``"S."``, ``"P."``, ``"F."``, ``"R"``,
    ``"SEW"``; ``"none"`` for no flags (tcpdump prints ``[none]``)."""
    return _FLAGS_SHORT[flags & 0xFF]
