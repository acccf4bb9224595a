"""Event-driven servers over a Stack's non-blocking calls.

Theory of operation
-------------------
A server here is not a thread per connection but a set of small state
machines polled by whoever drives the stack, in the driver's own thread (the
link event loop, or the simulator), like a process woken by ``epoll``. The
driver sees an :class:`~synack.apps.runner.AppRunner`, which polls every
application just before it collects the stack's outgoing packets, so an
application reacts to a segment in the same instant and its reply leaves in the
same batch.

:class:`Server` owns a listening socket and one :class:`Handler` per accepted
connection. A handler keeps an output buffer and, optionally, a *body*: an
iterator of byte chunks pulled only when the buffer runs low, so a server can
stream gigabytes without holding them. It stops reading while its output is
backed up (``OUT_HIGH``), which is what turns a slow reader into a closed TCP
window at the sender instead of unbounded memory here.
"""

from __future__ import annotations

import socket as _socket
from collections.abc import Iterator
from typing import Protocol

from synack.stack import Addr, Stack

OUT_HIGH = 256 * 1024
"""Stop reading a connection while this many bytes wait to be sent on it."""

BODY_LOW = 64 * 1024
"""Pull the next body chunk when less than this is waiting to be sent."""

RECV_CHUNK = 64 * 1024


class App(Protocol):
    """Anything an :class:`~synack.apps.runner.AppRunner` polls."""

    def poll(self, now: int) -> None:
        """Look at the sockets and act; must not block."""


class Handler:
    """One accepted connection. Subclasses override :meth:`on_data` and friends."""

    def __init__(self, server: Server, fd: int, peer: Addr) -> None:
        self.server = server
        self.stack: Stack = server.stack
        self.fd = fd
        self.peer = peer
        self.out = bytearray()
        self.body: Iterator[bytes] | None = None
        self.eof = False          # the peer sent FIN
        self.closing = False      # close once the output is flushed
        self.reading = True       # subclasses pause reading (e.g. between HTTP requests)
        self.started = False

    # ------------------------------------------------------------ for subclasses
    def on_open(self, now: int) -> None:
        """The connection was accepted."""

    def on_data(self, data: bytes, now: int) -> None:
        """Bytes arrived."""

    def on_eof(self, now: int) -> None:
        """The peer half-closed; by default finish what is queued and close."""
        self.finish()

    def on_body_done(self, now: int) -> None:
        """The current body has been queued completely."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for the peer."""
        self.out += data

    def send_body(self, chunks: Iterator[bytes]) -> None:
        """Stream ``chunks`` after what is queued, pulling them as the window allows."""
        self.body = chunks

    def finish(self) -> None:
        """Close after everything queued (body included) has been handed to TCP."""
        self.closing = True

    # ------------------------------------------------------------ the poll
    def poll(self, now: int) -> bool:
        """Move bytes both ways as far as the stack allows; False once closed."""
        if not self.started:
            self.started = True
            self.on_open(now)
        stack, fd = self.stack, self.fd
        while True:
            # Output first: it frees buffer space that lets us read again.
            while True:
                if len(self.out) < BODY_LOW and self.body is not None:
                    self._pull_body(now)
                if not self.out:
                    break
                try:
                    n = stack.send(fd, self.out, now=now)
                except BlockingIOError:
                    break
                except OSError:
                    self._abort(now)
                    return False
                del self.out[:n]
            if self.closing and not self.out and self.body is None:
                self._close(now)
                return False
            if self.eof or not self.reading or len(self.out) >= OUT_HIGH:
                return True
            try:
                data = stack.recv(fd, RECV_CHUNK, now=now)
            except BlockingIOError:
                return True
            except OSError:
                self._abort(now)
                return False
            if data:
                self.on_data(data, now)
            else:
                self.eof = True
                self.on_eof(now)

    def _pull_body(self, now: int) -> None:
        assert self.body is not None
        while len(self.out) < BODY_LOW:
            chunk = next(self.body, None)
            if chunk is None:
                self.body = None
                self.on_body_done(now)
                return
            self.out += chunk

    def _close(self, now: int) -> None:
        try:
            self.stack.close(self.fd, now=now)
        except OSError:
            pass

    def _abort(self, now: int) -> None:
        """The connection failed (reset, timed out): drop what is queued and close."""
        self.server.stack.stats["app connections aborted"] += 1
        body, self.body = self.body, None
        if body is not None and hasattr(body, "close"):
            body.close()      # a generator holding a file closes it here
        self.out.clear()
        self._close(now)


class Server:
    """A listening socket and the handlers of its accepted connections."""

    handler: type[Handler] = Handler
    name = "server"

    def __init__(self, stack: Stack, port: int, *, addr: str = "0.0.0.0",
                 backlog: int = 128) -> None:
        self.stack = stack
        self.fd = stack.socket()
        stack.setsockopt(self.fd, _socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        stack.bind(self.fd, (addr, port))
        stack.listen(self.fd, backlog)
        self.port = stack.getsockname(self.fd)[1]
        self.handlers: dict[int, Handler] = {}
        self.accepted = 0

    def make_handler(self, fd: int, peer: Addr) -> Handler:
        """A handler for a newly accepted connection."""
        return self.handler(self, fd, peer)

    def poll(self, now: int) -> None:
        """Accept what is waiting, then service every connection."""
        while True:
            try:
                fd, peer = self.stack.accept(self.fd)
            except BlockingIOError:
                break
            self.accepted += 1
            self.handlers[fd] = self.make_handler(fd, peer)
        for fd, h in list(self.handlers.items()):
            if not h.poll(now):
                del self.handlers[fd]

    def close(self, now: int) -> None:
        """Stop listening and close every connection."""
        self.stack.close(self.fd, now=now)
        for h in self.handlers.values():
            h._close(now)
        self.handlers.clear()
