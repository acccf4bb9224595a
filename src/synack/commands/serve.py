"""``synack serve``: echo, discard, chargen or HTTP on a live synack stack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from synack.commands._live import StateLog, running

if TYPE_CHECKING:
    from synack.apps.base import Server
    from synack.stack import Stack


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack serve SERVICE [--port P] [--root DIR] [--backlog N] [--trace] <link opts>``."""
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
    p.add_argument("--backlog", metavar="N",
                   help="listen() backlog of the server's sockets (default: the stack's "
                        "net.core.somaxconn, 4096 as on a current kernel; capped by it)")
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
    backlog = parse_backlog(args.backlog)
    log = StateLog() if args.trace else None
    label = f"serve {args.service}"
    runner: list[AppRunner] = []

    def wrap(stack):  # type: ignore[no-untyped-def]
        servers = make_servers(stack, SERVERS[args.service], ports, backlog, kw)
        r = AppRunner(stack, servers, on_changes=log, keep_changes=False)
        runner.append(r)
        return r

    try:
        with running(args, label, wrap=wrap) as live:
            where = ", ".join(f"{live.addr}:{port}" for port in ports)
            if live.stack.addr6 is not None:
                where += ", " + ", ".join(f"[{live.stack.addr6}]:{port}" for port in ports)
            print(f"synack: {args.service} server on {where} "
                  f"({_where(args)}); Ctrl-C to stop", file=sys.stderr, flush=True)
            live.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass        # the way to stop a server; the with blocks have cleaned up
    except RuntimeError as exc:     # the loop died; it printed its traceback already
        print(f"synack: {exc}", file=sys.stderr)
        return 1
    return 0


def parse_backlog(text: str | None) -> int | None:
    """``--backlog``'s value: a whole number >= 0, or None (not given); ValueError if bad."""
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--backlog {text}: not a whole number") from None
    if n < 0:
        raise ValueError(f"--backlog {text}: must be 0 or more")
    return n


def make_servers(stack: Stack, cls: type[Server], ports: list[int], backlog: int | None,
                 kw: dict[str, object]) -> list[Server]:
    """One server per port, listening with ``backlog``, by default ``net.core.somaxconn``.

    Like ``listen(fd, SOMAXCONN)`` in a C server, the default asks for as much as the
    host allows; the stack caps any backlog at somaxconn anyway (Linux __sys_listen).
    """
    if backlog is None:
        backlog = stack.cfg.int("net.core.somaxconn")
    return [cls(stack, port, backlog=backlog, **kw) for port in ports]  # type: ignore[arg-type]


def _where(args: argparse.Namespace) -> str:
    if args.netns:
        return f"netns {args.netns}, kernel {args.kernel_addr.split('/')[0]}"
    return f"device {args.tap}"
