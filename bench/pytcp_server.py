"""PyTCP (PyPI ``pmd-pytcp``) as a TCP sink or source on a TAP in a namespace: the baseline.

    .venv/bin/python bench/pytcp_server.py --netns NS --tap IFACE --conns N

Run by ``bench/run.py``, never imported by synack. It opens a TAP in this
process, moves the interface into the (existing) namespace ``--netns`` and
gives the kernel side 192.0.2.1/24 with IPv6 off, boots PyTCP on the TAP at
192.0.2.2/24 (static address, no DHCP, no IPv6, logging off so PyTCP runs at
its best), listens on port 6000 and prints ``listening``. It serves ``--conns``
connections one after the other as :func:`peer.serve_conn` does (the 16-byte
header says upload or download and how much), printing the bytes each moved,
and exits. The caller times each transfer on the kernel side with
``bench/peer.py client``, as for every other row of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from socket import SHUT_WR
from typing import Any

from peer import BLOCK, HEADER, parse_header

PORT = 6000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _move_to_netns(tap: str, netns: str) -> None:
    """The kernel end of the TAP goes into the namespace, addressed, IPv6 off, up."""
    _ip("link", "set", tap, "netns", netns)
    for scope in ("all", "default", tap):
        _ip("netns", "exec", netns, "sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1")
    _ip("-n", netns, "addr", "add", "192.0.2.1/24", "dev", tap)
    _ip("-n", netns, "link", "set", "lo", "up")
    _ip("-n", netns, "link", "set", tap, "up")


async def _serve_conn(conn: Any) -> int:
    """:func:`peer.serve_conn` in PyTCP's asyncio socket API."""
    raw = b""
    while len(raw) < HEADER:
        chunk = await conn.recv(HEADER - len(raw))
        if not chunk:
            return 0
        raw += chunk
    mode, nbytes = parse_header(raw)
    moved = 0
    if mode == "up":
        while chunk := await conn.recv(BLOCK):
            moved += len(chunk)
    else:
        block = b"d" * BLOCK
        while moved < nbytes:
            moved += await conn.send(block[:nbytes - moved])
            await asyncio.sleep(0)            # its send() only queues: let the stack run
        conn.shutdown(SHUT_WR)
        while await conn.recv(BLOCK):
            pass
    conn.close()
    return moved


async def _serve(conns: int) -> None:
    from pmd_pytcp import socket as psock
    from pmd_pytcp import stack

    await stack.start()
    try:
        # A static address is usable only after RFC 5227 probing (about 7 s).
        for _ in range(300):
            if any(str(a) == "192.0.2.2" for a in stack.local_ip4_unicast()):
                break
            await asyncio.sleep(0.1)
        ls = psock.socket(psock.AddressFamily.INET4, psock.SocketType.STREAM)
        ls.bind(("192.0.2.2", PORT))
        ls.listen()
        print("listening", flush=True)
        for _ in range(conns):
            conn, _ = await ls.accept(timeout=120)
            print(await _serve_conn(conn), flush=True)
        ls.close()
        await asyncio.sleep(1)                # the last FIN must leave before the stack stops
    finally:
        await stack.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--netns", required=True)
    ap.add_argument("--tap", required=True)
    ap.add_argument("--conns", type=int, default=1, help="connections to serve, one at a time")
    args = ap.parse_args()

    from pmd_net_addr import Ip4IfAddr, MacAddress
    from pmd_pytcp import stack

    stack.LOG__CHANNEL = set()        # logging costs PyTCP 30-55% (its own comment)
    iface = stack.initialize_interface__tap(args.tap, mac_address=MacAddress("02:00:00:5a:be:01"))
    _move_to_netns(args.tap, args.netns)
    stack.init()
    stack.add_interface(**iface, ip4_host=Ip4IfAddr("192.0.2.2/24"), ip4_dhcp=False,
                        ip6_support=False, ip6_lla_autoconfig=False)
    asyncio.run(_serve(args.conns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
