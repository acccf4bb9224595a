"""The virtio-net header (``struct virtio_net_hdr``) a TAP with ``IFF_VNET_HDR`` uses.

Theory of operation
-------------------
With ``IFF_VNET_HDR`` every frame read from or written to a TAP is preceded by
10 bytes (Linux ``include/uapi/linux/virtio_net.h``), in the host's byte order
(little-endian on every machine synack targets; ``TUNSETVNETLE`` fixes it so)::

    flags u8        NEEDS_CSUM (1): the checksum is not done yet;
                    DATA_VALID (2): the checksum was verified (incoming only)
    gso_type u8     NONE (0), TCPV4 (1), UDP (3), TCPV6 (4), | ECN (0x80)
    hdr_len u16     length of all headers: Ethernet + IP + TCP on a TAP
    gso_size u16    payload bytes per segment when the device cuts a GSO packet
    csum_start u16  where checksumming starts (the TCP header)
    csum_offset u16 where, after csum_start, the checksum goes (16 for TCP)

With NEEDS_CSUM the checksum field already holds the folded sum of the IPv4
pseudo-header (Linux ``~tcp_v4_check(len, saddr, daddr, 0)``), and whoever
completes it sums from ``csum_start`` to the end and stores the complement. A
GSO packet (TSO) is one TCP segment of up to 64 KB that the device cuts into
``gso_size``-byte segments, copying the headers, adjusting sequence numbers,
IP ids and lengths, and keeping FIN/PSH on the last piece only.

The helpers here are what a TAP link needs: :func:`tx_header` builds the header
for a packet the stack produced, :func:`rx_csum_valid` says whether the stack
may skip TCP checksum verification on one the kernel handed over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .checksum import Buffer, pseudo_header_sum
from .errors import ParseError

__all__ = [
    "F_DATA_VALID",
    "F_NEEDS_CSUM",
    "GSO_ECN",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "GSO_UDP",
    "VNET_HDR_LEN",
    "VnetHeader",
    "partial_csum",
    "rx_csum_valid",
    "tx_header",
    "tx_header_bytes",
]  # fmt: skip

F_NEEDS_CSUM = 1   # VIRTIO_NET_HDR_F_NEEDS_CSUM
F_DATA_VALID = 2   # VIRTIO_NET_HDR_F_DATA_VALID
GSO_NONE = 0       # VIRTIO_NET_HDR_GSO_NONE
GSO_TCPV4 = 1      # VIRTIO_NET_HDR_GSO_TCPV4
GSO_UDP = 3        # VIRTIO_NET_HDR_GSO_UDP
GSO_TCPV6 = 4      # VIRTIO_NET_HDR_GSO_TCPV6
GSO_ECN = 0x80     # VIRTIO_NET_HDR_GSO_ECN: the TCP segment has CWR set
VNET_HDR_LEN = 10  # sizeof(struct virtio_net_hdr); TUNSETVNETHDRSZ default

TCP_CSUM_OFFSET = 16   # offsetof(struct tcphdr, check)
_CWR = 0x80
_STRUCT = struct.Struct("<BBHHHH")


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """One ``struct virtio_net_hdr``."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def parse(cls, data: Buffer) -> VnetHeader:
        """Decode the first 10 bytes of ``data``; ParseError if there are fewer."""
        if len(data) < VNET_HDR_LEN:
            raise ParseError("virtio-net header", "truncated",
                             f"({len(data)} bytes, need {VNET_HDR_LEN})")
        return cls(*_STRUCT.unpack_from(data))

    def encode(self) -> bytes:
        """The 10 bytes; ValueError for a field out of range."""
        try:
            return _STRUCT.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                                self.csum_start, self.csum_offset)
        except struct.error as exc:
            raise ValueError(f"virtio-net header field out of range: {exc}") from exc


NO_OFFLOAD = VnetHeader()
_NO_OFFLOAD_BYTES = NO_OFFLOAD.encode()


def tx_header(frame: Buffer, ip_offset: int, *, csum: bool, gso_size: int = 0) -> VnetHeader:
    """The header for an outgoing frame whose IPv4 packet starts at ``ip_offset``
    (14 behind an Ethernet header, 0 on a TUN).

    ``csum``: the TCP checksum field holds the pseudo-header sum and the device
    must finish it (NEEDS_CSUM). ``gso_size`` > 0: the packet is a TSO
    super-segment to cut into segments of that many payload bytes; it implies
    ``csum`` (Linux only does TSO on CHECKSUM_PARTIAL packets). A packet that is
    not TCP, or a fragment, gets an empty header whatever is asked.
    """
    ip = ip_offset
    if len(frame) > ip and frame[ip] >> 4 == 6:
        return _tx_header6(frame, ip, csum, gso_size)
    if len(frame) < ip + 20 or frame[ip + 9] != 6 or (frame[ip + 6] & 0x3F) or frame[ip + 7]:
        return NO_OFFLOAD
    l4 = ip + ((frame[ip] & 0x0F) << 2)
    if len(frame) < l4 + 20:
        return NO_OFFLOAD
    if not csum and not gso_size:
        return NO_OFFLOAD
    hdr_len = l4 + ((frame[l4 + 12] >> 4) << 2)
    gso_type = GSO_NONE
    if gso_size:
        gso_type = GSO_TCPV4 | (GSO_ECN if frame[l4 + 13] & _CWR else 0)
    return VnetHeader(F_NEEDS_CSUM, gso_type, hdr_len, gso_size, l4, TCP_CSUM_OFFSET)


def _tx_header6(frame: Buffer, ip: int, csum: bool, gso_size: int) -> VnetHeader:
    """:func:`tx_header` for IPv6 with TCP right after the fixed header (what the stack
    sends): gso_type TCPV6 for a super-segment. Anything else gets no offload."""
    l4 = ip + 40
    if len(frame) < l4 + 20 or frame[ip + 6] != 6 or (not csum and not gso_size):
        return NO_OFFLOAD
    hdr_len = l4 + ((frame[l4 + 12] >> 4) << 2)
    gso_type = GSO_NONE
    if gso_size:
        gso_type = GSO_TCPV6 | (GSO_ECN if frame[l4 + 13] & _CWR else 0)
    return VnetHeader(F_NEEDS_CSUM, gso_type, hdr_len, gso_size, l4, TCP_CSUM_OFFSET)


def tx_header_bytes(frame: Buffer, ip_offset: int, *, csum: bool, gso_size: int = 0) -> bytes:
    """:func:`tx_header` encoded, with the common no-offload case preallocated."""
    if not csum and not gso_size:
        return _NO_OFFLOAD_BYTES
    return tx_header(frame, ip_offset, csum=csum, gso_size=gso_size).encode()


def rx_csum_valid(hdr: VnetHeader) -> bool:
    """May the stack skip verifying the TCP checksum of the packet behind ``hdr``?

    DATA_VALID: the device checked it. NEEDS_CSUM: the packet comes from the
    local kernel with only the pseudo-header sum in the field (it never crossed
    a wire); verifying it would fail. Either way the stack must not check.
    """
    return bool(hdr.flags & (F_NEEDS_CSUM | F_DATA_VALID))


def partial_csum(src: str, dst: str, tcp_length: int) -> int:
    """The value NEEDS_CSUM expects in the TCP checksum field: the pseudo-header sum
    for ``tcp_length`` bytes of TCP header and payload, folded, not complemented."""
    x = pseudo_header_sum(src, dst, 6, tcp_length)
    while x > 0xFFFF:
        x = (x & 0xFFFF) + (x >> 16)
    return x
