"""``synack plot``: a capture's time-sequence graph, or a sim run's cwnd/ssthresh/RTT, as PNG.

``synack plot FILE.pcap -o F.png [--conn N] [--dir A->B]`` draws the Stevens
graph of one direction of one connection (by default the first connection,
and the direction that carried more data). ``synack plot --cc F.json -o F.png``
draws the congestion trace ``synack sim --trace-out F.json`` saved.
"""

from __future__ import annotations

import argparse
import sys

from synack.trace.capture import Connection


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``plot`` to the ``synack`` command."""
    p = sub.add_parser("plot", help="time-sequence graph of a capture, or cwnd over time (PNG)")
    p.add_argument("file", nargs="?", help="a pcap or pcapng file")
    p.add_argument("-o", "--output", required=True, metavar="F.png", help="the PNG to write")
    p.add_argument("--conn", type=int, metavar="N", help="the connection (see synack ladder --list)")
    p.add_argument("--dir", metavar="A->B",
                   help="the data direction: endpoints as ADDR or ADDR:PORT, or client->server")
    p.add_argument("--cc", metavar="F.json", help="plot a `synack sim --trace-out` file instead")
    p.set_defaults(func=run)


def direction(conn: Connection, spec: str | None) -> int:
    """0 (a to b) or 1 from ``--dir``; without it, the direction with more payload."""
    if spec is None:
        return 0 if conn.payload_bytes(0) >= conn.payload_bytes(1) else 1
    src, arrow, dst = spec.partition("->")
    if not arrow:
        raise ValueError(f"--dir {spec!r}: expected A->B")
    names = {0: ("a", "client", conn.a[0], conn.name(0)), 1: ("b", "server", conn.b[0], conn.name(1))}
    for d in (0, 1):
        if src.strip() in names[d] and dst.strip() in names[1 - d]:
            return d
    raise ValueError(f"--dir {spec!r}: the connection is {conn.name(0)} <-> {conn.name(1)}")


def run(args: argparse.Namespace) -> int:
    """Write the PNG."""
    from synack.trace.plot import PlotUnavailable

    try:
        return _run(args)
    except PlotUnavailable as exc:
        print(f"synack: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from synack.trace.plot import cc_figure, save_png, stevens_figure

    if args.cc:
        if args.file:
            raise ValueError("give either a capture file or --cc F.json, not both")
        from synack.trace.cctrace import read_cc_trace

        meta, samples = read_cc_trace(args.cc)
        if not samples:
            raise ValueError(f"{args.cc}: no samples")
        name = meta.get("cc") or "congestion control"
        start = meta.get("start_us")
        fig = cc_figure(samples, title=f"{name}: cwnd, ssthresh and RTT of the sender",
                        start_us=start if isinstance(start, int) else None)
    else:
        if not args.file:
            raise ValueError("plot: give a capture file, or --cc F.json")
        from synack.commands.ladder import choose
        from synack.progress import file_bar
        from synack.trace.capture import read_capture

        with file_bar(args.file, "reading") as b:
            cap = read_capture(args.file, progress=b.to if b.shown else None)
        for line in cap.warnings():
            print(f"synack: {line}", file=sys.stderr)
        conn = choose(cap, args.conn, None)
        fig = stevens_figure(conn, direction(conn, args.dir))
    save_png(fig, args.output)
    print(f"wrote {args.output}")
    return 0
