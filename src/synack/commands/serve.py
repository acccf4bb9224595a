"""``synack serve``: echo, discard, chargen or HTTP on a live synack stack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synack.commands._live import StateLog, running


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack serve SERVICE [--port P] [--root DIR] [--trace] <link options>``."""
    from synack.apps import DEFAULT_PORTS, SERVERS
    from synack.link.netns import add_link_args

    p = sub.add_parser("serve", help="run a server (echo, discard, chargen, http) on a live link",
                       description="Serve on synack's address over a TAP: the kernel in the "
                                   "namespace (curl, nc, nmap) is the client.")
    p.add_argument("service", choices=sorted(SERVERS), help="what to serve")
    p.add_argument("--port", type=int, action="append",
                   help="TCP port, may be repeated (default: the service's own: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_PORTS.items()) + ")")
    p.add_argument("--root", metavar="DIR", help="http: serve the files under DIR")
    p.add_argument("--trace", action="store_true",
                   help="print every connection's state changes as they happen")
    add_link_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    from synack.apps import DEFAULT_PORTS, SERVERS, AppRunner

    ports = args.port or [DEFAULT_PORTS[args.service]]
    for port in ports:
        if not 0 < port < 65536:
            raise ValueError(f"--port {port}: ports are 1-65535")
    kw: dict[str, object] = {}
    if args.root is not None:
        if args.service != "http":
            raise ValueError("--root goes with the http service")
        if not Path(args.root).is_dir():
            raise ValueError(f"--root {args.root}: not a directory")
        kw["root"] = args.root
    log = StateLog() if args.trace else None
    label = f"serve {args.service}"
    runner: list[AppRunner] = []

    def wrap(stack):  # type: ignore[no-untyped-def]
        servers = [SERVERS[args.service](stack, port, **kw) for port in ports]
        r = AppRunner(stack, servers, on_changes=log, keep_changes=False)
        runner.append(r)
        return r

    try:
        with running(args, label, wrap=wrap) as live:
            where = ", ".join(f"{live.addr}:{port}" for port in ports)
            print(f"synack: {args.service} server on {where} "
                  f"({_where(args)}); Ctrl-C to stop", file=sys.stderr, flush=True)
            live.wait(lambda: False)
    except (KeyboardInterrupt, SystemExit):
        pass        # the way to stop a server; the with blocks have cleaned up
    return 0


def _where(args: argparse.Namespace) -> str:
    if args.netns:
        return f"netns {args.netns}, kernel {args.kernel_addr.split('/')[0]}"
    return f"device {args.tap}"
