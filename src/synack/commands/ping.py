"""``synack ping``: ICMP echo from synack's stack over a real link, printed like iputils ping.

Each request is sent from the loop thread (``loop.call_soon``) and each reply is
read off ``stack.echo_replies`` under the loop's condition, so the round-trip
time is measured on the clock the stack sees, from transmit to receive batch.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from typing import Any

from synack.link.netns import add_link_args, open_link

__all__ = ["add_parser", "run"]

MAX_PAYLOAD = 65507     # 65535 - 20 (IPv4) - 8 (ICMP); IPv6's payload length has no header
MAX_PAYLOAD6 = 65527    # 65535 - 8 (ICMPv6)


def add_parser(sub: Any) -> None:
    """Add ``synack ping`` to the subcommands."""
    p = sub.add_parser("ping", help="send ICMP (ICMPv6) echo requests from synack, like ping(8)")
    p.add_argument("host", help="IPv4 or IPv6 address to ping (in the lab: the kernel, "
                                "192.0.2.1 or 2001:db8::1)")
    p.add_argument("-c", dest="count", type=int, metavar="N",
                   help="stop after N requests (default: until interrupted)")
    p.add_argument("-i", dest="interval", type=float, default=1.0, metavar="SECONDS",
                   help="wait between requests (default 1)")
    p.add_argument("-s", dest="size", type=int, default=56, metavar="SIZE",
                   help="payload bytes (default 56)")
    p.add_argument("-W", dest="wait", type=float, default=2.0, metavar="SECONDS",
                   help="after the last request, how long to wait for replies (default 2)")
    add_link_args(p)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str:
    try:
        host = str(ipaddress.ip_address(args.host))
    except ValueError:
        raise ValueError(f"ping: not an IPv4 or IPv6 address: {args.host!r}") from None
    if args.count is not None and args.count < 1:
        raise ValueError(f"ping: -c must be at least 1, not {args.count}")
    if not 0.002 <= args.interval <= 3600:
        raise ValueError(f"ping: -i must be 0.002..3600 seconds, not {args.interval}")
    top = MAX_PAYLOAD6 if ":" in host else MAX_PAYLOAD
    if not 0 <= args.size <= top:
        raise ValueError(f"ping: -s must be 0..{top}, not {args.size}")
    if not 0 <= args.wait <= 3600:
        raise ValueError(f"ping: -W must be 0..3600 seconds, not {args.wait}")
    return host


def run(args: argparse.Namespace) -> int:
    """Ping until the count is reached or SIGINT; exit 1 if no reply came back."""
    host = _check(args)
    from synack.cli import load_sysctl
    from synack.commands._live import link_addr6
    from synack.link.loop import Loop
    from synack.stack import Stack

    with open_link(args) as (addr, link):
        stack = Stack(addr, cfg=load_sysctl(), mtu=link.mtu, name="synack",
                      addr6=link_addr6(link))
        if ":" in host and stack.addr6 is None:
            raise ValueError("ping: no IPv6 address on this link (the lab gives one unless "
                             "--no-ipv6)")
        loop = Loop(stack, link, name="ping")
        loop.start()
        try:
            return _ping(stack, loop, host, args)
        finally:
            loop.stop()


def _ping(stack: Any, loop: Any, host: str, args: argparse.Namespace) -> int:
    ident = os.getpid() & 0xFFFF
    payload = bytes(i & 0xFF for i in range(args.size))
    v6 = ":" in host
    if v6:   # iputils: "PING host (host) 56 data bytes"
        print(f"PING {host} ({host}) {args.size} data bytes", flush=True)
    else:
        print(f"PING {host} ({host}) {args.size}({args.size + 28}) bytes of data.", flush=True)
    sent: dict[int, int] = {}
    rtts: list[int] = []
    start = loop.now()
    seq = 0
    interval_us = int(args.interval * 1e6)

    def send(n: int) -> None:
        def fn(now: int) -> None:
            sent[n] = now
            if v6:
                stack.send_echo6(host, ident, n, payload, now=now)
            else:
                stack.send_echo(host, ident, n, payload, now=now)
        loop.call_soon(fn)

    def drain() -> None:
        # This command owns the stack, so it consumes the replies (the deque is bounded).
        replies = stack.echo_replies
        while replies:
            r = replies.popleft()
            if r.src != host or r.ident != ident or r.seq not in sent:
                continue
            rtt = r.now - sent[r.seq]
            dup = r.seq in done
            done.add(r.seq)
            if not dup:
                rtts.append(rtt)
            print(f"{len(r.payload) + 8} bytes from {r.src}: icmp_seq={r.seq} ttl={r.ttl} "
                  f"time={_ms(rtt)} ms{' (DUP!)' if dup else ''}", flush=True)

    done: set[int] = set()
    try:
        while args.count is None or seq < args.count:
            seq += 1
            send(seq & 0xFFFF)
            deadline = start + seq * interval_us
            last = args.count is not None and seq >= args.count
            if last:
                deadline = loop.now() + int(args.wait * 1e6)
            with loop.cond:
                while True:
                    drain()
                    left = deadline - loop.now()
                    if left <= 0 or (last and len(done) >= seq):
                        break
                    loop.cond.wait(left / 1e6)
    except KeyboardInterrupt:
        pass    # Ctrl-C ends the run with the statistics, as in iputils
    finally:
        elapsed = loop.now() - start
    _summary(host, len(sent), rtts, elapsed)
    return 0 if rtts else 1


def _ms(us: float) -> str:
    ms = us / 1000
    return f"{ms:.3f}" if ms < 100 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def _summary(host: str, nsent: int, rtts: list[int], elapsed_us: int) -> None:
    nrecv = len(rtts)
    loss = 0 if not nsent else round(100 * (nsent - nrecv) / nsent)
    print(f"\n--- {host} ping statistics ---")
    print(f"{nsent} packets transmitted, {nrecv} received, {loss}% packet loss, "
          f"time {elapsed_us // 1000}ms")
    if rtts:
        mean = sum(rtts) / nrecv
        mdev = math.sqrt(max(sum(r * r for r in rtts) / nrecv - mean * mean, 0.0))
        print(f"rtt min/avg/max/mdev = {min(rtts) / 1000:.3f}/{mean / 1000:.3f}/"
              f"{max(rtts) / 1000:.3f}/{mdev / 1000:.3f} ms")
    sys.stdout.flush()
