"""Ladder (sequence) diagrams in the terminal: one arrow per segment, states beside.

A ladder has two endpoints, left and right. Its input is a time-ordered list of
:class:`SegmentStep` (a segment leaving one side, and what became of it) and
:class:`StateStep` (one side's state changed). Each segment is one line::

     t(ms)  client                                                     server
     0.000  SYN_SENT
     0.000  |------ SYN  seq=100 ack=0 len=0 win=65535 <mss 1460> ------>|
    10.000                                                     SYN_RECEIVED
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from synack.wire.tcp import TcpSegment, flags_str

WIDTH = 84  # characters between the two side columns' edges


@dataclass(frozen=True, slots=True)
class SegmentStep:
    """A segment sent by ``src`` (``"left"`` or ``"right"``) at ``t_us``."""

    t_us: int
    src: str
    seg: TcpSegment
    fate: str = "delivered"     # "delivered", "lost", "corrupted", "duplicate", ...
    note: str = ""              # e.g. "retransmission"
    label: str = ""             # the arrow's text, if already written (captures)


@dataclass(frozen=True, slots=True)
class StateStep:
    """``side`` moved from ``old`` to ``new`` at ``t_us`` because of ``why``."""

    t_us: int
    side: str
    old: str
    new: str
    why: str = ""


Step = SegmentStep | StateStep


def describe(seg: TcpSegment, *, base_seq: int = 0, base_ack: int = 0,
             window_scale: int = 0) -> str:
    """``SYN,ACK seq=300 ack=101 len=0 win=65535 <mss 1460,wscale 7>``."""
    seq = (seg.seq - base_seq) & 0xFFFFFFFF
    ack = (seg.ack - base_ack) & 0xFFFFFFFF if seg.flags & 0x10 else 0
    parts = [flags_str(seg.flags), f"seq={seq}"]
    if seg.flags & 0x10:
        parts.append(f"ack={ack}")
    parts.append(f"len={len(seg.payload)}")
    parts.append(f"win={seg.window << window_scale}")
    opts = options_str(seg)
    if opts:
        parts.append(f"<{opts}>")
    return " ".join(parts)


def options_str(seg: TcpSegment) -> str:
    """The segment's options, tcpdump-style."""
    out = []
    if seg.mss is not None:
        out.append(f"mss {seg.mss}")
    if seg.sack_permitted:
        out.append("sackOK")
    if seg.timestamps is not None:
        out.append(f"TS val {seg.timestamps[0]} ecr {seg.timestamps[1]}")
    if seg.wscale is not None:
        out.append(f"wscale {seg.wscale}")
    if seg.sack_blocks:
        out.append("sack " + " ".join(f"{a}:{b}" for a, b in seg.sack_blocks))
    return ",".join(out)


def render(steps: Iterable[Step], *, left: str, right: str, base: dict[str, int] | None = None,
           width: int = WIDTH) -> list[str]:
    """The diagram as lines of text.

    ``base`` maps ``"left"``/``"right"`` to the ISN used to print relative
    sequence numbers; without it numbers are absolute (as the seeds write them).
    """
    base = base or {}
    steps = list(steps)
    tw = max([9] + [len(f"{s.t_us / 1000:.3f}") for s in steps])
    lines = [f"{'t(ms)':>{tw}}  {left:<{width // 2}}{right:>{width - width // 2 + 2}}"]
    # RFC 7323: window scaling applies once both SYNs carried the option, never to SYNs.
    offered: dict[str, int | None] = {}
    for step in steps:
        if isinstance(step, SegmentStep) and step.seg.flags & 0x02 and step.src not in offered:
            offered[step.src] = step.seg.wscale
    scaled = offered.get("left") is not None and offered.get("right") is not None
    for step in steps:
        t = f"{step.t_us / 1000:{tw}.3f}"
        if isinstance(step, StateStep):
            # An empty ``old`` is the state a side starts in.
            text = f"{step.old} -> {step.new}" if step.old else step.new
            if step.why:
                text += f"  ({step.why})"
            if step.side == "left":
                lines.append(f"{t}  {text}")
            else:
                lines.append(f"{t}  {text:>{width}}")
            continue
        seg = step.seg
        other = "right" if step.src == "left" else "left"
        shift = (offered.get(step.src) or 0) if scaled and not seg.flags & 0x02 else 0
        label = step.label or describe(seg, base_seq=base.get(step.src, 0),
                                       base_ack=base.get(other, 0), window_scale=shift)
        if step.note:
            label += f" [{step.note}]"
        label = f" {label} "
        lost = step.fate not in ("delivered", "duplicate")
        inner = width - 2
        if len(label) > inner - 6:
            label = label[: inner - 9] + "... "
        dashes = inner - len(label)
        lpad, rpad = dashes // 2, dashes - dashes // 2
        if step.src == "left":
            body = "-" * lpad + label + "-" * (rpad - 1) + ">"
            if lost:
                body = "-" * lpad + label + "-" * max(rpad - 6, 0) + "  X   "
                body = body[:inner]
            arrow = "|" + body + "|"
        else:
            body = "<" + "-" * (lpad - 1) + label + "-" * rpad
            if lost:
                body = "   X  " + "-" * max(lpad - 6, 0) + label + "-" * rpad
                body = body[-inner:]
            arrow = "|" + body + "|"
        suffix = ""
        if step.fate != "delivered":
            suffix = f"  {step.fate}"
        lines.append(f"{t}  {arrow}{suffix}")
    return lines
