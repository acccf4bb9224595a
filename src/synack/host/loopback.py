"""The host's loopback, as Linux's ``lo``: 127.0.0.0/8 and ::1, and the host's own
addresses, reached without the link.

Theory of operation
-------------------
A :class:`~synack.stack.Stack` owns the loopback addresses beside ``addr`` and
``addr6``: a socket may bind to any 127.x.y.z or ::1, a connect() to a
loopback address takes 127.0.0.1 (::1) as its source (Linux's local route
``127.0.0.0/8 dev lo src 127.0.0.1``), and a wildcard listener accepts there
too. Every packet to an address the host owns (loopback, or ``addr`` /
``addr6`` themselves, which Linux also routes through ``lo``) is queued on
``stack._lo`` instead of the link's output; :meth:`LoopbackMixin._run_loopback`,
called by ``transmit()``, feeds them back into ``receive()`` until nothing more
comes, so a driver needs no change. Looped packets carry only the
pseudo-header checksum and are received as checksummed (Linux's ``lo`` passes
``CHECKSUM_PARTIAL`` through), and a super-segment goes across whole, as
``lo`` does with GSO.

The path MTU of a loopback connection is ``lo``'s (``Stack.lo_mtu``): 65536,
which IPv4 caps at 65535 (Linux ``IP_MAX_MTU``): the MSS announced is 65495 over IPv4 (65483 with
timestamps, what ``ss -ti`` shows as advmss on a kernel loopback connection)
and 65476 over IPv6 (Linux ``ip6_default_advmss()``: MTU - 40 - 20).

Martians: a packet from the link whose source or destination is a loopback
address, or whose source is one of our own addresses, is dropped and counted
(``dropped martian source`` / ``dropped martian destination``), as Linux's
``ip_route_input_slow()`` and ``ip6_rcv_core()`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synack.stack import Stack

__all__ = ["LO_MTU", "LoopbackMixin", "is_loopback"]

LO_MTU = 65536         # Linux's lo; ``Stack(lo_mtu=)`` as ``ip link set lo mtu N``
IP_MAX_MTU = 0xFFFF    # Linux caps IPv4 routes here (IPv6's IP6_MAX_MTU is higher)
LO_SRC4 = "127.0.0.1"
LO_SRC6 = "::1"
# Rounds of delivery in one transmit(): a bound on a ping-pong that never ends (each
# round is every packet the previous one caused); what is left waits for the next.
_MAX_ROUNDS = 10_000


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1 (in inet_ntop's spelling)."""
    return ip[:4] == "127." or ip == LO_SRC6


class LoopbackMixin:
    """Loopback routing for :class:`synack.stack.Stack`."""

    _lo: list[bytes]
    _on_lo: bool
    lo_touched: set[int]
    _lo_taker: bool
    lo_mtu: int

    def owns(self: Stack, ip: str) -> bool:
        """Is ``ip`` an address of this host (its own, or loopback)?"""
        return ip == self.addr or (ip == self.addr6 and ip is not None) or is_loopback(ip)

    def is_local(self: Stack, ip: str) -> bool:
        """Do packets to ``ip`` stay in the host (go through loopback)?"""
        return ip[:4] == "127." or ip == self.addr or ip == self.addr6 or ip == LO_SRC6

    def source_for(self: Stack, dst: str) -> str | None:
        """The source address a packet to ``dst`` takes (Linux's route ``src``): 127.0.0.1
        or ::1 towards loopback, else the host's address of that family (None: none)."""
        if ":" in dst:
            return LO_SRC6 if dst == LO_SRC6 else self.addr6
        return LO_SRC4 if dst[:4] == "127." else self.addr

    def route_mtu(self: Stack, remote: str) -> int:
        """The path MTU towards ``remote``: lo's for an address of ours, else the link's."""
        if self.is_local(remote):
            return self.lo_mtu if ":" in remote else min(self.lo_mtu, IP_MAX_MTU)
        return self.mtu

    def queue_out(self: Stack, dst: str, packet: bytes) -> None:
        """One finished IP packet to ``dst``: looped back, or for the link."""
        if self.is_local(dst):
            self._lo.append(packet)
        else:
            self._out.append(packet)

    def _inbound_ok(self: Stack, src: str, dst: str, forward: bool) -> bool:
        """The slow path of an arriving packet's addresses (the caller has seen that the
        destination is not simply ours, or the source looks like one of ours): may it
        go on? A looped packet always may; from the link, martians are dropped."""
        stats = self.stats
        if self._on_lo:
            return True
        if is_loopback(src) or src == self.addr or src == self.addr6:
            stats["dropped martian source"] += 1
            return False
        if is_loopback(dst):
            stats["dropped martian destination"] += 1
            return False
        if dst == self.addr or dst == self.addr6 or (forward and self.forward is not None):
            return True
        stats["dropped not for us"] += 1
        return False

    def _run_loopback(self: Stack, now: int) -> None:
        """Deliver the looped packets, and those they cause, until none is left.

        The descriptors they touch go to :attr:`touched` as usual and also to
        :attr:`lo_touched`: a driver that has already woken this round's watchers
        before calling ``transmit()`` wakes these too (:meth:`take_lo_touched`)."""
        before = self.touched
        self.touched = set()
        try:
            for _ in range(_MAX_ROUNDS):
                batch = self._lo
                if not batch:
                    return
                self._lo = []
                self._on_lo = True
                try:
                    for packet in batch:
                        self.stats["loopback packets"] += 1
                        self.receive(packet, now=now, csum_valid=True)
                finally:
                    self._on_lo = False
        finally:
            touched = self.touched
            if touched:
                if self._lo_taker:      # kept only for a driver that asks for them
                    self.lo_touched |= touched
                before |= touched
            self.touched = before

    def receive_local(self: Stack, packet: bytes, *, now: int) -> None:
        """A packet this host made for itself outside the stack (a link's ICMP error
        when ARP or ND gave up: Linux's ipv4_link_failure() / ndisc_error_report()
        deliver it locally, source our own address): received as a looped packet, so
        the martian check that drops our own source from the wire lets it in."""
        self._on_lo = True
        try:
            self.receive(packet, now=now, csum_valid=True)
        finally:
            self._on_lo = False

    def take_lo_touched(self: Stack) -> set[int]:
        """The descriptors loopback delivery touched since the last call (and forget
        them); they are in :attr:`touched` too. Kept from the first call on, in
        :attr:`lo_touched`, which a driver may look at first to spare an empty call."""
        self._lo_taker = True
        t = self.lo_touched
        if t:
            self.lo_touched = set()
        return t
