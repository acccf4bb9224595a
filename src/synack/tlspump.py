"""Moving ciphertext between an :class:`ssl.SSLObject`'s memory BIOs and a synack socket.

The engine under :class:`synack.tls.TLSSocket`, as a base class of it: every TLS
call is :meth:`TLSPump._run` of an ``SSLObject`` call, which tries the call,
sends whatever it wrote to the outgoing BIO, and when it wants to read,
receives from the stack into the incoming BIO and tries again. A blocking call
waits on the stack (the loop's condition) with one deadline for the whole call,
as ``_ssl.c`` does; a non-blocking one raises ``SSLWantReadError`` /
``SSLWantWriteError`` where the stack would block.

Ciphertext is taken from the stack *one TLS record at a time*: the 5-byte
header, then exactly the length it gives. OpenSSL reads a kernel socket the
same way (no read-ahead), and it keeps the stdlib's guarantees: the next
record stays in the stack, so ``fileno()`` is readable while a record is
waiting (``select`` works as with a kernel TLS socket), and after ``unwrap()``
the bytes that follow the peer's close_notify are still there for plain
``recv``.

Threads: one thread may read while another writes, as with a kernel TLS socket.
OpenSSL works on the memory BIOs without the GIL, so every ``SSLObject`` call and
BIO access is made under one lock (never held while waiting); one thread at a
time drains the outgoing BIO (in order) and one fills the incoming BIO.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

from synack import socket as _sock

__all__ = ["TLSPump", "would_block"]

_HEADER = 5                     # TLS record header: type, version (2), length (2)


def would_block(want: type[ssl.SSLError]) -> ssl.SSLError:
    """The error ``_ssl.c`` raises where a non-blocking socket would block."""
    if want is ssl.SSLWantReadError:
        return want(int(ssl.SSL_ERROR_WANT_READ), "The operation did not complete (read)")
    return want(int(ssl.SSL_ERROR_WANT_WRITE), "The operation did not complete (write)")


class TLSPump(_sock.socket):
    """A synack socket with the memory BIOs of a TLS session and the calls that pump
    ciphertext between them and the stack."""

    _incoming: ssl.MemoryBIO
    _outgoing: ssl.MemoryBIO
    _unsent: bytes
    _send_lock: threading.Lock
    _recv_lock: threading.Lock
    _ssl_lock: threading.Lock
    _header: bytearray
    _body_left: int

    def _init_pump(self) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._unsent = b""          # ciphertext the stack did not take yet (non-blocking)
        self._send_lock = threading.Lock()   # one thread drains the outgoing BIO at a time
        self._recv_lock = threading.Lock()   # and one fills the incoming BIO
        self._ssl_lock = threading.Lock()    # SSLObject calls and BIO accesses
        self._header = bytearray()  # the part of the next record header received so far
        self._body_left = 0         # bytes of the current record still to receive

    def _deadline(self) -> tuple[float | None, bool]:
        """(deadline, non-blocking) for one call, from the socket's timeout."""
        if self._timeout == 0.0:
            return None, True
        return self._end(), False

    def _stack_call(self, attempt: Any, end: float | None, nonblock: bool,
                    want: type[ssl.SSLError], what: str) -> Any:
        """``attempt(fd, now)`` until the stack stops saying BlockingIOError."""
        loop = self._host.loop
        try:
            with loop.cond:
                while True:
                    fd = self._live_fd()
                    try:
                        return attempt(fd, loop.now())
                    except BlockingIOError:
                        if nonblock:
                            raise would_block(want) from None
                    try:
                        self._wait(end)
                    except TimeoutError:
                        raise TimeoutError(f"The {what} operation timed out") from None
        finally:
            loop.wake()
            if self._ready is not None:
                self._sync_ready()

    def _flush(self, end: float | None, nonblock: bool, what: str) -> None:
        """Send the ciphertext the SSLObject wrote (SSLWantWriteError if the stack has
        no room and the socket is non-blocking; the rest is kept for the next call).

        One thread at a time drains the outgoing BIO, in order; whatever another
        thread encrypted meanwhile goes out with it (and is looked for again once the
        lock is released, so nothing is left behind)."""
        while True:
            with self._hold(self._send_lock, end, nonblock, ssl.SSLWantWriteError, what):
                self._drain(end, nonblock, what)
            with self._ssl_lock:
                if not self._outgoing.pending:
                    return

    def _drain(self, end: float | None, nonblock: bool, what: str) -> None:
        st = self._host.stack
        while True:
            with self._ssl_lock:
                if self._outgoing.pending:
                    self._unsent += self._outgoing.read()
            unsent = self._unsent
            if not unsent:
                return
            n = self._stack_call(lambda fd, now, data=unsent: st.send(fd, data, now=now),
                                 end, nonblock, ssl.SSLWantWriteError, what)
            self._unsent = unsent[n:]

    def _flush_soft(self, what: str) -> None:
        """Send what can go now without waiting, for the stack or for a thread that is
        sending (which takes these bytes along). A reader never waits to send, so two
        ends each blocked sending while they read (full duplex) cannot deadlock: what a
        read answers (a TLS 1.3 KeyUpdate) is never needed for the peer to go on."""
        try:
            self._flush(None, True, what)
        except ssl.SSLWantWriteError:
            pass

    @contextlib.contextmanager
    def _hold(self, lock: Any, end: float | None, nonblock: bool,
              want: type[ssl.SSLError], what: str) -> Iterator[None]:
        """``lock`` within the call's deadline (at once, or the SSL want error)."""
        if nonblock:
            got = lock.acquire(blocking=False)
        elif end is None:
            got = lock.acquire()
        else:
            got = lock.acquire(timeout=max(end - time.monotonic(), 0.0))
        if not got:
            if nonblock:
                raise would_block(want)
            raise TimeoutError(f"The {what} operation timed out")
        try:
            yield
        finally:
            lock.release()

    def _fill(self, end: float | None, nonblock: bool, what: str) -> None:
        """Receive the rest of the current record's header or body into the incoming
        BIO, never beyond it; EOF is written to the BIO as EOF."""
        with self._hold(self._recv_lock, end, nonblock, ssl.SSLWantReadError, what):
            self._fill_locked(end, nonblock, what)

    def _fill_locked(self, end: float | None, nonblock: bool, what: str) -> None:
        if self._incoming.eof:
            raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")
        want = self._body_left or _HEADER - len(self._header)
        st = self._host.stack
        data: bytes = self._stack_call(lambda fd, now: st.recv(fd, want, now=now), end,
                                       nonblock, ssl.SSLWantReadError, what)
        with self._ssl_lock:
            if not data:
                self._incoming.write_eof()
                return
            self._incoming.write(data)
        if self._body_left:
            self._body_left -= len(data)
            return
        self._header += data
        if len(self._header) == _HEADER:
            self._body_left = int.from_bytes(self._header[3:5], "big")
            self._header.clear()

    def _run(self, op: Any, what: str) -> Any:
        """``op()`` on the SSLObject, moving ciphertext until it completes."""
        end, nonblock = self._deadline()
        while True:
            try:
                with self._ssl_lock:
                    result = op()
            except ssl.SSLWantReadError:
                if what == "read":
                    self._flush_soft(what)
                else:                        # the peer answers only what it has seen
                    self._flush(end, nonblock, what)
                self._fill(end, nonblock, what)
                continue
            except ssl.SSLWantWriteError:
                self._flush(end, nonblock, what)
                continue
            except ssl.SSLError:
                self._flush_soft(what)       # an alert for the peer, when there is one
                raise
            if nonblock or what == "read":
                self._flush_soft(what)
                if self._unsent and what in ("handshake", "shutdown"):
                    # Done only once the peer can see it: the caller calls again, and
                    # the call (now a no-op for OpenSSL) sends the rest.
                    raise would_block(ssl.SSLWantWriteError)
            else:
                self._flush(end, nonblock, what)
            return result
