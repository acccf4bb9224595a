"""The kernel target's wire: a fresh network namespace with a TUN device, as packetdrill's.

packetdrill's local mode (``netdev.c``) clones a TUN device named ``tun0`` with
``IFF_TUN | IFF_NO_PI | IFF_VNET_HDR``, declares checksum and TSO offloads
(``TUNSETOFFLOAD``), gives it the local address, routes the remote address to it,
and watches what the kernel sends with a packet socket bound to the device, whose
kernel timestamps (``SIOCGSTAMP``) say when each packet left. With the offloads the
kernel hands over TSO super-segments, so a script's ``> P. 1:10001(10000)`` is one
packet, as on a NIC with TSO. This module does the same from Python:

* :func:`enter_fresh_netns` moves the calling thread into a new, anonymous network
  namespace (``unshare(CLONE_NEWNET)``); it vanishes, with its devices, sockets and
  sysctls, when nothing uses it any more -- even after a crash or SIGKILL, so nothing
  needs cleaning up by name.
* :class:`TunWire` opens ``tun0`` there, configures it and the namespace (loopback
  up, IPv6 off so no ND/MLD noise), writes inbound packets and reads outbound ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import select
import socket
import struct
import subprocess
import time

__all__ = ["NetnsError", "TunWire", "enter_fresh_netns"]

CLONE_NEWNET = 0x40000000      # include/uapi/linux/sched.h

# include/uapi/linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
VNET_HDR_LEN = 10              # sizeof(struct virtio_net_hdr)
GSO_TCPV4 = 1                  # VIRTIO_NET_HDR_GSO_TCPV4
GSO_TCPV6 = 4                  # VIRTIO_NET_HDR_GSO_TCPV6

SIOCGSTAMP = 0x8906            # include/uapi/asm-generic/sockios.h (struct timeval)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4            # include/uapi/linux/if_packet.h
TUN_NAME = "tun0"              # packetdrill's scripts name it (defaults.sh: tc ... dev tun0)
_READ = 65536 + VNET_HDR_LEN


class NetnsError(OSError):
    """Setting up the namespace or its device failed; the message says which step."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def enter_fresh_netns() -> None:
    """Move the calling thread into a new network namespace (``unshare(CLONE_NEWNET)``);
    threads and processes it starts afterwards are in it too."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        why = (res.stderr.strip() or f"exit {res.returncode}").splitlines()[0]
        raise NetnsError(errno.EIO, f"ip {' '.join(args)}: {why}")


def _sysctl(name: str, value: str) -> None:
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


class TunWire:
    """``tun0`` in the current (fresh) namespace: inject and sniff IP packets (IPv6
    with ``--ip_version=ipv6``: IPv6 addresses on the device, no DAD).

    Times are ``time.time_ns() // 1000`` (the clock packetdrill uses, the one the
    packet socket's kernel timestamps are in).
    """

    def __init__(self, local_ip: str, remote_ip: str, *, mtu: int = 1500,
                 prefixlen: int = 24) -> None:
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.tun_fd = -1
        self.sniffer: socket.socket | None = None
        self.v6 = ":" in local_ip
        try:
            # IPv6 off before any interface comes up: no ND, MLD or RS on the wire (over
            # IPv6 it stays on; the sniffer skips what is not TCP).
            for scope in ("all", "default"):
                _sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "0" if self.v6 else "1")
        except OSError:
            pass                                   # kernel without IPv6: nothing to silence
        _ip("link", "set", "lo", "up")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.tun_fd = fd
        try:
            ifr = struct.pack("16sH", TUN_NAME.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifr.ljust(40, b"\0"))
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        except OSError as exc:
            self.close()
            raise NetnsError(exc.errno, f"open {TUN_NAME}: {exc.strerror}") from exc
        try:
            _ip("link", "set", TUN_NAME, "mtu", str(mtu))
            if self.v6:
                _ip("-6", "addr", "add", f"{local_ip}/64", "dev", TUN_NAME, "nodad")
            else:
                _ip("addr", "add", f"{local_ip}/{prefixlen}", "dev", TUN_NAME)
            _ip("link", "set", TUN_NAME, "up")
            # TUN is point-to-point (no ARP): the remote side is simply on the device.
            _ip("route", "replace", f"{remote_ip}/{128 if self.v6 else 32}", "dev", TUN_NAME)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
            s.bind((TUN_NAME, ETH_P_ALL))
            s.setblocking(False)
            self.sniffer = s
        except BaseException:
            self.close()
            raise

    @staticmethod
    def now_us() -> int:
        """Wall-clock microseconds (``gettimeofday``), the sniffer's timestamp clock."""
        return time.time_ns() // 1000

    def inject(self, packet: bytes, *, gso_size: int = 0) -> None:
        """Write one IPv4 packet as if it arrived on the wire.

        ``gso_size`` marks a TCP packet larger than the MTU as a GRO aggregate the
        kernel may take whole (packetdrill's ``--mss``).
        """
        gso_type = (GSO_TCPV6 if self.v6 else GSO_TCPV4) if gso_size else 0
        hdr = struct.pack("=BBHHHH", 0, gso_type, 0, gso_size, 0, 0)
        os.writev(self.tun_fd, [hdr, packet])

    def _drain_tun(self) -> None:
        """Consume what the kernel queued on the device: its transmit completes (packetdrill
        reads these too, so TCP sees the packets leave the host queue)."""
        try:
            while True:
                os.read(self.tun_fd, _READ)
        except BlockingIOError:
            pass

    def sniff(self, deadline_us: int) -> tuple[int, bytes] | None:
        """The next IPv4 packet the kernel sent on the device, with its kernel timestamp.

        Waits until ``deadline_us`` (wall clock) at most. IPv6, ARP and other noise
        is skipped; so is everything the device received (our own injections).
        """
        s = self.sniffer
        assert s is not None
        while True:
            try:
                data, addr = s.recvfrom(_READ)
            except BlockingIOError:
                self._drain_tun()
                left = deadline_us - self.now_us()
                if left <= 0:
                    return None
                select.select([s], [], [], left / 1e6)
                continue
            if addr[2] != PACKET_OUTGOING or not data or data[0] >> 4 != (6 if self.v6 else 4):
                continue
            raw = fcntl.ioctl(s.fileno(), SIOCGSTAMP, bytes(16))
            sec, usec = struct.unpack("=qq", raw)
            self._drain_tun()
            return sec * 1_000_000 + usec, data

    def close(self) -> None:
        """Close the sniffer and the device (the namespace goes with the process). Idempotent."""
        if self.sniffer is not None:
            self.sniffer.close()
            self.sniffer = None
        if self.tun_fd >= 0:
            fd, self.tun_fd = self.tun_fd, -1
            os.close(fd)
