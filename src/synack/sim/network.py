"""A deterministic discrete-event network of hosts joined by point-to-point links.

Theory of operation
-------------------
Time is an integer count of microseconds that only :meth:`Network.run` moves.
Three things can happen at a given virtual time, and one *step* of the loop does
exactly one of them:

* a packet arrives: ``host.receive(packet, now=now)``;
* an application action scheduled with :meth:`Network.call_at` runs: ``fn(now)``;
* a host's timer is due (``now >= host.next_deadline()``): ``host.tick(now=now)``.

Arrivals and actions sit in one heap keyed by ``(time, sequence)``; the sequence
number is handed out when an event is scheduled, so ties resolve in the order
things were scheduled and every run is reproducible.  Host deadlines are not
queued: hosts change them freely, so the loop asks every host for its
``next_deadline()`` before each step.  At equal times, heap events go before
timers (the timer then sees the packet that arrived at its expiry time), and
hosts tick in the order they were added.  A deadline already in the past is
served at the current time.

After every step the loop drains every host, in the order they were added,
because an action may have called any host's API: ``transmit_gso(now=now)`` if
the host has it, with each TCP super-segment cut into MSS frames as a link
without TSO cuts it (:func:`synack.wire.gso.segment`), else ``transmit(now=now)``.
Each packet is routed over the link from its sender to the destination address of
its IP header (IPv4 bytes 16..20, IPv6 bytes 24..40); the link direction decides its fate at once (see :mod:`synack.sim.link`)
and, if it gets through, its arrival goes into the heap.  Every packet handed to
the network is appended to :attr:`Network.records`.

The loop stops when ``stop()`` turns true (checked before the first step and
after each step), when the next thing to do lies beyond ``until`` (time is then
set to ``until``), or when nothing is left to do at all: no packet in flight, no
pending action, no host deadline (time is then set to ``until`` if given, as
time passes even when nothing happens).
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from synack.wire.gso import segment_all

from .link import LinkDirection, LinkParams, LinkStats
from .pcap_out import write_pcap_records

RUNAWAY_TICKS = 1000
"""Consecutive ticks of one host at one virtual time taken to mean it is stuck."""

DEFAULT_LINK = LinkParams()
"""1 ms each way, infinitely fast, no impairments."""

_ARRIVAL = 0
_CALL = 1


class Host(Protocol):
    """What the network drives: anything that takes and emits raw IPv4 packets."""

    def receive(self, packet: bytes, *, now: int) -> None:
        """Take one IPv4 packet from the network."""

    def transmit(self, *, now: int) -> list[bytes]:
        """Return (and forget) the IPv4 packets waiting to be sent.

        A host may instead offer ``transmit_gso(now=) -> [(packet, gso_size)]``, as a
        :class:`~synack.stack.Stack` does; the network then cuts the super-segments.
        """
        ...

    def next_deadline(self) -> int | None:
        """Absolute time in microseconds at which :meth:`tick` is next needed."""
        ...

    def tick(self, *, now: int) -> None:
        """Run the timers due at ``now``."""


@dataclass(slots=True)
class PacketRecord:
    """One packet handed to the network, and what became of it.

    ``fate`` is decided when the packet is sent: ``"delivered"``, ``"lost"``
    (dropped in transit, or no host at the destination), ``"queue-drop"``
    (tail-dropped by a full serialization queue), ``"duplicate"`` (the extra
    copy of a duplicated packet; the original has its own record) or
    ``"corrupted"`` (delivered with one bit flipped).  ``delivered_us`` is the
    scheduled arrival time, which lies in the future while the packet is in
    flight.  ``data`` is the packet as sent; ``delivered_data`` the bytes that
    arrive (the same object unless corrupted, ``None`` if dropped).
    """

    sent_us: int
    src: str
    dst: str
    data: bytes
    fate: str
    delivered_us: int | None
    index: int
    delivered_data: bytes | None = None
    reordered: bool = False


class Network:
    """Hosts, links between them, a virtual clock, and the loop that drives them."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.now = 0
        self.records: list[PacketRecord] = []
        self.stats: dict[tuple[str, str], LinkStats] = {}
        """Counters per link direction, keyed by ``(src, dst)``."""
        self.no_route = 0
        """Packets dropped because no host has their destination address."""
        self.hosts: dict[str, Host] = {}
        self._links: dict[tuple[str, str], LinkDirection] = {}
        self._addrs_of: dict[int, list[str]] = {}  # id(host) -> its addresses
        self._drain_order: list[Host] = []  # each host object once, in order added
        self._heap: list[tuple[int, int, int, object]] = []
        self._seq = 0
        self._addr_names: dict[bytes, str] = {}  # packed address -> dotted quad
        self._ticks_at_now: dict[int, int] = {}  # id(host) -> ticks at self.now
        self._ticks_time = -1
        self._drop_rules: list[Callable[[bytes], bool]] = []

    # -- topology -----------------------------------------------------------

    def add_host(self, addr: str, host: Host) -> None:
        """Attach ``host`` at address ``addr`` (IPv4, or IPv6 for a host with ``addr6``).

        The same host object may be added under several addresses; it is then
        drained once per step, and a packet it sends leaves from the address in
        its source field (or the first address it was added with).
        """
        addr = _canonical(addr)
        if addr in self.hosts:
            raise ValueError(f"address {addr} already has a host")
        self.hosts[addr] = host
        addrs = self._addrs_of.setdefault(id(host), [])
        if not addrs:
            self._drain_order.append(host)
        addrs.append(addr)

    def add_link(
        self,
        a: str,
        b: str,
        params: LinkParams = DEFAULT_LINK,
        *,
        b_to_a: LinkParams | None = None,
    ) -> None:
        """Join ``a`` and ``b`` with a link; ``params`` for ``a>b``, ``b_to_a`` (default
        the same) for ``b>a``.  Each direction rolls its own dice, seeded from the
        network seed and the direction's name, so links never perturb each other.
        """
        a, b = _canonical(a), _canonical(b)
        if a == b:
            raise ValueError(f"a link needs two different addresses, got {a} twice")
        if (a, b) in self._links:
            raise ValueError(f"link {a} <-> {b} already exists")
        for src, dst, p in ((a, b, params), (b, a, params if b_to_a is None else b_to_a)):
            direction = LinkDirection(src, dst, p, random.Random(f"{self.seed}:{src}>{dst}"))
            self._links[(src, dst)] = direction
            self.stats[(src, dst)] = direction.stats

    def set_link(self, a: str, b: str, params: LinkParams) -> None:
        """Change the direction ``a>b`` from now on (packets in flight keep their fate)."""
        self._link(_canonical(a), _canonical(b)).params = params

    def link(self, a: str, b: str) -> LinkDirection:
        """The direction ``a>b`` of an existing link."""
        return self._link(_canonical(a), _canonical(b))

    def _link(self, a: str, b: str) -> LinkDirection:
        try:
            return self._links[(a, b)]
        except KeyError:
            raise LookupError(f"no link between {a} and {b}") from None

    def add_drop_rule(self, rule: Callable[[bytes], bool]) -> None:
        """Lose every packet for which ``rule(packet)`` is true (a scripted loss).

        Scenarios use this to lose one particular segment ("the SYN-ACK"); the
        packet is recorded with fate ``"lost"`` like a random loss.
        """
        self._drop_rules.append(rule)

    def remove_drop_rule(self, rule: Callable[[bytes], bool]) -> None:
        """Stop applying ``rule``."""
        self._drop_rules.remove(rule)

    # -- application actions --------------------------------------------------

    def call_at(self, t_us: int, fn: Callable[[int], object]) -> None:
        """Run ``fn(now)`` at virtual time ``t_us``; ties run in scheduling order."""
        if t_us < self.now:
            raise ValueError(f"cannot schedule at {t_us} us, which is before now ({self.now} us)")
        self._push(t_us, _CALL, fn)

    def call_later(self, delay_us: int, fn: Callable[[int], object]) -> None:
        """Run ``fn(now)`` ``delay_us`` microseconds from now."""
        if delay_us < 0:
            raise ValueError(f"delay_us must be >= 0, got {delay_us}")
        self._push(self.now + delay_us, _CALL, fn)

    def _push(self, t: int, kind: int, payload: object) -> None:
        heapq.heappush(self._heap, (t, self._seq, kind, payload))
        self._seq += 1

    # -- the loop -------------------------------------------------------------

    def run(
        self,
        *,
        until: int | None = None,
        stop: Callable[[], bool] | None = None,
        max_steps: int = 10_000_000,
    ) -> int:
        """Advance virtual time; see the module docstring for when it stops.

        Returns the new ``now``.  Raises :class:`RuntimeError` if ``max_steps``
        steps do not reach a stopping condition, or if a host keeps asking to
        be ticked at the same time without anything else happening.
        """
        if until is not None and until < self.now:
            raise ValueError(f"until ({until} us) is before now ({self.now} us)")
        if stop is not None and stop():
            return self.now
        heap = self._heap
        for _ in range(max_steps):
            t_host: int | None = None
            due: Host | None = None
            for host in self._drain_order:
                deadline = host.next_deadline()
                if deadline is not None and (t_host is None or deadline < t_host):
                    t_host, due = deadline, host
            if t_host is not None and t_host < self.now:
                t_host = self.now
            if heap and (t_host is None or heap[0][0] <= t_host):
                t = heap[0][0]
                due = None
            elif t_host is not None:
                t = t_host
            else:
                if until is not None:
                    self.now = until
                return self.now  # nothing left to do
            if until is not None and t > until:
                self.now = until
                return self.now
            self._advance(t)
            if due is None:
                _, _, kind, payload = heapq.heappop(heap)
                if kind == _ARRIVAL:
                    self._deliver(payload)  # type: ignore[arg-type]
                else:
                    payload(t)  # type: ignore[operator]
            else:
                self._tick(due)
            self._drain()
            if stop is not None and stop():
                return self.now
        raise RuntimeError(f"run() took {max_steps} steps without reaching a stopping condition")

    def _advance(self, t: int) -> None:
        self.now = t
        if t != self._ticks_time:
            self._ticks_time = t
            self._ticks_at_now.clear()

    def _tick(self, host: Host) -> None:
        key = id(host)
        count = self._ticks_at_now.get(key, 0) + 1
        if count > RUNAWAY_TICKS:
            names = ", ".join(self._addrs_of[key])
            raise RuntimeError(
                f"host {names} was ticked {RUNAWAY_TICKS} times at {self.now} us and still "
                f"asks for a tick at or before now (next_deadline() = {host.next_deadline()})"
            )
        self._ticks_at_now[key] = count
        host.tick(now=self.now)

    def _deliver(self, arrival: tuple[str, bytes, LinkStats]) -> None:
        dst, data, stats = arrival
        host = self.hosts[dst]
        stats.delivered += 1
        self._ticks_at_now.pop(id(host), None)  # input is progress
        host.receive(data, now=self.now)

    def _drain(self) -> None:
        now = self.now
        for host in self._drain_order:
            gso_out = getattr(host, "transmit_gso", None)
            if gso_out is None:
                packets = host.transmit(now=now)
            else:
                pairs = gso_out(now=now)
                if not pairs:
                    continue
                off = getattr(host, "offload", None)
                packets = segment_all(pairs, csum_partial=off is not None and off.tx_csum)
            if packets:
                addrs = self._addrs_of[id(host)]
                for packet in packets:
                    self._send(addrs, packet if type(packet) is bytes else bytes(packet))

    def _send(self, sender_addrs: list[str], data: bytes) -> None:
        if len(data) < 20 or (data[0] >> 4 == 6 and len(data) < 40):
            raise ValueError(
                f"host {sender_addrs[0]} sent {len(data)} bytes, shorter than an IP header"
            )
        names = self._addr_names
        if data[0] >> 4 == 6:
            src = names.get(data[8:24]) or self._name(data[8:24])
            dst = names.get(data[24:40]) or self._name(data[24:40])
        else:
            src = names.get(data[12:16]) or self._name(data[12:16])
            dst = names.get(data[16:20]) or self._name(data[16:20])
        origin = src if src in sender_addrs else sender_addrs[0]
        now = self.now
        records = self.records
        link = self._links.get((origin, dst))
        if dst not in self.hosts:
            self.no_route += 1
            if link is not None:
                link.stats.sent += 1
                link.stats.bytes += len(data)
                link.stats.no_route += 1
            records.append(PacketRecord(now, src, dst, data, "lost", None, len(records)))
            return
        if link is None:
            raise LookupError(f"no link from {origin} to {dst} (packet {src} -> {dst})")
        if self._drop_rules and any(rule(data) for rule in list(self._drop_rules)):
            link.stats.sent += 1
            link.stats.bytes += len(data)
            link.stats.lost += 1
            records.append(PacketRecord(now, src, dst, data, "lost", None, len(records)))
            return
        transit = link.offer(data, now)
        arrival = transit.arrival_us
        records.append(
            PacketRecord(
                now, src, dst, data, transit.fate, arrival, len(records),
                transit.data, transit.reordered,
            )
        )
        if arrival is None:
            return
        self._push(arrival, _ARRIVAL, (dst, transit.data, link.stats))
        if transit.duplicate:
            records.append(
                PacketRecord(
                    now, src, dst, data, "duplicate", arrival, len(records),
                    data, transit.reordered,
                )
            )
            self._push(arrival, _ARRIVAL, (dst, data, link.stats))

    def _name(self, raw: bytes) -> str:
        name = self._addr_names[raw] = (socket.inet_ntop(socket.AF_INET6, raw) if len(raw) == 16
                                        else socket.inet_ntoa(raw))
        return name

    # -- output ---------------------------------------------------------------

    def write_pcap(self, path_or_file: str | os.PathLike[str] | BinaryIO, *,
                   include: str = "sent") -> None:
        """Write the packets as a classic libpcap file (LINKTYPE_RAW).

        ``include="sent"``: every packet at its send time, dropped ones too, as
        a capture at the senders would show them.  ``include="delivered"``:
        the packets that have arrived by ``now``, at their arrival time, as
        received (corrupted bytes included).
        """
        if include == "sent":
            packets = [(r.sent_us, r.data) for r in self.records]
        elif include == "delivered":
            arrived = [
                r for r in self.records
                if r.delivered_us is not None and r.delivered_us <= self.now
            ]
            # Arrival order: FIFO per direction, and ties across directions go in
            # scheduling order, which is record order.
            arrived.sort(key=lambda r: (r.delivered_us, r.index))
            packets = [(r.delivered_us or 0, r.delivered_data or b"") for r in arrived]
        else:
            raise ValueError(f'include must be "sent" or "delivered", got {include!r}')
        write_pcap_records(path_or_file, packets)


def _canonical(addr: str) -> str:
    try:
        if ":" in addr:
            # inet_ntop's spelling, as the stack and the packet names use it.
            return socket.inet_ntop(socket.AF_INET6, ipaddress.IPv6Address(addr).packed)
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        raise ValueError(f"not an IPv4 address (nor IPv6): {addr!r}") from None
