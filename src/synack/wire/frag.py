"""IPv4 fragments (RFC 791 2.3, 3.2): cutting a packet's payload into fragments, and the
fields a reassembler reads. No state here; reassembly is :mod:`synack.host.frag`.
"""

from __future__ import annotations

from typing import NamedTuple

from .checksum import Buffer
from .errors import ParseError
from .ipv4 import IPV4_HEADER_LEN, _checked, _header_bytes

__all__ = ["Fragment", "fragment", "parse_fragment"]

_MF = 0x2000
_OFFSET = 0x1FFF


class Fragment(NamedTuple):
    """What reassembly needs of one fragment."""

    src: int            # the addresses as 32-bit ints (part of the reassembly key)
    dst: int
    proto: int
    ident: int
    offset: int         # in bytes
    more: bool          # MF: not the last fragment
    header: bytes       # the IPv4 header as received (options included)
    data: bytes         # the fragment's payload


def parse_fragment(packet: Buffer) -> Fragment:
    """The fields of a fragment; ParseError as :func:`~synack.wire.ipv4.parse_ipv4`, and
    "bad total length" for a non-last fragment whose length is not a multiple of 8 or
    one that would end past 65535."""
    vihl, _tos, total, ident, frag, _ttl, proto, _csum, src, dst = _checked(packet, True)
    hlen = (vihl & 0x0F) << 2
    offset = (frag & _OFFSET) << 3
    more = bool(frag & _MF)
    data = bytes(packet[hlen:total])
    if more and len(data) % 8:
        raise ParseError("IPv4 fragment", "bad total length",
                         f"{len(data)} bytes is not a multiple of 8 in a non-last fragment")
    if offset + len(data) > 0xFFFF - hlen:
        raise ParseError("IPv4 fragment", "bad total length",
                         f"offset {offset} + {len(data)} bytes passes 65535")
    return Fragment(src, dst, proto, ident, offset, more, bytes(packet[:hlen]), data)


def fragment(src: str, dst: str, proto: int, payload: bytes, *, mtu: int, ttl: int = 64,
             ident: int = 0, tos: int = 0) -> list[bytes]:
    """``payload`` in IPv4 packets of at most ``mtu`` bytes (DF clear), every fragment
    but the last carrying a multiple of 8 bytes (Linux ``ip_fragment``)."""
    step = (mtu - IPV4_HEADER_LEN) & ~7
    if step <= 0:
        raise ValueError(f"MTU {mtu} leaves no room for a fragment")
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = off + step < len(payload)
        word = (off >> 3) | (_MF if more else 0)
        out.append(bytes(_header_bytes(src, dst, proto, ttl, tos, ident, word, b"",
                                       len(chunk))) + chunk)
    return out
