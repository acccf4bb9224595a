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
_U32 = struct.Struct("!I")


def segment(packet: bytes, mss: int, *, csum_partial: bool = False) -> list[bytes]:
    """Cut one IPv4 TCP super-segment into frames of ``mss`` payload bytes each
    (the last one shorter if the payload is not a multiple).

    The incoming TCP checksum is ignored (a super-segment carries only the
    pseudo-header sum); each frame's is computed. A payload of at most ``mss``
    bytes gives one frame, its checksums completed.
    """
    ihl = (packet[0] & 0x0F) << 2
    total = (packet[2] << 8) | packet[3]
    hlen = ihl + ((packet[ihl + 12] >> 4) << 2)
    tcp_hlen = hlen - ihl
    ident = (packet[4] << 8) | packet[5]
    seq = int.from_bytes(packet[ihl + 4:ihl + 8], "big")
    flags = packet[ihl + 13]
    words = struct.unpack_from(f"!{ihl >> 1}H", packet)
    # The IPv4 header's word sum without total length, id and checksum: per frame
    # those two are added back and the sum folded (RFC 1071 incremental update).
    ip_sum = sum(words) - words[1] - words[2] - words[5]
    # The TCP pseudo-header (RFC 9293 3.1): addresses and protocol; the length per frame.
    pseudo = words[6] + words[7] + words[8] + words[9] + 6
    header = bytearray(packet[:hlen])
    tcp_seq_at, flags_at, csum_at = ihl + 4, ihl + 13, ihl + 16
    mid_flags = flags & ~(_FIN | _PSH)
    view = memoryview(packet)
    out: list[bytes] = []
    off = hlen
    while True:
        stop = off + mss
        last = stop >= total
        if last:
            stop = total
        n = stop - off
        frame_total = hlen + n
        _U16.pack_into(header, 2, frame_total)
        _U16.pack_into(header, 4, ident)
        _U16.pack_into(header, 10, 0xFFFE - (ip_sum + frame_total + ident - 1) % 0xFFFF)
        _U32.pack_into(header, tcp_seq_at, seq)
        header[flags_at] = flags if last else mid_flags
        tcp_len = tcp_hlen + n
        payload = view[off:stop]
        if csum_partial:
            x = pseudo + tcp_len
            while x > 0xFFFF:
                x = (x & 0xFFFF) + (x >> 16)
            _U16.pack_into(header, csum_at, x)
        else:
            _U16.pack_into(header, csum_at, 0)
            # The TCP header length is a multiple of 4: header and payload sums add up.
            initial = pseudo + tcp_len + int.from_bytes(header[ihl:], "big")
            _U16.pack_into(header, csum_at, internet_checksum(payload, initial))
        out.append(b"".join((header, payload)))
        if last:
            return out
        if off == hlen:
            flags &= ~_CWR                  # CWR on the first frame only
            mid_flags &= ~_CWR
        off = stop
        seq = (seq + n) & 0xFFFFFFFF
        ident = (ident + 1) & 0xFFFF


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

