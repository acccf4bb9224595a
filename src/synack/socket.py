"""Sockets shaped like the stdlib's ``socket`` module, over a synack host.

This module has the stdlib module's whole surface (every public name of it, a
test compares ``dir()``), so ``import synack.socket as socket`` is meant to
work for programs written against the stdlib:

* :class:`socket` ``(AF_INET, SOCK_STREAM)`` is TCP of a synack
  :class:`~synack.stack.Stack`; ``(AF_INET, SOCK_DGRAM)`` is UDP of the same
  host (:mod:`synack.host.udp`, :mod:`synack.dgram`). ``AF_UNIX`` and the other
  families synack does not carry, and ``socket(fileno=fd)``, return the
  kernel's socket (the stdlib's class). ``(AF_INET6, SOCK_STREAM)`` and
  ``(AF_INET6, SOCK_DGRAM)`` are TCP and UDP over IPv6 on a host with an IPv6
  address (``Stack(addr6=...)``; ::1 always), addresses as ``(host, port,
  flowinfo, scope_id)``; ``has_ipv6`` is True, ``has_dualstack_ipv6()`` when the
  host has an IPv6 address.
* Name lookups (``getaddrinfo``, ``gethostbyname[_ex]``, ``gethostbyaddr``,
  ``getnameinfo``, ``getfqdn``) never ask the kernel's resolver: numbers,
  ``/etc/hosts``, then DNS over synack UDP to ``Host.nameserver`` when set
  (:mod:`synack.resolve`, :mod:`synack.dns`).
* ``create_connection``, ``create_server``, ``has_dualstack_ipv6``,
  ``SocketType`` and the default-timeout calls are synack's; every other name
  (constants, the enums ``AddressFamily``/``SocketKind``/``MsgFlag``/
  ``AddressInfo``, ``inet_pton``, ``htons``, ``socketpair``, ``fromfd``,
  ``gethostname``, ...) and the exception classes (``error``, ``timeout``,
  ``gaierror``, ``herror``) are the stdlib's own objects.

Theory of operation
-------------------
A :class:`socket` is a descriptor of the host's stack plus a timeout. Every
call takes the host loop's lock, tries the stack's non-blocking call, and if
that raises ``BlockingIOError`` waits on its descriptor (``loop.wait_fd``),
which the loop notifies after a batch in which a packet or a timer touched it,
then tries again. Waiting releases the lock (``Condition.wait``), so the loop
and other threads keep running; nothing polls or sleeps. After a call that may
have queued segments, ``loop.wake()`` makes the loop transmit them.

Timeouts follow the stdlib: None blocks, 0.0 is non-blocking (the stack's
``BlockingIOError`` comes through), a positive value raises ``TimeoutError``
("timed out") when the whole operation outlasts it. Errors are the stack's,
which are the stdlib's. :meth:`socket.close` from another thread wakes a
thread blocked on the socket with ``OSError(EBADF)``, as on Linux.

``fileno()`` is a real OS descriptor (:mod:`synack.readyfd`, made at the first
call) that is readable exactly when the socket is (data, EOF, an error, a
connection to accept) and writable exactly when it is (connected with send
space; after a non-blocking ``connect`` also when the handshake failed, with
the error in ``SO_ERROR``). So ``select``, ``poll``, ``epoll``,
``selectors`` and asyncio's selector loop (``loop.sock_recv``,
``loop.sock_connect``, ``asyncio.open_connection(sock=...)``,
``loop.create_server(sock=...)``) work unchanged on synack sockets.
:attr:`socket.stack_fd` is the descriptor number inside the stack.
"""

from __future__ import annotations

import errno
import socket as _socket
import time
import warnings
from collections.abc import Callable
from typing import Any, Self, TypeVar

from synack import dgram as _dgram
from synack import resolve as _resolve
from synack import sockfastopen as _fastopen
from synack.api_host import Host, get_default_host, resolve_host, set_default_host
from synack.readyfd import ReadyFd
from synack.resolve import (  # noqa: F401 - re-exported: the stdlib's resolver calls
    getaddrinfo,
    getfqdn,
    gethostbyaddr,
    gethostbyname,
    gethostbyname_ex,
    getnameinfo,
)
from synack.sockattrs import SocketAttrsMixin, _check_timeout
from synack.sockcheck import check_address, check_address6
from synack.socketfile import SocketIO, make_file  # noqa: F401 - SocketIO re-exported
from synack.sockopts import oserror as _oserror
from synack.tcp.state import State

# The constants this module uses; every other public name of the stdlib's module is
# copied in at the end (_copy_stdlib_names). They are the stdlib's objects, so code
# written for the stdlib passes the same numbers (the Stack reads them by Linux's values).
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
AF_UNSPEC = _socket.AF_UNSPEC
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_NONBLOCK = _socket.SOCK_NONBLOCK
SOCK_CLOEXEC = _socket.SOCK_CLOEXEC
SOL_SOCKET = _socket.SOL_SOCKET
SO_KEEPALIVE = _socket.SO_KEEPALIVE
SO_LINGER = _socket.SO_LINGER
SO_RCVBUF = _socket.SO_RCVBUF
SO_SNDBUF = _socket.SO_SNDBUF
SO_REUSEADDR = _socket.SO_REUSEADDR
SO_BROADCAST = _socket.SO_BROADCAST
SO_OOBINLINE = _socket.SO_OOBINLINE
SO_ERROR = _socket.SO_ERROR
SO_TYPE = _socket.SO_TYPE
SO_DOMAIN = _socket.SO_DOMAIN
SO_PROTOCOL = _socket.SO_PROTOCOL
SO_ACCEPTCONN = _socket.SO_ACCEPTCONN
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_UDP = _socket.IPPROTO_UDP
TCP_NODELAY = _socket.TCP_NODELAY
TCP_KEEPIDLE = _socket.TCP_KEEPIDLE
TCP_KEEPINTVL = _socket.TCP_KEEPINTVL
TCP_KEEPCNT = _socket.TCP_KEEPCNT
TCP_MAXSEG = _socket.TCP_MAXSEG
TCP_CORK = _socket.TCP_CORK
TCP_INFO = _socket.TCP_INFO
TCP_CONGESTION = _socket.TCP_CONGESTION
SHUT_RD = _socket.SHUT_RD
SHUT_WR = _socket.SHUT_WR
SHUT_RDWR = _socket.SHUT_RDWR
MSG_OOB = _socket.MSG_OOB
MSG_PEEK = _socket.MSG_PEEK
MSG_DONTWAIT = _socket.MSG_DONTWAIT
MSG_WAITALL = _socket.MSG_WAITALL
MSG_NOSIGNAL = _socket.MSG_NOSIGNAL
SOMAXCONN = _socket.SOMAXCONN

error = OSError
timeout = TimeoutError
gaierror = _socket.gaierror
herror = _socket.herror
has_ipv6 = True     # the C library's constant: IPv6 sockets exist (a host may lack addr6)

__all__ = [  # noqa: PLE0604 - the stdlib's names, then synack's own
    *_socket.__all__,
    "Host",
    "get_default_host",
    "set_default_host",
]

T = TypeVar("T")
_RECV_FLAGS = MSG_OOB | MSG_DONTWAIT | MSG_WAITALL
_SEND_FLAGS = MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL
_MSG_FASTOPEN = _socket.MSG_FASTOPEN
_HANDSHAKING = (State.SYN_SENT, State.SYN_RECEIVED)
_default_timeout: float | None = None
_GLOBAL_DEFAULT_TIMEOUT = object()


def getdefaulttimeout() -> float | None:
    """The timeout new sockets start with (None: blocking)."""
    return _default_timeout


def setdefaulttimeout(value: float | None) -> None:
    """Set the timeout new sockets start with."""
    global _default_timeout
    _default_timeout = _check_timeout(value)


class socket(SocketAttrsMixin):
    """A TCP or UDP socket of a synack host, with the stdlib ``socket.socket`` interface.

    ``socket(AF_UNIX, ...)`` (any family synack does not carry but AF_INET6) and
    ``socket(..., fileno=fd)`` return the kernel's socket, the stdlib's class."""

    def __new__(cls, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0,
                fileno: int | None = None, *, host: Host | None = None,
                _fd: int | None = None) -> Any:
        if fileno is not None or family not in (AF_INET, AF_INET6):
            return _socket.socket(family, type, proto, fileno)
        return super().__new__(cls)

    def __init__(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0,
                 fileno: int | None = None, *, host: Host | None = None,
                 _fd: int | None = None) -> None:
        self._fd: int | None = None
        self._ready: ReadyFd | None = None     # the OS descriptor fileno() hands out
        self._watcher: Callable[[int], None] | None = None
        self._closed = True
        self._io_refs = 0
        self._udp = False
        self._proto = proto
        kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if family not in (AF_INET, AF_INET6):
            raise _oserror(errno.EAFNOSUPPORT)
        self._family = _socket.AddressFamily(family)
        if kind not in (SOCK_STREAM, SOCK_DGRAM):
            raise _oserror(errno.ESOCKTNOSUPPORT)
        self._udp = kind == SOCK_DGRAM
        if proto not in (0, IPPROTO_UDP if self._udp else IPPROTO_TCP):
            raise _oserror(errno.EPROTONOSUPPORT)
        self._proto = proto
        self._host = resolve_host(host)
        self._timeout: float | None = 0.0 if type & SOCK_NONBLOCK else _default_timeout
        if _fd is None:
            with self._host.loop.lock:
                st = self._host.stack
                _fd = st.udp.socket(family) if self._udp else st.socket(family)
        self._fd = _fd
        self._closed = False

    # ------------------------------------------------------------ plumbing
    def _live_fd(self) -> int:
        fd = self._fd
        if fd is None:
            raise _oserror(errno.EBADF)
        return fd

    def _check(self, address: Any, call: str) -> tuple[Any, ...]:
        """The address checked for this socket's family."""
        if self._family == AF_INET6:
            return check_address6(address, call, self._host)
        return check_address(address, call, self._host)

    def _wait(self, end: float | None) -> None:
        """Wait (lock held, released while waiting) until something happens to this
        socket (a segment, a timer, a close from another thread) or ``end``."""
        loop = self._host.loop
        if not loop.running:
            raise OSError(errno.ENETDOWN, "synack loop is not running")
        if loop.in_loop_thread():
            raise RuntimeError("a blocking synack.socket call inside the loop thread")
        fd = self._live_fd()
        if end is None:
            loop.wait_fd(fd)
            return
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        loop.wait_fd(fd, remaining)

    def _end(self) -> float | None:
        t = self._timeout
        return None if t is None else time.monotonic() + t

    def _blocking(self, attempt: Callable[[int, int], T], *, nonblock: bool = False) -> T:
        """Retry ``attempt(fd, now)`` until it stops raising BlockingIOError."""
        host = self._host
        loop = host.loop
        nonblock = nonblock or self._timeout == 0.0
        end = None if nonblock else self._end()
        try:
            with loop.cond:
                while True:
                    fd = self._live_fd()
                    try:
                        return attempt(fd, loop.now())
                    except BlockingIOError:
                        if nonblock:
                            raise
                    self._wait(end)
        finally:
            loop.wake()
            if self._ready is not None:
                self._sync_ready()

    def _locked(self, call: Callable[[int, int], T]) -> T:
        """One stack call that never blocks."""
        loop = self._host.loop
        try:
            with loop.lock:
                return call(self._live_fd(), loop.now())
        finally:
            loop.wake()
            if self._ready is not None:
                self._sync_ready()

    # ------------------------------------------------------------ setup
    def bind(self, address: tuple[str, int]) -> None:
        """Bind to ``(ip, port)``; port 0 picks an ephemeral port."""
        addr: tuple[Any, ...] = self._check(address, "bind")
        st = self._host.stack
        if self._udp:
            self._locked(lambda fd, now: st.udp.bind(fd, addr))
            return
        self._locked(lambda fd, now: st.bind(fd, addr))

    def listen(self, backlog: int | None = None) -> None:
        """Accept connections; ``backlog`` defaults to min(SOMAXCONN, 128) as the stdlib."""
        if backlog is None:
            backlog = min(SOMAXCONN, 128)
        if self._udp:
            raise _oserror(errno.EOPNOTSUPP)
        st = self._host.stack
        self._locked(lambda fd, now: st.listen(fd, max(backlog, 0)))

    def accept(self) -> tuple[socket, tuple[str, int]]:
        """Wait for a connection; returns ``(socket, address)``."""
        if self._udp:
            raise _oserror(errno.EOPNOTSUPP)
        st = self._host.stack
        fd, addr = self._blocking(lambda fd, now: st.accept(fd))
        sock = socket(self._family, SOCK_STREAM, self._proto, host=self._host, _fd=fd)
        if _default_timeout is None and self._timeout:
            sock._timeout = None   # the stdlib: a timeout on the listener is not inherited
        return sock, addr

    def connect(self, address: tuple[str, int]) -> None:
        """Connect, waiting for the handshake (within the timeout)."""
        code = self._connect(address)
        if code:
            raise _oserror(code)

    def connect_ex(self, address: tuple[str, int]) -> int:
        """Like :meth:`connect`, returning an errno (EAGAIN on timeout, as CPython)."""
        try:
            return self._connect(address)
        except TimeoutError:
            return errno.EAGAIN

    def _connect(self, address: tuple[str, int]) -> int:
        addr: tuple[Any, ...] = self._check(address, "connect")
        if self._udp:
            return _dgram.connect(self, addr)
        if addr[0] == "0.0.0.0":
            addr = ("127.0.0.1", addr[1])   # Linux: connecting to INADDR_ANY means this host
        elif addr[0] == "::" and self._host.stack.addr6 is not None:
            addr = (self._host.stack.addr6, *addr[1:])   # :: means this host too
        host = self._host
        st, loop = host.stack, host.loop
        end = self._end()
        try:
            with loop.cond:
                code = st.connect_ex(self._live_fd(), addr, now=loop.now())
                if code != errno.EINPROGRESS or self._timeout == 0.0:
                    return code
                loop.wake()
                while True:
                    self._wait(end)
                    fd = self._live_fd()
                    if st.state(fd) not in _HANDSHAKING:
                        # The second connect() reports how the handshake ended.
                        return st.connect_ex(fd, addr, now=loop.now())
        finally:
            loop.wake()
            if self._ready is not None:
                self._sync_ready()

    # ------------------------------------------------------------ data
    def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        """Send some of ``data``; returns how many bytes were taken."""
        if self._udp:
            return _dgram.send(self, data, flags, None)
        if flags & ~_SEND_FLAGS:
            raise _oserror(errno.EOPNOTSUPP)
        st = self._host.stack
        oob = flags & MSG_OOB
        return self._blocking(lambda fd, now: st.send(fd, data, now=now, flags=oob),
                              nonblock=bool(flags & MSG_DONTWAIT))

    def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        """Send all of ``data``; the timeout bounds the whole call, as the stdlib's."""
        if self._udp:
            _dgram.send(self, data, flags, None)     # one datagram, as the kernel sends it
            return
        if flags & ~_SEND_FLAGS:
            raise _oserror(errno.EOPNOTSUPP)
        host = self._host
        st, loop = host.stack, host.loop
        view = memoryview(data).cast("B")
        oob = flags & MSG_OOB
        nonblock = self._timeout == 0.0 or bool(flags & MSG_DONTWAIT)
        end = None if nonblock else self._end()
        sent, total = 0, len(view)
        try:
            with loop.cond:
                while sent < total:
                    try:
                        sent += st.send(self._live_fd(), view[sent:], now=loop.now(),
                                        flags=oob)
                        loop.wake()
                        continue
                    except BlockingIOError:
                        if nonblock:
                            raise
                    self._wait(end)
        finally:
            loop.wake()
            if self._ready is not None:
                self._sync_ready()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes; b"" at end of stream."""
        if self._udp:
            return _dgram.recvfrom(self, bufsize, flags)[0]
        if flags & ~_RECV_FLAGS:
            raise _oserror(errno.EOPNOTSUPP)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        st = self._host.stack
        if bufsize == 0:
            self._live_fd()
            return b""              # Linux returns at once for a zero-length read
        oob = flags & MSG_OOB
        nonblock = bool(flags & MSG_DONTWAIT)
        if flags & MSG_WAITALL and not oob and bufsize:
            return self._recv_all(bufsize, nonblock)
        return self._blocking(lambda fd, now: st.recv(fd, bufsize, now=now, flags=oob),
                              nonblock=nonblock)

    def _recv_all(self, bufsize: int, nonblock: bool) -> bytes:
        # MSG_WAITALL: wait for the full amount unless EOF, an error or the timeout.
        st = self._host.stack
        parts: list[bytes] = []
        got = 0

        def attempt(fd: int, now: int) -> bytes:
            nonlocal got
            while got < bufsize:
                chunk = st.recv(fd, bufsize - got, now=now)
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
            return b""

        try:
            self._blocking(attempt, nonblock=nonblock)
        except (BlockingIOError, TimeoutError):
            if not parts:
                raise
        return b"".join(parts)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        """Read into ``buffer``; returns how many bytes were stored."""
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = self.recv(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data)

    def sendto(self, data: bytes | bytearray | memoryview, flags_or_address: Any,
               address: Any = None) -> int:
        """``sendto(data[, flags], address)``: a datagram to ``address`` (UDP); for a
        connected TCP socket Linux ignores the address, and so does this."""
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        addr = self._check(address, "sendto")
        if self._udp:
            return _dgram.send(self, data, flags, addr)
        if flags & _MSG_FASTOPEN:
            return _fastopen.sendto(self, data, flags & ~_MSG_FASTOPEN, addr)
        return self.send(data, flags)

    def recvfrom_into(self, buffer: bytearray | memoryview, nbytes: int = 0,
                      flags: int = 0) -> tuple[int, tuple[str, int] | None]:
        """Like :meth:`recvfrom`, storing into ``buffer``; returns ``(nbytes, sender)``."""
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = self.recvfrom(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data), addr

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int] | None]:
        """``(data, sender)``: a datagram for UDP; for TCP ``(recv(bufsize), peer)``."""
        if self._udp:
            return _dgram.recvfrom(self, bufsize, flags)
        data = self.recv(bufsize, flags)
        try:
            return data, self.getpeername()
        except OSError:
            return data, None

    def shutdown(self, how: int) -> None:
        """SHUT_WR sends FIN after queued data; SHUT_RD makes a blocked recv() return b""."""
        st = self._host.stack
        loop = self._host.loop

        def call(fd: int, now: int) -> None:
            if self._udp:
                st.udp.shutdown(fd, how)
            else:
                st.shutdown(fd, how, now=now)
            loop.notify_fd(fd)          # a thread blocked in recv() sees EOF now

        self._locked(call)

    # ------------------------------------------------------------ closing
    def close(self) -> None:
        """Release the socket (after any makefile() objects are closed, as the stdlib)."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        fd = self._fd
        if fd is None:
            return
        loop = self._host.loop
        with loop.lock:
            if self._fd is None:
                return
            self._fd = None
            try:
                if self._udp:
                    self._host.stack.udp.close(fd)
                else:
                    self._host.stack.close(fd, now=loop.now())
            finally:
                loop.notify_fd(fd)       # blocked callers wake and find EBADF
                self._drop_ready(fd)
        loop.wake()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is None:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
        # The loop may be held by another thread; never block in a finalizer.
        st, loop = self._host.stack, self._host.loop
        ready, watcher = self._ready, self._watcher
        if ready is not None:
            ready.close()

        udp = self._udp

        def close(now: int) -> None:
            if watcher is not None:
                loop.unwatch(fd, watcher)
            if udp:
                st.udp.close(fd)
            else:
                st.close(fd, now=now)

        loop.call_soon(close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ files
    def makefile(self, mode: str = "r", buffering: int | None = None, *,
                 encoding: str | None = None, errors: str | None = None,
                 newline: str | None = None) -> Any:
        """A file object on the socket, built like the stdlib's (RawIOBase + buffers)."""
        return make_file(self, mode, buffering, encoding=encoding, errors=errors,
                         newline=newline)


def create_connection(address: tuple[str, int], timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
                      source_address: tuple[str, int] | None = None, *,
                      host: Host | None = None) -> socket:
    """Connect to ``address`` and return the socket (the stdlib's helper): each
    address the name resolves to is tried in turn; the last error is raised."""
    name, port = address
    infos = _resolve.getaddrinfo(name, port, 0, SOCK_STREAM, synack_host=resolve_host(host))
    err: BaseException | None = None
    for family, _type, proto, _canon, addr in infos:
        sock = socket(family, SOCK_STREAM, proto, host=host)
        try:
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT and timeout is not _socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(addr)
            return sock
        except OSError as exc:
            err = exc
            sock.close()
        except BaseException:
            sock.close()
            raise
    assert err is not None
    raise err


def create_server(address: tuple[str, int], *, family: int = AF_INET,
                  backlog: int | None = None, reuse_port: bool = False,
                  dualstack_ipv6: bool = False, host: Host | None = None) -> socket:
    """A listening socket bound to ``address`` with SO_REUSEADDR (the stdlib's helper)."""
    if reuse_port:
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6 and family != AF_INET6:
        raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, SOCK_STREAM, host=host)
    try:
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        if family == AF_INET6:   # the stdlib: V6ONLY unless a dual-stack server is asked for
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        sock.bind(address)
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


SocketType = socket


def has_dualstack_ipv6(host: Host | None = None) -> bool:
    """True when the synack host (the default one) has an IPv6 address beside its
    IPv4 one, so an AF_INET6 socket without IPV6_V6ONLY takes both."""
    h = host if host is not None else get_default_host()
    return h is not None and h.stack.addr6 is not None


def _copy_stdlib_names() -> None:
    """Every public name of the stdlib's module that synack does not define itself:
    constants, enums, pure functions (``inet_pton``, ``htons``, ...), and the calls
    that only mean something to the kernel (``socketpair``, ``fromfd``, ``send_fds``,
    ``gethostname``), which stay the kernel's."""
    names = globals()
    for name in dir(_socket):
        if not name.startswith("_") and name not in names:
            names[name] = getattr(_socket, name)


_copy_stdlib_names()
