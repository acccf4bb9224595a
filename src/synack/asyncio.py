"""asyncio streams over a synack host: real StreamReader / StreamWriter objects.

Theory of operation
-------------------
Two event loops cooperate. The synack :class:`~synack.link.loop.Loop` owns the
stack; the asyncio loop owns the protocols. Each connection is a
:class:`SynackTransport` (an ``asyncio.Transport`` whose protocol is an
``asyncio.StreamReaderProtocol``) that registers a *watcher* of its descriptor
with the synack loop. After a batch in which a packet or a timer touched the
descriptor (or the asyncio side poked it: a write was buffered, reading
resumed, a close is pending), the watcher runs in the synack thread, with the
stack's lock held, and:

- pulls every byte ready from the stack (unless reading is paused) and hands
  it to the asyncio loop with ``call_soon_threadsafe(protocol.data_received)``,
  then ``eof_received`` once at end of stream;
- pushes the transport's write buffer into the stack's send buffer as ACKs
  make room, and asks the asyncio loop to ``resume_writing`` once the buffer
  has drained below the low-water mark;
- finishes a deferred ``write_eof()`` or ``close()`` when the buffer is empty.

Writes from the asyncio thread go straight to ``stack.send`` (lock held) when
nothing is buffered, and otherwise join the buffer; past the high-water mark
the protocol is paused, which is what makes ``await writer.drain()`` wait.
Protocol methods are only ever called in the asyncio thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket as _socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

from synack.api_host import Host, resolve_host
from synack.socket import check_address, check_address6
from synack.stack import SHUT_WR
from synack.tcp.state import State

__all__ = ["SynackServer", "SynackTransport", "open_connection", "start_server"]

T = TypeVar("T")
_DEFAULT_LIMIT = 2 ** 16          # asyncio.streams' default line/buffer limit
_RECV_ALL = 1 << 24               # read everything ready: the loop may not call again soon
_HANDSHAKING = (State.SYN_SENT, State.SYN_RECEIVED)
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class SynackTransport(asyncio.Transport):
    """A connected stack descriptor as an asyncio transport (see the module docstring)."""

    def __init__(self, aloop: asyncio.AbstractEventLoop, host: Host, fd: int,
                 protocol: asyncio.BaseProtocol, *, server: SynackServer | None = None) -> None:
        stack, sloop = host.stack, host.loop
        with sloop.lock:
            extra = {"sockname": stack.getsockname(fd), "peername": stack.getpeername(fd),
                     "synack_host": host, "synack_fd": fd}
        super().__init__(extra)
        self._aloop = aloop
        self._host = host
        self._fd: int | None = fd           # None once the descriptor is closed
        self._protocol = protocol
        self._server = server
        # Shared with the synack thread, guarded by the synack loop's lock:
        self._wbuf = bytearray()
        self._write_paused = False
        self._resume_scheduled = False
        self._eof_pending = False
        self._high = 64 * 1024
        self._low = 16 * 1024
        # Read by the synack thread, written in the asyncio thread (single flags):
        self._reading = True
        self._closing = False
        # Synack thread only:
        self._eof_read = False
        # asyncio thread only:
        self._eof_written = False
        self._lost = False
        protocol.connection_made(self)
        sloop.watch(fd, self._poll)

    # ------------------------------------------------------------ the synack thread
    def _post(self, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            self._aloop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:   # the asyncio loop is closed: nobody will read this socket
            self._close_fd(self._host.loop.now())
            return False

    def _poll(self, now: int) -> None:
        """The watcher: runs in the synack thread after every batch, lock held."""
        fd = self._fd
        if fd is None:
            return
        stack = self._host.stack
        try:
            if self._wbuf and stack.writable(fd):
                try:
                    n = stack.send(fd, self._wbuf, now=now)
                except BlockingIOError:
                    n = 0
                del self._wbuf[:n]
                if self._write_paused and not self._resume_scheduled \
                        and len(self._wbuf) <= self._low:
                    self._resume_scheduled = True
                    self._post(self._maybe_resume)
            if not self._wbuf:
                if self._eof_pending:
                    self._eof_pending = False
                    stack.shutdown(fd, SHUT_WR, now=now)
                if self._closing:
                    self._close_fd(now)
                    self._post(self._connection_lost, None)
                    return
            # Until nothing is left: the watcher runs again only when something new
            # happens, so an end of stream behind the data must be seen now.
            while self._reading and not self._eof_read and stack.readable(fd):
                data = stack.recv(fd, _RECV_ALL, now=now)
                if data:
                    self._post(self._protocol.data_received, data)  # type: ignore[attr-defined]
                else:
                    self._eof_read = True
                    self._post(self._on_eof)
        except BlockingIOError:
            pass
        except OSError as exc:
            self._wbuf.clear()
            self._close_fd(now)
            self._post(self._connection_lost, exc)

    def _close_fd(self, now: int, *, reset: bool = False) -> None:
        """Lock held: release the descriptor and stop watching."""
        fd, self._fd = self._fd, None
        loop = self._host.loop
        if fd is None:
            return
        loop.unwatch(fd, self._poll)
        stack = self._host.stack
        try:
            if reset:
                stack.setsockopt(fd, _socket.SOL_SOCKET, _socket.SO_LINGER,
                                 struct.pack("ii", 1, 0), now=now)
            stack.close(fd, now=now)
        except OSError:
            pass
        loop.wake()

    # ------------------------------------------------------------ the asyncio thread
    def _kick(self) -> None:
        """Have the watcher look at this connection in the next batch."""
        fd = self._fd
        if fd is None:
            self._host.loop.wake()
        else:
            self._host.loop.poke(fd)

    def _maybe_resume(self) -> None:
        with self._host.loop.lock:
            self._resume_scheduled = False
            resume = self._write_paused and len(self._wbuf) <= self._low
            if resume:
                self._write_paused = False
        if resume and not self._lost:
            self._protocol.resume_writing()

    def _on_eof(self) -> None:
        if self._lost:
            return
        keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        if not keep_open:
            self.close()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._server is not None:
                self._server._detach(self)
                self._server = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``, buffering what the stack cannot take yet."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing or self._lost:
            return
        sloop = self._host.loop
        error: OSError | None = None
        pause = False
        with sloop.lock:
            fd = self._fd
            if fd is None:
                return
            view = memoryview(data).cast("B")
            if not self._wbuf:
                try:
                    view = view[self._host.stack.send(fd, view, now=sloop.now()):]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    error = exc
            if error is None and view:
                self._wbuf += view
                if len(self._wbuf) > self._high and not self._write_paused:
                    self._write_paused = pause = True
            if error is not None:
                self._wbuf.clear()
                self._close_fd(sloop.now())
        if self._wbuf:
            self._kick()
        else:
            sloop.wake()
        if error is not None:
            self._connection_lost(error)
        elif pause:
            self._protocol.pause_writing()

    def write_eof(self) -> None:
        """Half-close: FIN after everything written so far."""
        if self._closing or self._eof_written:
            return
        self._eof_written = True
        sloop = self._host.loop
        with sloop.lock:
            if self._fd is None:
                return
            if self._wbuf:
                self._eof_pending = True
            else:
                try:
                    self._host.stack.shutdown(self._fd, SHUT_WR, now=sloop.now())
                except OSError:
                    pass    # already reset: connection_lost reports it
        self._kick()

    def can_write_eof(self) -> bool:
        """True: TCP half-closes."""
        return True

    def close(self) -> None:
        """Flush the buffer, then close (FIN; RST if unread data remains, as the kernel)."""
        if self._closing:
            return
        self._closing = True
        self._reading = False
        sloop = self._host.loop
        done = False
        with sloop.lock:
            if self._fd is not None and not self._wbuf:
                self._close_fd(sloop.now())
                done = True
        self._kick()    # otherwise the watcher closes once the buffer is flushed
        if done:
            self._aloop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        """Drop the buffer and reset the connection (RST)."""
        sloop = self._host.loop
        with sloop.lock:
            # Under the lock: the loop thread's watcher closes the descriptor (a FIN)
            # as soon as it sees _closing, so setting it first would race the reset.
            self._closing = True
            self._reading = False
            self._wbuf.clear()
            self._close_fd(sloop.now(), reset=True)
        self._aloop.call_soon(self._connection_lost, None)

    def is_closing(self) -> bool:
        """True once close() or abort() was called, or the connection was lost."""
        return self._closing or self._lost

    def is_reading(self) -> bool:
        """False while paused or closing."""
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        """Stop handing data to the protocol; the stack's window closes behind it."""
        self._reading = False

    def resume_reading(self) -> None:
        """Start handing data to the protocol again."""
        if self._closing or self._reading:
            return
        self._reading = True
        self._kick()                # data may be waiting with no packet to come

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Replace the protocol."""
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol."""
        return self._protocol

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the stack."""
        return len(self._wbuf)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) water marks."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """asyncio's rules: high defaults to 64 KiB, low to high // 4."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else ("closing" if self._closing else "open")
        return (f"<SynackTransport {state} fd={self._fd} "
                f"{self.get_extra_info('sockname')}->{self.get_extra_info('peername')}>")


def _when(host: Host, aloop: asyncio.AbstractEventLoop,
          probe: Callable[[int], T | None]) -> asyncio.Future[T]:
    """A future for the first non-None ``probe(now)``, checked after every synack batch."""
    fut: asyncio.Future[T] = aloop.create_future()
    sloop = host.loop

    def settle(result: T | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def watcher(now: int) -> None:
        if fut.done():
            sloop.remove_watcher(watcher)
            return
        try:
            result = probe(now)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            sloop.remove_watcher(watcher)
            aloop.call_soon_threadsafe(settle, None, exc)
            return
        if result is not None:
            sloop.remove_watcher(watcher)
            aloop.call_soon_threadsafe(settle, result, None)

    sloop.add_watcher(watcher)
    fut.add_done_callback(lambda _f: sloop.remove_watcher(watcher))
    return fut


async def open_connection(host: str | None = None, port: int | None = None, *,
                          stack_host: Host | None = None, limit: int = _DEFAULT_LIMIT,
                          local_addr: tuple[str, int] | None = None,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``(host, port)`` on a synack host; returns asyncio's (reader, writer)."""
    h = resolve_host(stack_host)
    v6 = host is not None and ":" in host         # an IPv6 literal: an AF_INET6 socket
    check = check_address6 if v6 else check_address
    addr = check((host or "127.0.0.1", port if port is not None else 0), "connect")
    aloop = asyncio.get_running_loop()
    stack, sloop = h.stack, h.loop
    with sloop.lock:
        fd = stack.socket(_socket.AF_INET6 if v6 else _socket.AF_INET)
        try:
            if local_addr is not None:
                stack.bind(fd, check(local_addr, "bind"))
            code = stack.connect_ex(fd, addr, now=sloop.now())
        except BaseException:
            stack.close(fd, now=sloop.now())
            raise
    sloop.wake()
    try:
        if code == errno.EINPROGRESS:
            code = await _when(h, aloop, lambda now: stack.connect_ex(fd, addr, now=now)
                               if stack.state(fd) not in _HANDSHAKING else None)
        if code:
            raise OSError(code, os.strerror(code))
    except BaseException:
        with sloop.lock:
            stack.close(fd, now=sloop.now())
        sloop.wake()
        raise
    reader = asyncio.StreamReader(limit=limit, loop=aloop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=aloop)
    transport = SynackTransport(aloop, h, fd, protocol)
    return reader, asyncio.StreamWriter(transport, protocol, reader, aloop)


class ListenerInfo:
    """What ``server.sockets`` lists: the listening descriptor's names."""

    def __init__(self, host: Host, fd: int, sockname: tuple[str, int]) -> None:
        self.host = host
        self._fd = fd
        self._sockname = sockname
        self.family = _socket.AF_INET6 if len(sockname) == 4 else _socket.AF_INET
        self.type = _socket.SOCK_STREAM

    def getsockname(self) -> tuple[str, int]:
        """The listening address."""
        return self._sockname

    def fileno(self) -> int:
        """The stack's descriptor number."""
        return self._fd

    def __repr__(self) -> str:
        return f"<ListenerInfo fd={self._fd} laddr={self._sockname}>"


class SynackServer:
    """What :func:`start_server` returns; shaped like ``asyncio.Server``."""

    def __init__(self, aloop: asyncio.AbstractEventLoop, host: Host, fd: int,
                 factory: Callable[[], asyncio.StreamReaderProtocol]) -> None:
        self._aloop = aloop
        self._host = host
        self._fd: int | None = fd
        self._factory = factory
        with host.loop.lock:
            self._sockname = host.stack.getsockname(fd)
        self._serving = False
        self._closed = asyncio.Event()
        self._serving_forever: asyncio.Future[None] | None = None
        self._transports: set[SynackTransport] = set()

    def _poll_accept(self, now: int) -> None:
        """The watcher (synack thread, lock held): take every queued connection."""
        fd = self._fd
        if fd is None:
            return
        stack = self._host.stack
        ready: list[int] = []
        while stack.readable(fd):
            try:
                ready.append(stack.accept(fd)[0])
            except BlockingIOError:
                break
        if ready:
            try:
                self._aloop.call_soon_threadsafe(self._accepted, ready)
            except RuntimeError:
                for cfd in ready:
                    stack.close(cfd, now=now)

    def _accepted(self, fds: list[int]) -> None:
        sloop = self._host.loop
        for cfd in fds:
            if self._fd is None:        # closed meanwhile: Linux resets such children
                with sloop.lock:
                    self._host.stack.close(cfd, now=sloop.now())
                sloop.wake()
                continue
            try:
                t = SynackTransport(self._aloop, self._host, cfd, self._factory(), server=self)
            except OSError:             # reset before we got to it: nothing to serve
                with sloop.lock:
                    self._host.stack.close(cfd, now=sloop.now())
                continue
            self._transports.add(t)

    def _detach(self, transport: SynackTransport) -> None:
        self._transports.discard(transport)

    # ------------------------------------------------------------ asyncio.Server's API
    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the server runs on."""
        return self._aloop

    def is_serving(self) -> bool:
        """True while accepting."""
        return self._serving

    @property
    def sockets(self) -> tuple[ListenerInfo, ...]:
        """The listening descriptor (empty once closed)."""
        if self._fd is None:
            return ()
        return (ListenerInfo(self._host, self._fd, self._sockname),)

    async def start_serving(self) -> None:
        """Begin accepting (start_server does unless start_serving=False)."""
        self._start_serving()

    def _start_serving(self) -> None:
        if self._serving or self._fd is None:
            return
        self._serving = True
        self._host.loop.watch(self._fd, self._poll_accept)

    def close(self) -> None:
        """Stop listening; connections already accepted stay open."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._serving = False
        sloop = self._host.loop
        sloop.unwatch(fd, self._poll_accept)
        with sloop.lock:
            self._host.stack.close(fd, now=sloop.now())
        sloop.wake()
        self._closed.set()
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has been called (Python 3.11's semantics)."""
        await self._closed.wait()

    async def serve_forever(self) -> None:
        """Accept until cancelled or closed (then raises CancelledError, as asyncio)."""
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._fd is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever = self._aloop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<SynackServer sockets={self.sockets!r}>"


async def start_server(client_connected_cb: ClientConnected, host: str | None = None,
                       port: int | None = None, *, stack_host: Host | None = None,
                       backlog: int = 100, limit: int = _DEFAULT_LIMIT,
                       reuse_address: bool = True, start_serving: bool = True,
                       ) -> SynackServer:
    """Listen on ``(host, port)``; ``client_connected_cb(reader, writer)`` runs per client.

    As with asyncio, a coroutine callback is scheduled as a task.
    """
    h = resolve_host(stack_host)
    v6 = host is not None and ":" in host         # "::" or an IPv6 address: AF_INET6
    addr: tuple[Any, ...] = (check_address6 if v6 else check_address)(
        (host or "", port or 0), "bind")
    aloop = asyncio.get_running_loop()
    stack, sloop = h.stack, h.loop
    with sloop.lock:
        fd = stack.socket(_socket.AF_INET6 if v6 else _socket.AF_INET)
        try:
            if reuse_address:
                stack.setsockopt(fd, _socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            stack.bind(fd, addr)
            stack.listen(fd, backlog)
        except BaseException:
            stack.close(fd, now=sloop.now())
            raise

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=aloop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=aloop)

    server = SynackServer(aloop, h, fd, factory)
    if start_serving:
        server._start_serving()
    return server
