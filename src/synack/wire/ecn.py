"""The IP header's ECN field (RFC 3168 section 5), read and rewritten in place.

Two bits: the low two of the IPv4 TOS byte, or of the IPv6 traffic class (bits
4..5 of the second byte). Not-ECT 00, ECT(1) 01, ECT(0) 10, CE 11. A router
that marks a packet sets CE; for IPv4 it must then fix the header checksum (TCP's
checksum does not cover the field in either family).
"""

from __future__ import annotations

from synack.wire.checksum import internet_checksum

NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
NAMES = {NOT_ECT: "Not-ECT", ECT1: "ECT(1)", ECT0: "ECT(0)", CE: "CE"}
IPV4_MIN_HEADER = 20  # RFC 791: IHL is at least 5 32-bit words


def ip_ecn(packet: bytes) -> int:
    """The ECN field of an IPv4 or IPv6 packet (``NOT_ECT`` if it is too short)."""
    if len(packet) < 2:
        return NOT_ECT
    if packet[0] >> 4 == 6:
        return packet[1] >> 4 & 3
    return packet[1] & 3


def mark_ce(packet: bytes) -> bytes:
    """``packet`` with its ECN field set to CE, an IPv4 header checksum recomputed."""
    out = bytearray(packet)
    if not out:
        return packet
    if out[0] >> 4 == 6:
        out[1] |= CE << 4
        return bytes(out)
    out[1] |= CE
    hlen = max((out[0] & 0x0F) * 4, IPV4_MIN_HEADER)
    if len(out) >= hlen:
        out[10:12] = b"\0\0"
        out[10:12] = internet_checksum(out[:hlen]).to_bytes(2, "big")
    return bytes(out)
