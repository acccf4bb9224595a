"""The ladder diagram as a picture: hand-written SVG on a real time axis.

Two vertical timelines, one per endpoint; each segment is an arrow from its
sender to its receiver, its tail at the time it was captured, its full label
above it (wrapped onto more lines, never cut); each state change is a box on
its side's timeline. Time runs down to scale, with a ruler in ms at the left:
rows closer in time than their text is high are pushed apart (the ruler is
dotted there, and its ticks stay where their times are), and an idle gap of
at least ``IDLE_US`` that is a quarter of the whole is drawn short, as a break
marker ``// 2.1 s idle``. A legend names the colours. A capture of more than
``MAX_SEGMENTS`` segments is drawn up to that many, with a note of how many
were left out: ``synack report`` draws all of them, zoomable.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from synack.trace.ladder import SegmentStep, StateStep, Step
from synack.wire.tcp import FIN, RST, SYN

CHAR = 6.6          # width of one character of 11px monospace
LINE = 13           # height of one line of label text
SLOPE = 12          # how far an arrow falls from sender to receiver
STATE_H = 24        # room a state box takes
RULER_X = 96
LEFT_X, RIGHT_X = 230, 960
WIDTH = 1190
TOP = 112
BREAK = 34          # the height of an idle-gap marker
IDLE_US = 200_000   # gaps shorter than this are always to scale
MAX_SEGMENTS = 250  # arrows drawn at most; more would make a page tens of thousands high
TICK_PX = 48        # the ruler's ticks are at least this far apart where time is to scale

# (name in the legend, colour); the first matching rule colours an arrow.
RETRANS, DUPACK, ZEROWIN = "#c0392b", "#e67e22", "#8e44ad"
KEEPALIVE, WINUPDATE, OTHERMARK = "#16a085", "#2e86c1", "#8b5a2b"
RST_C, SYNFIN_C, DATA_C, ACK_C = "#000000", "#1e8449", "#1f3a93", "#95a5a6"
_MARK_COLOURS = (("Retransmission", RETRANS), ("Dup ACK", DUPACK), ("ZeroWindow", ZEROWIN),
                 ("Keep-Alive", KEEPALIVE), ("Window Update", WINUPDATE))
LEGEND = (("data", DATA_C), ("pure ACK", ACK_C), ("SYN / FIN", SYNFIN_C), ("RST", RST_C),
          ("retransmission", RETRANS), ("dup ACK", DUPACK), ("zero window", ZEROWIN),
          ("keep-alive", KEEPALIVE), ("window update", WINUPDATE),
          ("other mark [..]", OTHERMARK))


def colour(step: SegmentStep) -> str:
    """The arrow's colour: by its analysis marks first, then by its flags."""
    marks = re.findall(r"\[([^\]]+)\]", step.label)
    if step.note == "retransmission":
        return RETRANS
    for word, c in _MARK_COLOURS:
        if any(word in m for m in marks):
            return c
    if marks:
        return OTHERMARK
    flags = step.seg.flags
    if flags & RST:
        return RST_C
    if flags & (SYN | FIN):
        return SYNFIN_C
    return DATA_C if step.seg.payload else ACK_C


def wrap(label: str, room: int) -> list[str]:
    """``label`` in lines of at most ``room`` characters, broken after spaces.

    The pieces joined give back ``label`` exactly (each keeps its trailing space).
    """
    lines: list[str] = []
    line = ""
    for word in re.findall(r"\S+\s*", label) or [label]:
        while len(word.rstrip()) > room:            # a word longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:room])
            word = word[room:]
        if line and len(line) + len(word.rstrip()) > room:
            lines.append(line)
            line = ""
        line += word
    if line or not lines:
        lines.append(line)
    return lines


def _text(x: float, y: float, s: str, *, anchor: str = "middle", cls: str = "",
          fill: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    f = f' fill="{fill}"' if fill else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{f}>{escape(s)}</text>'


def _ms(t_us: float) -> str:
    ms = t_us / 1000
    return f"{ms:.3f}".rstrip("0").rstrip(".") if ms else "0"


def _duration(us: int) -> str:
    return f"{us / 1e6:.1f} s" if us >= 1_000_000 else f"{us / 1000:.0f} ms"


@dataclass(frozen=True)
class Layout:
    """Where each row goes: ``ys[i]`` is the top of step i."""

    ys: list[float]
    needs: list[float]        # the height each row's text takes
    idle: set[int]            # i: the gap before step i is drawn as a break
    scale: float              # pixels per microsecond where time is to scale
    bottom: float


def _need(step: Step, room: int) -> float:
    if isinstance(step, StateStep):
        return STATE_H
    assert isinstance(step, SegmentStep)
    return len(wrap(step.label or str(step.seg), room)) * LINE + SLOPE + 6


def layout(steps: Sequence[Step], room: int) -> Layout:
    """Rows on the time axis, pushed apart where they would overlap."""
    needs = [_need(s, room) for s in steps]
    ts = [s.t_us for s in steps]
    span = ts[-1] - ts[0] if ts else 0
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    idle = {i + 1 for i, g in enumerate(gaps) if g >= IDLE_US and g >= span / 4}
    drawn = span - sum(gaps[i - 1] for i in idle)
    # The time that is drawn to scale gets about half a row per step on average.
    scale = max(300, 15 * len(steps)) / drawn if drawn > 0 else 0.0
    ys: list[float] = []
    y = float(TOP)
    for i in range(len(steps)):
        if i:
            if i in idle:
                y += needs[i - 1] + BREAK
            else:
                y += max(needs[i - 1], gaps[i - 1] * scale)
        ys.append(y)
    bottom = (ys[-1] + needs[-1]) if ys else float(TOP)
    return Layout(ys, needs, idle, scale, bottom)


def _ruler(steps: Sequence[Step], lay: Layout) -> list[str]:
    """The time axis: to scale solid, stretched dotted, ticks in ms where their times are."""
    out: list[str] = []
    ts = [s.t_us for s in steps]
    for i in range(1, len(steps)):
        y0, y1 = lay.ys[i - 1], lay.ys[i]
        if i in lay.idle:
            mid = y0 + lay.needs[i - 1] + BREAK / 2
            out.append(f'<line x1="{RULER_X}" y1="{y0:.1f}" x2="{RULER_X}" '
                       f'y2="{mid - 8:.1f}" class="ruler"/>')
            words = f"// {_duration(ts[i] - ts[i - 1])} idle"
            out.append('<g class="idle">' + _text(RULER_X, mid + 4, "//", cls="brk")
                       + _text(LEFT_X + 12, mid + 4, words, anchor="start", cls="brk") + "</g>")
            out.append(f'<line x1="{RULER_X}" y1="{mid + 8:.1f}" x2="{RULER_X}" '
                       f'y2="{y1:.1f}" class="ruler"/>')
            continue
        stretched = (ts[i] - ts[i - 1]) * lay.scale < lay.needs[i - 1]
        dash = ' stroke-dasharray="2,3"' if stretched else ""
        out.append(f'<line x1="{RULER_X}" y1="{y0:.1f}" x2="{RULER_X}" y2="{y1:.1f}" '
                   f'class="ruler"{dash}/>')
    if not ts or lay.scale <= 0:
        return out
    raw = TICK_PX / lay.scale                       # microseconds between ticks, at least
    mag = 10 ** math.floor(math.log10(raw))
    step_us = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    last_y = -math.inf
    k = math.ceil(ts[0] / step_us)
    while k * step_us <= ts[-1]:
        t = k * step_us
        k += 1
        j = bisect.bisect_left(ts, t)              # first step at or after t
        if j < len(ts) and ts[j] == t:
            y = lay.ys[j]
        elif 0 < j < len(ts):
            if j in lay.idle:
                continue                           # no ticks inside a break
            y = lay.ys[j - 1] + (t - ts[j - 1]) / (ts[j] - ts[j - 1]) * (lay.ys[j] - lay.ys[j - 1])
        else:
            continue
        if y - last_y < 16:
            continue
        last_y = y
        out.append(f'<g class="tick" data-t-us="{t}" data-y="{y:.1f}"><line x1="{RULER_X - 4}" y1="{y:.1f}" '
                   f'x2="{RULER_X + 4}" y2="{y:.1f}" stroke="#666"/>'
                   f'{_text(RULER_X - 8, y + 4, _ms(t) + " ms", anchor="end", cls="t")}</g>')
    return out


def _legend(y: float) -> list[str]:
    out = ['<g id="legend">']
    x = 10.0
    for name, c in LEGEND:
        w = 34 + len(name) * CHAR + 18
        if x + w > WIDTH:
            x, y = 10.0, y + 16
        out.append(f'<g class="key" data-colour="{c}"><line x1="{x:.1f}" y1="{y - 4:.1f}" '
                   f'x2="{x + 26:.1f}" y2="{y - 4:.1f}" stroke="{c}" stroke-width="2"/>'
                   f'{_text(x + 32, y, name, anchor="start")}</g>')
        x += w
    y += 16
    out.append(f'<g class="key"><line x1="10" y1="{y - 4:.1f}" x2="36" y2="{y - 4:.1f}" '
               f'stroke="#444" stroke-width="1.5" stroke-dasharray="6,4"/>'
               f'{_text(42, y, "dashed: not delivered (lost in the simulator)", anchor="start")}'
               f'</g><g class="key"><rect class="state" x="380" y="{y - 12:.1f}" width="26" '
               f'height="14" rx="3"/>{_text(412, y, "state (inferred)", anchor="start")}</g>'
               f'<g class="key"><line x1="560" y1="{y - 9:.1f}" x2="560" y2="{y + 1:.1f}" '
               f'class="ruler" stroke-dasharray="2,3"/>'
               + _text(568, y, "dotted time axis: rows pushed apart, not to scale",
                       anchor="start") + "</g>")
    out.append("</g>")
    return out


def ladder_svg(steps: Sequence[Step], *, left: str, right: str, title: str = "",
               limit: int = MAX_SEGMENTS, source: str = "FILE.pcap") -> str:
    """The diagram as a standalone SVG document, at most ``limit`` arrows."""
    total = sum(isinstance(s, SegmentStep) for s in steps)
    if total > limit:
        count = 0
        for cut, s in enumerate(steps):
            count += isinstance(s, SegmentStep)
            if count > limit:
                steps = steps[:cut]
                break
    room = int((RIGHT_X - LEFT_X - 24) / CHAR)
    lay = layout(steps, room)
    note = ""
    if total > limit:
        note = (f"{total - limit} more segments not drawn: this is the first {limit} of {total}. "
                f"For the whole connection, zoomable: synack report {source} -o run.html")
    height = math.ceil(lay.bottom + (40 if note else 16))
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="11">')
    marker = ('<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
              'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
              'fill="context-stroke"/></marker></defs>')
    style = ("<style>.hdr{font-size:13px;font-weight:bold}.t{fill:#666}"
             ".state{fill:#fff8dc;stroke:#b8860b}.st{fill:#5a4600}"
             ".ruler{stroke:#888;stroke-width:1.5}.brk{fill:#666;font-style:italic}"
             ".note{fill:#c0392b;font-weight:bold}</style>")
    out = [head, marker, style, f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    if title:
        out.append(_text(WIDTH / 2, 18, title, cls="hdr"))
    out += _legend(38)
    out += [_text(LEFT_X, TOP - 18, left, cls="hdr"), _text(RIGHT_X, TOP - 18, right, cls="hdr"),
            _text(RULER_X, TOP - 18, "t (ms)", cls="t")]
    for x in (LEFT_X, RIGHT_X):
        out.append(f'<line x1="{x}" y1="{TOP - 10}" x2="{x}" y2="{lay.bottom:.1f}" '
                   'stroke="#bbb" stroke-width="2"/>')
    out += _ruler(steps, lay)
    for step, y in zip(steps, lay.ys, strict=True):
        if isinstance(step, StateStep):
            text = f"{step.old} -> {step.new}" if step.old else step.new
            x = LEFT_X if step.side == "left" else RIGHT_X
            w = len(text) * CHAR + 12
            tip = f"<title>{escape(step.why)}</title>" if step.why else ""
            out.append(f'<g class="state" data-t-us="{step.t_us}" data-y="{y:.1f}"><rect class="state" '
                       f'x="{x - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="18" rx="4"/>'
                       f'{tip}{_text(x, y + 13, text, cls="st")}</g>')
            continue
        assert isinstance(step, SegmentStep)
        label = step.label or str(step.seg)
        c = colour(step)
        x1, x2 = (LEFT_X, RIGHT_X) if step.src == "left" else (RIGHT_X, LEFT_X)
        lines = wrap(label, room)
        spans = "".join(f'<tspan x="{(LEFT_X + RIGHT_X) / 2:.1f}" dy="{LINE if k else 0}">'
                        f"{escape(piece)}</tspan>" for k, piece in enumerate(lines))
        ya = y + len(lines) * LINE + 2
        dash = ' stroke-dasharray="6,4"' if step.fate not in ("delivered", "duplicate") else ""
        out.append(f'<g class="seg" data-t-us="{step.t_us}" data-y="{y:.1f}">'
                   f"<title>{_ms(step.t_us)} ms: {escape(label)}</title>"
                   f'<text x="{(LEFT_X + RIGHT_X) / 2:.1f}" y="{y + LINE - 2:.1f}" '
                   f'text-anchor="middle" fill="{c}">{spans}</text>'
                   f'<line x1="{x1}" y1="{ya:.1f}" x2="{x2}" y2="{ya + SLOPE:.1f}" stroke="{c}" '
                   f'stroke-width="1.5" marker-end="url(#head)"{dash}/></g>')
    if note:
        out.append('<g id="left-out">'
                   + _text(10, lay.bottom + 24, note, anchor="start", cls="note") + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
