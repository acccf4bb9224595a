"""ICMPv4 messages (RFC 792): bytes <-> :class:`IcmpMessage`.

The four kinds a TCP host must understand are decoded: echo request and echo
reply (ident, sequence number, data), destination unreachable (codes 0..15;
code 4, "fragmentation needed and DF set", carries the next-hop MTU of RFC
1191 in the low half of the second word) and time exceeded (codes 0..1).
Errors carry the datagram that caused them: at least its IP header and the
first 8 bytes of its payload (RFC 792; RFC 1812 4.3.2.3 lets routers send
more). :attr:`IcmpMessage.payload` keeps those bytes verbatim, and
:attr:`IcmpMessage.original` / :attr:`IcmpMessage.original_data` decode them:
for TCP the 8 bytes are the ports and the sequence number, which is all RFC
5927 validation needs.

The checksum covers the whole ICMP message (no pseudo-header). Other types
(redirect, parameter problem, timestamp, ...) parse to a :class:`ParseError`
of kind "unsupported" naming the type, so a stack counts and drops them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._addr import ntoa
from ._records import positional_constructor
from .checksum import Buffer, internet_checksum
from .errors import ParseError
from .ipv4 import PROTO_ICMP, IPv4Header, encode_ipv4

__all__ = [
    "CODE_FRAG_NEEDED",
    "CODE_HOST_UNREACH",
    "CODE_NET_UNREACH",
    "CODE_PORT_UNREACH",
    "CODE_PROT_UNREACH",
    "DEST_UNREACH",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "TIME_EXCEEDED",
    "IcmpMessage",
    "build_icmp_packet",
    "echo",
    "encode_icmp",
    "error_for",
    "parse_icmp",
]  # fmt: skip

ECHO_REPLY = 0
DEST_UNREACH = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11

# Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
CODE_NET_UNREACH = 0
CODE_HOST_UNREACH = 1
CODE_PROT_UNREACH = 2
CODE_PORT_UNREACH = 3
CODE_FRAG_NEEDED = 4
_MAX_CODE = {DEST_UNREACH: 15, TIME_EXCEEDED: 1}  # Linux NR_ICMP_UNREACH = 15
_ECHO = (ECHO_REQUEST, ECHO_REPLY)

ICMP_HEADER_LEN = 8
_HEADER = struct.Struct("!BBHHH")   # type, code, checksum, then the second word as two halves
_IP = struct.Struct("!BBHHHBBHII")


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """One ICMPv4 message.

    For echo messages ``ident`` and ``seq`` are the identifier and sequence
    number and ``payload`` the data. For errors ``payload`` is the embedded
    original datagram (IP header and at least 8 bytes of what followed it) and
    ``mtu`` the next-hop MTU of "fragmentation needed" (0 if the router did not
    say, as pre-RFC 1191 routers do not). ``checksum`` is filled in by
    :func:`parse_icmp` and takes no part in comparison.
    """

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    mtu: int = 0
    payload: bytes = b""
    checksum: int = field(default=0, compare=False)

    @property
    def is_error(self) -> bool:
        """True for destination unreachable and time exceeded."""
        return self.type in _MAX_CODE

    @property
    def original(self) -> IPv4Header:
        """The embedded IP header of the datagram that caused an error.

        Its ``total_length`` is the original datagram's, usually more than was
        embedded. Raises :class:`ParseError` if the message is not an error or
        the bytes do not hold a header (never for a record from :func:`parse_icmp`).
        """
        return _original_header(self.payload, self.type)

    @property
    def original_data(self) -> bytes:
        """The first 8 bytes of the original datagram's payload (for TCP: ports, seq)."""
        hlen = self.original.header_length
        return self.payload[hlen:hlen + 8]


_make_message = positional_constructor(IcmpMessage)


def _original_header(data: Buffer, type_: int) -> IPv4Header:
    if type_ not in _MAX_CODE:
        raise ParseError("ICMP type", "unsupported", f"{type_} carries no original datagram")
    n = len(data)
    if n < 20:
        raise ParseError("ICMP original datagram", "truncated",
                         f"({n} bytes, need an IP header and 8 bytes)")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _IP.unpack_from(data)
    if vihl >> 4 != 4:
        raise ParseError("ICMP original IPv4 version", "bad version", f"{vihl >> 4} (expected 4)")
    hlen = (vihl & 0x0F) << 2
    if hlen < 20:
        raise ParseError("ICMP original IPv4 header length", "bad header length",
                         f"{hlen} bytes (minimum 20)")
    if n < hlen + 8:
        raise ParseError("ICMP original datagram", "truncated",
                         f"({n} bytes, need the {hlen}-byte header and 8 bytes)")
    return IPv4Header(
        src=ntoa(src), dst=ntoa(dst), proto=proto, ttl=ttl, tos=tos, ident=ident,
        dont_fragment=bool(frag & 0x4000), more_fragments=bool(frag & 0x2000),
        frag_offset=frag & 0x1FFF, total_length=total, header_length=hlen, checksum=csum,
        options=bytes(data[20:hlen]))


def parse_icmp(data: Buffer, *, verify_checksum: bool = True) -> IcmpMessage:
    """Parse one ICMP message: the payload of an IPv4 packet with protocol 1.

    Raises :class:`ParseError`: "truncated" (header, or an error's original
    datagram), "bad checksum", "unsupported" (a type or code this module does not
    decode), "bad version" / "bad header length" of the embedded header.
    """
    n = len(data)
    if n < ICMP_HEADER_LEN:
        raise ParseError("ICMP header", "truncated", f"({n} bytes, need at least 8)")
    type_, code, csum, hi, lo = _HEADER.unpack_from(data)
    if verify_checksum and internet_checksum(data):
        zeroed = bytearray(data)
        zeroed[2:4] = b"\0\0"
        good = internet_checksum(zeroed)
        raise ParseError("ICMP checksum", "bad checksum", f"0x{csum:04x} (expected 0x{good:04x})")
    payload = bytes(data[ICMP_HEADER_LEN:])
    if type_ in _ECHO:
        return _make_message(type_, code, hi, lo, 0, payload, csum)
    top = _MAX_CODE.get(type_)
    if top is None:
        raise ParseError("ICMP type", "unsupported", f"{type_}")
    if code > top:
        raise ParseError("ICMP code", "unsupported", f"{code} for type {type_} (0..{top})")
    _original_header(payload, type_)          # validate now: the properties cannot fail
    mtu = lo if type_ == DEST_UNREACH and code == CODE_FRAG_NEEDED else 0
    return _make_message(type_, code, 0, 0, mtu, payload, csum)


def encode_icmp(msg: IcmpMessage) -> bytes:
    """Encode ``msg``, computing its checksum. Raises ``ValueError`` for fields
    out of range (the parse-only ``checksum`` is ignored)."""
    if msg.type in _ECHO:
        hi, lo = msg.ident, msg.seq
    else:
        hi, lo = 0, msg.mtu if msg.type == DEST_UNREACH and msg.code == CODE_FRAG_NEEDED else 0
    header = bytearray(ICMP_HEADER_LEN)
    try:
        _HEADER.pack_into(header, 0, msg.type, msg.code, 0, hi, lo)
    except struct.error as exc:
        raise ValueError(f"ICMP field out of range: {exc}") from exc
    # The header is 8 bytes long, so its sum and the payload's can be added.
    struct.pack_into("!H", header, 2, internet_checksum(msg.payload, int.from_bytes(header, "big")))
    return b"".join((header, msg.payload))


def echo(ident: int, seq: int, payload: bytes = b"", *, reply: bool = False) -> IcmpMessage:
    """An echo request (or reply) record."""
    return IcmpMessage(ECHO_REPLY if reply else ECHO_REQUEST, 0, ident, seq, 0, payload)


def error_for(packet: Buffer, type_: int, code: int, *, mtu: int = 0,
              extra: int = 0) -> IcmpMessage:
    """The error a router (or host) would send about ``packet``: its IP header and
    the first ``8 + extra`` bytes of its payload (RFC 792)."""
    hlen = (packet[0] & 0x0F) << 2
    return IcmpMessage(type_, code, 0, 0, mtu, bytes(packet[:hlen + 8 + extra]))


def build_icmp_packet(src: str, dst: str, msg: IcmpMessage, *, ttl: int = 64,
                      ident: int = 0, dont_fragment: bool = False) -> bytes:
    """A complete IPv4 packet carrying ``msg``. Linux's ICMP socket does not set DF
    (``IP_PMTUDISC_DONT``), hence the default."""
    hdr = IPv4Header(src=src, dst=dst, proto=PROTO_ICMP, ttl=ttl, ident=ident,
                     dont_fragment=dont_fragment)
    return encode_ipv4(hdr, encode_icmp(msg))
