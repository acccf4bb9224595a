"""A sans-I/O ARP cache and resolver (RFC 826) with Linux's timings.

Theory of operation. The resolver owns one IPv4 address and one MAC on one
Ethernet. A link feeds it every ARP payload it reads (:meth:`ArpResolver.receive`)
and asks it for the Ethernet header of each IP packet it sends
(:meth:`ArpResolver.output`); whatever the resolver wants on the wire -- replies,
requests, packets released once their next hop resolves -- comes out of
:meth:`ArpResolver.transmit` as whole frames. Time is an argument; the driver
calls :meth:`tick` at :meth:`next_deadline`, like the stack.

An entry is INCOMPLETE (requests going out, IP packets queued), then REACHABLE
for ``reachable_us`` after its last confirmation, then STALE: still used, and the
first use sends one unicast request to the cached MAC to re-confirm it (Linux's
DELAY/PROBE states, folded into one), and it is forgotten ``stale_us`` later
unless an answer arrives. An INCOMPLETE entry sends ``solicit`` broadcast requests
``retrans_us`` apart; when the last one goes unanswered the queue is dropped and
counted and the entry deleted, so the next packet starts over (Linux's FAILED).
The dropped packets come out of :meth:`ArpResolver.unreachable`, so the link can
tell their senders, as Linux's ``arp_error_report()`` does with an ICMP host
unreachable to itself: a ``connect()`` to a silent neighbour fails after
``solicit * retrans_us`` (3 s) with ``EHOSTUNREACH``.

Learning follows RFC 826's merge rule: a packet updates the entry of its sender
if there is one, and creates one if it was addressed to us. Linux treats a
request as a weaker confirmation than a reply; here both confirm, which only
matters for how long an entry stays REACHABLE.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from dataclasses import dataclass, field

from synack.wire import ParseError
from synack.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, encode_arp, parse_arp
from synack.wire.checksum import Buffer
from synack.wire.ethernet import BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, header_bytes

__all__ = ["ArpEntry", "ArpResolver", "NeighState"]

SOLICIT = 3                     # Linux net.ipv4.neigh.*.mcast_solicit (and ucast_solicit)
RETRANS_US = 1_000_000          # Linux neigh.*.retrans_time_ms = 1000
REACHABLE_US = 30_000_000       # Linux neigh.*.base_reachable_time_ms = 30000 (unrandomised)
STALE_US = 60_000_000           # Linux neigh.*.gc_stale_time = 60 s
QUEUE_BYTES = 212_992           # Linux neigh.*.unres_qlen_bytes (SK_WMEM_MAX)

Frame = tuple[bytes, int]       # (Ethernet frame, gso_size) -- gso_size passes through untouched


class NeighState(enum.Enum):
    """The states of ``ip neigh`` that this resolver uses."""

    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"


@dataclass
class ArpEntry:
    """One neighbour. ``header`` is the 14-byte Ethernet header for IPv4 to it."""

    ip: str
    mac: str | None = None
    header: bytes = b""
    confirmed: int = 0          # last time the neighbour proved its MAC
    probed: int | None = None   # STALE: when the unicast re-confirmation went out
    tries: int = 0              # INCOMPLETE: requests sent
    next_try: int = 0           # INCOMPLETE: when the next request is due
    queue: deque[tuple[bytes, int]] = field(default_factory=deque)
    queued_bytes: int = 0


class ArpResolver:
    """ARP for one address on one Ethernet: answers, learns, resolves, queues, retries."""

    def __init__(
        self,
        mac: str,
        ip: str,
        *,
        solicit: int = SOLICIT,
        retrans_us: int = RETRANS_US,
        reachable_us: int = REACHABLE_US,
        stale_us: int = STALE_US,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        self.mac = mac
        self.ip = ip
        self.solicit = solicit
        self.retrans_us = retrans_us
        self.reachable_us = reachable_us
        self.stale_us = stale_us
        self.queue_bytes = queue_bytes
        self.entries: dict[str, ArpEntry] = {}
        self.stats: Counter[str] = Counter()
        self._out: list[Frame] = []
        self._failed: list[bytes] = []
        self._incomplete = 0        # entries still resolving (their retries are timers)

    # ------------------------------------------------------------ inputs
    def receive(self, payload: Buffer, *, now: int) -> None:
        """An ARP packet (the Ethernet payload). Never raises for what a peer sent."""
        try:
            pkt = parse_arp(payload)
        except ParseError as exc:
            self.stats["arp dropped " + exc.kind] += 1
            return
        self.stats["arp in"] += 1
        if pkt.sender_mac == self.mac:
            return  # our own broadcast, looped back
        if pkt.sender_ip == self.ip:
            self.stats["arp address conflict"] += 1  # someone else claims our address
            return
        if pkt.sender_ip == "0.0.0.0":
            # RFC 5227 probe: the sender has no address yet, there is nothing to learn.
            if pkt.is_request and pkt.target_ip == self.ip:
                self._reply(pkt)
            return
        for_us = pkt.target_ip == self.ip
        entry = self.entries.get(pkt.sender_ip)
        if entry is not None or for_us:
            self._learn(pkt.sender_ip, pkt.sender_mac, now)
        if for_us and pkt.is_request:
            self._reply(pkt)

    def output(self, packet: bytes, next_hop: str, *, now: int, gso_size: int = 0) -> bytes | None:
        """The Ethernet header for ``packet`` to ``next_hop``, or None if it was queued.

        A queued packet comes out of :meth:`transmit`, framed, once the neighbour
        answers; or is dropped and counted when it never does.
        """
        entry = self.entries.get(next_hop)
        if entry is not None and entry.mac is not None:
            age = now - entry.confirmed
            if age < self.reachable_us:
                return entry.header
            if age < self.reachable_us + self.stale_us:
                if entry.probed is None:
                    entry.probed = now
                    self._request(next_hop, unicast_to=entry.mac)
                return entry.header
            del self.entries[next_hop]      # aged out while unused; start over
            self.stats["arp entries aged out"] += 1
            entry = None
        if entry is None:
            entry = self.entries[next_hop] = ArpEntry(next_hop, next_try=now)
            self._incomplete += 1
            self._solicit(entry, now)
        entry.queue.append((packet, gso_size))
        entry.queued_bytes += len(packet)
        while entry.queued_bytes > self.queue_bytes and len(entry.queue) > 1:
            old, _ = entry.queue.popleft()   # Linux drops the oldest (neigh_resolve_output)
            entry.queued_bytes -= len(old)
            self.stats["arp queue overflow"] += 1
        return None

    def tick(self, *, now: int) -> None:
        """Retry what is due, give up on what has run out of tries, forget old entries."""
        for ip, entry in list(self.entries.items()):
            if entry.mac is None:
                if entry.next_try <= now:
                    if entry.tries >= self.solicit:
                        self.stats["arp resolution failed"] += 1
                        self.stats["arp queued packets dropped"] += len(entry.queue)
                        self._failed.extend(p for p, _ in entry.queue)
                        del self.entries[ip]
                        self._incomplete -= 1
                    else:
                        self._solicit(entry, now)
            elif now - entry.confirmed >= self.reachable_us + self.stale_us:
                del self.entries[ip]
                self.stats["arp entries aged out"] += 1

    # ------------------------------------------------------------ outputs
    def transmit(self) -> list[Frame]:
        """Frames to put on the wire, oldest first: ARP packets and released IP packets."""
        out, self._out = self._out, []
        return out

    def unreachable(self) -> list[bytes]:
        """The IP packets dropped because their next hop never answered, oldest first
        (mirrors the skbs neigh_invalidate() hands to arp_error_report())."""
        out, self._failed = self._failed, []
        return out

    def next_deadline(self) -> int | None:
        """When :meth:`tick` next has work: a request retry or a give-up.

        Aging needs no deadline of its own: :meth:`output` checks an entry's age
        whenever it is used, and :meth:`tick` sweeps the rest when it runs.
        """
        if not self._incomplete:
            return None             # the common case, asked on every batch: no scan
        due = [e.next_try for e in self.entries.values() if e.mac is None]
        return min(due) if due else None

    def busy(self) -> bool:
        """Whether :meth:`tick`, :meth:`transmit` or :meth:`unreachable` may have work
        (a neighbour resolving, frames or failures waiting); False lets a link skip them."""
        return bool(self._incomplete or self._out or self._failed)

    # ------------------------------------------------------------ queries
    def lookup(self, ip: str, *, now: int) -> str | None:
        """The MAC of ``ip`` if known and not aged out."""
        entry = self.entries.get(ip)
        if entry is None or entry.mac is None:
            return None
        if now - entry.confirmed >= self.reachable_us + self.stale_us:
            return None
        return entry.mac

    def state(self, ip: str, *, now: int) -> NeighState | None:
        """What ``ip neigh`` would say about ``ip`` (None: no entry)."""
        entry = self.entries.get(ip)
        if entry is None:
            return None
        if entry.mac is None:
            return NeighState.INCOMPLETE
        age = now - entry.confirmed
        if age < self.reachable_us:
            return NeighState.REACHABLE
        return NeighState.STALE if age < self.reachable_us + self.stale_us else None

    # ------------------------------------------------------------ internals
    def _learn(self, ip: str, mac: str, now: int) -> None:
        entry = self.entries.get(ip)
        if entry is None:
            entry = self.entries[ip] = ArpEntry(ip)
        elif entry.mac is None:
            self._incomplete -= 1
        if entry.mac != mac:
            entry.mac = mac
            entry.header = header_bytes(mac, self.mac, ETHERTYPE_IPV4)
        entry.confirmed = now
        entry.probed = None
        if entry.queue:
            self._out.extend((entry.header + p, gso) for p, gso in entry.queue)
            entry.queue.clear()
            entry.queued_bytes = 0

    def _solicit(self, entry: ArpEntry, now: int) -> None:
        entry.tries += 1
        entry.next_try = now + self.retrans_us
        self._request(entry.ip)

    def _request(self, ip: str, *, unicast_to: str | None = None) -> None:
        pkt = ArpPacket(OP_REQUEST, self.mac, self.ip, "00:00:00:00:00:00", ip)
        dst = unicast_to or BROADCAST
        self._out.append((header_bytes(dst, self.mac, ETHERTYPE_ARP) + encode_arp(pkt), 0))
        self.stats["arp requests out"] += 1

    def _reply(self, req: ArpPacket) -> None:
        pkt = ArpPacket(OP_REPLY, self.mac, self.ip, req.sender_mac, req.sender_ip)
        frame = header_bytes(req.sender_mac, self.mac, ETHERTYPE_ARP) + encode_arp(pkt)
        self._out.append((frame, 0))
        self.stats["arp replies out"] += 1
