"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): bytes <-> records.

Decoded: echo request/reply (ident, sequence, data); the errors destination
unreachable (codes 0..7), packet too big (the MTU, a 32-bit word), time exceeded
(0..1) and parameter problem (0..3, the pointer), each carrying as much of the
invoking packet as fits (:attr:`Icmp6Message.original` decodes its IPv6 header
and :attr:`Icmp6Message.original_data` the first 8 bytes of its upper layer);
and the Neighbor Discovery messages router solicitation, router advertisement,
neighbor solicitation and neighbor advertisement, with their options
(source/target link-layer address decoded, the rest kept raw).

The checksum covers an IPv6 pseudo-header (next header 58) and the message, so
:func:`parse_icmp6` and :func:`encode_icmp6` take the addresses. Other types
(MLD, redirect, ...) parse to a :class:`ParseError` of kind "unsupported"
naming the type, so a stack counts and drops them quietly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._addr import aton6, ntoa6
from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import ParseError
from .ipv6 import PROTO_ICMPV6, IPv6Header, _chain, _walk, encode_ipv6

__all__ = [
    "DEST_UNREACH",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "NEIGHBOR_ADVERT",
    "NEIGHBOR_SOLICIT",
    "OPT_SOURCE_LLADDR",
    "OPT_TARGET_LLADDR",
    "PACKET_TOO_BIG",
    "PARAM_PROBLEM",
    "ROUTER_ADVERT",
    "ROUTER_SOLICIT",
    "TIME_EXCEEDED",
    "Icmp6Message",
    "NdMessage",
    "build_icmp6_packet",
    "encode_icmp6",
    "error_for6",
    "parse_icmp6",
    "solicited_node",
]  # fmt: skip

DEST_UNREACH = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAM_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136

# Destination unreachable codes (RFC 4443 3.1).
CODE_NO_ROUTE = 0
CODE_ADMIN_PROHIBITED = 1
CODE_ADDR_UNREACH = 3
CODE_PORT_UNREACH = 4

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2

# NA flags (RFC 4861 4.4), as the top bits of the first word.
NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20

MIN_MTU = 1280                     # RFC 8200 5: the IPv6 minimum link MTU
_MAX_CODE = {DEST_UNREACH: 7, PACKET_TOO_BIG: 0, TIME_EXCEEDED: 1, PARAM_PROBLEM: 3}
_ECHO = (ECHO_REQUEST, ECHO_REPLY)
_ND_FIXED = {ROUTER_SOLICIT: 8, ROUTER_ADVERT: 16, NEIGHBOR_SOLICIT: 24, NEIGHBOR_ADVERT: 24}
ICMP6_HEADER_LEN = 8
_HEADER = struct.Struct("!BBHI")   # type, code, checksum, the second word


@dataclass(frozen=True, slots=True)
class Icmp6Message:
    """An ICMPv6 echo or error message.

    Echo: ``ident``, ``seq`` and the data in ``payload``. Errors: ``payload`` is the
    invoking packet (from its IPv6 header on), ``mtu`` the MTU of packet too big,
    ``pointer`` the offset of parameter problem. ``checksum`` is filled in by
    :func:`parse_icmp6` and takes no part in comparison.
    """

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    mtu: int = 0
    pointer: int = 0
    payload: bytes = b""
    checksum: int = field(default=0, compare=False)

    @property
    def is_error(self) -> bool:
        """True for the four error types (RFC 4443: types below 128)."""
        return self.type < 128

    @property
    def original(self) -> IPv6Header:
        """The IPv6 header (and extension chain) of the invoking packet; its
        ``payload_length`` is the original's, usually more than was embedded."""
        return _original(self.payload, self.type)[0]

    @property
    def original_data(self) -> bytes:
        """The first 8 bytes of the invoking packet's upper layer (TCP: ports, seq)."""
        off = _original(self.payload, self.type)[1]
        return self.payload[off:off + 8]


@dataclass(frozen=True, slots=True)
class NdMessage:
    """A Neighbor Discovery message (RFC 4861 section 4).

    ``target`` is the address asked about (NS) or announced (NA), "" for router
    messages. ``flags`` is the first byte after the checksum's word: R|S|O for an
    NA, M|O for an RA (whose hop limit is ``cur_hop_limit``). ``source_lladdr`` and
    ``target_lladdr`` are the 6-byte Ethernet addresses of those options, or b"";
    ``options`` keeps every other option as ``(kind, body)``. For an RA,
    ``router_lifetime``, ``reachable_time`` and ``retrans_timer`` are the header's.
    """

    type: int
    target: str = ""
    flags: int = 0
    source_lladdr: bytes = b""
    target_lladdr: bytes = b""
    options: tuple[tuple[int, bytes], ...] = ()
    cur_hop_limit: int = 0
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    checksum: int = field(default=0, compare=False)

    @property
    def is_error(self) -> bool:
        return False


def _original(data: Buffer, type_: int) -> tuple[IPv6Header, int]:
    """The embedded header and the offset of its upper layer in ``data``."""
    if type_ not in _MAX_CODE:
        raise ParseError("ICMPv6 type", "unsupported", f"{type_} carries no invoking packet")
    n = len(data)
    if n < 40:
        raise ParseError("ICMPv6 invoking packet", "truncated",
                         f"({n} bytes, need an IPv6 header)")
    if data[0] >> 4 != 6:
        raise ParseError("ICMPv6 invoking IPv6 version", "bad version",
                         f"{data[0] >> 4} (expected 6)")
    vtf, plen, nxt, hops = struct.unpack_from("!IHBB", data)
    proto, off, _frag, count = _walk(data, nxt, n)
    hdr = IPv6Header(ntoa6(bytes(data[8:24])), ntoa6(bytes(data[24:40])), proto, hops,
                     (vtf >> 20) & 0xFF, vtf & 0xFFFFF, _chain(data, nxt, count), plen)
    return hdr, off


def _check(data: Buffer, src: str, dst: str) -> None:
    csum = (data[2] << 8) | data[3]
    if internet_checksum(data, pseudo_header_sum(src, dst, PROTO_ICMPV6, len(data))):
        zeroed = bytearray(data)
        zeroed[2:4] = b"\0\0"
        good = internet_checksum(zeroed, pseudo_header_sum(src, dst, PROTO_ICMPV6, len(data)))
        raise ParseError("ICMPv6 checksum", "bad checksum",
                         f"0x{csum:04x} (expected 0x{good:04x})")


def _parse_options(data: Buffer, start: int) -> tuple[bytes, bytes, tuple[tuple[int, bytes], ...]]:
    sll = tll = b""
    rest: list[tuple[int, bytes]] = []
    off, n = start, len(data)
    while off < n:
        if n - off < 2:
            raise ParseError("ND option", "truncated", f"({n - off} byte at {off})")
        kind, units = data[off], data[off + 1]
        if units == 0:   # RFC 4861 4.6: a zero length means the message is dropped
            raise ParseError(f"ND option {kind}", "bad option length", "0")
        size = units << 3
        if off + size > n:
            raise ParseError(f"ND option {kind}", "truncated",
                             f"({size} bytes at {off}, {n - off} left)")
        body = bytes(data[off + 2:off + size])
        if kind == OPT_SOURCE_LLADDR and not sll and units == 1:
            sll = body
        elif kind == OPT_TARGET_LLADDR and not tll and units == 1:
            tll = body
        else:
            rest.append((kind, body))
        off += size
    return sll, tll, tuple(rest)


def parse_icmp6(data: Buffer, src: str, dst: str, *,
                verify_checksum: bool = True) -> Icmp6Message | NdMessage:
    """Parse one ICMPv6 message, the upper layer of an IPv6 packet from ``src`` to
    ``dst``. Raises :class:`ParseError`: "truncated", "bad checksum", "bad option
    length" (an ND option of length 0), "unsupported" (a type or code not
    decoded here, an ND message with a non-zero code), "bad version" of an
    error's invoking packet."""
    n = len(data)
    if n < ICMP6_HEADER_LEN:
        raise ParseError("ICMPv6 header", "truncated", f"({n} bytes, need at least 8)")
    type_, code, csum, word = _HEADER.unpack_from(data)
    if verify_checksum:
        _check(data, src, dst)
    if type_ in _ECHO:
        return Icmp6Message(type_, code, word >> 16, word & 0xFFFF, 0, 0,
                            bytes(data[ICMP6_HEADER_LEN:]), csum)
    fixed = _ND_FIXED.get(type_)
    if fixed is not None:
        return _parse_nd(data, type_, code, csum, fixed)
    top = _MAX_CODE.get(type_)
    if top is None:
        raise ParseError("ICMPv6 type", "unsupported", f"{type_}")
    if code > top:
        raise ParseError("ICMPv6 code", "unsupported", f"{code} for type {type_} (0..{top})")
    payload = bytes(data[ICMP6_HEADER_LEN:])
    _original(payload, type_)          # validate now: the properties cannot fail
    mtu = word if type_ == PACKET_TOO_BIG else 0
    pointer = word if type_ == PARAM_PROBLEM else 0
    return Icmp6Message(type_, code, 0, 0, mtu, pointer, payload, csum)


def _parse_nd(data: Buffer, type_: int, code: int, csum: int, fixed: int) -> NdMessage:
    n = len(data)
    if code:   # RFC 4861 6.1 / 7.1: ICMP code must be 0
        raise ParseError("ND code", "unsupported", f"{code} for type {type_} (must be 0)")
    if n < fixed:
        raise ParseError(f"ND type {type_}", "truncated", f"({n} bytes, need {fixed})")
    sll, tll, rest = _parse_options(data, fixed)
    if type_ in (NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
        target = ntoa6(bytes(data[8:24]))
        flags = data[4] if type_ == NEIGHBOR_ADVERT else 0
        return NdMessage(type_, target, flags, sll, tll, rest, 0, 0, 0, 0, csum)
    if type_ == ROUTER_ADVERT:
        hops, flags, life, reach, retrans = struct.unpack_from("!BBHII", data, 4)
        return NdMessage(type_, "", flags, sll, tll, rest, hops, life, reach, retrans, csum)
    return NdMessage(type_, "", 0, sll, tll, rest, 0, 0, 0, 0, csum)


def _nd_body(msg: NdMessage) -> bytes:
    fixed = bytearray(_ND_FIXED[msg.type] - 4)
    if msg.type in (NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
        fixed[4:20] = aton6(msg.target)
        if msg.type == NEIGHBOR_ADVERT:
            fixed[0] = msg.flags & 0xE0
    elif msg.type == ROUTER_ADVERT:
        struct.pack_into("!BBHII", fixed, 0, msg.cur_hop_limit, msg.flags,
                         msg.router_lifetime, msg.reachable_time, msg.retrans_timer)
    opts = []
    options = list(msg.options)
    if msg.target_lladdr:
        options.insert(0, (OPT_TARGET_LLADDR, msg.target_lladdr))
    if msg.source_lladdr:
        options.insert(0, (OPT_SOURCE_LLADDR, msg.source_lladdr))
    for kind, body in options:
        size = 2 + len(body)
        if size % 8 or size > 255 * 8 or not 0 <= kind <= 255:
            raise ValueError(f"ND option {kind}: 2 + {len(body)} bytes is not a multiple of 8")
        opts.append(bytes((kind, size >> 3)) + body)
    return bytes(fixed) + b"".join(opts)


def encode_icmp6(msg: Icmp6Message | NdMessage, src: str, dst: str) -> bytes:
    """Encode ``msg`` sent from ``src`` to ``dst``, computing its checksum. Raises
    ``ValueError`` for fields out of range (the parse-only ``checksum`` is ignored)."""
    if isinstance(msg, NdMessage):
        if msg.type not in _ND_FIXED:
            raise ValueError(f"ND message type {msg.type} is not 133..136")
        rest = _nd_body(msg)
        word_bytes = rest[:4]
        body = rest[4:]
        code = 0
    else:
        if msg.type in _ECHO:
            word = (msg.ident << 16) | msg.seq if 0 <= msg.ident <= 0xFFFF \
                and 0 <= msg.seq <= 0xFFFF else -1
        elif msg.type == PACKET_TOO_BIG:
            word = msg.mtu
        elif msg.type == PARAM_PROBLEM:
            word = msg.pointer
        else:
            word = 0
        if not 0 <= word <= 0xFFFFFFFF:
            raise ValueError("ICMPv6 field out of range (ident/seq 16 bits, mtu/pointer 32)")
        word_bytes = word.to_bytes(4, "big")
        body = msg.payload
        code = msg.code
    if not 0 <= msg.type <= 255 or not 0 <= code <= 255:
        raise ValueError(f"ICMPv6 type {msg.type} / code {code} out of range")
    header = bytearray((msg.type, code, 0, 0)) + word_bytes
    initial = pseudo_header_sum(src, dst, PROTO_ICMPV6, len(header) + len(body)) \
        + int.from_bytes(header, "big")
    struct.pack_into("!H", header, 2, internet_checksum(body, initial))
    return b"".join((header, body))


def error_for6(packet: Buffer, type_: int, code: int, *, mtu: int = 0,
               pointer: int = 0) -> Icmp6Message:
    """The error a router (or host) would send about ``packet``: as much of it as
    keeps the error within the minimum MTU (RFC 4443 2.4 (c))."""
    room = MIN_MTU - 40 - ICMP6_HEADER_LEN
    return Icmp6Message(type_, code, 0, 0, mtu, pointer, bytes(packet[:room]))


def solicited_node(address: str) -> str:
    """The solicited-node multicast address of ``address`` (RFC 4291 2.7.1):
    ff02::1:ffXX:XXXX with its low 24 bits."""
    low = aton6(address)[13:]
    return ntoa6(bytes.fromhex("ff02" + "00" * 9 + "01ff") + low)


def multicast_mac(address: str) -> bytes:
    """The Ethernet address of an IPv6 multicast group (RFC 2464 7): 33:33 and the
    group's low 32 bits."""
    return b"\x33\x33" + aton6(address)[12:]


def build_icmp6_packet(src: str, dst: str, msg: Icmp6Message | NdMessage, *,
                       hop_limit: int = 64) -> bytes:
    """A complete IPv6 packet carrying ``msg``. ND messages go with hop limit 255
    (RFC 4861 requires it of every one it accepts)."""
    if isinstance(msg, NdMessage):
        hop_limit = 255
    hdr = IPv6Header(src=src, dst=dst, proto=PROTO_ICMPV6, hop_limit=hop_limit)
    return encode_ipv6(hdr, encode_icmp6(msg, src, dst))
