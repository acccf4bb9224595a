"""An OS descriptor that mirrors a synack socket's readiness, for select/poll/epoll.

Theory of operation
-------------------
A synack socket lives in a Python stack, so the kernel knows nothing of it;
``select()``, ``selectors`` and asyncio's selector loop need a real descriptor
whose readiness is the socket's. :class:`ReadyFd` is one end (*user*) of an
``AF_UNIX`` stream socketpair, whose two readiness bits are driven
independently from the other end (*peer*), which only this module touches:

* **readable** exactly while one byte sits in *user*'s receive queue: the peer
  writes it when the synack socket becomes readable and *user* reads it back
  when it stops being readable;
* **writable** exactly while *user*'s send buffer has room: Linux counts the
  bytes *user* sent that still sit in *peer*'s receive queue against *user*'s
  ``SO_SNDBUF`` (``unix_writable()``: writable while under a quarter of it), so
  *user* sends until ``EAGAIN`` to stop being writable, and *peer* reads all
  of it back to be writable again. ``SO_SNDBUF`` is set to the minimum, so one
  send of a few kilobytes fills it.

The two bits never interfere: the readiness byte travels peer -> user and the
filler user -> peer. Both transitions are level changes, so select, poll and
level- or edge-triggered epoll all see them exactly. (One eventfd could only
carry readability; two descriptors cannot be one ``fileno()``.)

The owner calls :meth:`ReadyFd.update` with the socket's readiness after every
change, with the host loop's lock held: after its own calls, and from a
``loop.watch()`` watcher that the loop runs only after batches that touched
the socket (so the cost is per changed descriptor, and nothing at all for
sockets nobody asked ``fileno()`` of).
"""

from __future__ import annotations

import socket as _socket

__all__ = ["ReadyFd"]

_FILL = bytes(16384)


class ReadyFd:
    """A kernel descriptor readable/writable exactly as told by :meth:`update`."""

    __slots__ = ("_peer", "_user", "readable", "writable")

    def __init__(self) -> None:
        user, peer = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        user.setblocking(False)
        peer.setblocking(False)
        user.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 1)   # the kernel's minimum
        self._user, self._peer = user, peer
        self.readable = False
        self.writable = True
        self._set_writable(False)

    def fileno(self) -> int:
        """The descriptor to hand to select/poll/epoll (-1 once closed)."""
        return self._user.fileno()

    def update(self, readable: bool, writable: bool) -> None:
        """Make the descriptor's readiness ``readable`` / ``writable``; only changes cost."""
        if readable != self.readable:
            if readable:
                self._peer.send(b"\x01")
            else:
                self._user.recv(1)
            self.readable = readable
        if writable != self.writable:
            self._set_writable(writable)

    def _set_writable(self, writable: bool) -> None:
        if writable:
            peer = self._peer
            while True:
                try:
                    if not peer.recv(65536):
                        break
                except BlockingIOError:
                    break
        else:
            user = self._user
            while True:
                try:
                    user.send(_FILL)
                except BlockingIOError:
                    break
        self.writable = writable

    def close(self) -> None:
        """Close both ends (a selector holding the descriptor sees it go away)."""
        self._user.close()
        self._peer.close()
