"""UDP datagrams (RFC 768): bytes <-> :class:`UdpDatagram`.

The header is four 16-bit fields: source port, destination port, length (header
plus data, at least 8) and checksum. The checksum covers the IPv4 pseudo-header
(source, destination, protocol 17, UDP length), the header and the data; a
transmitted checksum of zero means "none computed" (RFC 768), so a computed sum
of zero is sent as 0xFFFF. :func:`parse_udp` cuts the data to the header's
length (the IPv4 total length may carry more, RFC 768 leaves that to the IP
layer; Linux trims, ``udp_rcv`` ``pskb_trim_rcsum``) and raises
:class:`~synack.wire.errors.ParseError` naming the field for anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .checksum import Buffer, internet_checksum, pseudo_header_sum
from .errors import ParseError
from .ipv4 import _DF, PROTO_UDP, _header_bytes

__all__ = ["UDP_HEADER_LEN", "UdpDatagram", "build_udp_packet", "encode_udp", "parse_udp"]

UDP_HEADER_LEN = 8
_HEADER = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """A UDP datagram: ports and data (length and checksum are computed)."""

    src_port: int
    dst_port: int
    payload: bytes = b""


def _check_ports(d: UdpDatagram) -> None:
    for name, port in (("source", d.src_port), ("destination", d.dst_port)):
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"UDP {name} port must be 0..65535, not {port}")


def encode_udp(d: UdpDatagram, src: str, dst: str, *, checksum: bool = True) -> bytes:
    """The UDP header and data, checksummed over the pseudo-header of ``src`` -> ``dst``
    (``checksum=False`` sends zero: no checksum, RFC 768)."""
    _check_ports(d)
    length = UDP_HEADER_LEN + len(d.payload)
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    header = bytearray(_HEADER.pack(d.src_port, d.dst_port, length, 0))
    if checksum:
        csum = internet_checksum(bytes(header) + d.payload,
                                 pseudo_header_sum(src, dst, PROTO_UDP, length))
        _HEADER.pack_into(header, 0, d.src_port, d.dst_port, length, csum or 0xFFFF)
    return bytes(header) + d.payload


def build_udp_packet(src: str, dst: str, d: UdpDatagram, *, ttl: int = 64, ident: int = 0,
                     tos: int = 0, dont_fragment: bool = True) -> bytes:
    """A complete IPv4 packet carrying ``d`` (DF set, as Linux's default path-MTU
    discovery sets it on UDP)."""
    body = encode_udp(d, src, dst)
    ip = _header_bytes(src, dst, PROTO_UDP, ttl, tos, ident, _DF if dont_fragment else 0,
                       b"", len(body))
    return bytes(ip) + body


def parse_udp(data: Buffer, src: str, dst: str, *, verify_checksum: bool = True) -> UdpDatagram:
    """Parse the UDP part of an IPv4 packet from ``src`` to ``dst``.

    Raises :class:`ParseError`: "truncated" (under 8 bytes), "bad total length"
    (a length field under 8 or beyond the bytes given), "bad checksum".
    """
    n = len(data)
    if n < UDP_HEADER_LEN:
        raise ParseError("UDP header", "truncated", f"({n} bytes, need 8)")
    sport, dport, length, csum = _HEADER.unpack_from(data)
    if length < UDP_HEADER_LEN:
        raise ParseError("UDP length", "bad total length", f"{length} (minimum 8)")
    if length > n:
        raise ParseError("UDP length", "bad total length", f"{length} (only {n} bytes received)")
    if verify_checksum and csum and internet_checksum(
            data[:length], pseudo_header_sum(src, dst, PROTO_UDP, length)):
        raise ParseError("UDP checksum", "bad checksum", f"0x{csum:04x}")
    return UdpDatagram(sport, dport, bytes(data[UDP_HEADER_LEN:length]))
