"""``synack report FILE.pcap [--trace cc.json] -o run.html``: one interactive page per run.

The page is one self-contained HTML file (no server, no network fetches): the
ladder on a real time axis that zooms and scrolls, the Stevens graph, and where
synack was the sender its own cwnd, ssthresh, SRTT and RTO (``--trace``, from
``synack sim --trace-out``) beside the bytes in flight and SACK scoreboard read
from the capture; clicking a segment shows its header dissection (en/zh, as
``synack header`` prints it) and why each analysis mark was given.
``synack sim ... --report F`` and ``synack demo NAME --report F`` write the same
page for their run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from synack.trace.cctrace import CcSample


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``report`` to the ``synack`` command."""
    p = sub.add_parser("report", help="one self-contained interactive HTML page of a capture")
    p.add_argument("file", help="a pcap or pcapng file")
    p.add_argument("-o", "--output", required=True, metavar="F.html", help="the page to write")
    p.add_argument("--trace", metavar="cc.json",
                   help="synack's cwnd/ssthresh/RTT trace of the sender (synack sim --trace-out)")
    p.add_argument("--conn", type=int, metavar="N",
                   help="the connection (synack ladder --list; default: the one with most segments)")
    p.add_argument("--title", help="the page's title")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the page."""
    if not os.path.isfile(args.file):
        raise ValueError(f"{args.file}: no such file")
    trace = None
    if args.trace:
        from synack.trace.cctrace import read_cc_trace

        if not os.path.isfile(args.trace):
            raise ValueError(f"{args.trace}: no such file")
        trace = read_cc_trace(args.trace)
    write_page(args.output, args.file, conn=args.conn, trace=trace, title=args.title)
    return 0


def write_page(output: str, pcap: str, *, conn: int | None = None,
               trace: tuple[dict[str, Any], list[CcSample]] | None = None,
               title: str | None = None, notes: dict[str, str] | None = None) -> None:
    """Build and write the page, printing where it went and any capture warning."""
    from synack.report import build_report, write_report
    from synack.report.writer import check_output

    check_output(output)            # before the work: a bad -o fails fast
    data = build_report(pcap, conn=conn, trace=trace, title=title, notes=notes)
    for line in data["warnings"]:
        print(f"synack: {line}", file=sys.stderr)
    size = write_report(output, data)
    print(f"report written to {output} ({len(data['seg'])} segments, {size // 1024} KiB)")


def report_from_run(output: str, write_pcap: Any, *,
                    trace: tuple[dict[str, Any], list[CcSample]] | None = None,
                    title: str | None = None, notes: dict[str, str] | None = None) -> None:
    """For ``sim``/``demo --report``: ``write_pcap(path)`` saves the run's capture first."""
    from synack.report.writer import check_output

    check_output(output)
    with tempfile.TemporaryDirectory(prefix="synack-report-") as tmp:
        pcap = os.path.join(tmp, "run.pcap")
        write_pcap(pcap)
        write_page(output, pcap, trace=trace, title=title, notes=notes)
