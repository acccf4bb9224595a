"""A TUN device as a :class:`synack.link.base.Link`: raw IP packets, optional offloads.

A TUN interface is point-to-point at layer 3: no Ethernet, no ARP, each read is
one IP packet. The offload story is the TAP's (:mod:`synack.link.tap`) with the
virtio-net header's offsets counted from the IP header instead of the frame.
Without offloads each batch read of two packets or more goes through software GRO
(:mod:`synack.link.gro`); a lone packet, with nothing to merge, reaches the stack unchecked.
Without TSO, super-segments from the stack are cut here (:mod:`synack.wire.gso`).
"""

from __future__ import annotations

from collections import Counter

from synack.link.gro import Gro
from synack.link.tundev import BATCH, TunTapDevice
from synack.stack import Offload
from synack.wire.gso import segment
from synack.wire.vnet import F_DATA_VALID, F_NEEDS_CSUM, NO_OFFLOAD, tx_header

__all__ = ["TunLink"]

_VALID = F_NEEDS_CSUM | F_DATA_VALID


class TunLink:
    """synack's end of a TUN interface (implements :class:`synack.link.base.Link`)."""

    def __init__(self, name: str = "", *, offload: bool = False, mtu: int = 1500,
                 batch: int = BATCH, gro: bool = True) -> None:
        self.dev = TunTapDevice(name, tap=False, offload=offload, mtu=mtu)
        self.addr6: str | None = None    # synack's IPv6 address, when the owner gives one
        self.name = self.dev.name
        self.mtu = mtu
        self.offload: Offload | None = self.dev.offload
        self.batch = batch
        self.stats: Counter[str] = self.dev.stats
        # The kernel's super-segments need no merging: GRO only on the plain path.
        self.gro: Gro | None = Gro(self.stats) if gro and not self.dev.vnet else None

    def fileno(self) -> int:
        """The TUN descriptor."""
        return self.dev.fileno()

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        """IPv4 and IPv6 packets read in one batch, with csum_valid (a TUN has no
        neighbours to discover: MLD and router solicitations reach the stack, which
        counts and ignores them)."""
        vnet = self.dev.vnet
        off = 10 if vnet else 0
        stats = self.stats
        out: list[tuple[bytes, bool]] = []
        for frame in self.dev.read_batch(self.batch):
            if len(frame) <= off:
                stats["dropped truncated"] += 1
                continue
            version = frame[off] >> 4
            if version != 4 and version != 6:
                stats["dropped not IP"] += 1
                continue
            valid = False
            if vnet:
                valid = bool(frame[0] & _VALID)
                if frame[1]:
                    stats["gso super-segments in"] += 1
            out.append((frame[off:], valid))
        stats["packets in"] += len(out)
        if self.gro is not None and len(out) > 1:
            return self.gro.merge([packet for packet, _ in out])
        return out

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Write each (packet, gso_size), with a virtio-net header when offloads are on."""
        dev = self.dev
        off = self.offload
        csum = off is not None and off.tx_csum
        if off is None or not off.tso_max:
            # No TSO on the device: cut super-segments here (software GSO).
            frames: list[tuple[bytes, int]] = []
            for packet, gso in packets:
                if gso:
                    self.stats["gso super-segments cut"] += 1
                    frames += [(f, 0) for f in segment(packet, gso, csum_partial=csum)]
                else:
                    frames.append((packet, 0))
            packets = frames
        if not dev.vnet:
            for packet, _ in packets:
                dev.write([packet])
            return
        for packet, gso in packets:
            vh = tx_header(packet, 0, csum=csum, gso_size=gso)
            if gso and vh is not NO_OFFLOAD:
                self.stats["tso super-segments out"] += 1
            dev.write([vh.encode(), packet])

    def close(self) -> None:
        """Close the device. Idempotent."""
        self.dev.close()
