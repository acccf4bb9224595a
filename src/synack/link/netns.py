"""The lab in one flag: a network namespace whose kernel talks to synack over a TAP.

``Lab("sa-lab")`` makes (or reuses) the namespace, opens a TAP in this process,
moves the interface into the namespace -- the descriptor stays valid, so synack
keeps the cable's other end -- gives the kernel side its addresses (192.0.2.1/24
and 2001:db8::1/64; synack is 192.0.2.2 and 2001:db8::2) and brings the links up.

IPv6 used to be disabled in the namespace because the kernel's Neighbor Discovery
and MLD chatter (router solicitations, MLD reports, DAD for its link-local
address) reached synack as packets it did not understand. Now synack speaks ND
(:mod:`synack.link.nd`) and drops the rest quietly, counted ("nd ignored" on a
TAP, "icmp6: ignored ND/MLD" in the stack over a TUN). ``ipv6=False`` (``--no-ipv6``)
still turns it off, before the interface comes up, so not one such packet leaves.
On exit, and on SIGINT/SIGTERM, which are turned into exceptions so the ``with``
unwinds, it removes what it made: the interface, and the namespace if it made it.

:func:`add_link_args` and :func:`open_link` are the options every network
command shares (``--netns`` for the lab, ``--tap`` for a device the user made).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from synack.link.impair import ImpairedLink, parse_impairment
from synack.link.tap import TapLink
from synack.link.tun import TunLink

if TYPE_CHECKING:
    from synack.sim.link import LinkParams

TXQUEUELEN = 10_000
"""Packets the kernel may queue towards synack on a lab's TAP/TUN (default 500 or 1000)."""

__all__ = ["Lab", "LabError", "add_link_args", "ip", "netns_exists", "open_link"]


class LabError(OSError):
    """An ``ip`` or ``sysctl`` command failed; the message is its stderr."""


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS`` and return its output; :class:`LabError` (one line) on failure."""
    return _run(["ip", *args], check=check)


def _run(cmd: list[str], *, check: bool = True) -> str:
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} not found (install iproute2)") from exc
    if check and res.returncode != 0:
        reason = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise LabError(f"{' '.join(cmd)}: {reason[0] if reason else f'exit {res.returncode}'}")
    return res.stdout


def netns_exists(name: str) -> bool:
    """Whether ``ip netns list`` shows ``name``."""
    return any(line.split()[0] == name for line in ip("netns", "list").splitlines() if line.strip())


def _unwind_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM: unwind the ``with`` once; later signals (``timeout``, a process
    group kill and the shell often send two) must not interrupt the cleanup itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


class Lab:
    """A namespace with a TAP (or TUN) to synack in it; a context manager returning the link.

    ``kernel_addr`` is the kernel's address with its prefix; ``synack_addr`` must
    be in the same subnet. ``tap`` names the interface (default: the kernel picks
    ``synack0``, ``synack1``, ...). ``kind`` "tun" gives a TUN link instead.
    """

    def __init__(
        self,
        netns: str,
        *,
        kernel_addr: str = "192.0.2.1/24",
        synack_addr: str = "192.0.2.2",
        tap: str | None = None,
        offload: bool = False,
        mtu: int = 1500,
        kind: str = "tap",
        kernel_addr6: str | None = "2001:db8::1/64",
        synack_addr6: str | None = "2001:db8::2",
    ) -> None:
        iface = ipaddress.IPv4Interface(kernel_addr)           # ValueError names the bad one
        if (kernel_addr6 is None) != (synack_addr6 is None):
            raise ValueError("give both IPv6 addresses (kernel and synack) or neither")
        if kernel_addr6 is not None and synack_addr6 is not None:
            iface6 = ipaddress.IPv6Interface(kernel_addr6)
            ours6 = ipaddress.IPv6Address(synack_addr6)
            if ours6 not in iface6.network or ours6 == iface6.ip:
                raise ValueError(f"synack address {synack_addr6} must be another address "
                                 f"in {iface6.network}")
            synack_addr6 = str(ours6)            # inet_ntop's spelling, as the stack keys it
            self.prefixlen6 = iface6.network.prefixlen
        ours = ipaddress.IPv4Address(synack_addr)
        if ours not in iface.network:
            raise ValueError(f"synack address {synack_addr} is not in {iface.network}")
        if ours == iface.ip:
            raise ValueError(f"synack and the kernel cannot both be {synack_addr}")
        if kind not in ("tap", "tun"):
            raise ValueError(f"link kind must be tap or tun, not {kind!r}")
        self.netns = netns
        self.kernel_addr = kernel_addr
        self.kernel_ip = str(iface.ip)
        self.synack_addr = synack_addr
        self.prefixlen = iface.network.prefixlen
        self.tap = tap
        self.offload = offload
        self.mtu = mtu
        self.kind = kind
        self.kernel_addr6 = kernel_addr6
        self.synack_addr6 = synack_addr6
        self.link: TapLink | TunLink | None = None
        self.created_netns = False
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> TapLink | TunLink:
        self._install_signals()
        try:
            return self._setup()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def exec(self, *cmd: str, check: bool = True) -> str:
        """Run a command inside the namespace (``ip netns exec``) and return its output."""
        return _run(["ip", "netns", "exec", self.netns, *cmd], check=check)

    def _setup(self) -> TapLink | TunLink:
        if not netns_exists(self.netns):
            ip("netns", "add", self.netns)
            self.created_netns = True
        name = self.tap or f"synack{self.kind == 'tun' and 'u' or ''}%d"
        if self.kind == "tap":
            self.link = TapLink(name, addr=self.synack_addr, prefixlen=self.prefixlen,
                                offload=self.offload, mtu=self.mtu, addr6=self.synack_addr6,
                                prefixlen6=getattr(self, "prefixlen6", 64))
        else:
            self.link = TunLink(name, offload=self.offload, mtu=self.mtu)
            self.link.addr6 = self.synack_addr6
        dev, ns = self.link.name, self.netns
        ip("link", "set", dev, "netns", ns)
        if self.kernel_addr6 is None:
            # IPv6 off before the interface comes up, so not even one ND or MLD packet leaves.
            for scope in ("all", "default", dev):
                self.exec("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1")
        else:
            for scope in ("all", "default", dev):
                self.exec("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=0")
        ip("-n", ns, "addr", "add", self.kernel_addr, "dev", dev)
        if self.kernel_addr6 is not None:
            # nodad: usable at once (duplicate address detection would hold it a second;
            # its solicitation still shows synack's ND at work on the link-local address).
            ip("-n", ns, "-6", "addr", "add", self.kernel_addr6, "dev", dev, "nodad")
        # The kernel queues what it sends us in the device's ring, txqueuelen packets
        # long (tun's ptr_ring follows it). The default drops bursts -- ab -c 500's SYNs
        # came back as retransmissions -- so the lab gives it room, as a NIC driver
        # sizes its rings for the traffic it expects.
        ip("-n", ns, "link", "set", dev, "txqueuelen", str(TXQUEUELEN))
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", dev, "up")
        return self.link

    def close(self) -> None:
        """Remove what this lab made. Idempotent; safe after a failed setup."""
        try:
            if self.link is not None:
                name = self.link.name
                self.link.close()   # a non-persistent TUN/TAP goes away with its descriptor
                self.link = None
                ip("-n", self.netns, "link", "del", name, check=False)
            if self.created_netns:
                self.created_netns = False
                ip("netns", "del", self.netns, check=False)
        finally:
            self._restore_signals()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; its owner handles signals then
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, _unwind_once)

    def _restore_signals(self) -> None:
        while self._old_handlers:
            sig, old = self._old_handlers.popitem()
            signal.signal(sig, old)


# ------------------------------------------------------------------ command options
def add_link_args(parser: argparse.ArgumentParser) -> None:
    """The options every network command shares: where synack's wire is."""
    g = parser.add_argument_group("link (one of --netns or --tap)")
    g.add_argument("--netns", metavar="NAME",
                   help="the lab: a namespace (made if missing, then removed) whose kernel "
                        "is synack's peer over a TAP")
    g.add_argument("--tap", metavar="IFACE",
                   help="use a TAP you made (ip tuntap add IFACE mode tap); needs --addr")
    g.add_argument("--tun", action="store_true",
                   help="with --netns: a TUN (IP only, no Ethernet or ARP) instead of a TAP")
    g.add_argument("--addr", metavar="A/N", help="with --tap: synack's address and prefix")
    g.add_argument("--kernel-addr", default="192.0.2.1/24", metavar="A/N",
                   help="with --netns: the kernel's address (default %(default)s)")
    g.add_argument("--synack-addr", default="192.0.2.2", metavar="A",
                   help="with --netns: synack's address (default %(default)s)")
    g.add_argument("--kernel-addr6", default="2001:db8::1/64", metavar="A/N",
                   help="with --netns: the kernel's IPv6 address (default %(default)s)")
    g.add_argument("--synack-addr6", default="2001:db8::2", metavar="A",
                   help="with --netns: synack's IPv6 address (default %(default)s)")
    g.add_argument("--ipv6", action=argparse.BooleanOptionalAction, default=True,
                   help="with --netns: IPv6 in the lab too (default on; --no-ipv6 disables "
                        "it in the namespace)")
    g.add_argument("--offload", action=argparse.BooleanOptionalAction, default=False,
                   help="virtio-net headers: checksum offload and TSO/GSO (default off)")
    g.add_argument("--mtu", type=int, metavar="N",
                   help="MTU of the device, 68..65521 (default 1500)")
    g.add_argument("--impair", metavar="SPEC",
                   help="netem-like impairment applied by synack to both directions, e.g. "
                        "'delay 10ms loss 2%% reorder 5%%' (for kernels without sch_netem)")
    g.add_argument("--impair-seed", type=int, default=1, metavar="N",
                   help="seed of --impair's dice (default %(default)s)")


@contextmanager
def open_link(args: argparse.Namespace) -> Iterator[tuple[str, TapLink | TunLink]]:
    """(synack's address, link) from :func:`add_link_args`' options; cleans up on exit.

    Raises ``ValueError`` with a one-line reason for a bad combination.
    """
    if bool(args.netns) == bool(args.tap):
        raise ValueError("give exactly one of --netns NAME or --tap IFACE")
    mtu = args.mtu if args.mtu is not None else 1500
    impair = getattr(args, "impair", None)
    params = parse_impairment(impair) if impair else None    # ValueError: one line
    if args.netns:
        if os.geteuid() != 0:
            raise ValueError("--netns needs root (it makes a network namespace and a "
                             "TAP/TUN device): run it with sudo")
        v6 = getattr(args, "ipv6", True)
        lab = Lab(args.netns, kernel_addr=args.kernel_addr, synack_addr=args.synack_addr,
                  offload=args.offload, mtu=mtu, kind="tun" if args.tun else "tap",
                  kernel_addr6=getattr(args, "kernel_addr6", "2001:db8::1/64") if v6 else None,
                  synack_addr6=getattr(args, "synack_addr6", "2001:db8::2") if v6 else None)
        with lab as link:
            if isinstance(link, TapLink):
                link.on_warning = print_warning
            yield args.synack_addr, _impaired(link, params, args)
        return
    if args.tun:
        raise ValueError("--tun goes with --netns (for your own device use --tap)")
    if not args.addr:
        raise ValueError("--tap needs --addr A/N (synack's address on that device)")
    iface = ipaddress.IPv4Interface(args.addr)
    if not os.path.exists(f"/sys/class/net/{args.tap}"):
        # Opening /dev/net/tun with a new name would make a throwaway device nobody set up.
        raise ValueError(f"--tap {args.tap}: no such device (make it first, e.g. "
                         f"ip tuntap add dev {args.tap} mode tap user $USER)")
    link = TapLink(args.tap, addr=str(iface.ip), prefixlen=iface.network.prefixlen,
                   offload=args.offload, mtu=mtu)
    try:
        yield str(iface.ip), _impaired(link, params, args)
    finally:
        link.close()


def print_warning(line: str) -> None:
    """A link's one-line warning (duplicate address detection failed), on stderr."""
    print(f"synack: {line}", file=sys.stderr)


def _impaired(link: TapLink | TunLink, params: LinkParams | None,
              args: argparse.Namespace) -> Any:
    """The link itself, or wrapped in :class:`ImpairedLink` when ``--impair`` was given."""
    if params is None:
        return link
    return ImpairedLink(link, outbound=params, inbound=params,
                        seed=getattr(args, "impair_seed", 1))
