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

Like ``epoll``, the runner tells a server which descriptors something happened
to (the stack's ``touched`` set: a segment arrived, a timer ran); the server
polls only those handlers, plus new ones and those whose idle deadline passed.
A server with 50,000 quiet connections does no work for them.

:class:`Server` owns a listening socket and one :class:`Handler` per accepted
connection. A handler keeps an output buffer and, optionally, a *body*: an
iterator of byte chunks pulled only when the buffer runs low, so a server can
stream gigabytes without holding them. It stops reading while its output is
backed up (``OUT_HIGH``), which is what turns a slow reader into a closed TCP
window at the sender instead of unbounded memory here.
"""

from __future__ import annotations

import heapq
import socket as _socket
from collections.abc import Collection, Iterator, Sized
from typing import Protocol

from synack.stack import Addr, Stack

OUT_HIGH = 256 * 1024
"""Stop reading a connection while this many bytes wait to be sent on it."""

BODY_LOW = 64 * 1024
"""Pull the next body chunk when less than this is waiting to be sent."""

RECV_CHUNK = 64 * 1024


class App(Protocol):
    """Anything an :class:`~synack.apps.runner.AppRunner` polls.

    An app may also define ``poll_ready(now, fds)``, called instead of ``poll``
    with the descriptors something happened to (to read only: the driver is handed
    the same set), and ``next_deadline()``, the time it next wants to be polled
    without any event (None: never). The runner looks both up when its ``apps``
    list changes, not every batch.
    """

    def poll(self, now: int) -> None:
        """Look at the sockets and act; must not block."""


class Handler:
    """One accepted connection. Subclasses override :meth:`on_data` and friends."""

    timed = False
    """The class overrides :meth:`deadline` (set for each subclass): without one, the
    server asks no handler of it for a deadline after each poll."""

    opens = False
    """The class overrides :meth:`on_open` (set for each subclass): without one, the
    first poll calls nothing for it."""

    eager = False
    """The class needs a first poll whatever happened: it opens (:meth:`on_open`), is
    timed (the first poll arms its deadline) or polls its own way. Without one, a
    connection accepted with nothing to read is first polled when a segment or timer
    touches it (epoll reports a new socket only once it is ready)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.timed = cls.deadline is not Handler.deadline
        cls.opens = cls.on_open is not Handler.on_open
        cls.eager = cls.timed or cls.opens or cls.poll is not Handler.poll

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
        self.last_io = 0          # when bytes last moved either way (idle timeout)
        self.heap_at: int | None = None   # the server's deadline-heap entry for us

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

    def deadline(self) -> int | None:
        """When this connection has been idle too long (None: never). Subclasses with
        timeouts override it; :meth:`on_timeout` runs when it passes."""
        return None

    def on_timeout(self, now: int) -> None:
        """The :meth:`deadline` passed; by default close the connection."""
        self.server.stack.stats["app connections timed out"] += 1
        self.out.clear()
        self.body = None
        self.finish()

    # ------------------------------------------------------------ the poll
    def poll(self, now: int) -> bool:
        """Move bytes both ways as far as the stack allows; False once closed."""
        if not self.started:
            self.started = True
            if self.opens:
                self.on_open(now)
        stack, fd, out = self.stack, self.fd, self.out   # out is never rebound
        while True:
            # Output first: it frees buffer space that lets us read again.
            while True:
                if self.body is not None and len(out) < BODY_LOW:
                    self._pull_body(now)
                if not out:
                    break
                try:
                    # send(), positional, and -1 for its BlockingIOError (EAGAIN): a full
                    # send buffer costs no exception each poll.
                    n = stack._send(fd, out, now)
                except BlockingIOError:
                    break                   # (EINPROGRESS: a deferred Fast Open connect)
                except OSError:
                    self._abort(now)
                    return False
                if n < 0:
                    break
                if n == len(out):
                    out.clear()
                else:
                    del out[:n]
                self.last_io = now
            if self.closing and not out and self.body is None:
                try:
                    stack._close(fd, now)   # self._close(now), inline: every connection's end
                except OSError:
                    pass
                return False
            if self.eof or not self.reading or out and len(out) >= OUT_HIGH:
                return True
            try:
                data = stack._recv_some(fd, RECV_CHUNK, now)   # recv_some(), positional
            except OSError:
                self._abort(now)
                return False
            if data is None:
                return True
            if data:
                self.last_io = now
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
            self.stack._close(self.fd, now)   # close(), positional
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
        # On a host with IPv6 the wildcard listens on both families: a second socket on
        # :: with IPV6_V6ONLY (as nginx's "listen [::]:80"), so IPv4 peers stay IPv4.
        self.fd6: int | None = None
        if addr == "0.0.0.0" and stack.addr6 is not None:
            fd6 = self.fd6 = stack.socket(_socket.AF_INET6)
            stack.setsockopt(fd6, _socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
            stack.setsockopt(fd6, _socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            stack.bind(fd6, ("::", self.port))
            stack.listen(fd6, backlog)
        # The listeners' accept queues, looked at before each accept() (see _accept).
        self._queue = stack._accept_queue(self.fd)
        self._queue6 = stack._accept_queue(self.fd6) if self.fd6 is not None else ()
        self.handlers: dict[int, Handler] = {}
        self.accepted = 0
        self.polled = 0           # handler polls, counted (tests prove they track events)
        self._fresh: list[int] = []   # accepted, not yet polled
        self._deadlines: list[tuple[int, int]] = []   # (when, fd): a lazy heap

    def make_handler(self, fd: int, peer: Addr) -> Handler:
        """A handler for a newly accepted connection."""
        return self.handler(self, fd, peer)

    def poll(self, now: int) -> None:
        """Accept what is waiting, then service every connection."""
        self.poll_ready(now, self.handlers.keys() | {self.fd, self.fd6 or self.fd})

    def poll_ready(self, now: int, fds: Collection[int]) -> None:
        """Accept if the listener is ready, then service the connections in ``fds``,
        the new ones and those whose deadline passed (``epoll_wait``'s answer)."""
        fresh, heap = self._fresh, self._deadlines
        if not fds and not fresh and (not heap or heap[0][0] > now):
            return                  # nothing happened and no deadline came: the common poll
        handlers = self.handlers
        if fds:
            if self.fd in fds:
                self._accept(self.fd, self._queue, now)
            if self.fd6 is not None and self.fd6 in fds:
                self._accept(self.fd6, self._queue6, now)
        if heap and heap[0][0] <= now:
            due = self._due(now)
            for fd in due:
                idle = handlers.get(fd)
                if idle is not None and (t := idle.deadline()) is not None and t <= now:
                    idle.on_timeout(now)
            if fresh:
                due += fresh
                fresh.clear()
        elif fresh:
            due, self._fresh = fresh, []
        else:
            due = None
        for fd in (*fds, *due) if due else fds:
            h = handlers.get(fd)
            if h is None:
                continue
            self.polled += 1
            if not h.poll(now):
                del handlers[fd]
                continue
            if h.timed:
                t = h.deadline()
                if t is not None and (h.heap_at is None or t < h.heap_at):
                    h.heap_at = t
                    heapq.heappush(heap, (t, fd))

    def _accept(self, lfd: int, queue: Sized, now: int) -> None:
        """accept() on the listener ``lfd`` while its accept ``queue`` holds a
        connection (not once more to hear EAGAIN): a handler for each."""
        stack, handlers, fresh = self.stack, self.handlers, self._fresh
        accept_some = stack.accept_some
        while queue:
            got = accept_some(lfd)
            if got is None:
                break
            fd, peer = got
            self.accepted += 1
            new = handlers[fd] = self.make_handler(fd, peer)
            new.last_io = now
            # A connection with nothing to read and nothing to say waits for its first
            # segment: polling it now would only find recv() empty.
            if new.eager or new.out or new.body is not None or not stack._quiet(fd):
                fresh.append(fd)

    def _due(self, now: int) -> list[int]:
        """Handlers whose deadline entry has come (their true deadline may be later:
        polling them re-arms it). Entries superseded by an earlier one are skipped."""
        heap = self._deadlines
        due: list[int] = []
        while heap and heap[0][0] <= now:
            t, fd = heapq.heappop(heap)
            h = self.handlers.get(fd)
            if h is not None and h.heap_at == t:
                h.heap_at = None
                due.append(fd)
        return due

    def next_deadline(self) -> int | None:
        """When a handler's deadline entry comes (maybe early: polling re-arms it)."""
        heap = self._deadlines
        while heap:
            t, fd = heap[0]
            h = self.handlers.get(fd)
            if h is not None and h.heap_at == t:
                return t
            heapq.heappop(heap)
        return None

    def close(self, now: int) -> None:
        """Stop listening and close every connection."""
        self.stack.close(self.fd, now=now)
        if self.fd6 is not None:
            self.stack.close(self.fd6, now=now)
        for h in self.handlers.values():
            h._close(now)
        self.handlers.clear()
