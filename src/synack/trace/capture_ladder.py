"""A connection read from a capture, as ladder steps (text via :mod:`synack.trace.ladder`).

Times are milliseconds since the connection's first segment. Each arrow's
label is ``FLAGS seq= ack= len= win= [marks] <options>``: the marks come before
the options so that a narrow terminal cuts the options, not the marks.
"""

from __future__ import annotations

from synack.trace.capture import Connection, Segment
from synack.trace.ladder import WIDTH, SegmentStep, StateStep, Step, options_str, render
from synack.wire.tcp import ACK, flags_str

SIDES = ("left", "right")


def segment_label(s: Segment, *, absolute: bool = False) -> str:
    """``PSH,ACK seq=1 ack=1 len=1000 win=65536 [Retransmission] <TS val 1 ecr 2>``."""
    seg = s.seg
    seq, ack = (seg.seq, seg.ack) if absolute else (s.seq, s.ack)
    parts = [flags_str(seg.flags), f"seq={seq}"]
    if seg.flags & ACK:
        parts.append(f"ack={ack}")
    parts += [f"len={s.length}", f"win={s.window}"]
    parts += [f"[{m}]" for m in s.marks]
    opts = options_str(seg)
    if seg.sack_blocks and not absolute:
        # SACK blocks relative to the same base as the ACK field, as Wireshark shows them.
        rel = " ".join(f"{a}:{b}" for a, b in s.sack)
        opts = opts.replace("sack " + " ".join(f"{a}:{b}" for a, b in seg.sack_blocks),
                            "sack " + rel)
    if opts:
        parts.append(f"<{opts}>")
    return " ".join(parts)


def ladder_steps(conn: Connection, *, absolute: bool = False) -> list[Step]:
    """Every segment of ``conn`` and every inferred state change, in order."""
    if not conn.segments:
        return []
    t0 = conn.segments[0].t_us
    before: dict[int, list[StateStep]] = {}
    after: dict[int, list[StateStep]] = {}
    for ch in conn.changes:
        step = StateStep(ch.t_us - t0, SIDES[ch.side], ch.old, ch.new, ch.why)
        (before if ch.before else after).setdefault(ch.number, []).append(step)
    out: list[Step] = []
    for s in conn.segments:
        out += before.get(s.number, [])
        out.append(SegmentStep(s.t_us - t0, SIDES[s.direction], s.seg,
                               label=segment_label(s, absolute=absolute)))
        out += after.get(s.number, [])
    return out


def ladder_text(conn: Connection, *, absolute: bool = False, width: int = WIDTH) -> list[str]:
    """The connection as lines of text: the header, then one line per step."""
    return render(ladder_steps(conn, absolute=absolute),
                  left=conn.name(0), right=conn.name(1), width=width)
