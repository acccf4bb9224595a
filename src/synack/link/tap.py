"""A TAP device as a :class:`synack.link.base.Link`: Ethernet framing, ARP, offloads.

The kernel sees the TAP as an Ethernet interface with a cable to synack. synack
owns a MAC of its own (random, locally administered), answers ARP for its
address and resolves its neighbours through :class:`~synack.link.arp.ArpResolver`.
Only IPv4, ARP and IPv6 frames addressed to our MAC (or broadcast/multicast) are
kept. With an IPv6 address (``addr6``) synack answers and sends Neighbor
Discovery through :class:`~synack.link.nd.NdResolver` (ARP's twin), which also
swallows and counts the link's MLD and router chatter; other IPv6 packets go to
the stack. Without ``addr6`` IPv6 is dropped and counted in :attr:`TapLink.stats`.
``addr6`` first goes through duplicate address detection (one second, as Linux):
until then the stack's IPv6 output waits; if another node has the address, IPv6
stays off ("ipv6 dad failed") and :attr:`TapLink.on_warning` gets one line.

With ``offload=True`` the device carries a virtio-net header on every frame:
incoming NEEDS_CSUM / DATA_VALID packets and GSO super-segments reach the stack
with ``csum_valid=True``; outgoing TCP packets, whose checksum field holds only
the pseudo-header sum (``Offload.tx_csum``), go out with NEEDS_CSUM, and TSO
super-segments (gso_size > 0) with gso_type TCPV4 or TCPV6 so the kernel cuts them.
Without offloads each batch read of two packets or more goes through software GRO
(:mod:`synack.link.gro`, ``gro=True``), so in-order MTU-sized segments reach the stack
as super-segments; a lone packet, with nothing to merge, reaches it unchecked
(``csum_valid=False``: the stack checks it once, GRO's counters do not count it).
Without offloads the stack still hands over super-segments; they are cut here
into MSS frames (software GSO, :mod:`synack.wire.gso`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from synack.counts import Counter
from synack.link.arp import ArpResolver
from synack.link.gro import Gro
from synack.link.nd import DAD_FAILED, DAD_PREFERRED, NdResolver, is_link_chatter
from synack.link.tundev import BATCH, TunTapDevice
from synack.stack import Offload
from synack.wire._addr import aton, aton6, ntoa, ntoa6
from synack.wire.ethernet import ETH_HEADER_LEN, ETHERTYPE_ARP, mac_aton, random_mac
from synack.wire.gso import segment
from synack.wire.icmp import CODE_HOST_UNREACH, DEST_UNREACH, build_icmp_packet, error_for
from synack.wire.icmp6 import CODE_ADDR_UNREACH, build_icmp6_packet, error_for6
from synack.wire.icmp6 import DEST_UNREACH as ICMP6_DEST_UNREACH
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
        addr6: str | None = None,
        prefixlen6: int = 64,
        gateway6: str | None = None,
        dad_transmits: int = 1,
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
        stats = self.dev.stats
        if type(stats) is not Counter:
            # The device's counters as synack.counts' Counter, shared with it: their
            # ``c[k] += 1`` (one a packet here) then runs no Python (counts.py says why).
            stats = Counter(stats)
            self.dev.stats = stats
        self.stats: Counter[str] = stats
        self._write_many: Callable[[list[bytes]], None] | None = getattr(
            self.dev, "write_many", None)   # (a device stand-in may have only write)
        # The kernel's super-segments need no merging: GRO only on the plain path.
        self.gro: Gro | None = Gro(self.stats) if gro and not self.dev.vnet else None
        self._plain = not self.dev.vnet     # frames start with the Ethernet header
        self._mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
        self._net = aton(addr) & self._mask
        self._gateway = gateway
        self._mac_raw = mac_aton(self.mac)
        # The Ethernet header of the last lone IPv4 frame for us (recv_packets()).
        self._eth_in = b""
        self._hops: dict[bytes, str | None] = {}   # raw destination -> next hop (None: no route)
        # IPv6: on-link are the /prefixlen6 of addr6 and fe80::/10.
        if not 0 <= prefixlen6 <= 128:
            raise ValueError(f"IPv6 prefix length must be 0..128, not {prefixlen6}")
        self.addr6 = addr6
        self.nd: NdResolver | None = (NdResolver(self.mac, addr6, dad_transmits=dad_transmits)
                                      if addr6 else None)
        #: Called once with a one-line reason when duplicate address detection fails
        #: (the command layer prints it); None: only counted.
        self.on_warning: Callable[[str], None] | None = None
        self._dad_reported = False
        self._mask6 = ((1 << 128) - 1) ^ ((1 << (128 - prefixlen6)) - 1)
        self._net6 = int.from_bytes(aton6(addr6), "big") & self._mask6 if addr6 else 0
        self._gateway6 = gateway6
        self._local: list[bytes] = []              # ICMP errors for the stack (ARP/ND failed)
        # next_deadline() found ARP and ND idle and nothing for the stack, and they have
        # been given nothing since (ARP and ND are driven through this link's methods,
        # each of which ends in _tick_arp() when it gave them something): asked after
        # every batch, the answer is None without a look.
        self._quiet = False

    # ------------------------------------------------------------ Link
    def fileno(self) -> int:
        """The TAP descriptor (selects readable when frames wait)."""
        return self.dev.fileno()

    def recv_packets(self, now: int) -> list[tuple[bytes, bool]]:
        """IPv4 packets read in one batch, with csum_valid; ARP is handled here.
        (``now`` may be passed by position: the driver's call per batch.)"""
        frames = self.dev.read_batch(self.batch)
        if len(frames) == 1 and self._plain:
            # One frame, a quiet link's usual read: an IPv4 frame for us is a lone packet,
            # which GRO has nothing to merge with (the loop below does the same, slower).
            # Its Ethernet header is nearly always the one the last such frame had (our
            # MAC, the peer's, IPv4): then one comparison looks at all of it.
            frame = frames[0]
            eth = frame[:ETH_HEADER_LEN]
            if eth == self._eth_in or eth[12:] == _IPV4 and (eth[:6] == self._mac_raw
                                                             or eth[0] & 1):
                self._eth_in = eth
                self.stats["packets in"] += 1
                # (Nothing here for ARP or ND: their timers are tick()'s.)
                return [(frame[ETH_HEADER_LEN:], False)]
        gro = self.gro
        ours = self._mac_raw
        vnet = self.dev.vnet
        off = 10 if vnet else 0
        eth_end = off + ETH_HEADER_LEN
        stats = self.stats
        out = []
        plain: list[bytes] = []          # IPv4 packets for GRO
        v6: list[tuple[bytes, bool]] = []   # IPv6 packets (no software GRO for them)
        plain_eth = gro is not None      # then no vnet header: the Ethernet header at 0
        neigh = False                    # an ARP or ND frame: send what it made them say
        for frame in frames:
            if plain_eth and frame[12:14] == _IPV4 and (frame[:6] == ours or frame[0] & 1):
                plain.append(frame[ETH_HEADER_LEN:])    # the usual frame, as below
                continue
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
                neigh = True
            elif etype == _IPV6:
                nd = self.nd
                if nd is None:
                    stats["dropped IPv6"] += 1
                    continue
                packet = frame[eth_end:]
                if is_link_chatter(packet):
                    nd.receive(packet, now=now)
                    neigh = True
                    continue
                if nd.dad != DAD_PREFERRED:
                    # Linux delivers nothing to a tentative or failed address.
                    stats["dropped IPv6 (address " + nd.dad + ")"] += 1
                    continue
                if gro is not None:
                    plain.append(packet)
                    continue
                valid = False
                if vnet:
                    valid = bool(frame[0] & _VALID)
                    if frame[1]:
                        stats["gso super-segments in"] += 1
                v6.append((packet, valid))
            else:
                stats["dropped not IPv4"] += 1
        if gro is not None:
            stats["packets in"] += len(plain)
            if len(plain) > 1:
                out = gro.merge(plain)
            elif plain:
                # A lone packet has nothing to merge with: it goes to the stack as read,
                # which checks it once (GRO's checks would only be made again there).
                out = [(plain[0], False)]
        else:
            stats["packets in"] += len(out)
        if v6:
            stats["packets in"] += len(v6)
            out += v6
        if neigh:
            self._tick_arp(now)         # (their timers are tick()'s)
        return out

    def take_local(self) -> list[bytes]:
        """ICMP errors this host sent itself (ARP or ND gave up on a neighbour), for the
        stack's :meth:`~synack.stack.Stack.receive_local`; the driver delivers them
        before what was read with them (they are older)."""
        local = self._local
        if local:
            self._local = []
        return local                # (empty: the link's own list, not to be kept)

    def send_packets(self, packets: list[tuple[bytes, int]], now: int) -> None:
        """Frame and write each (packet, gso_size); packets for unresolved hops wait on ARP.
        (``now`` may be passed by position: the driver's call per batch.)"""
        if (count := len(packets)) <= 2 and self._plain:
            # One packet, a quiet link's usual write, or two to the same address (a pure
            # ACK and the reply, say): IPv4, no super-segment, to a REACHABLE neighbour
            # whose hop is known (the loop below does the same, slower; anything else
            # goes there).
            packet, gso = packets[0]
            if not gso and len(packet) >= 20 and packet[0] >> 4 != 6:
                daddr = packet[16:20]
                hop = self._hops.get(daddr)             # (None: unknown, or no route)
                arp = self.arp
                entry = arp.entries.get(hop) if hop is not None else None
                if entry is not None and entry.mac is not None \
                        and now - entry.confirmed < arp.reachable_us:
                    write_many = self._write_many
                    if write_many is not None:
                        if count == 1:
                            write_many([entry.header + packet])
                            return
                        second, gso = packets[1]
                        if not gso and len(second) >= 20 and second[0] >> 4 != 6 \
                                and second[16:20] == daddr:
                            eth = entry.header
                            write_many([eth + packet, eth + second])
                            return
        arp = self.arp
        hops = self._hops
        entries = arp.entries
        reachable_us = arp.reachable_us
        plain = self._plain
        neigh = False                   # ARP or ND had a say: run them after
        frames: list[bytes] = []        # _write()'s usual case, written together, in order
        for packet, gso in packets:
            if len(packet) < 20:
                self.stats["dropped bad packet"] += 1
                continue
            if packet[0] >> 4 == 6:
                if frames:
                    self._write_frames(frames)
                    frames = []
                self._send6(packet, gso, now)
                neigh = True
                continue
            hop = hops.get(packet[16:20], "")      # _next_hop()'s cache, inline
            if hop == "":
                hop = self._next_hop(packet)
            if hop is None:
                self.stats["dropped no route"] += 1
                continue
            # arp.output()'s usual case, inline: a REACHABLE neighbour's header, no state
            # to change (a STALE one's probe, an unresolved one's queue: the call).
            entry = entries.get(hop)
            if entry is not None and entry.mac is not None and now - entry.confirmed < reachable_us:
                header: bytes | None = entry.header
            else:
                header = arp.output(packet, hop, now=now, gso_size=gso)
                neigh = True
            if header is not None:
                if plain and not gso:
                    frames.append(header + packet)
                else:
                    if frames:
                        self._write_frames(frames)
                        frames = []
                    self._write(header, packet, gso)
        if frames:
            write_many = self._write_many      # self._write_frames(frames), inline
            if write_many is not None:
                write_many(frames)
            else:
                self._write_frames(frames)
        if neigh:
            # What ARP/ND queued (a request, released packets) goes out now; their timers
            # are tick()'s (the driver asks next_deadline()).
            self._tick_arp(now)

    def close(self) -> None:
        """Close the device. Idempotent."""
        self.dev.close()

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> int | None:
        """When :meth:`tick` has ARP or ND work (a request to retry or give up on), or 0
        while ICMP errors for the stack wait to be read."""
        if self._quiet:         # (the link event loop reads the flag itself first)
            return None         # nothing has been asked of ARP or ND since it was so
        if self._local:
            return 0
        # arp.busy() and nd.busy(), inline: a resolved link has no timers.
        arp = self.arp
        nd = self.nd
        if not (arp._incomplete or arp._out or arp._failed) and (
                nd is None or nd.dad == DAD_PREFERRED
                and not (nd._incomplete or nd._out or nd._failed)):
            self._quiet = True
            return None
        d = self.arp.next_deadline()
        if nd is not None:
            d6 = nd.next_deadline()
            if d6 is not None and (d is None or d6 < d):
                d = d6
        return d

    def tick(self, *, now: int) -> None:
        """Run ARP's timers and write what they produce."""
        self._tick_arp(now)

    # ------------------------------------------------------------ internals
    def _tick_arp(self, now: int) -> None:
        # Every call that may give ARP or ND work (a frame for them, a packet to an
        # unresolved, STALE or IPv6 neighbour, a timer) ends here: next_deadline() looks.
        self._quiet = False
        arp = self.arp
        nd = self.nd
        # arp.busy() and nd.busy(), inline: every batch twice, and the common case is
        # a resolved link.
        if not (arp._incomplete or arp._out or arp._failed) and (
                nd is None or nd.dad == DAD_PREFERRED
                and not (nd._incomplete or nd._out or nd._failed)):
            return
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
        if nd is not None:
            deadline = nd.next_deadline()
            if deadline is not None and deadline <= now:
                nd.tick(now=now)
            for frame, gso in nd.transmit():
                # Released IPv6 packets and ND's own: the vnet header comes from the
                # IPv6 packet (NEEDS_CSUM, TSO6 for TCP; none for ICMPv6).
                self._write(frame[:ETH_HEADER_LEN], frame[ETH_HEADER_LEN:], gso)
            for packet in nd.unreachable():
                # Linux ndisc_error_report(): ICMPv6 address unreachable to ourselves.
                self.stats["icmp6 address unreachable (nd failed)"] += 1
                err = error_for6(packet, ICMP6_DEST_UNREACH, CODE_ADDR_UNREACH)
                self._local.append(build_icmp6_packet(nd.ip, nd.ip, err))
            if nd.dad == DAD_FAILED and not self._dad_reported:
                self._dad_reported = True
                self.stats["ipv6 dad failed"] += 1
                if self.on_warning is not None:
                    self.on_warning(f"IPv6 address {nd.ip} is already in use on the link "
                                    "(duplicate address detection); IPv6 is off")

    def _send6(self, packet: bytes, gso: int, now: int) -> None:
        nd = self.nd
        if nd is None or len(packet) < 40:
            self.stats["dropped no IPv6"] += 1
            return
        raw = packet[24:40]
        dst = int.from_bytes(raw, "big")
        if dst & self._mask6 == self._net6 or raw[0] == 0xFE and raw[1] & 0xC0 == 0x80:
            hop: str | None = ntoa6(raw)
        else:
            hop = self._gateway6
        if hop is None:
            self.stats["dropped no route"] += 1
            return
        header = nd.output(packet, hop, now=now, gso_size=gso)
        if header is not None:
            self._write(header, packet, gso)

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

    def _write_frames(self, frames: list[bytes]) -> None:
        """Whole frames for a device without a vnet header, in order."""
        write_many = self._write_many
        if write_many is not None:
            write_many(frames)
            return
        for frame in frames:        # a device stand-in without write_many
            self.dev.write([frame])

    def _write(self, header: bytes, packet: bytes, gso: int) -> None:
        off = self.offload
        csum = off is not None and off.tx_csum
        if gso and (off is None or not off.tso_max):
            # No TSO on the device: cut the super-segment here (software GSO).
            self.stats["gso super-segments cut"] += 1
            if not self.dev.vnet:
                self._write_frames([header + frame
                                    for frame in segment(packet, gso, csum_partial=csum)])
                return
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
