"""``synack nstat``: the counters of every running synack process, as ``nstat -a`` names them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from synack.commands._live import query_all


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack nstat [-z] [--run-dir DIR] [NAME...]``."""
    p = sub.add_parser("nstat", help="counters of running synack processes (nstat -a)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="only these counters (a prefix such as TcpExt works too)")
    p.add_argument("-z", "--zeros", action="store_true", help="show zero counters too")
    p.add_argument("--run-dir", metavar="DIR", help="where the processes' control sockets are "
                   "(default $SYNACK_RUN_DIR, /run/synack or $XDG_RUNTIME_DIR/synack)")
    p.set_defaults(func=run)


# Counters shown with -z even before they first count (the ones issue 11 is about).
KNOWN = ("TcpInSegs", "TcpOutSegs", "TcpOutRsts", "TcpCurrEstab", "TcpExtListenOverflows",
         "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
         "TcpExtTCPChallengeACK", "TcpExtTCPACKSkippedChallenge", "TcpExtTCPACKSkippedSeq",
         "TcpExtTCPACKSkippedPAWS", "TcpExtTCPACKSkippedSynRecv", "TcpExtPAWSEstabRejected",
         "TcpExtPAWSOldAck", "TcpExtTCPAbortOnMemory", "TcpExtTCPTimeWaitOverflow",
         "TcpExtTCPMemoryPressures", "TcpExtTCPRcvQDrop", "TcpExtTCPACKSkippedTimeWait")


def format_counters(docs: list[dict[str, Any]], names: list[str], zeros: bool) -> str:
    """One block per process: ``NAME  VALUE`` lines, as nstat prints them."""
    out = []
    for doc in sorted(docs, key=lambda d: d["pid"]):
        counters = dict.fromkeys(KNOWN, 0) if zeros else {}
        counters.update(doc.get("nstat", {}))
        rows = [(k, v) for k, v in sorted(counters.items())
                if (zeros or v) and (not names or any(k.startswith(n) for n in names))]
        out.append(f"#pid={doc['pid']} {doc['command']}")
        out += [f"{k:<32}{v:<16}0.0" for k, v in rows]
    return "\n".join(out) if out else "no running synack process"


def run(args: argparse.Namespace) -> int:
    """Print the counters."""
    docs = query_all(Path(args.run_dir) if args.run_dir else None)
    print(format_counters(docs, args.names, args.zeros))
    return 0
