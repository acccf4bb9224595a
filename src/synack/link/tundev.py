"""Opening and configuring Linux TUN/TAP devices: the ioctls both links share.

A TUN/TAP device is a file descriptor on ``/dev/net/tun`` bound to a network
interface with ``TUNSETIFF`` (``Documentation/networking/tuntap.rst``). Each
``read`` returns one packet (TUN) or frame (TAP) and each ``write`` sends one;
with ``IFF_VNET_HDR`` every one is preceded by a ``struct virtio_net_hdr``
(:mod:`synack.wire.vnet`), and ``TUNSETOFFLOAD`` tells the kernel which offloads
this side can take, so it may hand over unchecksummed packets and 64 KB GSO
super-segments instead of cutting them up and checksumming each piece.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
from collections import Counter

from synack.stack import Offload
from synack.wire.vnet import VNET_HDR_LEN

__all__ = [
    "MAX_MTU",
    "TSO_MAX",
    "TunTapDevice",
    "set_mtu",
]  # fmt: skip

# include/uapi/linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
SIOCSIFMTU = 0x8922     # include/uapi/linux/sockios.h

MAX_MTU = 65521         # the largest MTU a TAP accepts (measured; MAX_MTU in drivers/net/tun.c)
MIN_MTU = 68            # RFC 791: every IPv4 host must take 68-byte datagrams
# The largest IPv4 packet we hand the device as one TSO super-segment: under the
# 64 KB IP limit with room for headers, like Linux's GSO_LEGACY_MAX_SIZE minus slack.
TSO_MAX = 65_000
BATCH = 256             # packets read per recv_packets call at most, so timers still run
PEEK = 4                # a batch of at most this many frames is small (read_batch)
LONE = 160              # a frame this long or shorter carries no bulk data (read_batch)
LONE_RUN = 8            # lone small frames read in a row before read_batch peeks again
_LONE_FLAGS = 0x0F      # FIN, SYN, RST, PSH: a frame with one of these ends a request
_IFNAMSIZ = 16


def _ifreq(name: str, fmt: str, *values: int) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= _IFNAMSIZ:
        raise ValueError(f"interface name must be 1..15 bytes, not {name!r}")
    return struct.pack(f"{_IFNAMSIZ}s{fmt}", raw, *values).ljust(40, b"\0")


def set_mtu(name: str, mtu: int) -> None:
    """Set an interface's MTU in this network namespace (as ``ip link set NAME mtu N``)."""
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"MTU must be {MIN_MTU}..{MAX_MTU}, not {mtu}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCSIFMTU, _ifreq(name, "i", mtu))


class TunTapDevice:
    """The descriptor of one TUN or TAP interface, non-blocking, with optional offloads.

    ``name`` "" or ending in "%d" lets the kernel choose (``tap0``, ...); the
    chosen name is in :attr:`name`. The interface disappears when the descriptor
    is closed, unless it was made persistent by someone else (``ip tuntap add``).
    """

    def __init__(self, name: str, *, tap: bool, offload: bool = False, mtu: int = 1500) -> None:
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise ValueError(f"MTU must be {MIN_MTU}..{MAX_MTU}, not {mtu}")
        self.tap = tap
        self.mtu = mtu
        self.vnet = offload
        self.stats: Counter[str] = Counter()
        flags = (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            res = fcntl.ioctl(fd, TUNSETIFF, _ifreq(name or ("tap%d" if tap else "tun%d"),
                                                    "H", flags))
            self.name = res[:_IFNAMSIZ].rstrip(b"\0").decode()
            if offload:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            set_mtu(self.name, mtu)
            # A look at the queue without reading it (read_batch): epoll on this alone.
            ep = self._ep = select.epoll(1)
            try:
                ep.register(fd, select.EPOLLIN)
            except BaseException:
                ep.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        self.fd: int | None = fd
        self._peek = ep.poll
        self._small = True                  # the last batch read had at most PEEK frames
        self._lone = 0                      # lone small frames read since the last peek
        self._wrote_bulk = False            # the last frame written carried bulk data
        # Where an IPv4 packet starts in a frame read, and its TCP flags byte.
        self._ip_at = (VNET_HDR_LEN if offload else 0) + (14 if tap else 0)
        self.offload: Offload | None = Offload(tx_csum=True, tso_max=TSO_MAX) if offload else None
        # The largest read: a GSO super-segment (64 KB IP) or an MTU-sized frame, plus headers.
        self._read_size = (VNET_HDR_LEN if offload else 0) + 14 + max(mtu, 65535)

    def fileno(self) -> int:
        """The descriptor; -1 once closed."""
        return -1 if self.fd is None else self.fd

    def read_batch(self, limit: int = BATCH) -> list[bytes]:
        """Up to ``limit`` packets or frames (vnet header included): all that wait.

        After a small batch (at most :data:`PEEK` frames) the next one asks the device
        whether another frame waits (``epoll_wait`` with no timeout) before each read
        after the first, up to PEEK + 1 reads, instead of reading until a read fails
        with EAGAIN: with a frame or two a batch, as requests and replies come, that
        failed read (an exception: five times the Python of the question) was the
        dearest call of the batch. Past PEEK + 1 frames, or after a batch that had more
        (data streaming in: GRO wants every frame there is), it reads until EAGAIN, as
        NAPI polls until its budget is spent or the ring is empty. After a small batch,
        a first frame of at most :data:`LONE` bytes with SYN, FIN, RST or PSH (IPv4), or
        a pure ACK while the last frame written was as small, is the batch, without the
        peek, up to :data:`LONE_RUN` times in a row.
        """
        fd = self.fd
        if fd is None:
            return []
        out: list[bytes] = []
        size = self._read_size
        read = os.read
        peek = PEEK if self._small else 0
        try:
            frame = read(fd, size)
            out.append(frame)
            if peek and (at := self._ip_at) + 33 < len(frame) <= LONE \
                    and self._lone < LONE_RUN and frame[at] == 0x45 \
                    and (frame[at + 33] & _LONE_FLAGS or not self._wrote_bulk):
                # A small TCP segment that ends something (a SYN, a short request with
                # PSH, a FIN), or a pure ACK while what we last wrote was small too, after
                # small batches: the exchange of requests and replies, where the next
                # frame is made by our own reply. Nothing waits behind it to merge, so no
                # peek for another (a syscall): the loop reads again at once. The ACKs of
                # our bulk data (a download's return stream, often several queued) peek
                # as before, and every LONE_RUN lone frames a batch does too, so a queue
                # of them is drained.
                self._lone += 1
                self.stats["frames in"] += 1
                return out
            self._lone = 0
            n = 1
            while n < limit:
                if n <= peek and not self._peek(0, 1):
                    break
                out.append(read(fd, size))
                n += 1
        except BlockingIOError:
            pass
        self._small = len(out) <= PEEK
        self.stats["frames in"] += len(out)
        return out

    def write_many(self, frames: list[bytes]) -> None:
        """Write packets or frames, each whole, in order (:meth:`write` for each, less
        the Python: one count for them all)."""
        fd = self.fd
        stats = self.stats
        if fd is None:
            stats["dropped device closed"] += len(frames)
            return
        write = os.write
        n = 0
        if frames:
            self._wrote_bulk = len(frames[-1]) > LONE   # (read_batch: its ACKs queue up)
        for frame in frames:
            try:
                write(fd, frame)
                n += 1
            except BlockingIOError:
                stats["dropped device busy"] += 1
            except OSError as exc:
                stats[f"dropped write error {exc.errno}"] += 1
        stats["frames out"] += n

    def write(self, parts: list[bytes]) -> None:
        """Write one packet or frame given as pieces (no join: ``writev``)."""
        fd = self.fd
        if fd is None:
            self.stats["dropped device closed"] += 1
            return
        self._wrote_bulk = len(parts[-1]) > LONE if parts else False
        try:
            os.writev(fd, parts)
            self.stats["frames out"] += 1
        except BlockingIOError:
            self.stats["dropped device busy"] += 1
        except OSError as exc:
            # EIO while the interface is down, EINVAL for a header the kernel refuses:
            # the packet is lost as on any wire, and TCP retransmits.
            self.stats[f"dropped write error {exc.errno}"] += 1

    def close(self) -> None:
        """Close the descriptor (the interface goes with it). Idempotent."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            self._ep.close()
            os.close(fd)
