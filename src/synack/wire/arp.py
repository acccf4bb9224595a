"""ARP for IPv4 over Ethernet (RFC 826): the 28-byte packet after the Ethernet header.

Only the one combination synack speaks is accepted: hardware type 1 (Ethernet),
protocol type 0x0800 (IPv4), address lengths 6 and 4, operation request (1) or
reply (2). Anything else is a :class:`ParseError` of kind "unsupported", so the
link can count it and move on. Bytes after the 28 (Ethernet padding to 60) are ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._addr import aton, ntoa
from .checksum import Buffer
from .errors import ParseError
from .ethernet import mac_aton, mac_ntoa

__all__ = ["ARP_LEN", "OP_REPLY", "OP_REQUEST", "ArpPacket", "encode_arp", "parse_arp"]

ARP_LEN = 28
OP_REQUEST = 1
OP_REPLY = 2
_HTYPE_ETHERNET = 1
_PTYPE_IPV4 = 0x0800

# htype, ptype, hlen, plen, op, sha, spa, tha, tpa
_PACKET = struct.Struct("!HHBBH6sI6sI")


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """One ARP request or reply. In a request ``target_mac`` is ignored (Linux sends zeros)."""

    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str

    @property
    def is_request(self) -> bool:
        """An ARP request (who-has)."""
        return self.op == OP_REQUEST

    @property
    def is_gratuitous(self) -> bool:
        """An announcement: the sender asks for, or tells, its own address (RFC 5227)."""
        return self.sender_ip == self.target_ip


def parse_arp(data: Buffer) -> ArpPacket:
    """Parse the ARP packet at the start of ``data``. Raises :class:`ParseError` only."""
    n = len(data)
    if n < ARP_LEN:
        raise ParseError("ARP packet", "truncated", f"({n} bytes, need 28)")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _PACKET.unpack_from(data)
    if htype != _HTYPE_ETHERNET:
        raise ParseError("ARP hardware type", "unsupported", f"{htype} (only Ethernet, 1)")
    if ptype != _PTYPE_IPV4:
        raise ParseError("ARP protocol type", "unsupported", f"0x{ptype:04x} (only IPv4, 0x0800)")
    if hlen != 6 or plen != 4:
        raise ParseError(
            "ARP address lengths", "unsupported", f"hardware {hlen}, protocol {plen} (need 6, 4)"
        )
    if op not in (OP_REQUEST, OP_REPLY):
        raise ParseError("ARP operation", "unsupported", f"{op} (only request 1, reply 2)")
    return ArpPacket(op, mac_ntoa(sha), ntoa(spa), mac_ntoa(tha), ntoa(tpa))


def encode_arp(pkt: ArpPacket) -> bytes:
    """The 28 bytes of ``pkt``. ``ValueError`` for a bad operation or address."""
    if pkt.op not in (OP_REQUEST, OP_REPLY):
        raise ValueError(f"ARP operation must be 1 or 2, not {pkt.op}")
    return _PACKET.pack(
        _HTYPE_ETHERNET, _PTYPE_IPV4, 6, 4, pkt.op,
        mac_aton(pkt.sender_mac), aton(pkt.sender_ip),
        mac_aton(pkt.target_mac), aton(pkt.target_ip),
    )  # fmt: skip
