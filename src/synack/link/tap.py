"""A TAP device as a :class:`synack.link.base.Link`: Ethernet framing, ARP, offloads.

The kernel sees the TAP as an Ethernet interface with a cable to synack. synack
owns a MAC of its own (random, locally administered), answers ARP for its
address and resolves its neighbours through :class:`~synack.link.arp.ArpResolver`.
Only IPv4 and ARP frames addressed to our MAC (or broadcast/multicast) are kept;
IPv6 (neighbour discovery, MLD) and everything else is dropped and counted in
:attr:`TapLink.stats`.

With ``offload=True`` the device carries a virtio-net header on every frame:
incoming NEEDS_CSUM / DATA_VALID packets and GSO super-segments reach the stack
with ``csum_valid=True``; outgoing TCP packets, whose checksum field holds only
the pseudo-header sum (``Offload.tx_csum``), go out with NEEDS_CSUM, and TSO
super-segments (gso_size > 0) with gso_type TCPV4 so the kernel cuts them.
Without offloads each batch read goes through software GRO (:mod:`synack.link.gro`,
``gro=True``), so in-order MTU-sized segments reach the stack as super-segments.
Without offloads the stack still hands over super-segments; they are cut here
into MSS frames (software GSO, :mod:`synack.wire.gso`).
"""

from __future__ import annotations

import random
from collections import Counter

from synack.link.arp import ArpResolver
from synack.link.gro import Gro
from synack.link.tundev import BATCH, TunTapDevice
from synack.stack import Offload
from synack.wire._addr import aton, ntoa
from synack.wire.ethernet import ETH_HEADER_LEN, ETHERTYPE_ARP, mac_aton, random_mac
from synack.wire.gso import segment
from synack.wire.icmp import CODE_HOST_UNREACH, DEST_UNREACH, build_icmp_packet, error_for
from synack.wire.vnet import F_DATA_VALID, F_NEEDS_CSUM, NO_OFFLOAD, VnetHeader, tx_header

__all__ = ["TapLink"]

_IPV4 = b"\x08\x00"
_ARP = ETHERTYPE_ARP.to_bytes(2, "big")
_IPV6 = b"\x86\xdd"
_VALID = F_NEEDS_CSUM | F_DATA_VALID


class TapLink:
    """synack's end of a TAP interface (implements :class:`synack.link.base.Link`).

    ``addr`` is synack's IPv4 address and ``prefixlen`` its subnet: destinations
    inside it are on-link (resolved directly), others go to ``gateway`` (dropped
    and counted as "no route" without one). ``name`` is the interface to create
    or attach to ("" lets the kernel choose). ``gro`` merges received segments
    in software when the device has no offloads (its counters are in :attr:`stats`).
    """

    def __init__(
        self,
        name: str = "",
        *,
        addr: str,
        prefixlen: int = 24,
        gateway: str | None = None,
        mac: str | None = None,
        offload: bool = False,
        mtu: int = 1500,
        batch: int = BATCH,
        rng: random.Random | None = None,
        gro: bool = True,
    ) -> None:
        if not 0 <= prefixlen <= 32:
            raise ValueError(f"prefix length must be 0..32, not {prefixlen}")
        self.dev = TunTapDevice(name, tap=True, offload=offload, mtu=mtu)
        self.name = self.dev.name
        self.mtu = mtu
        self.addr = addr
        self.mac = mac or random_mac(rng)
        self.offload: Offload | None = self.dev.offload
        self.arp = ArpResolver(self.mac, addr)
        self.batch = batch
        self.stats: Counter[str] = self.dev.stats
        # The kernel's super-segments need no merging: GRO only on the plain path.
        self.gro: Gro | None = Gro(self.stats) if gro and not self.dev.vnet else None
        self._mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
        self._net = aton(addr) & self._mask
        self._gateway = gateway
        self._mac_raw = mac_aton(self.mac)
        self._hops: dict[bytes, str | None] = {}   # raw destination -> next hop (None: no route)
        self._local: list[bytes] = []              # ICMP errors for the stack (ARP failed)

    # ------------------------------------------------------------ Link
    def fileno(self) -> int:
        """The TAP descriptor (selects readable when frames wait)."""
        return self.dev.fileno()

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        """IPv4 packets read in one batch, with csum_valid; ARP is handled here."""
        vnet = self.dev.vnet
        off = 10 if vnet else 0
        eth_end = off + ETH_HEADER_LEN
        ours = self._mac_raw
        stats = self.stats
        out: list[tuple[bytes, bool]] = []
        plain: list[bytes] = []          # IPv4 packets for GRO
        gro = self.gro
        for frame in self.dev.read_batch(self.batch):
            if len(frame) < eth_end:
                stats["dropped truncated"] += 1
                continue
            dst = frame[off:off + 6]
            if dst != ours and not dst[0] & 1:
                stats["dropped not our MAC"] += 1
                continue
            etype = frame[off + 12:eth_end]
            if etype == _IPV4:
                if gro is not None:
                    plain.append(frame[eth_end:])
                    continue
                valid = False
                if vnet:
                    flags = frame[0]
                    valid = bool(flags & _VALID)
                    if frame[1]:
                        stats["gso super-segments in"] += 1
                out.append((frame[eth_end:], valid))
            elif etype == _ARP:
                self.arp.receive(memoryview(frame)[eth_end:], now=now)
            elif etype == _IPV6:
                stats["dropped IPv6"] += 1
            else:
                stats["dropped not IPv4"] += 1
        if gro is not None:
            stats["packets in"] += len(plain)
            out = gro.merge(plain) if plain else out
        else:
            stats["packets in"] += len(out)
        self._tick_arp(now)
        if self._local:
            # ICMP host unreachable from ourselves, first: it is older than what was read.
            out[:0] = [(p, True) for p in self._local]
            self._local = []
        return out

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Frame and write each (packet, gso_size); packets for unresolved hops wait on ARP."""
        arp = self.arp
        for packet, gso in packets:
            if len(packet) < 20:
                self.stats["dropped bad packet"] += 1
                continue
            hop = self._next_hop(packet)
            if hop is None:
                self.stats["dropped no route"] += 1
                continue
            header = arp.output(packet, hop, now=now, gso_size=gso)
            if header is not None:
                self._write(header, packet, gso)
        self._tick_arp(now)

    def close(self) -> None:
        """Close the device. Idempotent."""
        self.dev.close()

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> int | None:
        """When :meth:`tick` has ARP work (a request to retry or give up on), or 0
        while ICMP errors for the stack wait to be read."""
        return 0 if self._local else self.arp.next_deadline()

    def tick(self, *, now: int) -> None:
        """Run ARP's timers and write what they produce."""
        self._tick_arp(now)

    # ------------------------------------------------------------ internals
    def _tick_arp(self, now: int) -> None:
        arp = self.arp
        deadline = arp.next_deadline()
        if deadline is not None and deadline <= now:
            arp.tick(now=now)
        for frame, gso in arp.transmit():
            if frame[12:14] == _IPV4:
                self._write(frame[:ETH_HEADER_LEN], frame[ETH_HEADER_LEN:], gso)
            else:
                self._write(b"", frame, 0)
        for packet in arp.unreachable():
            # Linux ipv4_link_failure(): ICMP host unreachable to the packet's sender,
            # here always ourselves, so the stack fails the connect() with EHOSTUNREACH.
            self.stats["icmp host unreachable (arp failed)"] += 1
            msg = error_for(packet, DEST_UNREACH, CODE_HOST_UNREACH)
            self._local.append(build_icmp_packet(self.arp.ip, self.arp.ip, msg))

    def _next_hop(self, packet: bytes) -> str | None:
        raw = packet[16:20]
        hop = self._hops.get(raw, "")
        if hop == "":
            dst = int.from_bytes(raw, "big")
            hop = ntoa(dst) if dst & self._mask == self._net else self._gateway
            if len(self._hops) > 4096:
                self._hops.clear()
            self._hops[raw] = hop
        return hop

    def _write(self, header: bytes, packet: bytes, gso: int) -> None:
        off = self.offload
        csum = off is not None and off.tx_csum
        if gso and (off is None or not off.tso_max):
            # No TSO on the device: cut the super-segment here (software GSO).
            self.stats["gso super-segments cut"] += 1
            for frame in segment(packet, gso, csum_partial=csum):
                self._write(header, frame, 0)
            return
        if not self.dev.vnet:
            self.dev.write([header, packet])
            return
        vh = tx_header(packet, 0, csum=csum, gso_size=gso) if header else NO_OFFLOAD
        if vh is not NO_OFFLOAD:
            # tx_header measured from the IP header; the device counts from the frame's start.
            n = len(header)
            vh = VnetHeader(vh.flags, vh.gso_type, vh.hdr_len + n, vh.gso_size,
                            vh.csum_start + n, vh.csum_offset)
            if gso:
                self.stats["tso super-segments out"] += 1
        self.dev.write([vh.encode(), header, packet])
