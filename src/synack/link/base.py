"""What a link is, as the event loop sees it.

A link carries IPv4 packets between one :class:`~synack.stack.Stack` and a
wire (a TAP or TUN device, an in-process loopback). Everything below IP --
Ethernet framing, ARP, virtio-net headers and offloads -- stays inside the
link; the loop only moves whole IPv4 packets.
"""

from __future__ import annotations

from typing import Protocol


class Link(Protocol):
    """A device the event loop (:mod:`synack.link.loop`) drives."""

    def fileno(self) -> int:
        """A descriptor that selects readable when :meth:`recv_packets` has work."""
        ...

    def recv_packets(self, *, now: int) -> list[bytes]:
        """Read what is ready without blocking, in one batch: IPv4 packets for the stack.

        Link-level traffic (ARP requests and replies) is answered or absorbed
        here and never returned. Returns [] when nothing is ready.
        """
        ...

    def send_packets(self, packets: list[bytes], *, now: int) -> None:
        """Put IPv4 packets from the stack on the wire, in order, in one batch."""
        ...

    def close(self) -> None:
        """Release the device. Idempotent."""
        ...
