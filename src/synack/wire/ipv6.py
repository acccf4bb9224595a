"""IPv6 headers (RFC 8200) and the IPv6 + TCP packet helpers drivers use.

The fixed header is 40 bytes; extension headers follow in a chain, each naming the
next. :func:`parse_ipv6` walks the chain over the four kinds a host meets
(hop-by-hop options, routing, fragment, destination options; RFC 8200 section 4)
and returns the header record, with the chain kept as raw ``(kind, body)`` pairs,
and a zero-copy ``memoryview`` of the upper-layer payload cut to the payload length
(so Ethernet padding never reaches TCP). The upper-layer protocol is
:attr:`IPv6Header.proto` (``next_header`` is the fixed header's own field).

synack does not reassemble: :func:`parse_tcp6_packet` raises a :class:`ParseError`
of kind "unsupported" for any packet with a fragment header (an atomic fragment,
offset 0 and M clear, RFC 6946, is accepted), so a stack counts and drops it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._addr import aton6, ntoa6
from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import ParseError
from .tcp import TcpSegment, _encode_tcp_parts, parse_tcp

__all__ = [
    "EXT_DSTOPTS",
    "EXT_FRAGMENT",
    "EXT_HOPOPTS",
    "EXT_ROUTING",
    "IPV6_HEADER_LEN",
    "NEXT_NONE",
    "PROTO_ICMPV6",
    "IPv6Header",
    "build_tcp6_packet",
    "encode_ipv6",
    "parse_ipv6",
    "parse_ipv6_route",
    "parse_tcp6_packet",
]  # fmt: skip

PROTO_TCP = 6
PROTO_ICMPV6 = 58
EXT_HOPOPTS = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DSTOPTS = 60
NEXT_NONE = 59
#: Extension headers walked and skipped; everything else is the upper layer.
EXTENSIONS = frozenset({EXT_HOPOPTS, EXT_ROUTING, EXT_FRAGMENT, EXT_DSTOPTS})

IPV6_HEADER_LEN = 40
FRAGMENT_LEN = 8
_MAX_FLOW = 0xFFFFF
# version|traffic class|flow label, payload length, next header, hop limit, src, dst
_HEADER = struct.Struct("!IHBB16s16s")


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """An IPv6 header and its extension-header chain.

    ``extensions`` are ``(kind, body)`` pairs in wire order: ``body`` is everything
    after the kind's two-byte "next header, length" prefix (so ``6 + 8n`` bytes for
    options and routing headers, 6 for a fragment header, whose second byte is
    reserved). ``proto`` is the upper-layer protocol after the chain (59 "no next
    header" when there is none). ``payload_length`` is filled in by
    :func:`parse_ipv6` and takes no part in comparison; encoding computes it.
    """

    src: str
    dst: str
    proto: int = PROTO_TCP
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    extensions: tuple[tuple[int, bytes], ...] = ()
    payload_length: int = field(default=0, compare=False)

    @property
    def next_header(self) -> int:
        """The fixed header's next-header field: the first extension, or ``proto``."""
        return self.extensions[0][0] if self.extensions else self.proto

    @property
    def header_length(self) -> int:
        """Bytes of the fixed header plus every extension header."""
        return IPV6_HEADER_LEN + sum(2 + len(body) for _, body in self.extensions)

    @property
    def fragment(self) -> tuple[int, bool, int] | None:
        """``(offset in bytes, more fragments, identification)`` of the first
        fragment header, or None."""
        for kind, body in self.extensions:
            if kind == EXT_FRAGMENT:
                word, ident = struct.unpack_from("!HI", body)
                return word & 0xFFF8, bool(word & 1), ident
        return None


def _walk(packet: Buffer, next_header: int, end: int) -> tuple[int, int, int, int]:
    """Follow the extension chain from byte 40 up to ``end``: returns
    ``(upper-layer proto, payload offset, fragment word, count)``; the fragment word is
    offset|M, or -1 when the packet has no fragment header."""
    off = IPV6_HEADER_LEN
    frag = -1
    count = 0
    proto = next_header
    while proto in EXTENSIONS:
        if proto == EXT_HOPOPTS and count:
            # RFC 8200 4.1: hop-by-hop options only right after the IPv6 header.
            raise ParseError("IPv6 hop-by-hop header", "unsupported",
                             f"as extension header {count + 1} (only first is allowed)")
        if end - off < 2:
            raise ParseError("IPv6 extension header", "truncated",
                             f"(kind {proto} at byte {off}, {end - off} bytes left)")
        if proto == EXT_FRAGMENT:
            size = FRAGMENT_LEN
            if end - off >= 4:
                word = (packet[off + 2] << 8) | packet[off + 3]
                frag = word & 0xFFF9
        else:
            size = (packet[off + 1] + 1) << 3
        if off + size > end:
            raise ParseError("IPv6 extension header", "truncated",
                             f"(kind {proto} of {size} bytes at byte {off}, {end - off} left)")
        proto = packet[off]
        off += size
        count += 1
    return proto, off, frag, count


def _chain(packet: Buffer, kind: int, count: int) -> tuple[tuple[int, bytes], ...]:
    """The first ``count`` extension headers as ``(kind, body)``, already checked by
    :func:`_walk`."""
    exts: list[tuple[int, bytes]] = []
    pos = IPV6_HEADER_LEN
    for _ in range(count):
        size = FRAGMENT_LEN if kind == EXT_FRAGMENT else (packet[pos + 1] + 1) << 3
        exts.append((kind, bytes(packet[pos + 2:pos + size])))
        kind = packet[pos]
        pos += size
    return tuple(exts)


def _fixed(packet: Buffer) -> tuple[int, int, int, int, bytes, bytes]:
    n = len(packet)
    if n < IPV6_HEADER_LEN:
        raise ParseError("IPv6 header", "truncated", f"({n} bytes, need at least 40)")
    vtf, plen, nxt, hops, src, dst = _HEADER.unpack_from(packet)
    if vtf >> 28 != 6:
        raise ParseError("IPv6 version", "bad version", f"{vtf >> 28} (expected 6)")
    if IPV6_HEADER_LEN + plen > n:
        raise ParseError("IPv6 payload length", "bad total length",
                         f"{plen} (only {n - IPV6_HEADER_LEN} bytes follow the header)")
    return vtf, plen, nxt, hops, src, dst


def parse_ipv6(packet: Buffer) -> tuple[IPv6Header, memoryview]:
    """Parse an IPv6 packet into its header (with the extension chain) and the
    upper-layer payload. Bytes past the payload length are ignored. Raises
    :class:`ParseError` (truncated, bad version, bad total length, unsupported for
    a hop-by-hop header out of place) and nothing else. A payload length of 0 is
    taken literally (no jumbograms, RFC 2675)."""
    vtf, plen, nxt, hops, src, dst = _fixed(packet)
    end = IPV6_HEADER_LEN + plen
    proto, off, _frag, count = _walk(packet, nxt, end)
    header = IPv6Header(
        ntoa6(bytes(src)), ntoa6(bytes(dst)), proto, hops, (vtf >> 20) & 0xFF,
        vtf & _MAX_FLOW, _chain(packet, nxt, count) if count else (), plen,
    )
    return header, memoryview(packet)[off:end]


def parse_ipv6_route(packet: Buffer) -> tuple[str, str, int, int, int, memoryview]:
    """What a host's receive path needs of an IPv6 packet, without the header record:
    ``(src, dst, proto, fragment word, hop limit, payload)``; the fragment word is
    offset|M of a fragment header, -1 without one. The same checks as
    :func:`parse_ipv6`."""
    _vtf, plen, nxt, hops, src, dst = _fixed(packet)
    end = IPV6_HEADER_LEN + plen
    if nxt == PROTO_TCP:   # the common case: no chain to walk
        return ntoa6(src), ntoa6(dst), nxt, -1, hops, memoryview(packet)[IPV6_HEADER_LEN:end]
    proto, off, frag, _count = _walk(packet, nxt, end)
    return ntoa6(src), ntoa6(dst), proto, frag, hops, memoryview(packet)[off:end]


def _header_bytes(
    src: str, dst: str, proto: int, hop_limit: int, traffic_class: int, flow_label: int,
    extensions: tuple[tuple[int, bytes], ...], payload_len: int,
) -> bytes:  # fmt: skip
    chain = b""
    if extensions:
        parts = []
        for i, (kind, body) in enumerate(extensions):
            nxt = extensions[i + 1][0] if i + 1 < len(extensions) else proto
            if kind == EXT_FRAGMENT:
                if len(body) != FRAGMENT_LEN - 2:
                    raise ValueError(f"IPv6 fragment header body must be 6 bytes, not {len(body)}")
                parts.append(bytes((nxt, 0)) + body)
            elif kind in EXTENSIONS:
                size = 2 + len(body)
                if size % 8 or size > 2048:
                    raise ValueError(
                        f"IPv6 extension {kind} body of {len(body)} bytes: 2 + body must be a "
                        "multiple of 8, at most 2048")
                parts.append(bytes((nxt, (size >> 3) - 1)) + body)
            else:
                raise ValueError(f"IPv6 extension kind {kind} is not one of 0, 43, 44, 60")
        chain = b"".join(parts)
    plen = len(chain) + payload_len
    if plen > 0xFFFF:
        raise ValueError(f"IPv6 payload of {plen} bytes exceeds 65535 (no jumbograms)")
    if not 0 <= flow_label <= _MAX_FLOW:
        raise ValueError(f"IPv6 flow label must be 0..0xFFFFF, not {flow_label}")
    if not 0 <= traffic_class <= 0xFF:
        raise ValueError(f"IPv6 traffic class must be 0..255, not {traffic_class}")
    first = extensions[0][0] if extensions else proto
    try:
        fixed = _HEADER.pack((6 << 28) | (traffic_class << 20) | flow_label, plen, first,
                             hop_limit, aton6(src), aton6(dst))
    except struct.error as exc:
        raise ValueError(f"IPv6 header field out of range: {exc}") from exc
    return fixed + chain if chain else fixed


def encode_ipv6(hdr: IPv6Header, payload: Buffer) -> bytes:
    """Encode ``hdr`` (its extension chain linked to ``hdr.proto``) followed by
    ``payload``, computing the payload length. Raises ``ValueError`` for
    out-of-range fields, a malformed extension body, an address that is not IPv6
    text, or a payload over 65535 bytes."""
    header = _header_bytes(hdr.src, hdr.dst, hdr.proto, hdr.hop_limit, hdr.traffic_class,
                           hdr.flow_label, hdr.extensions, len(payload))
    return b"".join((header, payload))


def build_tcp6_packet(
    src: str, dst: str, seg: TcpSegment, *, hop_limit: int = 64, traffic_class: int = 0,
    flow_label: int = 0, csum_partial: bool = False,
) -> bytes:  # fmt: skip
    """A complete IPv6 packet carrying ``seg`` with its checksum over the IPv6
    pseudo-header (RFC 8200 8.1). ``csum_partial`` as for
    :func:`synack.wire.ipv4.build_tcp_packet`."""
    ts = seg.timestamps
    if (
        ts is not None and seg.mss is None and seg.wscale is None and not seg.sack_permitted
        and not seg.sack_blocks and not seg.unknown_options
    ):  # fmt: skip
        packet = _build_ts_packet6(src, dst, seg, ts, hop_limit, traffic_class, flow_label,
                                   csum_partial)
        if packet is not None:
            return packet
    tcp_header, payload = _encode_tcp_parts(seg, src, dst, csum_partial)
    ip = _header_bytes(src, dst, PROTO_TCP, hop_limit, traffic_class, flow_label, (),
                       len(tcp_header) + len(payload))
    return b"".join((ip, tcp_header, payload))


# The IPv6 header, the TCP header and NOP NOP TS: nearly every segment after the handshake.
_IP6_TCP_TS = struct.Struct("!IHBB16s16sHHIIBBHHHIII")
_TCP_TS_LEN = 32
_NOP_NOP_TS_WORD = 0x0101080A


def _build_ts_packet6(
    src: str, dst: str, seg: TcpSegment, ts: tuple[int, int], hop_limit: int,
    traffic_class: int, flow_label: int, csum_partial: bool,
) -> bytes | None:  # fmt: skip
    """:func:`build_tcp6_packet` for a segment whose only option is the timestamp: one
    pack, the checksum from the field values (as ``ipv4.build_ts_packet`` does; IPv6
    has no header checksum). None when a field is out of range: the general path then
    names it."""
    payload = seg.payload
    tcp_len = _TCP_TS_LEN + len(payload)
    reserved = seg.reserved
    if tcp_len > 0xFFFF or not 0 <= reserved <= 0x0F or not 0 <= flow_label <= _MAX_FLOW \
            or not 0 <= traffic_class <= 0xFF:
        return None
    sport, dport, sq, ack = seg.src_port, seg.dst_port, seg.seq, seg.ack
    flags, window, urgent = seg.flags, seg.window, seg.urgent
    tsval, tsecr = ts
    pseudo = pseudo_header_sum(src, dst, PROTO_TCP, tcp_len)
    if csum_partial:
        tcp_csum = (pseudo - 1) % 0xFFFF + 1                  # folded, not complemented
    else:
        initial = (pseudo + sport + dport + sq + ack + (((_TCP_TS_LEN << 2) | reserved) << 8)
                   + flags + window + urgent + _NOP_NOP_TS_WORD + tsval + tsecr)
        tcp_csum = internet_checksum(payload, initial) if payload else (
            0xFFFE - (initial - 1) % 0xFFFF)
    try:
        headers = _IP6_TCP_TS.pack(
            (6 << 28) | (traffic_class << 20) | flow_label, tcp_len, PROTO_TCP, hop_limit,
            aton6(src), aton6(dst), sport, dport, sq, ack, (_TCP_TS_LEN << 2) | reserved,
            flags, window, tcp_csum, urgent, _NOP_NOP_TS_WORD, tsval, tsecr,
        )  # fmt: skip
    except struct.error:
        return None
    return b"".join((headers, payload)) if payload else headers


def parse_tcp6_packet(
    packet: Buffer, *, verify_checksum: bool = True
) -> tuple[IPv6Header, TcpSegment]:
    """Parse an IPv6 packet carrying one TCP segment (after any extension headers).
    Raises :class:`ParseError` of kind "unsupported" for another protocol or for a
    fragment (synack does not reassemble)."""
    hdr, payload = parse_ipv6(packet)
    if hdr.proto != PROTO_TCP:
        raise ParseError("IPv6 next header", "unsupported", f"{hdr.proto} (only TCP, 6)")
    frag = hdr.fragment
    if frag is not None and (frag[0] or frag[1]):
        raise ParseError("IPv6 fragment", "unsupported",
                         f"offset {frag[0]}, fragments are not reassembled")
    return hdr, parse_tcp(payload, hdr.src, hdr.dst, verify_checksum=verify_checksum)
