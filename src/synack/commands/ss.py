"""``synack ss``: the sockets of every running synack process, like ``ss -tan``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from synack.commands._live import SS_STATES, query_all
from synack.tcp.state import State


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack ss [-l] [--run-dir DIR]``."""
    p = sub.add_parser("ss", help="list the TCP sockets of running synack processes (ss -tan)")
    p.add_argument("-l", "--listening", action="store_true", help="only listening sockets")
    p.add_argument("-s", "--summary", action="store_true",
                   help="counts of sockets by kind, per process (ss -s)")
    p.add_argument("--run-dir", metavar="DIR", help="where the processes' control sockets are "
                   "(default $SYNACK_RUN_DIR, /run/synack or $XDG_RUNTIME_DIR/synack)")
    p.set_defaults(func=run)


def _addr(a: list[Any], listener: bool) -> str:
    ip, port = a
    return f"{ip}:{'*' if listener and port == 0 else port}"


def format_table(docs: list[dict[str, Any]], *, listening: bool = False) -> str:
    """The rows of every process, with ss's header and columns."""
    rows = [["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"]]
    for doc in sorted(docs, key=lambda d: d["pid"]):
        for r in doc["rows"]:
            state = State(r["state"])
            if listening and state is not State.LISTEN:
                continue
            rows.append([SS_STATES[state], str(r["recv_q"]), str(r["send_q"]),
                         _addr(r["local"], False), _addr(r["peer"], True),
                         f"pid={doc['pid']} {doc['command']}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(" ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def format_summary(docs: list[dict[str, Any]]) -> str:
    """``ss -s``'s TCP line for each process."""
    lines = []
    for doc in sorted(docs, key=lambda d: d["pid"]):
        s = doc.get("summary")
        if s is None:
            continue
        lines.append(f"pid={doc['pid']} {doc['command']}")
        lines.append(f"  TCP:   {s['total']} (estab {s['estab']}, synrecv {s['synrecv']}, "
                     f"orphaned {s['orphaned']}, timewait {s['timewait']}, "
                     f"listening {s['listening']})")
    return "\n".join(lines) if lines else "no running synack process"


def run(args: argparse.Namespace) -> int:
    """Print the table (or the summary)."""
    docs = query_all(Path(args.run_dir) if args.run_dir else None)
    print(format_summary(docs) if args.summary else
          format_table(docs, listening=args.listening))
    return 0
