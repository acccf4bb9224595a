"""``synack run [link options] -- python PROG.py ARGS``: a Python program on synack.

The link options are ``serve``'s and ``connect``'s (``--netns`` for the lab,
``--tap`` for a device of your own). The program runs in this process with
``socket`` swapped for :mod:`synack.socket` (:mod:`synack.run`); ``--pcap``
records every packet it exchanged, ``--trace`` prints its connections' state
changes on stderr, and ``synack ss`` lists its sockets while it runs. The exit
status is the program's.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

from synack.commands._live import Live, StateLog, running

SETTLE_S = 3.0
"""How long to let the program's last FINs be acknowledged before the link goes."""

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")
_IGNORED_FLAGS = {"-u", "-B", "-E", "-s", "-q"}     # harmless here: accepted, no effect needed


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack run [--pcap F] [--trace] <link options> -- python PROG.py ARGS``."""
    from synack.link.netns import add_link_args

    p = sub.add_parser(
        "run", help="run a Python program with its TCP through synack",
        description="Run an unmodified Python program (python PROG.py, python -m MOD, "
                    "python -c CODE) with its sockets on synack, over the link chosen "
                    "as for serve and connect.")
    p.add_argument("--pcap", metavar="FILE", help="record every packet in and out to FILE")
    p.add_argument("--trace", action="store_true",
                   help="print the program's connections' state changes on stderr")
    p.add_argument("--nameserver", metavar="ADDR",
                   help="DNS server (IPv4) asked over synack for names not in /etc/hosts "
                        "(default: the first nameserver of /etc/netns/NS/resolv.conf with "
                        "--netns NS, as `ip netns exec` shows it, else of /etc/resolv.conf; "
                        "'none': numeric addresses and /etc/hosts only)")
    add_link_args(p)
    p.add_argument("program", nargs=argparse.REMAINDER,
                   help="after --: python PROG.py ARGS | python -m MODULE ARGS | "
                        "python -c CODE ARGS")
    p.set_defaults(func=run)


def parse_program(argv: list[str]) -> tuple[str, str, list[str]]:
    """(kind, target, args) from ``python ...`` words: kind is script, module or code.

    Raises ValueError (one line) for anything else.
    """
    words = list(argv)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise ValueError("no program: synack run [options] -- python PROG.py ARGS")
    if _PYTHON.match(os.path.basename(words[0])) or words[0] == sys.executable:
        words = words[1:]
    elif not words[0].endswith(".py"):
        raise ValueError(f"synack run runs Python programs: expected 'python ...', "
                         f"not {words[0]!r}")
    while words and words[0] in _IGNORED_FLAGS:
        words = words[1:]
    if not words:
        raise ValueError("no program: give python PROG.py, -m MODULE or -c CODE")
    first = words[0]
    if first in ("-m", "-c"):
        if len(words) < 2:
            raise ValueError(f"argument expected for the {first} option")
        return ("module" if first == "-m" else "code"), words[1], words[2:]
    if first.startswith(("-m", "-c")):
        return ("module" if first[1] == "m" else "code"), first[2:], words[1:]
    if first.startswith("-"):
        raise ValueError(f"python option {first} is not supported by synack run")
    if not os.path.isfile(first):
        raise ValueError(f"can't open file {first!r}: no such file")
    return "script", first, words[1:]


def pick_nameserver(given: str | None, netns: str | None) -> str | None:
    """The resolver's server: ``given`` (checked: one-line ValueError), or the first IPv4
    nameserver of the resolv.conf the program would see in its namespace, or None."""
    import ipaddress

    from synack.dns import nameserver_from_resolv_conf

    if given is not None:
        if given.lower() == "none":
            return None
        try:
            return str(ipaddress.IPv4Address(given))
        except ValueError:
            raise ValueError(f"--nameserver {given!r} is not an IPv4 address (or 'none')"
                             ) from None
    if netns:
        # ip-netns(8): a namespace's own /etc/netns/NAME/resolv.conf replaces the host's.
        own = os.path.join("/etc/netns", netns, "resolv.conf")
        if os.path.exists(own):
            return nameserver_from_resolv_conf(own)
    return nameserver_from_resolv_conf()


def run(args: argparse.Namespace) -> int:
    """Open the link, swap the socket module, run the program, clean up."""
    from synack.api_host import Host
    from synack.run import install, run_program, uninstall

    kind, target, prog_args = parse_program(args.program)
    nameserver = pick_nameserver(args.nameserver, getattr(args, "netns", None))
    log = StateLog(sys.stderr) if args.trace else None
    with running(args, f"run {os.path.basename(target)}") as live:
        # The stack keeps every state change until someone takes it: print (--trace) or
        # drop them after each batch, so that a long-running server does not hoard them.
        live.loop.add_watcher(lambda now: _report(live, log))
        # The program gets Python's own Ctrl-C (KeyboardInterrupt, every time); SIGTERM
        # still unwinds this with block, so the lab is removed.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        host = Host(live.stack, live.loop)
        host.nameserver = nameserver
        install(host)
        try:
            status = run_program(kind, target, prog_args)
        finally:
            uninstall()
        _settle(live)
    return status


def _report(live: Live, log: StateLog | None) -> None:
    changes = live.stack.changes
    if changes:
        if log is not None:
            log(list(changes))
        changes.clear()


def _settle(live: Live) -> None:
    """Let connections the program closed finish their FIN exchange (within SETTLE_S)."""
    from synack.tcp.state import State

    busy = (State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK)
    try:
        live.wait(lambda: not any(c.state in busy for c in live.stack.conns.values()),
                  SETTLE_S)
    except RuntimeError:
        pass            # the loop is gone: nothing left to settle
