"""``synack ladder FILE``: any capture as a ladder diagram (text, SVG or HTML).

Reads a pcap or pcapng file (synack's own, or tcpdump's of the kernel), lists
its TCP connections (``--list``) or draws one (``--conn N`` or ``--filter``;
the first one by default) with relative sequence numbers, Wireshark's analysis
marks and each side's inferred state; ``--svg`` draws it on a time axis,
``--html`` writes the interactive page of ``synack report`` for the connection.
"""

from __future__ import annotations

import argparse
import sys

from synack.trace.capture import Capture, Connection, read_capture
from synack.trace.capture_ladder import ladder_steps, ladder_text
from synack.trace.ladder import WIDTH
from synack.trace.ladder_svg import MAX_SEGMENTS

MAX_SKIP_LINES = 10  # a capture full of junk should not bury the diagram in warnings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``ladder`` to the ``synack`` command."""
    p = sub.add_parser("ladder", help="draw a TCP connection of a capture as a ladder diagram")
    p.add_argument("file", help="a pcap or pcapng file")
    p.add_argument("--list", action="store_true", help="list the file's TCP connections")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--conn", type=int, metavar="N", help="the connection to draw (see --list)")
    pick.add_argument("--filter", metavar="EXPR",
                      help='pick the first connection matching e.g. "host 10.0.0.1 and port 80"')
    p.add_argument("--absolute", action="store_true",
                   help="absolute sequence numbers (the text ladder and --svg)")
    p.add_argument("--svg", metavar="FILE",
                   help="write the diagram as SVG on a time axis, with a legend (instead of "
                        f"the text ladder; the first {MAX_SEGMENTS} segments of a longer connection)")
    p.add_argument("--html", metavar="FILE",
                   help="write the connection's interactive page, as synack report does: the "
                        "ladder on a zoomable time axis, Stevens graph, click-to-dissect "
                        "(instead of the text ladder)")
    p.add_argument("--width", type=int, default=WIDTH, metavar="N",
                   help=f"characters between the two timelines (default {WIDTH})")
    p.set_defaults(func=run)


def list_lines(cap: Capture) -> list[str]:
    """One line per connection: number, endpoints, packets, bytes each way, duration, states."""
    head = (f"{'#':>3}  {'client':<21}    {'server':<21} {'pkts':>6} {'bytes >':>9} "
            f"{'bytes <':>9} {'duration':>10}  final states")
    out = [head]
    for c in cap.connections:
        a, b = c.final_states()
        out.append(f"{c.number:>3}  {c.name(0):<21} -> {c.name(1):<21} {len(c.segments):>6} "
                   f"{c.payload_bytes(0):>9} {c.payload_bytes(1):>9} "
                   f"{c.duration_us / 1e6:>9.3f}s  {a} / {b}")
    return out


def choose(cap: Capture, conn: int | None, expr: str | None) -> Connection:
    """The connection ``--conn``/``--filter`` names, or the first; ValueError if none."""
    if not cap.connections:
        raise ValueError(f"{cap.path}: no TCP connections in {cap.packets} packets")
    if conn is not None:
        if not 1 <= conn <= len(cap.connections):
            raise ValueError(f"--conn {conn}: the file has connections 1 to "
                             f"{len(cap.connections)} (see --list)")
        return cap.connections[conn - 1]
    if expr is not None:
        from synack.trace.connfilter import parse_filter

        pred = parse_filter(expr)
        for c in cap.connections:
            if pred(c):
                return c
        raise ValueError(f"--filter {expr!r}: no connection matches (see --list)")
    return cap.connections[0]


def run(args: argparse.Namespace) -> int:
    """Print the list or the ladder; write SVG/HTML if asked."""
    if args.width < 40:
        raise ValueError(f"--width {args.width}: at least 40")
    if args.html:
        from synack.report.writer import check_output

        check_output(args.html)     # before the work: a bad path fails fast
    from synack.progress import file_bar

    with file_bar(args.file, "reading") as b:
        cap = read_capture(args.file, progress=b.to if b.shown else None)
    for line in cap.warnings():
        print(f"synack: {line}", file=sys.stderr)
    for number, reason in cap.skipped[:MAX_SKIP_LINES]:
        print(f"synack: packet {number} skipped: {reason}", file=sys.stderr)
    if len(cap.skipped) > MAX_SKIP_LINES:
        print(f"synack: ... and {len(cap.skipped) - MAX_SKIP_LINES} more packets skipped",
              file=sys.stderr)
    if args.list:
        print("\n".join(list_lines(cap)))
        return 0
    conn = choose(cap, args.conn, args.filter)
    title = (f"connection {conn.number} of {len(cap.connections)}: "
             f"{conn.name(0)} -> {conn.name(1)}, {len(conn.segments)} segments")
    if not (args.svg or args.html):
        print(title)
        print("\n".join(ladder_text(conn, absolute=args.absolute, width=args.width)))
        return 0
    notes = []
    if args.svg:
        from synack.trace.ladder_svg import ladder_svg

        steps = ladder_steps(conn, absolute=args.absolute)
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(ladder_svg(steps, left=conn.name(0), right=conn.name(1), title=title,
                               source=args.file))
        if len(conn.segments) > MAX_SEGMENTS:
            notes.append(f"the SVG has the first {MAX_SEGMENTS} of {len(conn.segments)} "
                         "segments; --html or synack report draws them all")
    if args.html:
        from synack.report import build_report, write_report

        data = build_report(args.file, conn=conn.number, title=f"synack ladder: {title}")
        write_report(args.html, data)
    written = " and ".join(f for f in (args.svg, args.html) if f)
    print(f"{title}: wrote {written}" + "".join(f" ({n})" for n in notes))
    return 0
