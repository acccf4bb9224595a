"""synack over a tunnel of your own: IP packets carried in UDP datagrams.

    PYTHONPATH=src python examples/udp_tunnel.py --bytes 5M

Two synack hosts, 192.0.2.1 and 192.0.2.2 in their own little network, each on a
:class:`synack.link.pipe.PipeLink` whose ``send`` puts the packet in a UDP
datagram (a kernel socket on 127.0.0.1) and whose ``deliver`` is fed by a thread
reading the other end's datagrams -- the shape of any VPN, USB or WebSocket
tunnel. The far host runs a :class:`synack.forwarder.Forwarder`, so the near
host may connect to *any* address through the tunnel; each connection gets back
the sha256 of what it sent. No root needed: the only kernel traffic is UDP on
loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket as kernel_socket
import sys
import threading

import synack.socket as ssock
from synack.api_host import Host
from synack.forwarder import Forwarder, ForwardRequest
from synack.link.pipe import PipeLink
from synack.units import parse_size


class UdpTunnelEnd:
    """One end of the tunnel: a UDP socket, and the PipeLink synack sees."""

    def __init__(self) -> None:
        self.udp = kernel_socket.socket(kernel_socket.AF_INET, kernel_socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setsockopt(kernel_socket.SOL_SOCKET, kernel_socket.SO_RCVBUF, 4 << 20)
        self.peer: tuple[str, int] | None = None
        self.link = PipeLink(send=self._send, mtu=1400, name=f"udp:{self.udp.getsockname()[1]}")
        threading.Thread(target=self._receive, daemon=True).start()

    def _send(self, packet: bytes) -> None:
        if self.peer is not None:
            self.udp.sendto(packet, self.peer)     # a lost datagram is a lost packet: TCP copes

    def _receive(self) -> None:
        while True:
            try:
                packet = self.udp.recv(65535)
            except OSError:
                return
            self.link.deliver(packet)

    def close(self) -> None:
        self.udp.close()


def digest_handler(req: ForwardRequest) -> None:
    """The far side: answer each connection with the sha256 of what it carried."""
    conn = req.accept()
    h = hashlib.sha256()
    while data := conn.recv(65536):
        h.update(data)
    conn.sendall(h.hexdigest().encode())
    conn.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bytes", default="1M", help="how much each connection sends (K/M)")
    p.add_argument("--to", action="append", default=None, metavar="ADDR:PORT",
                   help="where to connect through the tunnel (repeatable; default three)")
    args = p.parse_args()
    size = parse_size(args.bytes)
    targets = args.to or ["198.51.100.7:80", "203.0.113.9:443", "192.0.2.2:5555"]
    near, far = UdpTunnelEnd(), UdpTunnelEnd()
    near.peer, far.peer = far.udp.getsockname(), near.udp.getsockname()
    client = Host.on_link("192.0.2.1", near.link, mtu=near.link.mtu)
    server = Host.on_link("192.0.2.2", far.link, mtu=far.link.mtu)
    ok = True
    try:
        with Forwarder(server, digest_handler):
            for target in targets:
                addr, _, port = target.rpartition(":")
                payload = os.urandom(size)
                s = ssock.socket(host=client)
                s.settimeout(60)
                s.connect((addr, int(port)))
                s.sendall(payload)
                s.shutdown(ssock.SHUT_WR)
                answer = b""
                while data := s.recv(100):
                    answer += data
                s.close()
                good = answer.decode() == hashlib.sha256(payload).hexdigest()
                ok &= good
                print(f"{target}: {size} bytes through the UDP tunnel, sha256 "
                      f"{'matches' if good else 'DIFFERS'}", flush=True)
        print(f"tunnel datagrams: {near.link.packets_out} out, {near.link.packets_in} in")
    finally:
        client.close()
        server.close()
        near.close()
        far.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
