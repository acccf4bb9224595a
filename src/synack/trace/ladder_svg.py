"""The ladder diagram as a picture: hand-written SVG, and an HTML page around it.

Two vertical timelines, one per endpoint; each segment is an arrow sloping
down from its sender to its receiver with its label above; each state change
is a box on its side's timeline. Rows are evenly spaced (time is printed at
the left, not drawn to scale) so that bursts stay readable. Arrows carrying a
retransmission mark are red, duplicate ACKs orange, zero windows purple, other
marks brown; the full label of a shortened arrow is its tooltip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from synack.trace.ladder import SegmentStep, StateStep, Step

ROW = 30            # pixels per step
CHAR = 6.6          # width of one character of 11px monospace
LEFT_X, RIGHT_X, WIDTH = 320, 980, 1300
TOP = 70

_COLOURS = (("Retransmission", "#c0392b"), ("Dup ACK", "#d35400"), ("ZeroWindow", "#8e44ad"),
            ("Out-Of-Order", "#8b5a2b"), ("Previous segment", "#8b5a2b"),
            ("Keep-Alive", "#16a085"), ("Window Update", "#2980b9"))


def _colour(label: str, src: str) -> str:
    marks = re.findall(r"\[([^\]]+)\]", label)
    for word, colour in _COLOURS:
        if any(word in m for m in marks):
            return colour
    return "#222222" if src == "left" else "#1f3a93"


def _text(x: float, y: float, s: str, *, anchor: str = "middle", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def ladder_svg(steps: Sequence[Step], *, left: str, right: str, title: str = "") -> str:
    """The diagram as a standalone SVG document."""
    height = TOP + ROW * (len(steps) + 1)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="11">')
    marker = ('<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
              'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
              'fill="context-stroke"/></marker></defs>')
    style = ("<style>.hdr{font-size:13px;font-weight:bold}.t{fill:#666}"
             ".state{fill:#fff8dc;stroke:#b8860b}.st{fill:#5a4600}</style>")
    out = [head, marker, style, f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    if title:
        out.append(_text(WIDTH / 2, 18, title, cls="hdr"))
    out += [_text(LEFT_X, 44, left, cls="hdr"), _text(RIGHT_X, 44, right, cls="hdr"),
            _text(10, 44, "t (ms)", anchor="start", cls="t")]
    for x in (LEFT_X, RIGHT_X):
        out.append(f'<line x1="{x}" y1="{TOP - 14}" x2="{x}" y2="{height - 10}" '
                   'stroke="#999" stroke-width="2"/>')
    room = int((RIGHT_X - LEFT_X - 20) / CHAR)
    for i, step in enumerate(steps):
        y = TOP + ROW * i
        out.append(_text(10, y + 12, f"{step.t_us / 1000:.3f}", anchor="start", cls="t"))
        if isinstance(step, StateStep):
            text = f"{step.old} -> {step.new}" if step.old else step.new
            x = LEFT_X if step.side == "left" else RIGHT_X
            w = len(text) * CHAR + 12
            tip = f"<title>{escape(step.why)}</title>" if step.why else ""
            out.append(f'<g><rect class="state" x="{x - w / 2:.1f}" y="{y}" width="{w:.1f}" '
                       f'height="18" rx="4"/>{tip}'
                       f'{_text(x, y + 13, text, cls="st")}</g>')
            continue
        assert isinstance(step, SegmentStep)
        label = step.label or str(step.seg)
        colour = _colour(label, step.src)
        x1, x2 = (LEFT_X, RIGHT_X) if step.src == "left" else (RIGHT_X, LEFT_X)
        shown = label if len(label) <= room else label[:room - 3] + "..."
        dash = ' stroke-dasharray="6,4"' if step.fate not in ("delivered", "duplicate") else ""
        out.append(f'<g><title>{escape(label)}</title>'
                   f'<line x1="{x1}" y1="{y + 14}" x2="{x2}" y2="{y + 26}" stroke="{colour}" '
                   f'stroke-width="1.5" marker-end="url(#head)"{dash}/>'
                   f'<text x="{(LEFT_X + RIGHT_X) / 2:.1f}" y="{y + 13}" text-anchor="middle" '
                   f'fill="{colour}">{escape(shown)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ladder_html(steps: Sequence[Step], *, left: str, right: str, title: str,
                notes: Sequence[str] = ()) -> str:
    """A page with a title, a few lines of notes and the SVG diagram inline."""
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    svg = ladder_svg(steps, left=left, right=right)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}ul{font-family:monospace}</style>"
        f"</head><body>\n<h1>{escape(title)}</h1>\n<ul>{items}</ul>\n{svg}</body></html>\n"
    )
