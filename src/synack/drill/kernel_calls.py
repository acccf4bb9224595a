"""A script's system calls made for real, on the kernel's sockets, as packetdrill makes them.

Each call arrives evaluated (:class:`synack.drill.target.SysCall`: Python ints,
bytes, lists, dicts) and is made with the standard library (``socket``, ``os``,
``fcntl``, ``select``) -- or, where a script passes a NULL buffer on purpose, with
the C library through ``ctypes``. The rules are packetdrill's (``run_system_call.c``):

* Script fds are the script's own numbers; the kernel's are whatever the process
  has open. A new descriptor gets the lowest free script number from 3 up, which is
  what the kernel itself gives a fresh process, so ``socket(...) = 3`` and
  ``accept(3, ...) = 4`` hold as written.
* ``bind(fd, ..., ...)`` binds the local address and the bind port (8080); ``connect``
  and ``sendto`` with ``...`` go to the remote address and the connect port (8080).
* A buffer written as ``...`` is that many zero bytes; a ``NULL`` buffer (0) is a
  NULL pointer (the kernel answers EFAULT).
* Option values are packed as C would: an int (``[1]`` or ``1``) as a 32-bit int,
  cut to ``optlen`` (``IP_TOS, [4], 1`` passes one byte); a struct by its option
  (``SO_LINGER``: ``struct linger``); a string as its bytes. ``getsockopt`` answers an
  int option with an int and any other with the bytes the kernel wrote.

Errors come back as Linux's errno names (``OSError.errno`` through
:data:`errno.errorcode`). This module makes calls; it neither waits nor times them
(:mod:`synack.drill.kernel` runs each on a worker thread and watches for blocking).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import fields

from synack.drill.target import SysCall, SyscallResult, Unsupported
from synack.tcp.tcpinfo import SIZE as TCP_INFO_SIZE
from synack.tcp.tcpinfo import TcpInfo

__all__ = ["KernelCalls", "tcp_info_fields"]

SCRIPT_PORT = 8080             # packetdrill's live_bind_port / live_connect_port
TCP_INFO = 11                  # include/uapi/linux/tcp.h
TCP_CONGESTION = 13
TCP_ULP = 31
TCP_FASTOPEN_KEY = 33
SO_LINGER = socket.SO_LINGER
SO_RCVTIMEO = 20
SO_SNDTIMEO = 21
_STRING_OPTS = {(socket.IPPROTO_TCP, TCP_CONGESTION), (socket.IPPROTO_TCP, TCP_ULP),
                (socket.SOL_SOCKET, socket.SO_BINDTODEVICE)}
_STRUCT_OPTS = {(socket.SOL_SOCKET, SO_LINGER): 8, (socket.IPPROTO_TCP, TCP_INFO): TCP_INFO_SIZE}
_SCM_TIMESTAMPING = 37            # include/uapi/asm-generic/socket.h
_ANC_SIZE = 4096               # control-message room for recvmsg with msg_control


def tcp_info_fields(raw: bytes) -> dict[str, int]:
    """``struct tcp_info`` bytes as ``{tcpi_name: value}`` (Linux 6.18 layout)."""
    info = TcpInfo.unpack(raw)
    return {f.name: getattr(info, f.name) for f in fields(info)}


class _Fd:
    """One open script descriptor: a socket, an epoll instance, or a plain fd."""

    __slots__ = ("ep", "fd", "kind", "sock")

    def __init__(self, kind: str, fd: int, sock: socket.socket | None = None,
                 ep: select.epoll | None = None) -> None:
        self.kind = kind
        self.fd = fd
        self.sock = sock
        self.ep = ep

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        elif self.ep is not None:
            self.ep.close()
        else:
            os.close(self.fd)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _c_result(res: int) -> int:
    """A C call's return value; raises OSError with errno on -1, as Python's wrappers do."""
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def _int(v: object, what: str, default: int | None = None) -> int:
    """An int argument; ``[n]`` (an int pointer) counts as n; ``...`` as ``default``."""
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if v is None and default is not None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise Unsupported(f"unsupported: {what} must be an integer, not {v!r}")
    return v


def _data(buf: object, count: int) -> bytes | None:
    """A write's bytes: ``...`` is ``count`` zero bytes; NULL (0) is None; text is its bytes."""
    if buf is None:
        return bytes(count)
    if isinstance(buf, int) and not isinstance(buf, bool) and buf == 0:
        return None
    if isinstance(buf, str):
        buf = buf.encode("latin-1")
    if isinstance(buf, (bytes, bytearray)):
        return bytes(buf[:count]).ljust(count, b"\0")
    raise Unsupported(f"unsupported: buffer {buf!r}")


def _iov_lens(iov: object) -> list[int]:
    """``[{..., 10}, {iov_base=..., iov_len=20}]`` as lengths."""
    if not isinstance(iov, list):
        raise Unsupported(f"unsupported: iovec list {iov!r}")
    lens = []
    for item in iov:
        if isinstance(item, dict):
            lens.append(_int(item.get("iov_len"), "iov_len"))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            lens.append(_int(item[1], "iov_len"))
        else:
            raise Unsupported(f"unsupported: iovec {item!r}")
    return lens


def _iov_data(iov: object) -> list[bytes]:
    out = []
    for item, n in zip(iov if isinstance(iov, list) else [], _iov_lens(iov), strict=True):
        base = item.get("iov_base") if isinstance(item, dict) else item[0]
        data = _data(base, n)
        out.append(data if data is not None else bytes(n))
    return out


class KernelCalls:
    """The script's descriptors and the calls on them, in the current network namespace."""

    def __init__(self, local_ip: str, remote_ip: str, *, cwd: str = ".",
                 bind_port: int = SCRIPT_PORT, connect_port: int = SCRIPT_PORT) -> None:
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.cwd = cwd
        self.bind_port = bind_port
        self.connect_port = connect_port
        self.fds: dict[int, _Fd] = {}
        # The target's time 0 in wall-clock microseconds (set by the target): kernel
        # SCM_TIMESTAMPING times are given relative to it, as the target's clock reads.
        self.origin_us: Callable[[], int] = lambda: 0
        self._libc = _libc()
        self._calls: dict[str, Callable[[tuple[object, ...]], SyscallResult]] = {
            name[5:]: getattr(self, name) for name in dir(self) if name.startswith("_sys_")
        }

    # ------------------------------------------------------------ descriptors
    def _new_fd(self, entry: _Fd) -> int:
        n = 3
        while n in self.fds:
            n += 1
        self.fds[n] = entry
        return n

    def _entry(self, v: object) -> _Fd:
        n = _int(v, "fd")
        entry = self.fds.get(n)
        if entry is None:
            raise OSError(errno.EBADF, f"fd {n} is not open in the script")
        return entry

    def _sock(self, v: object) -> socket.socket:
        entry = self._entry(v)
        if entry.sock is None:
            raise OSError(errno.ENOTSOCK, "not a socket")
        return entry.sock

    def _script_fd_of(self, live: int) -> int:
        for n, entry in self.fds.items():
            if entry.fd == live:
                return n
        return -1

    def live_fd(self, script_fd: int) -> int:
        """The kernel descriptor behind a script fd (-1 if none)."""
        entry = self.fds.get(script_fd)
        return -1 if entry is None else entry.fd

    def close_all(self) -> None:
        """Close every descriptor the script left open."""
        while self.fds:
            _, entry = self.fds.popitem()
            try:
                entry.close()
            except OSError:
                pass

    # ------------------------------------------------------------ dispatch
    def call(self, call: SysCall) -> SyscallResult:
        """Make one call; OSError becomes ``ret -1`` with the errno name."""
        fn = self._calls.get(call.name)
        if fn is None:
            raise Unsupported(f"unsupported: system call {call.name}() on the kernel target")
        try:
            return fn(call.args)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, f"errno {exc.errno}")
            return SyscallResult(-1, name)
        except (TypeError, ValueError, OverflowError, IndexError) as exc:
            raise Unsupported(f"unsupported: {call.name}() arguments: {exc}") from exc

    def tcp_info(self, script_fd: int) -> dict[str, int]:
        """TCP_INFO of a script fd as ``{tcpi_name: value}``."""
        raw = self._sock(script_fd).getsockopt(socket.IPPROTO_TCP, TCP_INFO, TCP_INFO_SIZE)
        return tcp_info_fields(raw)

    @staticmethod
    def _args(args: tuple[object, ...], n: int, name: str) -> tuple[object, ...]:
        if len(args) < n:
            raise Unsupported(f"unsupported: {name}() needs {n} arguments, got {len(args)}")
        return args

    # ------------------------------------------------------------ sockets
    def _sys_socket(self, args: tuple[object, ...]) -> SyscallResult:
        _domain, type_, proto = self._args(args, 3, "socket")[:3]
        # packetdrill makes the socket in the run's address family whatever the script says.
        family = socket.AF_INET6 if ":" in self.local_ip else socket.AF_INET
        s = socket.socket(family, _int(type_, "type"), _int(proto, "protocol", 0))
        return SyscallResult(self._new_fd(_Fd("socket", s.fileno(), sock=s)))

    def _address(self, v: object, default_ip: str, port: int) -> tuple[str, int] | None:
        """``...`` is the default address; a ``{sa_family=AF_UNSPEC}`` struct is None."""
        if v is None:
            return default_ip, port
        if v == socket.AF_UNSPEC and isinstance(v, int):      # sendto(..., AF_UNSPEC, ...)
            return None
        if isinstance(v, dict):
            fam = v.get("sa_family", v.get("sin_family"))
            if fam == socket.AF_UNSPEC:
                return None
            sin_port = v.get("sin_port")
            addr = v.get("sin_addr", default_ip)
            # The runner evaluates htons(8080) to 8080 and inet_addr("a.b.c.d") to its text.
            if isinstance(addr, bytes):
                addr = addr.decode()
            if isinstance(sin_port, int) and isinstance(addr, str):
                if ":" in self.local_ip and ":" not in addr:   # an IPv4 address, AF_INET6
                    addr = "::ffff:" + addr                    # socket: ipv4-mapped-ipv6
                return addr, sin_port
        raise Unsupported(f"unsupported: socket address {v!r}")

    def _sys_bind(self, args: tuple[object, ...]) -> SyscallResult:
        fd, addr = self._args(args, 2, "bind")[:2]
        sock = self._sock(fd)
        where = self._address(addr, self.local_ip, self.bind_port)
        if where is None:
            raise Unsupported("unsupported: bind() to AF_UNSPEC")
        sock.bind(where)
        return SyscallResult(0)

    def _sys_listen(self, args: tuple[object, ...]) -> SyscallResult:
        fd, backlog = self._args(args, 2, "listen")[:2]
        self._sock(fd).listen(_int(backlog, "backlog"))
        return SyscallResult(0)

    def _sys_accept(self, args: tuple[object, ...]) -> SyscallResult:
        fd = self._args(args, 1, "accept")[0]
        conn, peer = self._sock(fd).accept()
        n = self._new_fd(_Fd("socket", conn.fileno(), sock=conn))
        return SyscallResult(n, out={"addr": peer})

    def _sys_connect(self, args: tuple[object, ...]) -> SyscallResult:
        fd, addr = self._args(args, 2, "connect")[:2]
        sock = self._sock(fd)
        where = self._address(addr, self.remote_ip, self.connect_port)
        if where is None:                         # disconnect: connect(AF_UNSPEC)
            sa = struct.pack("=H14x", socket.AF_UNSPEC)
            _c_result(self._libc.connect(sock.fileno(), sa, len(sa)))
            return SyscallResult(0)
        sock.connect(where)
        return SyscallResult(0)

    def _sys_shutdown(self, args: tuple[object, ...]) -> SyscallResult:
        fd, how = self._args(args, 2, "shutdown")[:2]
        self._sock(fd).shutdown(_int(how, "how"))
        return SyscallResult(0)

    def _sys_close(self, args: tuple[object, ...]) -> SyscallResult:
        n = _int(self._args(args, 1, "close")[0], "fd")
        entry = self.fds.pop(n, None)
        if entry is None:
            raise OSError(errno.EBADF, "bad fd")
        entry.close()
        return SyscallResult(0)

    # ------------------------------------------------------------ data
    def _sys_write(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count = self._args(args, 3, "write")[:3]
        entry, n = self._entry(fd), _int(count, "count")
        data = _data(buf, n)
        if data is None:
            return SyscallResult(_c_result(self._libc.write(entry.fd, None, n)))
        return SyscallResult(os.write(entry.fd, data))

    def _sys_read(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count = self._args(args, 3, "read")[:3]
        entry, n = self._entry(fd), _int(count, "count")
        if _data(buf, 0) is None:
            return SyscallResult(_c_result(self._libc.read(entry.fd, None, n)))
        data = os.read(entry.fd, n)
        return SyscallResult(len(data), out={"data": data})

    def _sys_send(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count, flags = self._args(args, 4, "send")[:4]
        sock, n, fl = self._sock(fd), _int(count, "len"), _int(flags, "flags", 0)
        data = _data(buf, n)
        if data is None:
            return SyscallResult(_c_result(self._libc.send(sock.fileno(), None, n, fl)))
        return SyscallResult(sock.send(data, fl))

    def _sys_sendto(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count, flags = self._args(args, 4, "sendto")[:4]
        addr = args[4] if len(args) > 4 else None
        sock, n, fl = self._sock(fd), _int(count, "len"), _int(flags, "flags", 0)
        where = self._address(addr, self.remote_ip, self.connect_port)
        data = _data(buf, n)
        if data is None or where is None:
            if where is None:
                sa = struct.pack("=H14x", socket.AF_UNSPEC)
            else:
                sa = struct.pack("=H", socket.AF_INET) + struct.pack(
                    "!H4s8x", where[1], socket.inet_aton(where[0]))
            res = self._libc.sendto(sock.fileno(), data, n, fl, sa, len(sa))
            return SyscallResult(_c_result(res))
        return SyscallResult(sock.sendto(data, fl, where))

    def _sys_recv(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count, flags = self._args(args, 4, "recv")[:4]
        sock, n, fl = self._sock(fd), _int(count, "len"), _int(flags, "flags", 0)
        if _data(buf, 0) is None:
            return SyscallResult(_c_result(self._libc.recv(sock.fileno(), None, n, fl)))
        data = sock.recv(n, fl)
        return SyscallResult(len(data), out={"data": data})

    def _sys_recvfrom(self, args: tuple[object, ...]) -> SyscallResult:
        fd, buf, count, flags = self._args(args, 4, "recvfrom")[:4]
        sock, n, fl = self._sock(fd), _int(count, "len"), _int(flags, "flags", 0)
        if _data(buf, 0) is None:
            return SyscallResult(_c_result(self._libc.recvfrom(sock.fileno(), None, n, fl,
                                                               None, None)))
        data, peer = sock.recvfrom(n, fl)
        return SyscallResult(len(data), out={"data": data, "addr": peer})

    def _sys_writev(self, args: tuple[object, ...]) -> SyscallResult:
        fd, iov = self._args(args, 2, "writev")[:2]
        return SyscallResult(os.writev(self._entry(fd).fd, _iov_data(iov)))

    def _sys_readv(self, args: tuple[object, ...]) -> SyscallResult:
        fd, iov = self._args(args, 2, "readv")[:2]
        bufs = [bytearray(n) for n in _iov_lens(iov)]
        got = os.readv(self._entry(fd).fd, bufs)
        return SyscallResult(got, out={"data": b"".join(bufs)[:got]})

    def _sys_sendmsg(self, args: tuple[object, ...]) -> SyscallResult:
        fd, msg, flags = self._args(args, 3, "sendmsg")[:3]
        if not isinstance(msg, dict):
            raise Unsupported(f"unsupported: sendmsg() message {msg!r}")
        sock = self._sock(fd)
        anc = [(_int(c.get("cmsg_level"), "cmsg_level"), _int(c.get("cmsg_type"), "cmsg_type"),
                _cmsg_data(c.get("cmsg_data")))
               for c in (msg.get("msg_control") or []) if isinstance(c, dict)]
        data = _iov_data(msg.get("msg_iov", []))
        fl = _int(flags, "flags", 0)
        if "msg_name" in msg:                  # msg_name(...)=...: the connect address
            where = self._address(msg.get("msg_name"), self.remote_ip, self.connect_port)
            if where is not None:
                return SyscallResult(sock.sendmsg(data, anc, fl, where))
        return SyscallResult(sock.sendmsg(data, anc, fl))

    def _sys_recvmsg(self, args: tuple[object, ...]) -> SyscallResult:
        fd, msg, flags = self._args(args, 3, "recvmsg")[:3]
        if not isinstance(msg, dict):
            raise Unsupported(f"unsupported: recvmsg() message {msg!r}")
        sock = self._sock(fd)
        size = sum(_iov_lens(msg.get("msg_iov", [])))
        anc = _ANC_SIZE if "msg_control" in msg else 0
        data, cmsgs, msg_flags, _peer = sock.recvmsg(size, anc, _int(flags, "flags", 0))
        return SyscallResult(len(data), out={"data": data, "msg_flags": msg_flags,
                                             "cmsgs": [(lv, ty, self._target_clock(lv, ty, d))
                                                       for lv, ty, d in cmsgs]})

    def _target_clock(self, level: int, type_: int, data: bytes) -> bytes:
        """SCM_TIMESTAMPING's three timespecs (CLOCK_REALTIME) on the target's clock."""
        if (level, type_) != (socket.SOL_SOCKET, _SCM_TIMESTAMPING) or len(data) < 48:
            return bytes(data)
        origin = self.origin_us()
        out = b""
        for sec, nsec in struct.iter_unpack("=qq", data[:48]):
            us = sec * 1_000_000 + nsec // 1000
            if us:
                us -= origin
            out += struct.pack("=qq", us // 1_000_000, us % 1_000_000 * 1000)
        return out + bytes(data[48:])

    # ------------------------------------------------------------ options
    def _sys_setsockopt(self, args: tuple[object, ...]) -> SyscallResult:
        fd, level, name, value = self._args(args, 4, "setsockopt")[:4]
        optlen = args[4] if len(args) > 4 else None
        sock, lv, nm = self._sock(fd), _int(level, "level"), _int(name, "optname")
        raw = _pack_option(lv, nm, value)
        if optlen is not None:
            n = _int(optlen, "optlen")
            raw = raw[:n].ljust(n, b"\0")
        if value is None:
            sock.setsockopt(lv, nm, None, _int(optlen, "optlen", 0))   # type: ignore[call-overload]
        else:
            sock.setsockopt(lv, nm, raw)
        return SyscallResult(0)

    def _sys_getsockopt(self, args: tuple[object, ...]) -> SyscallResult:
        fd, level, name, value = self._args(args, 4, "getsockopt")[:4]
        optlen = args[4] if len(args) > 4 else None
        sock, lv, nm = self._sock(fd), _int(level, "level"), _int(name, "optname")
        size = _int(optlen, "optlen", 0) if optlen is not None else 0
        # The target contract: an int option comes back as an int, anything else as the
        # bytes the kernel wrote (a struct linger, a tcp_info, a name); the runner decodes.
        if (lv, nm) in _STRUCT_OPTS or (lv, nm) in _STRING_OPTS \
                or isinstance(value, (str, bytes, dict, tuple)):
            raw = sock.getsockopt(lv, nm, size or _STRUCT_OPTS.get((lv, nm), 64))
            return SyscallResult(0, out={"optval": raw, "optlen": len(raw)})
        raw = sock.getsockopt(lv, nm, size or 4)
        wide = raw[:4].ljust(4, b"\0")
        expect = value[0] if isinstance(value, list) and value else value
        fmt = "=I" if isinstance(expect, int) and expect > 0x7FFFFFFF else "=i"
        val = struct.unpack(fmt, wide)[0] if len(raw) >= 4 else int.from_bytes(raw, "little")
        return SyscallResult(0, out={"optval": val, "optlen": len(raw)})

    # ------------------------------------------------------------ descriptors' control
    def _sys_fcntl(self, args: tuple[object, ...]) -> SyscallResult:
        fd, cmd = self._args(args, 2, "fcntl")[:2]
        arg = _int(args[2], "arg", 0) if len(args) > 2 else 0
        res = fcntl.fcntl(self._entry(fd).fd, _int(cmd, "cmd"), arg)
        return SyscallResult(res, out={"flags": res})

    def _sys_ioctl(self, args: tuple[object, ...]) -> SyscallResult:
        fd, req = self._args(args, 2, "ioctl")[:2]
        raw = fcntl.ioctl(self._entry(fd).fd, _int(req, "request"), bytes(4))
        return SyscallResult(0, out={"value": struct.unpack("=i", raw)[0]})

    def _sys_poll(self, args: tuple[object, ...]) -> SyscallResult:
        fds, _nfds, timeout = self._args(args, 3, "poll")[:3]
        if not isinstance(fds, list):
            raise Unsupported(f"unsupported: pollfd list {fds!r}")
        p = select.poll()
        live = []
        for item in fds:
            if not isinstance(item, dict):
                raise Unsupported(f"unsupported: pollfd {item!r}")
            real = self._entry(item.get("fd")).fd
            live.append(real)
            p.register(real, _int(item.get("events"), "events", 0))
        got = dict(p.poll(_int(timeout, "timeout")))
        revents = [got.get(real, 0) for real in live]
        return SyscallResult(sum(1 for r in revents if r), out={"revents": revents})

    def _sys_epoll_create(self, args: tuple[object, ...]) -> SyscallResult:
        ep = select.epoll()
        return SyscallResult(self._new_fd(_Fd("epoll", ep.fileno(), ep=ep)))

    _sys_epoll_create1 = _sys_epoll_create

    def _epoll(self, v: object) -> select.epoll:
        ep = self._entry(v).ep
        if ep is None:
            raise OSError(errno.EINVAL, "not an epoll fd")
        return ep

    def _sys_epoll_ctl(self, args: tuple[object, ...]) -> SyscallResult:
        epfd, op, fd = self._args(args, 3, "epoll_ctl")[:3]
        ev = args[3] if len(args) > 3 else None
        ep, real, code = self._epoll(epfd), self._entry(fd).fd, _int(op, "op")
        mask = _int(ev.get("events"), "events", 0) if isinstance(ev, dict) else 0
        if code == 1:                            # EPOLL_CTL_ADD (include/uapi/linux/eventpoll.h)
            ep.register(real, mask)
        elif code == 3:                          # EPOLL_CTL_MOD
            ep.modify(real, mask)
        elif code == 2:                          # EPOLL_CTL_DEL
            ep.unregister(real)
        else:
            raise OSError(errno.EINVAL, "bad epoll op")
        return SyscallResult(0)

    def _sys_epoll_wait(self, args: tuple[object, ...]) -> SyscallResult:
        epfd, _events, maxevents, timeout = self._args(args, 4, "epoll_wait")[:4]
        ms = _int(timeout, "timeout")
        got = self._epoll(epfd).poll(ms / 1000 if ms >= 0 else -1, _int(maxevents, "maxevents"))
        events = [{"events": mask, "fd": self._script_fd_of(real)} for real, mask in got]
        return SyscallResult(len(got), out={"events": events})

    def _sys_pipe(self, args: tuple[object, ...]) -> SyscallResult:
        r, w = os.pipe()
        fds = [self._new_fd(_Fd("pipe", r)), self._new_fd(_Fd("pipe", w))]
        return SyscallResult(0, out={"fds": fds})

    def _sys_open(self, args: tuple[object, ...]) -> SyscallResult:
        path, flags = self._args(args, 2, "open")[:2]
        mode = _int(args[2], "mode", 0o644) if len(args) > 2 else 0o644
        if isinstance(path, bytes):
            path = path.decode()
        if not isinstance(path, str):
            raise Unsupported(f"unsupported: open() path {path!r}")
        real = os.open(os.path.join(self.cwd, path), _int(flags, "flags"), mode)
        return SyscallResult(self._new_fd(_Fd("file", real)))

    def _sys_sendfile(self, args: tuple[object, ...]) -> SyscallResult:
        out_fd, in_fd, offset, count = self._args(args, 4, "sendfile")[:4]
        off = None if offset is None else _int(offset, "offset")
        sent = os.sendfile(self._entry(out_fd).fd, self._entry(in_fd).fd, off,
                           _int(count, "count"))
        return SyscallResult(sent)

    def _sys_splice(self, args: tuple[object, ...]) -> SyscallResult:
        fd_in, off_in, fd_out, off_out, length, flags = self._args(args, 6, "splice")[:6]
        moved = os.splice(self._entry(fd_in).fd, self._entry(fd_out).fd, _int(length, "len"),
                          None if off_in in (None, 0) else _int(off_in, "off_in"),
                          None if off_out in (None, 0) else _int(off_out, "off_out"),
                          _int(flags, "flags", 0))
        return SyscallResult(moved)


def _cmsg_data(v: object) -> bytes:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, int):
        return struct.pack("=i", v)
    raise Unsupported(f"unsupported: cmsg data {v!r}")


def _pack_option(level: int, name: int, value: object) -> bytes:
    """An option's value as the C struct or int packetdrill would pass."""
    if value is None:
        return b""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return struct.pack("=I" if value > 0x7FFFFFFF else "=i", value)
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if level == socket.SOL_SOCKET and name == SO_LINGER:
            # packetdrill writes {onoff=1, linger=0}; C's names are l_onoff, l_linger.
            on = value.get("onoff", value.get("l_onoff"))
            secs = value.get("linger", value.get("l_linger"))
            return struct.pack("=ii", _int(on, "onoff", 0), _int(secs, "linger", 0))
        if level == socket.SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO):
            return struct.pack("=qq", _int(value.get("tv_sec"), "tv_sec", 0),
                               _int(value.get("tv_usec"), "tv_usec", 0))
        if level == socket.SOL_SOCKET and name == 37:   # SO_TIMESTAMPING: so_timestamping
            return struct.pack("=ii", _int(value.get("flags"), "flags", 0),
                               _int(value.get("bind_phc"), "bind_phc", 0))
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return struct.pack(f"={len(value)}i", *value)
    raise Unsupported(f"unsupported: option value {value!r} for level {level} option {name}")
