"""The datagram half of :class:`synack.socket.socket`: what ``socket(AF_INET, SOCK_DGRAM)``
does, over the host's UDP part (:mod:`synack.host.udp`).

The socket class keeps one shape for both types (as the stdlib's does); where a
call differs for UDP it hands over to a function here, which uses the socket's
own locking and waiting helpers (``_locked``, ``_blocking``). Semantics are
Linux's: ``connect`` fixes the peer and filters what is received; ``send``
without a peer is ``EDESTADDRREQ``; a datagram longer than the buffer given to
``recv`` is cut and the rest discarded; an ICMP port unreachable for a
connected socket makes the next ``send`` or ``recv`` raise
``ConnectionRefusedError`` once.
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import TYPE_CHECKING

from synack.sockopts import oserror as _oserror

if TYPE_CHECKING:
    from synack.socket import socket

__all__ = ["connect", "recvfrom", "send"]

Addr = tuple[str, int]
_SEND_FLAGS = int(_socket.MSG_DONTWAIT | _socket.MSG_NOSIGNAL | _socket.MSG_CONFIRM)
_RECV_FLAGS = int(_socket.MSG_DONTWAIT | _socket.MSG_PEEK | _socket.MSG_TRUNC)


def _dest(sock: socket, addr: Addr) -> Addr:
    # Linux: INADDR_ANY as a destination means this host.
    return (sock.host.stack.addr, addr[1]) if addr[0] == "0.0.0.0" else addr


def connect(sock: socket, addr: Addr) -> int:
    """Fix the peer (no packet is sent); returns 0 as ``connect_ex`` does."""
    udp = sock.host.stack.udp
    dest = _dest(sock, addr)
    sock._locked(lambda fd, now: udp.connect(fd, dest))
    return 0


def send(sock: socket, data: bytes | bytearray | memoryview, flags: int,
         addr: Addr | None) -> int:
    """One datagram to ``addr`` (None: the connected peer); never blocks."""
    if flags & ~_SEND_FLAGS:
        raise _oserror(errno.EOPNOTSUPP)
    udp = sock.host.stack.udp
    dest = None if addr is None else _dest(sock, addr)
    return sock._locked(lambda fd, now: udp.sendto(fd, data, dest, now=now))


def recvfrom(sock: socket, bufsize: int, flags: int) -> tuple[bytes, Addr]:
    """The next datagram (cut to ``bufsize``) and its sender, waiting as the timeout says.
    ``MSG_TRUNC`` is accepted; the data returned is still cut to ``bufsize``."""
    if flags & ~_RECV_FLAGS:
        raise _oserror(errno.EOPNOTSUPP)
    if bufsize < 0:
        raise ValueError("negative buffersize in recvfrom")
    udp = sock.host.stack.udp
    peek = bool(flags & _socket.MSG_PEEK)

    def attempt(fd: int, now: int) -> tuple[bytes, Addr]:
        got = udp.recvfrom(fd, bufsize, peek=peek)
        if got is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return got

    return sock._blocking(attempt, nonblock=bool(flags & _socket.MSG_DONTWAIT))
