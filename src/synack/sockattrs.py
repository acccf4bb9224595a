"""The options, names, timeouts and readiness descriptor of a :class:`synack.socket.socket`.

A mixin, so that :mod:`synack.socket` keeps the calls that move data and this
module the ones that describe the socket: ``setsockopt``/``getsockopt``,
``getsockname``/``getpeername``, the timeout calls, ``family``/``type``/
``proto``, and ``fileno()``, whose OS descriptor (:class:`~synack.readyfd.ReadyFd`)
is made at the first call and kept up to date by a ``loop.watch()`` watcher and
by the socket's own calls (``_sync_ready``).
"""

from __future__ import annotations

import errno
import socket as _socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from synack.readyfd import ReadyFd
from synack.tcp.state import State

if TYPE_CHECKING:
    from synack.api_host import Host

__all__ = ["SocketAttrsMixin"]

T = TypeVar("T")
# The stdlib's socket class, typed loosely: its private sendfile helpers are reused.
_STDLIB_SOCKET: Any = _socket.socket
AF_INET = _socket.AF_INET
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOL_SOCKET = _socket.SOL_SOCKET
SO_TYPE = _socket.SO_TYPE
SO_DOMAIN = _socket.SO_DOMAIN
SO_PROTOCOL = _socket.SO_PROTOCOL
SO_ACCEPTCONN = _socket.SO_ACCEPTCONN
IPPROTO_TCP = _socket.IPPROTO_TCP


def _check_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if value < 0.0:
        raise ValueError("Timeout value out of range")
    return value



class SocketAttrsMixin:
    """Options, names, timeouts, identity and ``fileno()`` of a synack socket."""

    _fd: int | None
    _host: Host
    _udp: bool
    _proto: int
    _timeout: float | None
    _ready: ReadyFd | None
    _watcher: Callable[[int], None] | None

    def _locked(self, call: Callable[[int, int], T]) -> T:
        raise NotImplementedError

    if TYPE_CHECKING:
        def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int: ...
        def sendto(self, data: bytes | bytearray | memoryview, flags_or_address: Any,
                   address: Any = None) -> int: ...
        def recvfrom(self, bufsize: int, flags: int = 0,
                     ) -> tuple[bytes, tuple[str, int] | None]: ...

    # ------------------------------------------------------------ scatter/gather
    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0,
                address: Any = None) -> int:
        """The buffers joined and sent as one (a datagram for UDP); no ancillary data."""
        if ancdata:
            raise OSError(errno.EINVAL, "synack sockets carry no ancillary data")
        data = b"".join(bytes(b) for b in buffers)
        if address is not None:
            return self.sendto(data, flags, address)
        return self.send(data, flags)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0,
                ) -> tuple[bytes, list[Any], int, tuple[str, int] | None]:
        """``(data, [], msg_flags, address)``; MSG_TRUNC is not reported."""
        data, addr = self.recvfrom(bufsize, flags)
        return data, [], 0, addr

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0,
                     ) -> tuple[int, list[Any], int, tuple[str, int] | None]:
        """``(nbytes, [], msg_flags, address)``: what :meth:`recvmsg` gives, spread over
        ``buffers`` in order (the stdlib's scatter read)."""
        views = [memoryview(b).cast("B") for b in buffers]
        data, _anc, msg_flags, addr = self.recvmsg(sum(len(v) for v in views), ancbufsize,
                                                   flags)
        done = 0
        for v in views:
            if done >= len(data):
                break
            part = data[done:done + len(v)]
            v[:len(part)] = part
            done += len(part)
        return done, [], msg_flags, addr

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """The stdlib's fallback for sockets without ``os.sendfile``: the file read and
        sent in blocks (the same checks and errors, the file's position left after the
        last byte sent)."""
        send_file: Callable[..., int] = _STDLIB_SOCKET._sendfile_use_send
        return send_file(self, file, offset, count)

    _check_sendfile_params = _STDLIB_SOCKET._check_sendfile_params

    # ------------------------------------------------------------ descriptors
    def get_inheritable(self) -> bool:
        """False: the descriptor :meth:`fileno` gives is made close-on-exec, and a child
        process could not use a synack socket anyway (the stack lives in this process)."""
        fd = self.fileno()
        if fd < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        """Only False is possible: the stack, not the descriptor, is the socket."""
        if self.fileno() < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if inheritable:
            raise OSError(errno.EOPNOTSUPP,
                          "a synack socket cannot be inherited by another process")

    def dup(self) -> Any:
        """Not possible for a synack socket (one Python object per stack descriptor)."""
        raise OSError(errno.EOPNOTSUPP, "synack sockets cannot be duplicated")

    def detach(self) -> int:
        """Not possible: the descriptor number means nothing outside this stack."""
        raise OSError(errno.EOPNOTSUPP, "synack sockets cannot be detached")

    def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
        """AF_ALG (the kernel's crypto API) exists only on kernel sockets."""
        raise OSError(errno.EOPNOTSUPP, "sendmsg_afalg needs an AF_ALG kernel socket")

    # ------------------------------------------------------------ options and names
    def setsockopt(self, level: int, optname: int, value: int | bytes | None,
                   optlen: int | None = None) -> None:
        """Set an option (Linux constants, as the stdlib's)."""
        if value is None:
            if optlen is None:
                raise TypeError("setsockopt() takes an optlen with a None value")
            value = bytes(optlen)
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif isinstance(value, bool):
            value = int(value)
        st = self._host.stack
        val = value
        if self._udp:
            self._locked(lambda fd, now: st.udp.setsockopt(fd, level, optname, val))
            return
        self._locked(lambda fd, now: st.setsockopt(fd, level, optname, val, now=now))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        """An option's value: an int, or ``buflen`` bytes when a length is given."""
        st = self._host.stack
        value: int | bytes
        if self._udp:
            value = self._locked(lambda fd, now: st.udp.getsockopt(fd, level, optname))
        elif level == SOL_SOCKET and optname == SO_TYPE:
            value = int(SOCK_STREAM)
        elif level == SOL_SOCKET and optname == SO_DOMAIN:
            value = int(self.family)
        elif level == SOL_SOCKET and optname == SO_PROTOCOL:
            value = IPPROTO_TCP
        elif level == SOL_SOCKET and optname == SO_ACCEPTCONN:
            value = int(self._locked(lambda fd, now: st.state(fd)) is State.LISTEN)
        else:
            value = self._locked(lambda fd, now: st.getsockopt(fd, level, optname))
        if buflen is None:
            if isinstance(value, bytes):    # the stdlib reads an int out of the buffer
                return int.from_bytes(value[:4].ljust(4, b"\0"), sys.byteorder, signed=True)
            return value
        if not 0 < buflen <= 1024:
            raise OSError("getsockopt buflen out of range")
        if isinstance(value, int):
            value = struct.pack("i", value)
        return value[:buflen]

    def getsockname(self) -> tuple[str, int]:
        """The local address."""
        st = self._host.stack
        if self._udp:
            return self._locked(lambda fd, now: st.udp.getsockname(fd))
        return self._locked(lambda fd, now: st.getsockname(fd))

    def getpeername(self) -> tuple[str, int]:
        """The peer's address (ENOTCONN when not connected)."""
        st = self._host.stack
        if self._udp:
            return self._locked(lambda fd, now: st.udp.getpeername(fd))
        return self._locked(lambda fd, now: st.getpeername(fd))

    # ------------------------------------------------------------ timeouts
    def settimeout(self, value: float | None) -> None:
        """None blocks, 0.0 never blocks, a positive value raises TimeoutError after it."""
        self._timeout = _check_timeout(value)

    def gettimeout(self) -> float | None:
        """The timeout in seconds (None: blocking)."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(False)`` is ``settimeout(0.0)``; True is ``settimeout(None)``."""
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """False when the timeout is 0.0."""
        return self._timeout != 0.0

    @property
    def timeout(self) -> float | None:
        """The timeout, as the stdlib's attribute."""
        return self._timeout

    # ------------------------------------------------------------ identity
    @property
    def family(self) -> _socket.AddressFamily:
        """AF_INET, or AF_INET6 for an IPv6 TCP socket."""
        return getattr(self, "_family", AF_INET)

    @property
    def type(self) -> _socket.SocketKind:
        """SOCK_STREAM or SOCK_DGRAM."""
        return SOCK_DGRAM if self._udp else SOCK_STREAM

    @property
    def proto(self) -> int:
        """The protocol given when made (0 unless IPPROTO_TCP/IPPROTO_UDP), as the stdlib."""
        return self._proto

    @property
    def host(self) -> Host:
        """The synack host this socket lives on."""
        return self._host

    @property
    def stack_fd(self) -> int:
        """The descriptor number inside the synack stack (-1 once closed)."""
        return -1 if self._fd is None else self._fd

    def fileno(self) -> int:
        """An OS descriptor that is readable and writable exactly when this socket is
        (-1 once closed), for select/poll/epoll, ``selectors`` and asyncio. Made at the
        first call (:class:`~synack.readyfd.ReadyFd`) and kept up to date from then on."""
        fd = self._fd
        if fd is None:
            return -1
        ready = self._ready
        if ready is None:
            loop = self._host.loop
            with loop.lock:
                ready = self._ready
                if ready is None:
                    ready = self._ready = ReadyFd()
                    probe = self._probe(fd)

                    def watcher(now: int, ready: ReadyFd = ready) -> None:
                        try:
                            ready.update(*probe())
                        except OSError:
                            pass            # closed meanwhile: _drop_ready follows
                    self._watcher = watcher
                    ready.update(*probe())
                    loop.watch(fd, watcher)
        return ready.fileno()

    def _probe(self, fd: int) -> Callable[[], tuple[bool, bool]]:
        """A function returning (readable, writable) now; the lock must be held."""
        st = self._host.stack
        if self._udp:
            udp = st.udp
            return lambda: (udp.readable(fd), udp.writable(fd))
        return lambda: (st.readable(fd), st.writable(fd))

    def _sync_ready(self) -> None:
        """After our own call: bring the OS descriptor's readiness up to date."""
        with self._host.loop.lock:
            ready, fd = self._ready, self._fd
            if ready is None or fd is None:
                return
            try:
                ready.update(*self._probe(fd)())
            except OSError:
                pass

    def __repr__(self) -> str:
        closed = " [closed]" if self._fd is None else ""
        s = (f"<synack.socket.socket{closed} fd={self.stack_fd}, family={self.family!s}, "
             f"type={self.type!s}, proto={self._proto}")
        if self._fd is not None:
            try:
                s += f", laddr={self.getsockname()}"
                s += f", raddr={self.getpeername()}"
            except OSError:
                pass
        return s + ">"

    def _drop_ready(self, fd: int) -> None:
        ready, watcher = self._ready, self._watcher
        self._ready = self._watcher = None
        if watcher is not None:
            self._host.loop.unwatch(fd, watcher)
        if ready is not None:
            ready.close()
