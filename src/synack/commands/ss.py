"""``synack ss``: the sockets of the running synack processes, as iproute2's ``ss``.

``ss``'s options where they mean something for synack: ``-t`` (TCP: all there is),
``-a`` / ``-l`` (all sockets / listening ones; by default the connected ones, without
LISTEN, SYN-RECV and TIME-WAIT, as ``ss`` does), ``-n`` (numeric: always), ``-i``
(``tcp_info`` in iproute2's format), ``-e`` (owner and descriptor), ``-s`` (summary),
``-H`` (no header), and state filters (``state established``, ``exclude time-wait``,
the groups ``connected``, ``synchronized``, ``bucket``, ``big``, ``all``). Only the
processes of the caller's network namespace are asked (``--any-netns``: every one).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from synack.commands._live import SS_STATES, query_all
from synack.tcp.state import State

_NAMES = {
    "established": State.ESTABLISHED, "syn-sent": State.SYN_SENT,
    "syn-recv": State.SYN_RECEIVED, "fin-wait-1": State.FIN_WAIT_1,
    "fin-wait-2": State.FIN_WAIT_2, "time-wait": State.TIME_WAIT, "closed": State.CLOSED,
    "close-wait": State.CLOSE_WAIT, "last-ack": State.LAST_ACK, "listening": State.LISTEN,
    "listen": State.LISTEN, "closing": State.CLOSING,
}
ALL = frozenset(State)
_GROUPS = {
    "all": ALL,
    "connected": ALL - {State.LISTEN, State.CLOSED},
    "synchronized": ALL - {State.LISTEN, State.CLOSED, State.SYN_SENT},
    "bucket": frozenset({State.SYN_RECEIVED, State.TIME_WAIT}),
    "big": ALL - {State.SYN_RECEIVED, State.TIME_WAIT},
}
# iproute2 SS_CONN: what ss shows without -a or -l.
DEFAULT = ALL - {State.LISTEN, State.CLOSED, State.TIME_WAIT, State.SYN_RECEIVED}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack ss [-tanlies] [-H] [state S | exclude S ...] [--run-dir DIR]``."""
    p = sub.add_parser("ss", help="list the TCP sockets of running synack processes (ss)")
    p.add_argument("-t", "--tcp", action="store_true", help="TCP sockets (the only kind)")
    p.add_argument("-a", "--all", action="store_true", help="all sockets, listening too")
    p.add_argument("-l", "--listening", action="store_true", help="only listening sockets")
    p.add_argument("-n", "--numeric", action="store_true",
                   help="numeric addresses and ports (always)")
    p.add_argument("-i", "--info", action="store_true", help="show tcp_info as ss -i does")
    p.add_argument("-e", "--extended", action="store_true",
                   help="show the owner's uid and the socket's descriptor")
    p.add_argument("-s", "--summary", action="store_true",
                   help="counts of sockets by kind, per process (ss -s)")
    p.add_argument("-H", "--no-header", action="store_true", help="no header line")
    p.add_argument("--any-netns", action="store_true",
                   help="ask the processes of every network namespace, not only the caller's")
    p.add_argument("filter", nargs="*", metavar="state|exclude STATE",
                   help="state filter as ss takes it: state established, exclude time-wait, "
                        "or a group: all connected synchronized bucket big")
    p.add_argument("--run-dir", metavar="DIR", help="where the processes' control sockets are "
                   "(default $SYNACK_RUN_DIR, /run/synack or $XDG_RUNTIME_DIR/synack)")
    p.set_defaults(func=run)


def parse_states(tokens: list[str], *, all_: bool = False,
                 listening: bool = False) -> frozenset[State]:
    """The states the options and ``state``/``exclude`` words select (ValueError if bad)."""
    base = ALL if all_ else (frozenset({State.LISTEN}) if listening else DEFAULT)
    chosen: set[State] | None = None
    excluded: set[State] = set()
    words = list(tokens)
    while words:
        verb = words.pop(0)
        if verb not in ("state", "exclude"):
            raise ValueError(f"ss: {verb!r}: expected 'state NAME' or 'exclude NAME' "
                             f"(address filters are not supported)")
        if not words:
            raise ValueError(f"ss: '{verb}' needs a state name")
        name = words.pop(0).lower()
        states = _GROUPS.get(name) or ({_NAMES[name]} if name in _NAMES else None)
        if states is None:
            raise ValueError(f"ss: unknown state {name!r} (one of "
                             f"{', '.join(sorted({*_NAMES, *_GROUPS}))})")
        if verb == "state":
            chosen = (chosen or set()) | set(states)
        else:
            excluded |= set(states)
    result = set(chosen) if chosen is not None else set(base)
    if chosen is None and excluded and not (all_ or listening):
        result = set(ALL)          # `ss exclude X` starts from every state, as ss does
    return frozenset(result - excluded)


def _addr(a: list[Any], listener: bool) -> str:
    ip, port = a
    if ":" in ip:          # ss prints IPv6 as [addr]:port, the wildcard as [::]
        ip = f"[{ip}]"
    return f"{ip}:{'*' if listener and port == 0 else port}"


def format_table(docs: list[dict[str, Any]], *, listening: bool = False,
                 states: frozenset[State] | None = None, header: bool = True,
                 extended: bool = False) -> str:
    """The rows of every process, with ss's header and columns (and the info lines)."""
    if states is None:
        states = frozenset({State.LISTEN}) if listening else ALL
    rows = [["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"]]
    info: dict[int, str] = {}
    for doc in sorted(docs, key=lambda d: d["pid"]):
        for r in doc["rows"]:
            state = State(r["state"])
            if state not in states:
                continue
            proc = f"pid={doc['pid']} {doc['command']}"
            if extended:
                proc += f" uid:{doc.get('uid', 0)} fd:{r.get('fd', -1)}"
            rows.append([SS_STATES[state], str(r["recv_q"]), str(r["send_q"]),
                         _addr(r["local"], False), _addr(r["peer"], True), proc])
            if r.get("info"):
                info[len(rows) - 1] = r["info"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        if n == 0 and not header:
            continue
        out.append(" ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n in info:
            out.append("\t " + info[n])
    return "\n".join(out)


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
    states = parse_states(args.filter, all_=args.all, listening=args.listening)
    run_dir = Path(args.run_dir) if args.run_dir else None
    docs = query_all(run_dir, info=args.info, any_netns=args.any_netns)
    if not docs and os.geteuid() != 0 and run_dir is None:
        print("synack ss: no synack process of yours is running (processes started with "
              "sudo answer only root: sudo synack ss)")
        return 0
    if args.summary:
        print(format_summary(docs))
        return 0
    print(format_table(docs, states=states, header=not args.no_header,
                       extended=args.extended))
    return 0
