"""What a link is, as the event loop sees it.

A link carries IPv4 packets between one :class:`~synack.stack.Stack` and a
wire (a TAP or TUN device, an in-process loopback). Everything below IP --
Ethernet framing, ARP, virtio-net headers and offloads -- stays inside the
link; the loop only moves whole IPv4 packets.

Any packet pipe can be a link without writing one: :class:`synack.link.pipe.PipeLink`
takes a ``send(packet)`` callable and has a thread-safe ``deliver(packet)``
(:class:`~synack.link.pipe.AsyncQueueLink` is its asyncio form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from synack.stack import Offload


class Link(Protocol):
    """A device the event loop (:mod:`synack.link.loop`) drives.

    ``offload`` is what the device negotiated (checksum offload, TSO), or None;
    the loop hands it to the stack so that it builds packets to match.
    """

    offload: Offload | None

    def fileno(self) -> int:
        """A descriptor that selects readable when :meth:`recv_packets` has work."""
        ...

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        """Read what is ready without blocking, in one batch: (IPv4 packet, csum_valid).

        ``csum_valid`` is True when the device vouches for the TCP checksum (a
        virtio-net header with DATA_VALID or NEEDS_CSUM), so the stack need not
        verify it. Link-level traffic (ARP requests and replies) is answered or
        absorbed here and never returned. Returns [] when nothing is ready.
        """
        ...

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Put (IPv4 packet, gso_size) pairs from the stack on the wire, in order, in one batch.

        ``gso_size`` 0 is an ordinary packet; otherwise the packet is a TCP
        super-segment to be cut into ``gso_size``-byte segments: by the device if
        it has TSO, else by the link itself (:func:`synack.wire.gso.segment`).
        """
        ...

    def close(self) -> None:
        """Release the device. Idempotent."""
        ...
