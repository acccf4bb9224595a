"""``synack scan HOST [-p PORTS]``: a SYN scan (nmap -sS) from a live synack stack."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import time

from synack.commands._live import running


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack scan HOST [-p 1-1024] [--rate N] [--max-parallel N] <link options>``."""
    from synack.link.netns import add_link_args

    p = sub.add_parser("scan", help="SYN-scan a host's TCP ports (nmap -sS)")
    p.add_argument("host", help="IPv4 or IPv6 address to scan")
    p.add_argument("-p", dest="ports", default="1-1024",
                   help="ports: 22, 1-1024, 22,80,8000-8100, - for all (default %(default)s)")
    p.add_argument("--rate", type=float, help="at most this many probes per second")
    p.add_argument("--max-parallel", type=int, default=100,
                   help="probes outstanding at once (default %(default)s)")
    p.add_argument("--retries", type=int, default=1,
                   help="retransmissions before a silent port is filtered (default %(default)s)")
    add_link_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Scan and print nmap's port table."""
    from synack.scan import ScanHost, SynScanner, parse_ports

    try:
        ip = ipaddress.ip_address(args.host)
    except ValueError:
        raise ValueError(f"{args.host!r} is not an IPv4 address (nor IPv6)") from None
    target = socket.inet_ntop(socket.AF_INET6, ip.packed) if ip.version == 6 else str(ip)
    ports = parse_ports(args.ports)
    if args.max_parallel < 1 or args.retries < 0:
        raise ValueError("--max-parallel must be >= 1 and --retries >= 0")
    if args.rate is not None and args.rate <= 0:
        raise ValueError("--rate must be positive")
    scanners: list[SynScanner] = []

    def wrap(stack):  # type: ignore[no-untyped-def]
        src = stack.addr
        if ":" in target:
            if stack.addr6 is None:
                raise ValueError("no IPv6 address on this link (the lab gives one unless "
                                 "--no-ipv6)")
            src = stack.addr6
        sc = SynScanner(src, target, ports, retries=args.retries,
                        max_parallel=args.max_parallel, rate=args.rate)
        scanners.append(sc)
        return ScanHost(stack, sc)

    t0 = time.monotonic()
    print(f"Starting synack scan at {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    with running(args, f"scan {target}", wrap=wrap, control=False) as live:
        live.loop.wake()
        live.wait(lambda: scanners[0].done)
    sc = scanners[0]
    print(sc.report())
    up = 1 if sc.latency_us() is not None else 0
    print(f"\nsynack done: 1 IP address ({up} host up) scanned in "
          f"{time.monotonic() - t0:.2f} seconds")
    return 0
