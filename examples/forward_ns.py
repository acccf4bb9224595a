"""A namespace whose every TCP connection is terminated by synack (tun2socks in 100 lines).

    sudo PYTHONPATH=src python examples/forward_ns.py --netns sa-fwd --to 127.0.0.1

makes the namespace ``sa-fwd`` with a TUN to this process as its *default route*
(``--link tap``: a TAP, the route via synack's address),
so every packet the namespace sends to anywhere reaches synack. A
:class:`synack.forwarder.Forwarder` accepts each connection -- whatever the
address and port -- and splices it to a socket of this host's kernel, in the root
namespace, at ``--to`` and the same port (a transparent proxy). A port nothing
listens on there gets RST, as if the far end had refused. Try, in another shell::

    python3 -m http.server -b 127.0.0.1 8000                  # on the host
    sudo ip netns exec sa-fwd curl http://198.51.100.7:8000/   # any address works
    sudo synack ss                                             # the terminated connections

Ctrl-C removes the namespace and the device. Traffic goes only to the namespace
and to the host's loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket as kernel_socket
import sys

from synack.api_host import Host
from synack.cli import load_sysctl
from synack.commands._live import ControlServer
from synack.forwarder import Forwarder, ForwardRequest, splice
from synack.host.ssrows import ss_rows
from synack.link.loop import Loop
from synack.link.netns import Lab, ip
from synack.stack import Stack


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--netns", default="sa-fwd", help="namespace to make (default %(default)s)")
    p.add_argument("--to", default="127.0.0.1",
                   help="where connections go: this address, the same port (default %(default)s)")
    p.add_argument("--kernel-addr", default="192.0.2.1/24",
                   help="the namespace's own address on the TUN (default %(default)s)")
    p.add_argument("--synack-addr", default="192.0.2.2", help="synack's (default %(default)s)")
    p.add_argument("--link", choices=("tun", "tap"), default="tun",
                   help="the device: a TUN is the default route itself; with a TAP the "
                        "route goes via synack's address (default %(default)s)")
    args = p.parse_args()
    upstream = str(ipaddress.ip_address(args.to))

    def handler(req: ForwardRequest) -> None:
        """Connect upstream first: a refused port is refused to the client too (RST)."""
        try:
            up = kernel_socket.create_connection((upstream, req.dst[1]), timeout=5)
        except OSError as exc:
            print(f"{req!r}: upstream {upstream}:{req.dst[1]}: {exc.strerror or exc}; RST",
                  flush=True)
            req.reject()
            return
        up.settimeout(None)
        try:
            conn = req.accept()
        except OSError:
            up.close()
            return
        sent, got = splice(conn, up)
        print(f"{req!r}: {sent} bytes up, {got} down", flush=True)

    with Lab(args.netns, kernel_addr=args.kernel_addr, synack_addr=args.synack_addr,
             kind=args.link) as link:
        # Every destination through the device: synack terminates the whole namespace's TCP.
        via = ["via", args.synack_addr] if args.link == "tap" else []
        ip("-n", args.netns, "route", "add", "default", *via, "dev", link.name)
        stack = Stack(args.synack_addr, cfg=load_sysctl(), mtu=link.mtu, name="forward")
        loop = Loop(stack, link, name="forward")
        loop.add_watcher(lambda now: stack.changes.clear())  # nobody reads them: do not hoard
        loop.start()
        host = Host(stack, loop)

        def details(info: bool) -> list[dict[str, object]]:
            with loop.lock:
                return ss_rows(stack, loop.now(), info=info)

        ctl = ControlServer("forward", list, details=details)
        fwd = Forwarder(host, handler)
        print(f"forwarding every TCP connection from netns {args.netns} to {upstream}; "
              "Ctrl-C to stop", flush=True)
        try:
            while not loop.done.wait(0.5):     # wake now and then: a signal must land
                pass
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            fwd.close()
            ctl.close()
            loop.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
