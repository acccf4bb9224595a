"""Software GSO: cut a TCP super-segment into MSS frames from its header template.

Theory of operation
-------------------
The stack always builds new data as super-segments of whole MSS pieces, up to
64 KB (``tcp/output.py``, ``Stack.transmit_gso``), as if every device had TSO.
A device with TSO cuts them itself; for one without, :func:`segment` does what
Linux's software GSO does (``tcp_gso_segment()`` / ``inet_gso_segment()``):
every frame gets the super-segment's IPv4 and TCP headers, options included
(the timestamp too), with only these fields changed:

* IPv4 total length, identification (the super-segment's id + i, as the device
  counts them) and header checksum;
* TCP sequence number (advanced by the MSS per frame); FIN and PSH only on the
  last frame, CWR only on the first;
* the TCP checksum: computed in full (RFC 1071, the project's
  :func:`~synack.wire.checksum.internet_checksum`, one C-level
  ``int.from_bytes`` per frame), or with ``csum_partial`` just the pseudo-header
  sum, for a device that completes checksums (virtio-net NEEDS_CSUM).

The frames are byte for byte what the stack would have built one MSS at a time.
Pure bytes in, bytes out: no device, no state.
"""

from __future__ import annotations

import struct

from synack.wire.checksum import internet_checksum

__all__ = ["segment", "segment_all"]

_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct("!H")
_HH = struct.Struct("!HH")
_U32 = struct.Struct("!I")


def segment(packet: bytes, mss: int, *, csum_partial: bool = False) -> list[bytes]:
    """Cut one IPv4 TCP super-segment into frames of ``mss`` payload bytes each
    (the last one shorter if the payload is not a multiple).

    The incoming TCP checksum is ignored (a super-segment carries only the
    pseudo-header sum); each frame's is computed. A payload of at most ``mss``
    bytes gives one frame, its checksums completed. An IPv6 super-segment (version
    6, TCP right after the fixed header) is cut by :func:`_segment6`.
    """
    if packet[0] >> 4 == 6:
        return _segment6(packet, mss, csum_partial)
    ihl = (packet[0] & 0x0F) << 2
    total = (packet[2] << 8) | packet[3]
    tcp_hlen = (packet[ihl + 12] >> 4) << 2
    hlen = ihl + tcp_hlen
    ident = (packet[4] << 8) | packet[5]
    seq = int.from_bytes(packet[ihl + 4:ihl + 8], "big")
    flags = packet[ihl + 13]
    header = bytearray(packet[:hlen])
    csum_at = ihl + 16
    header[csum_at:csum_at + 2] = b"\0\0"
    words = struct.unpack_from(f"!{hlen >> 1}H", header)
    # Word sums of the template without the fields that change per frame (RFC 1071:
    # a sum may be updated piecewise). IPv4: less total length, id and checksum.
    ip_sum = sum(words[:ihl >> 1]) - words[1] - words[2] - words[5]
    # TCP: the pseudo-header (RFC 9293 3.1) of addresses and protocol, and the header
    # less sequence number and flags (the checksum is zero); per frame the length,
    # sequence number and flags are added.
    t = ihl >> 1
    pseudo = words[6] + words[7] + words[8] + words[9] + 6
    tcp_sum = pseudo + sum(words[t:]) - words[t + 2] - words[t + 3] - (words[t + 6] & 0xFF)
    seq_at, flags_at = ihl + 4, ihl + 13
    view = memoryview(packet)
    out: list[bytes] = []
    append = out.append
    checksum = internet_checksum
    off = hlen
    n = mss
    frame_total = hlen + mss
    mid_flags = flags & ~(_FIN | _PSH)
    f = mid_flags
    while True:
        stop = off + mss
        if stop >= total:                   # the last frame: FIN and PSH stay
            stop = total
            n = stop - off
            frame_total = hlen + n
            f = flags
        _HH.pack_into(header, 2, frame_total, ident)
        _U16.pack_into(header, 10, 0xFFFE - (ip_sum + frame_total + ident - 1) % 0xFFFF)
        _U32.pack_into(header, seq_at, seq)
        header[flags_at] = f
        payload = view[off:stop]
        if csum_partial:
            x = pseudo + tcp_hlen + n
            while x > 0xFFFF:
                x = (x & 0xFFFF) + (x >> 16)
            _U16.pack_into(header, csum_at, x)
        else:
            # The TCP header length is a multiple of 4: header and payload sums add up.
            _U16.pack_into(header, csum_at, checksum(
                payload, tcp_sum + tcp_hlen + n + (seq >> 16) + (seq & 0xFFFF) + f))
        append(b"".join((header, payload)))
        if stop == total:
            return out
        if off == hlen:                     # CWR on the first frame only
            flags &= ~_CWR
            f = mid_flags = mid_flags & ~_CWR
        off = stop
        seq = (seq + n) & 0xFFFFFFFF
        ident = (ident + 1) & 0xFFFF


def _segment6(packet: bytes, mss: int, csum_partial: bool) -> list[bytes]:
    """:func:`segment` for IPv6 (Linux ``ipv6_gso_segment()``): per frame the payload
    length, sequence number, flags and TCP checksum change; IPv6 has no header
    checksum and no identification."""
    total = 40 + ((packet[4] << 8) | packet[5])
    tcp_hlen = (packet[52] >> 4) << 2
    hlen = 40 + tcp_hlen
    seq = int.from_bytes(packet[44:48], "big")
    flags = packet[53]
    header = bytearray(packet[:hlen])
    header[56:58] = b"\0\0"
    words = struct.unpack_from(f"!{hlen >> 1}H", header)
    # RFC 8200 8.1: addresses, upper-layer length (added per frame), next header 6.
    pseudo = sum(words[4:20]) + 6
    tcp_sum = pseudo + sum(words[20:]) - words[22] - words[23] - (words[26] & 0xFF)
    view = memoryview(packet)
    out: list[bytes] = []
    off = hlen
    n = mss
    mid_flags = flags & ~(_FIN | _PSH)
    f = mid_flags
    while True:
        stop = off + mss
        if stop >= total:
            stop = total
            n = stop - off
            f = flags
        _U16.pack_into(header, 4, tcp_hlen + n)
        _U32.pack_into(header, 44, seq)
        header[53] = f
        payload = view[off:stop]
        if csum_partial:
            x = pseudo + tcp_hlen + n
            while x > 0xFFFF:
                x = (x & 0xFFFF) + (x >> 16)
            _U16.pack_into(header, 56, x)
        else:
            _U16.pack_into(header, 56, internet_checksum(
                payload, tcp_sum + tcp_hlen + n + (seq >> 16) + (seq & 0xFFFF) + f))
        out.append(b"".join((header, payload)))
        if stop == total:
            return out
        if off == hlen:
            flags &= ~_CWR
            f = mid_flags = mid_flags & ~_CWR
        off = stop
        seq = (seq + n) & 0xFFFFFFFF


def segment_all(packets: list[tuple[bytes, int]], *, csum_partial: bool = False) -> list[bytes]:
    """Flatten ``(packet, gso_size)`` pairs into wire frames: super-segments
    (``gso_size`` > 0) are cut, ordinary packets pass through untouched."""
    out: list[bytes] = []
    for packet, gso in packets:
        if gso:
            out += segment(packet, gso, csum_partial=csum_partial)
        else:
            out.append(packet)
    return out

