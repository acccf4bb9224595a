"""Running applications on simulated stacks, and turning a run into a ladder.

An application here is a function ``poll(now)`` that looks at its sockets and
acts (accept, recv, send, close), like a process woken by ``select()``. An
:class:`AppHost` wraps a :class:`~synack.stack.Stack` for the simulator and calls
its applications after every packet and every timer, so they react in the
same virtual instant. Actions that wait for time use ``Network.call_at``.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synack.sim import Network
from synack.stack import Stack
from synack.trace.capture import read_capture
from synack.trace.ladder import SegmentStep, StateStep, Step, describe, options_str
from synack.wire.errors import ParseError
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.ipv6 import parse_tcp6_packet
from synack.wire.tcp import ACK, SYN, TcpSegment

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
    enters SYN_SENT and then sends its SYN. Each segment's label carries the
    analysis marks that ``synack ladder`` shows on the run's capture
    (:func:`capture_marks`), and its window scaled as the handshake of its own
    connection agreed (:func:`label_steps`).
    """
    items: list[tuple[int, int, int, Step]] = []
    # Either family: a dual-stack pair's IPv4 and IPv6 connections are both theirs.
    pairs = ({left.addr, right.addr}, {left.addr6, right.addr6})
    lefts = (left.addr, left.addr6)
    for rec in net.records:
        if rec.fate == "duplicate" or {rec.src, rec.dst} not in pairs:
            continue
        try:
            if rec.data[0] >> 4 == 6:
                _, seg = parse_tcp6_packet(rec.data, verify_checksum=False)
            else:
                _, seg = parse_tcp_packet(rec.data, verify_checksum=False)
        except ParseError:
            continue
        side = "left" if rec.src in lefts else "right"
        items.append((rec.sent_us, 1, rec.index, SegmentStep(rec.sent_us, side, seg, rec.fate)))
    order = 0
    for side, stack, other in (("left", left, right), ("right", right, left)):
        for key, ch in stack.changes:
            if key[2] != other.addr and key[2] != other.addr6:
                continue
            order += 1
            items.append((ch.now, 0, order,
                          StateStep(ch.now, side, str(ch.old), str(ch.new), ch.why)))
    items.sort(key=lambda x: (x[0], x[1], x[2]))
    marks = capture_marks(net)
    return label_steps([x[3] for x in items],
                       [marks.get(x[2], []) if x[1] else [] for x in items])


def capture_marks(net: Network) -> dict[int, list[str]]:
    """Wireshark's analysis marks of every packet of the run, by record index.

    The run is written as the pcap ``synack demo NAME --pcap FILE`` saves and
    read back by :func:`synack.trace.capture.read_capture`, the reader of
    ``synack ladder``, so a scenario's ladder and ``synack ladder`` on its
    capture carry the same marks.
    """
    buf = io.BytesIO()
    net.write_pcap(buf)
    buf.seek(0)
    cap = read_capture(buf)
    # Packet n of the file (1-based) is record n - 1: write_pcap writes every record in order.
    return {s.number - 1: list(s.marks) for conn in cap.connections for s in conn.segments
            if s.marks}


def label_steps(steps: list[Step], marks: list[list[str]]) -> list[Step]:
    """Write each segment's arrow label: numbers, window, ``[marks]``, options.

    The window is scaled (RFC 7323 2.2) once the connection's handshake agreed
    on scaling: a SYN,ACK with the option answering a SYN (``ack = SYN.seq + 1``)
    that had it. A SYN,ACK answering an old SYN without the option turns it off,
    and a later SYN,ACK that answers the real SYN turns it on again (why-not-two-way).
    The marks come before the options, as in ``synack ladder``, so that a narrow
    line cuts the options, not the marks.
    """
    syns: dict[tuple[int, int], dict[str, dict[int, int | None]]] = {}
    agreed: dict[tuple[int, int], dict[str, int] | None] = {}
    out: list[Step] = []
    for step, m in zip(steps, marks, strict=True):
        if not isinstance(step, SegmentStep):
            out.append(step)
            continue
        seg = step.seg
        other = "right" if step.src == "left" else "left"
        key = _conn_key(step.src, seg)
        if seg.flags & SYN:
            syns.setdefault(key, {}).setdefault(step.src, {})[seg.seq] = seg.wscale
            if seg.flags & ACK:
                theirs = syns.get(key, {}).get(other, {}).get((seg.ack - 1) & 0xFFFFFFFF)
                agreed[key] = ({step.src: seg.wscale, other: theirs}
                               if seg.wscale is not None and theirs is not None else None)
        scale = agreed.get(key)
        shift = scale[step.src] if scale is not None and not seg.flags & SYN else 0
        out.append(dataclasses.replace(step, label=segment_label(seg, shift, m)))
    return out


def segment_label(seg: TcpSegment, shift: int, marks: list[str]) -> str:
    """``ACK seq=301 ack=2997 len=0 win=65536 [Dup ACK 12#1] <TS val 1 ecr 2,sack ...>``."""
    text = describe(seg, window_scale=shift)
    opts = options_str(seg)
    if opts:
        text = text[: -len(f" <{opts}>")]
    text += "".join(f" [{mark}]" for mark in marks)
    return f"{text} <{opts}>" if opts else text


def step_marks(step: SegmentStep) -> list[str]:
    """The analysis marks written into a segment's label by :func:`label_steps`."""
    head = step.label.split(" <", 1)[0]
    return re.findall(r"\[([^\]]+)\]", head)


def _conn_key(src: str, seg: TcpSegment) -> tuple[int, int]:
    """(left port, right port) of the connection a segment belongs to."""
    return (seg.src_port, seg.dst_port) if src == "left" else (seg.dst_port, seg.src_port)


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
