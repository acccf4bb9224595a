"""IPv4 headers (RFC 791) and the IPv4 + TCP packet helpers drivers use.

:func:`parse_ipv4` returns the header record and a zero-copy ``memoryview`` of the
payload cut to the total length (so Ethernet padding never reaches TCP).
:func:`build_tcp_packet` and :func:`parse_tcp_packet` are the two calls a stack
needs per packet; they do one copy of the payload each way at most.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._addr import NAMES as _NAMES
from ._addr import aton, name_of, ntoa
from ._records import positional_constructor
from .checksum import Buffer, internet_checksum
from .errors import ParseError
from .tcp import (
    _NOP_NOP_TS_KINDS,
    _SYN_KINDS,
    _SYN_WORDS,
    TcpSegment,
    _encode_tcp_parts,
    _make_segment,
    parse_tcp,
)

__all__ = [
    "IP_MID_PAIR_TCP_TS",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "IPv4Header",
    "build_tcp_packet",
    "build_ts_fields",
    "build_ts_packet",
    "encode_ipv4",
    "parse_ipv4",
    "parse_ipv4_tcp",
    "parse_tcp_packet",
]  # fmt: skip

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

IPV4_HEADER_LEN = 20
MAX_OPTIONS_LEN = 40
_DF = 0x4000
_MF = 0x2000
_FRAG_MASK = 0x1FFF

# version|ihl, tos, total length, ident, flags|fragment offset, ttl, proto, checksum, src, dst
_HEADER = struct.Struct("!BBHHHBBHII")
_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """An IPv4 header. ``frag_offset`` is in 8-byte units, as on the wire.

    ``total_length``, ``header_length`` (bytes) and ``checksum`` are filled in by
    :func:`parse_ipv4` and take no part in comparison; encoding computes its own.
    ``options`` are raw bytes, padded with EOL to a 32-bit boundary on encode.
    The reserved flag bit is neither decoded nor encoded.
    """

    src: str
    dst: str
    proto: int = PROTO_TCP
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    dont_fragment: bool = True
    more_fragments: bool = False
    frag_offset: int = 0
    total_length: int = field(default=0, compare=False)
    header_length: int = field(default=20, compare=False)
    checksum: int = field(default=0, compare=False)
    options: bytes = b""


_make_header = positional_constructor(IPv4Header)  # see _records.py


def parse_ipv4(packet: Buffer, *, verify_checksum: bool = True) -> tuple[IPv4Header, memoryview]:
    """Parse an IPv4 packet into its header and payload.

    The payload is a ``memoryview`` of ``packet`` from the end of the header to
    the total length; bytes past the total length (link padding) are ignored.
    Raises :class:`ParseError` (truncated, bad version, bad header length, bad
    total length, bad checksum) and nothing else.
    """
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _checked(packet, verify_checksum)
    hlen = (vihl & 0x0F) << 2
    header = _make_header(
        ntoa(src), ntoa(dst), proto, ttl, tos, ident,
        bool(frag & _DF), bool(frag & _MF), frag & _FRAG_MASK,
        total, hlen, csum, bytes(packet[IPV4_HEADER_LEN:hlen]) if hlen > 20 else b"",
    )  # fmt: skip
    return header, memoryview(packet)[hlen:total]


def parse_ipv4_route(
    packet: Buffer, *, verify_checksum: bool = True
) -> tuple[str, str, int, int, memoryview]:
    """What a host's receive path needs of an IPv4 packet, without the header record:
    ``(src, dst, proto, flags|fragment offset word, payload)``. The same checks and
    errors as :func:`parse_ipv4`."""
    vihl, _tos, total, _id, frag, _ttl, proto, _csum, src, dst = _checked(packet, verify_checksum)
    return ntoa(src), ntoa(dst), proto, frag, memoryview(packet)[(vihl & 0x0F) << 2:total]


# The IPv4 header, the TCP header and NOP NOP TS: nearly every packet after the handshake.
_IP_TCP_TS = struct.Struct("!BBHHHBBHIIHHIIBBHHHIII")
_IP_TCP_TS_LEN = 52
_TCP_TS_LEN = 32
_TCP_TS_DOFF = _TCP_TS_LEN << 2   # its data offset byte (reserved bits 0), computed once
_NOP_NOP_TS_WORD = 0x0101080A
# Checksums of segments up to this long are summed inline; longer ones fold in halves
# first (internet_checksum()).
_INLINE_SUM_MAX = 512
#: :data:`_IP_TCP_TS` with the IPv4 header's middle (ident to checksum) as one 64-bit
#: field and the two addresses as another, ``src << 32 | dst`` (the host's receive
#: path knows its peers by that pair: synack.host.receive).
IP_MID_PAIR_TCP_TS = struct.Struct("!BBHQQHHIIBBHHHIII")


def parse_ipv4_tcp(
    packet: Buffer, verify_tcp_checksum: bool = True
) -> tuple[str, str, TcpSegment] | None:
    """A host's usual packet in one call: ``(src, dst, segment)`` for an IPv4 packet
    with a 20-byte header, not a fragment, carrying TCP, its header checksum right and
    (when ``verify_tcp_checksum``) the segment's too. None for anything else -- an
    error too, a checksum one included: :func:`parse_ipv4_route` and
    :func:`~synack.wire.tcp.parse_tcp` then take the packet and name what is wrong.
    A malformed TCP header raises :func:`~synack.wire.tcp.parse_tcp`'s error.
    """
    n = len(packet)
    if n >= _IP_TCP_TS_LEN:
        # Both headers and NOP NOP TS (if that is what follows) in one unpack.
        (vihl, tos, total, ident, frag, ttl, proto, csum, src, dst, sport, dport, seq, ack,
         off, flags, window, tcsum, urgent, word, tsval, tsecr) = _IP_TCP_TS.unpack_from(packet)
    elif n >= 40:
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HEADER.unpack_from(packet)
        off = word = 0
    else:
        return None
    if vihl != 0x45 or proto != PROTO_TCP or frag & 0x3FFF or total > n or total < 40:
        return None
    # The header's checksum as _checked() takes it (its big-endian value a multiple of
    # 0xFFFF), from the fields already unpacked: 2**16 == 1 mod 0xFFFF, so the value is
    # the sum of its words mod 0xFFFF, an address counting as its two. (Never zero: the
    # first word is 0x45xx.)
    if (0x4506 + tos + total + ident + frag + (ttl << 8) + csum + src + dst) % 0xFFFF:
        return None
    if verify_tcp_checksum and total == n and n <= _INLINE_SUM_MAX:
        # The usual packet, no link padding: the whole of it summed at once, as GRO does
        # (link/gro.py). Read little-endian, a packet's value is its word sum with the
        # bytes swapped, mod 0xFFFF, and 256 times it swaps them back; the IP header adds
        # nothing (its words sum to 0 mod 0xFFFF, checked above); the addresses count
        # as their two words each. Right exactly when the pseudo header and segment sum
        # to 0 mod 0xFFFF (never 0 itself: the length and protocol are in it).
        if (((int.from_bytes(packet, "little") % 0xFFFF) << 8) + src + dst + PROTO_TCP
                + total - IPV4_HEADER_LEN) % 0xFFFF:
            return None
    elif verify_tcp_checksum:
        # pseudo_header_sum() from the address words, and internet_checksum(), inline.
        body = memoryview(packet)[IPV4_HEADER_LEN:total]
        size = total - IPV4_HEADER_LEN
        initial = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + PROTO_TCP + size
        if size > _INLINE_SUM_MAX:
            if internet_checksum(body, initial):
                return None
        elif (((int.from_bytes(body, "little") % 0xFFFF) << 8) + initial - 1) % 0xFFFF \
                != 0xFFFE:
            return None
    try:
        # ntoa() of both, from the table of names already made (a subscript, not a call).
        src_name, dst_name = _NAMES[src], _NAMES[dst]
    except KeyError:
        src_name, dst_name = name_of(src), name_of(dst)
    if off >> 4 == 8 and word == _NOP_NOP_TS_WORD and total >= _IP_TCP_TS_LEN:
        # parse_tcp()'s record of the usual segment after the handshake, made here.
        return src_name, dst_name, _make_segment(
            sport, dport, seq, ack, flags, window, urgent, bytes(packet[_IP_TCP_TS_LEN:total]),
            None, None, False, (), (tsval, tsecr), (), off & 0x0F, 8, tcsum, _NOP_NOP_TS_KINDS,
        )  # fmt: skip
    if off >> 4 == 10 and total >= _IP_TCP_SYN_LEN:
        # A SYN's usual options (MSS, SACK_PERM, TS, NOP WS), as parse_tcp() checks them.
        mss_kl, mss, sp_kl, ts_kl, tsval, tsecr, nop_ws, ws_len, ws = _SYN_WORDS.unpack_from(
            packet, _IP_TCP_SYN_LEN - 20)
        if mss_kl == 0x0204 and sp_kl == 0x0402 and ts_kl == 0x080A and nop_ws == 0x0103 \
                and ws_len == 3:
            return src_name, dst_name, _make_segment(
                sport, dport, seq, ack, flags, window, urgent,
                bytes(packet[_IP_TCP_SYN_LEN:total]), mss, ws, True, (), (tsval, tsecr), (),
                off & 0x0F, 10, tcsum, _SYN_KINDS,
            )  # fmt: skip
    return src_name, dst_name, parse_tcp(memoryview(packet)[IPV4_HEADER_LEN:total],
                                         verify_checksum=False)


def _checked(packet: Buffer, verify_checksum: bool) -> tuple[int, ...]:
    """The raw header fields, after checking lengths, version and checksum."""
    n = len(packet)
    if n < IPV4_HEADER_LEN:
        raise ParseError("IPv4 header", "truncated", f"({n} bytes, need at least 20)")
    fields = _HEADER.unpack_from(packet)
    vihl, total, csum = fields[0], fields[2], fields[7]
    if vihl >> 4 != 4:
        raise ParseError("IPv4 version", "bad version", f"{vihl >> 4} (expected 4)")
    hlen = (vihl & 0x0F) << 2
    if hlen < IPV4_HEADER_LEN:
        raise ParseError("IPv4 header length", "bad header length", f"{hlen} bytes (minimum 20)")
    if total < hlen:
        raise ParseError(
            "IPv4 total length", "bad total length", f"{total} (less than the {hlen}-byte header)"
        )
    if total > n:
        raise ParseError(
            "IPv4 total length", "bad total length", f"{total} (only {n} bytes received)"
        )
    # internet_checksum(header) == 0 exactly when the header's big-endian value is a
    # non-zero multiple of 0xFFFF (2**16 == 1 mod 0xFFFF): one call less per packet.
    if verify_checksum and ((x := int.from_bytes(packet[:hlen], "big")) % 0xFFFF or not x):
        zeroed = bytearray(packet[:hlen])
        zeroed[10:12] = b"\0\0"
        good = internet_checksum(zeroed)
        raise ParseError("IPv4 checksum", "bad checksum", f"0x{csum:04x} (expected 0x{good:04x})")
    return fields


def _header_bytes(
    src: str, dst: str, proto: int, ttl: int, tos: int, ident: int, frag: int,
    options: bytes, payload_len: int,
) -> bytearray:  # fmt: skip
    """The encoded header, checksum filled in; ``frag`` is the flags|offset word."""
    if options:
        pad = -len(options) & 3
        if pad:
            options = options + bytes(pad)
        if len(options) > MAX_OPTIONS_LEN:
            raise ValueError(f"IPv4 options need {len(options)} bytes, the limit is 40")
    hlen = IPV4_HEADER_LEN + len(options)
    total = hlen + payload_len
    if total > 0xFFFF:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds 65535")
    header = bytearray(hlen)
    try:
        _HEADER.pack_into(
            header, 0, 0x40 | (hlen >> 2), tos, total, ident, frag, ttl, proto, 0,
            aton(src), aton(dst),
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"IPv4 header field out of range: {exc}") from exc
    if options:
        header[IPV4_HEADER_LEN:] = options
    _U16.pack_into(header, 10, internet_checksum(header))
    return header


def encode_ipv4(hdr: IPv4Header, payload: Buffer) -> bytes:
    """Encode ``hdr`` followed by ``payload``, computing the header length, total
    length and header checksum. Raises ``ValueError`` for out-of-range fields, an
    address that is not dotted-quad, or a packet over 65535 bytes."""
    if not 0 <= hdr.frag_offset <= _FRAG_MASK:
        raise ValueError(f"IPv4 fragment offset must be 0..8191, not {hdr.frag_offset}")
    frag = hdr.frag_offset | (_DF if hdr.dont_fragment else 0) | (_MF if hdr.more_fragments else 0)
    header = _header_bytes(
        hdr.src, hdr.dst, hdr.proto, hdr.ttl, hdr.tos, hdr.ident, frag, hdr.options, len(payload)
    )
    return b"".join((header, payload))


def build_tcp_packet(
    src: str, dst: str, seg: TcpSegment, *, ttl: int = 64, ident: int = 0, tos: int = 0,
    csum_partial: bool = False,
) -> bytes:
    """Return a complete IPv4 packet (DF set) carrying ``seg``, both checksums
    computed. ``tos`` carries DSCP and the ECN codepoint (RFC 3168).
    ``csum_partial``: the TCP checksum field holds only the pseudo-header sum,
    for a device that completes it (virtio-net NEEDS_CSUM, :mod:`synack.wire.vnet`)."""
    ts = seg.timestamps
    if (
        ts is not None and seg.mss is None and seg.wscale is None and not seg.sack_permitted
        and not seg.sack_blocks and not seg.unknown_options
    ):  # fmt: skip
        packet = build_ts_packet(src, dst, seg, ts, ttl, ident, tos, csum_partial)
        if packet is not None:
            return packet
    elif (
        ts is not None and seg.mss is not None and seg.wscale is not None
        and seg.sack_permitted and not seg.sack_blocks and not seg.unknown_options
    ):  # fmt: skip
        packet = _build_syn_packet(src, dst, seg, ts, ttl, ident, tos, csum_partial)
        if packet is not None:
            return packet
    tcp_header, payload = _encode_tcp_parts(seg, src, dst, csum_partial)
    ip = _header_bytes(
        src, dst, PROTO_TCP, ttl, tos, ident, _DF, b"", len(tcp_header) + len(payload)
    )
    return b"".join((ip, tcp_header, payload))


def _fixed_sums(src: str, dst: str) -> tuple[int, int, int, int, int, int]:
    """The address words of ``src`` and ``dst`` and the sums, modulo 0xFFFF, of what
    :func:`build_ts_packet` and :func:`_build_syn_packet` put in a checksum that does
    not change from packet to packet: the IPv4 header's fixed fields, the
    pseudo-header less its length, and that plus the fixed TCP words of the TS
    layout, or of the SYN layout.
    Kept per address pair (a stack talks to a handful)."""
    a_src = aton(src)
    a_dst = aton(dst)
    addr_sum = a_src + a_dst
    pseudo = (addr_sum + PROTO_TCP - IPV4_HEADER_LEN) % 0xFFFF
    # (The IPv4 and TS sums less one: the checksum formula's "s - 1" done here.)
    got = (a_src, a_dst, (0x4500 + _DF + PROTO_TCP + addr_sum) % 0xFFFF - 1, pseudo,
           (pseudo + ((_TCP_TS_LEN << 2) << 8) + _NOP_NOP_TS_WORD) % 0xFFFF - 1,
           (pseudo + ((_TCP_SYN_LEN << 2) << 8) + _SYN_OPT_WORDS) % 0xFFFF - 1)
    if len(_FIXED) >= _FIXED_MAX:
        _FIXED.clear()
    _FIXED[src, dst] = got
    return got


_FIXED: dict[tuple[str, str], tuple[int, int, int, int, int, int]] = {}
_FIXED_MAX = 4096


def build_ts_packet(
    src: str, dst: str, seg: TcpSegment, ts: tuple[int, int], ttl: int, ident: int,
    tos: int, csum_partial: bool,
) -> bytes | None:  # fmt: skip
    """:func:`build_tcp_packet` for a segment whose only option is the timestamp
    (:func:`build_ts_fields` from the record's fields). None when a field is out of
    range: the general path then names it."""
    reserved = seg.reserved
    if not 0 <= reserved <= 0x0F:
        return None
    return build_ts_fields(
        src, dst, seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window,
        seg.urgent, seg.payload, ts[0], ts[1], ttl, ident, tos, csum_partial, reserved,
    )  # fmt: skip


def build_ts_fields(
    src: str, dst: str, sport: int, dport: int, sq: int, ack: int, flags: int, window: int,
    urgent: int, payload: bytes, tsval: int, tsecr: int, ttl: int, ident: int, tos: int,
    csum_partial: bool, reserved: int = 0,
) -> bytes | None:  # fmt: skip
    """The IPv4 packet of a TCP segment whose only option is the timestamp, from its
    field values (no :class:`TcpSegment` record: the stack's per-segment output):
    both checksums from the values, then the two headers in one pack, no buffer.

    A checksum over a header is the sum of its 16-bit words modulo 0xFFFF, and
    2**16 == 1 modulo 0xFFFF, so a 32-bit field counts as itself and no bytes need
    summing; the fields that stay the same from packet to packet are summed once per
    address pair (:func:`_fixed_sums`), already reduced, so most of the sums stay small
    integers. None when a field is out of range: the general path then names it.
    """
    total = _IP_TCP_TS_LEN + len(payload)
    if total > 0xFFFF:
        return None
    a_src, a_dst, ip_fixed, pseudo, tcp_fixed, _ = _FIXED.get((src, dst)) or _fixed_sums(src, dst)
    # RFC 1071: the one's complement of the end-around-carry sum, which for a sum s > 0
    # is 0xFFFF - ((s - 1) % 0xFFFF + 1) (internet_checksum() says why); it depends on
    # s modulo 0xFFFF only, so the fixed parts come in reduced (and less one).
    # (* 256, not << 8: CPython 3.11 multiplies small ints the quick way, shifts them
    # the general way; per packet)
    ip_csum = 0xFFFE - (ip_fixed + tos + total + ident + ttl * 256) % 0xFFFF
    if csum_partial:
        # The pseudo-header (addresses, protocol, length), folded, not complemented.
        tcp_csum = (pseudo + total - 1) % 0xFFFF + 1
    else:
        # The sum less one (total > 0 keeps it positive); the fields that are nearly
        # always 0 only when set.
        s1 = tcp_fixed + total + sport + dport + flags + window + sq + ack + tsval + tsecr
        if reserved:
            s1 += reserved << 8
        if urgent:
            s1 += urgent
        if not payload:
            tcp_csum = 0xFFFE - s1 % 0xFFFF
        elif total <= _INLINE_SUM_MAX:
            # internet_checksum(payload, s1 + 1), inline: the words byte-swapped, read
            # little-endian, the swap a multiplication by 256 modulo 0xFFFF.
            tcp_csum = 0xFFFE - (s1 + (int.from_bytes(payload, "little") % 0xFFFF) * 256) \
                % 0xFFFF
        else:
            tcp_csum = internet_checksum(payload, s1 + 1)
    try:
        headers = _IP_TCP_TS.pack(
            0x45, tos, total, ident, _DF, ttl, PROTO_TCP, ip_csum, a_src, a_dst,
            sport, dport, sq, ack, (_TCP_TS_DOFF | reserved) if reserved else _TCP_TS_DOFF,
            flags, window, tcp_csum, urgent, _NOP_NOP_TS_WORD, tsval, tsecr,
        )  # fmt: skip
    except struct.error:
        return None
    # (a concatenation: one copy, no tuple and no method call as b"".join() has)
    return headers + payload if payload else headers


# The IPv4 header, the TCP header and a SYN's four options in Linux's layout (MSS,
# SACK_PERM, TS, NOP WS): nearly every SYN and SYN,ACK.
# The options' constant bytes packed as wider fields (kind and length 2, 4 of the MSS as
# one H; NOP, kind 4, 2, kind 8, 10 as one I; NOP and kind 3 as one H): fewer arguments.
_IP_TCP_SYN = struct.Struct("!BBHHHBBHIIHHIIBBHHHHHIIIHBB")
_IP_TCP_SYN_LEN = 60
_TCP_SYN_LEN = 40
# The option bytes that are not fields, as the sum of the 16-bit words they fall in:
# 02 04 | 04 02 | 08 0a | 01 03 | 03 (then the shift).
_SYN_OPT_WORDS = 0x0204 + 0x0402 + 0x080A + 0x0103 + 0x0300


def _build_syn_packet(
    src: str, dst: str, seg: TcpSegment, ts: tuple[int, int], ttl: int, ident: int,
    tos: int, csum_partial: bool,
) -> bytes | None:  # fmt: skip
    """:func:`build_tcp_packet` for a SYN or SYN,ACK with MSS, SACK_PERM, TS and window
    scale (the bytes ``tcp._encode_options`` lays out), as :func:`build_ts_packet`
    does it: checksums from the field values, one pack. None when a field is out of
    range: the general path then names it."""
    payload = seg.payload
    total = _IP_TCP_SYN_LEN + len(payload)
    reserved = seg.reserved
    if total > 0xFFFF or reserved & -16:    # (not 0 <= reserved <= 0x0F)
        return None
    a_src, a_dst, ip_fixed, pseudo, _, syn_fixed = _FIXED.get((src, dst)) \
        or _fixed_sums(src, dst)
    sport, dport, sq, ack = seg.src_port, seg.dst_port, seg.seq, seg.ack
    flags, window, urgent, mss, wscale = seg.flags, seg.window, seg.urgent, seg.mss, seg.wscale
    assert mss is not None and wscale is not None
    tsval, tsecr = ts
    ip_csum = 0xFFFE - (ip_fixed + tos + total + ident + ttl * 256) % 0xFFFF
    if csum_partial:
        tcp_csum = (pseudo + total - 1) % 0xFFFF + 1
    else:
        s1 = (syn_fixed + total + sport + dport + (reserved << 8) + flags + window + urgent
              + mss + wscale + sq + ack + tsval + tsecr)       # the sum less one
        tcp_csum = internet_checksum(payload, s1 + 1) if payload else 0xFFFE - s1 % 0xFFFF
    try:
        headers = _IP_TCP_SYN.pack(
            0x45, tos, total, ident, 0x4000, ttl, 6, ip_csum, a_src, a_dst,   # _DF, PROTO_TCP
            sport, dport, sq, ack, 0xA0 | reserved, flags, window, tcp_csum,  # 0xA0: 40 << 2
            urgent, 0x0204, mss, 0x0402080A, tsval, tsecr, 0x0103, 3, wscale,
        )  # fmt: skip
    except struct.error:
        return None
    return b"".join((headers, payload)) if payload else headers


def parse_tcp_packet(
    packet: Buffer, *, verify_checksum: bool = True
) -> tuple[IPv4Header, TcpSegment]:
    """Parse an IPv4 packet carrying one TCP segment; verifies both checksums
    unless ``verify_checksum`` is false. Raises :class:`ParseError` of kind
    "unsupported" for another protocol or for a fragment (synack does not reassemble).
    """
    hdr, payload = parse_ipv4(packet, verify_checksum=verify_checksum)
    if hdr.proto != PROTO_TCP:
        raise ParseError("IPv4 protocol", "unsupported", f"{hdr.proto} (only TCP, 6)")
    if hdr.more_fragments or hdr.frag_offset:
        raise ParseError(
            "IPv4 fragment",
            "unsupported",
            f"offset {hdr.frag_offset * 8}, fragments are not reassembled",
        )
    return hdr, parse_tcp(payload, hdr.src, hdr.dst, verify_checksum=verify_checksum)
