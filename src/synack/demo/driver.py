"""Running applications on simulated stacks, and turning a run into a ladder.

An application here is a function ``poll(now)`` that looks at its sockets and
acts (accept, recv, send, close), like a process woken by ``select()``. An
:class:`AppHost` wraps a :class:`~synack.stack.Stack` for the simulator and calls
its applications after every packet and every timer, so they react in the
same virtual instant. Actions that wait for time use ``Network.call_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synack.sim import Network
from synack.stack import Stack
from synack.trace.ladder import SegmentStep, StateStep, Step
from synack.wire.errors import ParseError
from synack.wire.ipv4 import parse_tcp_packet

Poll = Callable[[int], None]


@dataclass
class AppHost:
    """A stack plus the applications running on it."""

    stack: Stack
    apps: list[Poll] = field(default_factory=list)

    def receive(self, packet: bytes, *, now: int) -> None:
        self.stack.receive(packet, now=now)
        self._poll(now)

    def transmit(self, *, now: int) -> list[bytes]:
        return self.stack.transmit(now=now)

    def next_deadline(self) -> int | None:
        return self.stack.next_deadline()

    def tick(self, *, now: int) -> None:
        self.stack.tick(now=now)
        self._poll(now)

    def _poll(self, now: int) -> None:
        for app in list(self.apps):
            app(now)


def ladder_steps(net: Network, left: Stack, right: Stack) -> list[Step]:
    """Every segment between ``left`` and ``right`` and every state change, in time order.

    State changes at the same instant as a segment come first: a connection
    enters SYN_SENT and then sends its SYN.
    """
    items: list[tuple[int, int, int, Step]] = []
    pair = {left.addr, right.addr}
    for rec in net.records:
        if rec.fate == "duplicate" or {rec.src, rec.dst} != pair:
            continue
        try:
            _, seg = parse_tcp_packet(rec.data, verify_checksum=False)
        except ParseError:
            continue
        side = "left" if rec.src == left.addr else "right"
        items.append((rec.sent_us, 1, rec.index, SegmentStep(rec.sent_us, side, seg, rec.fate)))
    order = 0
    for side, stack, other in (("left", left, right), ("right", right, left)):
        for key, ch in stack.changes:
            if key[2] != other.addr:
                continue
            order += 1
            items.append((ch.now, 0, order,
                          StateStep(ch.now, side, str(ch.old), str(ch.new), ch.why)))
    items.sort(key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in items]


def drop_next(net: Network, pred: Callable[[Any, Any], bool]) -> None:
    """Lose the first packet for which ``pred(ip_header, tcp_segment)`` is true."""

    def rule(packet: bytes) -> bool:
        try:
            ip, seg = parse_tcp_packet(packet, verify_checksum=False)
        except ParseError:
            return False
        if pred(ip, seg):
            net.remove_drop_rule(rule)
            return True
        return False

    net.add_drop_rule(rule)
