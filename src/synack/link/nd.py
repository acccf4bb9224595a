"""IPv6 Neighbor Discovery (RFC 4861) for one address on one Ethernet: ARP's job for IPv6.

Theory of operation. :class:`NdResolver` is :class:`~synack.link.arp.ArpResolver`
with ICMPv6 in place of ARP: the same neighbour cache, states (INCOMPLETE,
REACHABLE, STALE), queue and Linux timings (``net.ipv6.neigh.*``:
``mcast_solicit`` 3, ``retrans_time_ms`` 1000, ``base_reachable_time_ms``
30000, ``gc_stale_time`` 60), so only the packets differ:

* resolving sends a neighbor solicitation to the target's solicited-node
  multicast group (RFC 4291 2.7.1; Ethernet 33:33:ff:xx:xx:xx, RFC 2464 7) with
  our link-layer address as the source option; re-confirming a STALE entry sends
  one unicast to the cached MAC (Linux's PROBE);
* a solicitation for our address is answered with a solicited advertisement
  (S and O set, our MAC as the target option), to the sender, or to all-nodes
  when the sender is unspecified (duplicate address detection, RFC 4862 5.4.3);
  its source link-layer option teaches us the sender's MAC (RFC 4861 7.2.3);
* an advertisement for an address we have an entry for fills it in (7.2.5).

Duplicate address detection (RFC 4862 5.4, Linux's defaults: ``dad_transmits``
1, ``retrans_time`` 1 s, no optimistic DAD). Our address starts tentative: the
first :meth:`NdResolver.tick` sends one solicitation from the unspecified address
(::) to our solicited-node group, target our address, no source link-layer
option. While tentative, IPv6 packets the stack hands over are held (Linux
would not let a socket use the address; holding them is the faithful equivalent
for a stack that already chose it) and solicitations for our address get no
answer. An advertisement for our address, or a solicitation for it from ::
(another node's DAD at the same time), means someone else has it: the address
fails ("ipv6 dad failed"), the held packets and all later IPv6 output are
dropped and counted. One ``retrans_time`` without either makes it preferred and
releases what was held.

Every message must arrive with hop limit 255 (7.1.1: it came from the link, not
through a router), else it is dropped and counted. Router solicitations and
advertisements, redirects and MLD reports are link chatter synack has no use
for: :meth:`NdResolver.receive` swallows them and counts them ("nd ignored").
"""

from __future__ import annotations

from collections import deque
from typing import Any

from synack.link.arp import ArpEntry, ArpResolver
from synack.wire import ParseError
from synack.wire.checksum import Buffer
from synack.wire.ethernet import header_bytes, mac_aton, mac_ntoa
from synack.wire.icmp6 import (
    NA_OVERRIDE,
    NA_SOLICITED,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    NdMessage,
    build_icmp6_packet,
    multicast_mac,
    parse_icmp6,
    solicited_node,
)
from synack.wire.ipv6 import PROTO_ICMPV6, parse_ipv6

__all__ = ["DAD_FAILED", "DAD_PREFERRED", "DAD_TENTATIVE", "ETHERTYPE_IPV6", "LINK_TYPES",
           "NdResolver", "is_link_chatter"]

ETHERTYPE_IPV6 = 0x86DD
ALL_NODES = "ff02::1"
#: ICMPv6 types that belong to the link, not the host: MLD (130-132, 143), router and
#: neighbor discovery and redirect (133-137).
LINK_TYPES = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})
#: States of our own address (Linux: IFA_F_TENTATIVE, none, IFA_F_DADFAILED).
DAD_TENTATIVE, DAD_PREFERRED, DAD_FAILED = "tentative", "preferred", "failed"


def is_link_chatter(packet: Buffer) -> bool:
    """Is this IPv6 packet ND or MLD (for the link's resolver, not the stack)?
    Looks through a hop-by-hop header, which MLD reports carry (router alert)."""
    n = len(packet)
    if n < 41:
        return False
    nxt, off = packet[6], 40
    if nxt == 0 and n >= off + 2:         # hop-by-hop options
        nxt, off = packet[off], off + ((packet[off + 1] + 1) << 3)
    return nxt == PROTO_ICMPV6 and off < n and packet[off] in LINK_TYPES


class NdResolver(ArpResolver):
    """Neighbor Discovery for ``ip`` (IPv6) at ``mac``: answers, learns, resolves.

    ``dad_transmits`` is Linux's ``net.ipv6.conf.*.dad_transmits`` (1); 0 makes the
    address preferred at once (``nodad``).
    """

    def __init__(self, mac: str, ip: str, *, dad_transmits: int = 1, **kw: Any) -> None:
        super().__init__(mac, ip, **kw)
        self.dad_transmits = dad_transmits
        self.dad = DAD_TENTATIVE if dad_transmits > 0 else DAD_PREFERRED
        self._dad_sent = 0                     # solicitations sent so far
        self._dad_next: int | None = None      # when the next one (or the verdict) is due
        self._held: deque[tuple[bytes, int, str]] = deque()
        self._held_bytes = 0

    # ------------------------------------------------------------ DAD
    def output(self, packet: bytes, next_hop: str, *, now: int, gso_size: int = 0) -> bytes | None:
        """As :meth:`ArpResolver.output`, but held while our address is tentative and
        dropped (counted) once DAD has failed."""
        if self.dad == DAD_PREFERRED:
            return super().output(packet, next_hop, now=now, gso_size=gso_size)
        if self.dad == DAD_FAILED:
            self.stats["ipv6 dropped (dad failed)"] += 1
            return None
        self._held.append((packet, gso_size, next_hop))
        self.stats["ipv6 held (dad)"] += 1
        self._held_bytes += len(packet)
        while self._held_bytes > self.queue_bytes and len(self._held) > 1:
            old, _, _ = self._held.popleft()
            self._held_bytes -= len(old)
            self.stats["ipv6 held overflow (dad)"] += 1
        return None

    def tick(self, *, now: int) -> None:
        """DAD's timer (mirrors addrconf_dad_work()), then the neighbours'."""
        if self.dad == DAD_TENTATIVE and (self._dad_next is None or self._dad_next <= now):
            self._dad_work(now)
        super().tick(now=now)

    def busy(self) -> bool:
        """As :meth:`ArpResolver.busy`; also while duplicate address detection runs
        (or has failed and not yet been reported)."""
        return self.dad != DAD_PREFERRED or bool(self._incomplete or self._out or self._failed)

    def next_deadline(self) -> int | None:
        d = super().next_deadline()
        if self.dad == DAD_TENTATIVE:
            dad = self._dad_next if self._dad_next is not None else 0   # not started: now
            d = dad if d is None else min(d, dad)
        return d

    def _dad_work(self, now: int) -> None:
        # Mirrors addrconf_dad_start() (first call) and addrconf_dad_work(): send the
        # next solicitation, or after the last one's retrans_time, the address is
        # preferred (addrconf_dad_completed()). No random initial delay: synack's
        # address comes up with its link, once.
        if self._dad_sent >= self.dad_transmits:
            self.dad = DAD_PREFERRED
            self._dad_next = None
            self.stats["ipv6 dad completed"] += 1
            held, self._held = self._held, deque()
            self._held_bytes = 0
            for packet, gso, hop in held:
                header = super().output(packet, hop, now=now, gso_size=gso)
                if header is not None:
                    self._out.append((header + packet, gso))
            return
        dst = solicited_node(self.ip)
        msg = NdMessage(NEIGHBOR_SOLICIT, self.ip)           # no source link-layer option
        self._out.append((header_bytes(mac_ntoa(multicast_mac(dst)), self.mac, ETHERTYPE_IPV6)
                          + build_icmp6_packet("::", dst, msg), 0))
        self.stats["nd dad solicitations out"] += 1
        self._dad_sent += 1
        self._dad_next = now + self.retrans_us

    def _dad_failure(self) -> None:
        # Mirrors addrconf_dad_failure(): the address is IFA_F_DADFAILED, never used.
        if self.dad != DAD_TENTATIVE:
            return
        self.dad = DAD_FAILED
        self._dad_next = None
        self.stats["ipv6 dad failed"] += 1
        self.stats["ipv6 dropped (dad failed)"] += len(self._held)
        self._held.clear()
        self._held_bytes = 0

    def receive(self, payload: Buffer, *, now: int) -> None:
        """An IPv6 packet holding ND or MLD (the Ethernet payload). Never raises for
        what a peer sent."""
        try:
            hdr, body = parse_ipv6(payload)
            if hdr.proto != PROTO_ICMPV6 or not len(body) or body[0] not in (
                    NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
                self.stats["nd ignored"] += 1
                return
            if hdr.hop_limit != 255:
                self.stats["nd dropped hop limit"] += 1
                return
            msg = parse_icmp6(body, hdr.src, hdr.dst)
        except ParseError as exc:
            self.stats["nd dropped " + exc.kind] += 1
            return
        assert isinstance(msg, NdMessage)
        self.stats["nd in"] += 1
        if msg.type == NEIGHBOR_SOLICIT:
            if msg.target != self.ip:
                return
            if self.dad != DAD_PREFERRED:
                # Mirrors ndisc_recv_ns() for a tentative address: another node's DAD
                # (from ::) means a duplicate; anything else gets no answer.
                if hdr.src == "::":
                    self._dad_failure()
                return
            if hdr.src == "::":
                # RFC 4861 7.1.1: no source link-layer option from the unspecified address.
                if not msg.source_lladdr:
                    self._advertise(ALL_NODES, None, solicited=False)
                return
            if msg.source_lladdr:
                self._learn(hdr.src, mac_ntoa(msg.source_lladdr), now)
                self._advertise(hdr.src, mac_ntoa(msg.source_lladdr), solicited=True)
            else:
                entry = self.entries.get(hdr.src)
                mac = entry.mac if entry is not None else None
                if mac is not None:
                    self._advertise(hdr.src, mac, solicited=True)
                else:
                    self.stats["nd solicitation without source address"] += 1
            return
        # A neighbor advertisement.
        if msg.target == self.ip:
            if self.dad == DAD_PREFERRED:
                self.stats["nd address conflict"] += 1
            else:
                self._dad_failure()         # mirrors ndisc_recv_na() during DAD
            return
        entry = self.entries.get(msg.target)
        if entry is not None and msg.target_lladdr:
            self._learn(msg.target, mac_ntoa(msg.target_lladdr), now)

    # ------------------------------------------------------------ the packets
    def _learn(self, ip: str, mac: str, now: int) -> None:
        entry = self.entries.get(ip)
        if entry is None:
            entry = self.entries[ip] = ArpEntry(ip)
        elif entry.mac is None:
            self._incomplete -= 1
        if entry.mac != mac:
            entry.mac = mac
            entry.header = header_bytes(mac, self.mac, ETHERTYPE_IPV6)
        entry.confirmed = now
        entry.probed = None
        if entry.queue:
            self._out.extend((entry.header + p, gso) for p, gso in entry.queue)
            entry.queue.clear()
            entry.queued_bytes = 0

    def _request(self, ip: str, *, unicast_to: str | None = None) -> None:
        dst = ip if unicast_to else solicited_node(ip)
        msg = NdMessage(NEIGHBOR_SOLICIT, ip, source_lladdr=mac_aton(self.mac))
        mac = unicast_to or mac_ntoa(multicast_mac(dst))
        self._out.append((header_bytes(mac, self.mac, ETHERTYPE_IPV6)
                          + build_icmp6_packet(self.ip, dst, msg), 0))
        self.stats["nd solicitations out"] += 1

    def _advertise(self, dst: str, mac: str | None, *, solicited: bool) -> None:
        flags = NA_OVERRIDE | (NA_SOLICITED if solicited else 0)
        msg = NdMessage(NEIGHBOR_ADVERT, self.ip, flags, target_lladdr=mac_aton(self.mac))
        eth_dst = mac or mac_ntoa(multicast_mac(dst))
        self._out.append((header_bytes(eth_dst, self.mac, ETHERTYPE_IPV6)
                          + build_icmp6_packet(self.ip, dst, msg), 0))
        self.stats["nd advertisements out"] += 1
