"""``bench/loop_cost.py`` as the live conn/s row batches it, on the device's own code.

Against a TAP, a kernel client's frames reach ``synack serve echo`` about two to a
batch (strace: ~2.2 ``epoll_wait`` and 8 reads per connection): the ACK that ends the
handshake with the request, the ACK of the echo with the FIN, the last ACK with the
next connection's SYN. This bench hands them over so -- ``[SYN]``, ``[ACK, data]``,
``[ACK, FIN]``, ``[ACK, next SYN]``: three batches a connection -- and its TAP
stand-in is one end of an ``AF_UNIX`` ``SOCK_SEQPACKET`` pair (which keeps frame
boundaries, as a TAP does) run by :class:`~synack.link.tundev.TunTapDevice`'s own
``read_batch``/``write_many``, so the device's Python is measured too (the kernel's
side of the syscalls is not). Same server, client, seeds and frames as
``loop_cost.py``; only the server's batches are timed; callgrind counts are exact.

    PYTHONPATH=src python bench/loop_live_cost.py [N] [--profile [tottime|cumulative]]
"""

from __future__ import annotations

import hashlib
import select
import socket
import sys
import time
from typing import Any

from synack.apps.simple import EchoServer
from synack.link.tundev import TunTapDevice

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from loop_cost import SERVER, ServerLab, count_arg, print_profile, profiler


def socket_device(lab: ServerLab) -> socket.socket:
    """Make ``lab``'s device run TunTapDevice's code on a socket pair; the kernel's end."""
    dev: Any = lab.dev
    link: Any = lab.loop.link
    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (kernel, ours):
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    dev.fd = ours.fileno()
    dev._sock = ours                 # (kept open as long as the device)
    dev._read_size = 14 + 65535
    ep = select.epoll(1)
    ep.register(ours.fileno(), select.EPOLLIN)
    dev._ep, dev._peek, dev._small = ep, ep.poll, True
    for name in ("read_batch", "write", "write_many"):
        fn = getattr(TunTapDevice, name, None)
        if fn is not None:
            setattr(dev, name, fn.__get__(dev))
    if hasattr(link, "_write_many"):
        link._write_many = getattr(dev, "write_many", None)
    return kernel


def main() -> None:
    n_conns = count_arg(3000)
    prof = profiler()
    digest = hashlib.sha256()      # of every frame the server wrote: a change shows here
    lab = ServerLab(lambda s: [EchoServer(s, 7)], prof)
    kernel = socket_device(lab)
    c, now = lab.client, lab.now
    c.cfg.set("net.ipv4.tcp_tw_reuse", 1)
    held: list[bytes] = []         # client frames that wait for the next batch

    def hold() -> None:
        held.extend(lab.eth + p for p in c.transmit(now=now[0]))

    def batch() -> bool:
        hold()
        if not held:
            return False
        for frame in held:
            kernel.send(frame)
        held.clear()
        t = time.thread_time()
        if prof:
            prof.enable()
        lab.loop._batch(True)
        if prof:
            prof.disable()
        lab.spent += time.thread_time() - t
        lab.batches += 1
        while True:
            try:
                frame = kernel.recv(70000)
            except BlockingIOError:
                return True
            digest.update(frame)
            c.receive(frame[14:], now=now[0])

    for _ in range(n_conns):
        fd = c.socket()
        c.connect_ex(fd, (SERVER, 7), now=now[0])
        batch()                    # [last ACK of the one before, SYN] -> SYN,ACK
        hold()                     # the handshake's ACK goes with the request
        c.send(fd, b"x", now=now[0])
        batch()                    # [ACK, data] -> ACK, echo
        if c.recv(fd, 10, now=now[0]) != b"x":
            raise SystemExit("no echo")
        c.close(fd, now=now[0])
        batch()                    # [ACK, FIN] -> FIN
        hold()                     # the last ACK goes with the next SYN
        now[0] += 100
        d = c.next_deadline()
        if d is not None and d <= now[0]:
            c.tick(now=now[0])
        c.changes.clear()
    while batch():
        pass
    print(f"server side, live batching, device code: {lab.spent / n_conns * 1e6:.1f} us per "
          f"connection, {lab.batches / n_conns:.1f} batches each; "
          f"frames {digest.hexdigest()[:16]}")
    print_profile(prof)


if __name__ == "__main__":
    main()
