"""The system calls of a script, made on a synack :class:`~synack.stack.Stack`.

Each call is one function ``(target, call) -> SyscallResult | Block``: a result
right away, or a :class:`Block` (the socket is blocking and the call cannot finish
yet) whose ``retry`` the target runs again after every packet and timer until it
returns a result. Errors are Linux's errno names. Descriptors are numbered as
Linux numbers them in a fresh process (the lowest free one from 3). What synack
does not have raises :class:`~synack.drill.target.Unsupported`.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from synack.drill import sim_epoll, sim_files
from synack.drill.constants import SYMBOLS, errno_name
from synack.drill.sim_block import Block
from synack.drill.target import SysCall, SyscallResult, Unsupported
from synack.tcp.state import State

if TYPE_CHECKING:
    from synack.drill.sim_target import SimTarget

S = SYMBOLS
_CONNECTING = (State.SYN_SENT, State.SYN_RECEIVED)


def _err(exc: OSError) -> SyscallResult:
    return SyscallResult(-1, errno_name(exc.errno or 0))


def _arg(call: SysCall, i: int, default: object = None) -> object:
    return call.args[i] if i < len(call.args) else default


def _int(call: SysCall, i: int, default: int = 0) -> int:
    v = _arg(call, i, default)
    if v is None:
        return default
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], int):
        return v[0]
    if not isinstance(v, int):
        raise Unsupported(f"unsupported: {call.name} argument {i + 1} {v!r}")
    return v


def _data(call: SysCall, buf: object, n: int) -> bytes:
    if isinstance(buf, bytes):
        return buf[:n].ljust(n, b"\0")
    return bytes(n)


def do_call(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    """Make ``call`` on the target's stack."""
    fn = _CALLS.get(call.name)
    if fn is None:
        raise Unsupported(f"unsupported: system call {call.name}() in simulation")
    try:
        return fn(t, call)
    except OSError as exc:
        return _err(exc)


# --- sockets ---------------------------------------------------------------------------

def _socket(t: SimTarget, call: SysCall) -> SyscallResult:
    domain, type_ = _arg(call, 0), _int(call, 1, S["SOCK_STREAM"])
    if domain not in (None, S["AF_INET"], S["AF_INET6"]):
        raise Unsupported("unsupported: socket domain other than AF_INET and AF_INET6")
    # --ip_version=ipv6 or ipv4-mapped-ipv6: the script's sockets are AF_INET6
    v6 = ":" in t.cfg.local_ip or t.cfg.mapped
    if domain == S["AF_INET6"] and not v6:
        raise Unsupported("unsupported: an AF_INET6 socket with --ip_version=ipv4")
    if type_ & 0xF != S["SOCK_STREAM"] or _arg(call, 2) not in (None, 0, S["IPPROTO_TCP"]):
        raise Unsupported("unsupported: sockets other than TCP (SOCK_STREAM, IPPROTO_TCP)")
    fd = t.new_fd(t.stack.socket(S["AF_INET6"] if v6 else S["AF_INET"]))
    if type_ & S["SOCK_NONBLOCK"]:
        t.nonblock.add(fd)
    return SyscallResult(fd)


def _addr(t: SimTarget, value: object, default: tuple[str, int]) -> tuple[str, int]:
    """The address a bind/connect gives the stack: the script's, else the run's."""
    if value is None:
        return _mapped(t, default[0]), default[1]
    if isinstance(value, dict):
        if value.get("sa_family") not in (None, S["AF_INET"], S["AF_INET6"]):
            raise Unsupported("unsupported: socket addresses other than AF_INET(6)")
        ip = value.get("sin6_addr", value.get("sin_addr", default[0]))
        port = value.get("sin6_port", value.get("sin_port", default[1]))
        return (_mapped(t, ip if isinstance(ip, str) else default[0]),
                port if isinstance(port, int) else default[1])
    raise Unsupported(f"unsupported: socket address {value!r}")


def _mapped(t: SimTarget, ip: str) -> str:
    """``ip`` as the script's AF_INET6 socket names it with --ip_version=ipv4-mapped-ipv6
    (packetdrill's live_bind_ip/live_connect_ip in that mode: the IPv4 address mapped)."""
    return "::ffff:" + ip if t.cfg.mapped and ":" not in ip else ip


def _bind(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    t.stack.bind(fd, _addr(t, _arg(call, 1), (t.cfg.local_ip, t.bind_port)))
    return SyscallResult(0)


def _listen(t: SimTarget, call: SysCall) -> SyscallResult:
    t.stack.listen(t.sfd(call), _int(call, 1, 128))
    return SyscallResult(0)


def _accept(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    script_fd = _int(call, 0)
    fd = t.sfd(call)

    def attempt() -> SyscallResult | None:
        got = t.stack.accept_some(fd)
        if got is None:
            return None
        return SyscallResult(t.new_fd(got[0]))
    return t.maybe_block(script_fd, attempt)


def _connect(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    script_fd = _int(call, 0)
    fd = t.sfd(call)
    addr = _addr(t, _arg(call, 1), (t.cfg.remote_ip, t.connect_port))
    code = t.stack.connect_ex(fd, addr, now=t.now)
    if code != errno.EINPROGRESS or script_fd in t.nonblock:
        return SyscallResult(-1 if code else 0, errno_name(code) if code else None)

    def attempt() -> SyscallResult | None:
        conn = t.stack.connection(fd)
        if conn is not None and conn.state in _CONNECTING:
            return None
        code = t.stack.connect_ex(fd, addr, now=t.now)
        return SyscallResult(-1 if code else 0, errno_name(code) if code else None)
    return Block(attempt)


def _close(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    if sim_epoll.close(t, _int(call, 0)) or sim_files.close(t, _int(call, 0)):
        t.free_fd(_int(call, 0))
        return SyscallResult(0)
    t.stack.close(fd, now=t.now)
    t.free_fd(_int(call, 0))
    return SyscallResult(0)


def _shutdown(t: SimTarget, call: SysCall) -> SyscallResult:
    t.stack.shutdown(t.sfd(call), _int(call, 1), now=t.now)
    return SyscallResult(0)


# --- data ------------------------------------------------------------------------------

def _send_flags(call: SysCall, flags: int) -> None:
    bad = flags & ~(S["MSG_DONTWAIT"] | S["MSG_NOSIGNAL"] | S["MSG_OOB"] | S["MSG_MORE"]
                    | S["MSG_EOR"] | S["MSG_ZEROCOPY"] | S["MSG_FASTOPEN"])
    if bad:
        raise Unsupported(f"unsupported: {call.name} flags {bad:#x}")


def _write_common(t: SimTarget, call: SysCall, data: bytes, flags: int,
                  iov: list[int] | None = None, addr: object = None) -> SyscallResult | Block:
    _send_flags(call, flags)
    script_fd = _int(call, 0)
    fd = t.sfd(call)
    total = len(data)
    sent = 0
    nonblock = script_fd in t.nonblock or flags & S["MSG_DONTWAIT"]
    fastopen = bool(flags & S["MSG_FASTOPEN"])
    conn0 = t.stack.connection(fd)
    deferred = conn0 is not None and conn0.tfo is not None and conn0.tfo.defer
    connecting = False

    def attempt() -> SyscallResult | None:
        nonlocal sent, fastopen, deferred, connecting
        try:
            if fastopen or deferred:
                # Linux tcp_sendmsg_fastopen(): connect, the data in the SYN if it may;
                # a blocking socket then waits for the handshake like connect().
                try:
                    if fastopen:
                        sent = t.stack.sendto_fastopen(fd, data, _fo_addr(t, addr), now=t.now,
                                                       flags=flags & S["MSG_ZEROCOPY"])
                    else:
                        sent = t.stack.send(fd, data, now=t.now, flags=flags & S["MSG_ZEROCOPY"])
                except BlockingIOError as exc:
                    if exc.errno != errno.EINPROGRESS:
                        raise
                    if nonblock:
                        return SyscallResult(-1, "EINPROGRESS")
                finally:
                    fastopen = deferred = False
                if nonblock:
                    return SyscallResult(sent)
                conn = t.stack.connection(fd)
                connecting = conn is not None and conn.state in _CONNECTING
                if connecting and conn is not None and conn.tfo is not None:
                    conn.tfo.write_pending = True    # Linux sk_write_pending
            if connecting:
                conn = t.stack.connection(fd)
                if conn is not None and conn.state in _CONNECTING:
                    return None
                connecting = False
                code = t.stack.connect_ex(fd, (_mapped(t, t.cfg.remote_ip), t.connect_port),
                                          now=t.now)
                if code not in (0, errno.EISCONN):
                    return SyscallResult(-1, errno_name(code))
                if sent >= total:
                    return SyscallResult(sent)
            while sent < total or total == 0:
                n = t.stack.send(fd, data[sent:], now=t.now,
                                 flags=flags & (S["MSG_OOB"] | S["MSG_EOR"] | S["MSG_MORE"]
                                                | S["MSG_ZEROCOPY"]),
                                 iov=iov if not sent else None)
                sent += n
                if total == 0:
                    break
        except BlockingIOError as exc:
            if exc.errno == errno.EALREADY:
                return _err(exc)
            if sent and nonblock:
                return SyscallResult(sent)
            if nonblock:
                return SyscallResult(-1, "EAGAIN")
            return None
        except OSError as exc:
            if sent:
                return SyscallResult(sent)
            return _err(exc)
        finally:
            t.collect()
        return SyscallResult(sent)
    first = attempt()
    return first if first is not None else Block(attempt)


def _null(call: SysCall, n: int) -> bool:
    """A NULL buffer for a non-empty transfer: Linux's copy fails with EFAULT."""
    return _arg(call, 1) == 0 and n > 0


def _write(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    n = _int(call, 2)
    if _null(call, n):
        t.sfd(call)
        return SyscallResult(-1, "EFAULT")
    return _write_common(t, call, _data(call, _arg(call, 1), n), 0)


def _send(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    n = _int(call, 2)
    if _null(call, n):
        t.sfd(call)
        return SyscallResult(-1, "EFAULT")
    return _write_common(t, call, _data(call, _arg(call, 1), n), _int(call, 3),
                         addr=_arg(call, 4, ...))


def _fo_addr(t: SimTarget, value: object) -> tuple[str, int] | None:
    """sendto()'s address for MSG_FASTOPEN: ``...`` is the script's peer; AF_UNSPEC none."""
    if value == S["AF_UNSPEC"] or (isinstance(value, dict)
                                   and value.get("sa_family") == S["AF_UNSPEC"]):
        return None
    if value is ... or value is None:
        return (_mapped(t, t.cfg.remote_ip), t.connect_port)
    return _addr(t, value, (t.cfg.remote_ip, t.connect_port))


def _iov_len(call: SysCall, iov: object) -> int:
    if not isinstance(iov, list):
        raise Unsupported(f"unsupported: {call.name} iovec {iov!r}")
    total = 0
    for item in iov:
        if isinstance(item, tuple) and item and isinstance(item[-1], int):
            total += item[-1]
        elif isinstance(item, dict) and isinstance(item.get("iov_len"), int):
            total += int(item["iov_len"])  # type: ignore[call-overload]
        else:
            raise Unsupported(f"unsupported: {call.name} iovec entry {item!r}")
    return total


def _writev(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    return _write_common(t, call, bytes(_iov_len(call, _arg(call, 1))), 0)


def _msg_len(call: SysCall) -> int:
    msg = _arg(call, 1)
    if not isinstance(msg, dict) or "msg_iov" not in msg:
        raise Unsupported(f"unsupported: {call.name} message {msg!r}")
    if msg.get("msg_control"):
        raise Unsupported("unsupported: control messages (msg_control)")
    return _iov_len(call, msg["msg_iov"])


def _sendmsg(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    msg = _arg(call, 1)
    name = msg.get("msg_name", ...) if isinstance(msg, dict) else ...
    iov = msg.get("msg_iov") if isinstance(msg, dict) else None
    lens = [_iov_len(call, [item]) for item in iov] if isinstance(iov, list) else None
    return _write_common(t, call, bytes(_msg_len(call)), _int(call, 2), lens, name)


def _read_common(t: SimTarget, call: SysCall, n: int, flags: int,
                 post: Callable[[SyscallResult], SyscallResult] | None = None,
                 ) -> SyscallResult | Block:
    bad = flags & ~(S["MSG_DONTWAIT"] | S["MSG_OOB"])
    if bad:
        raise Unsupported(f"unsupported: {call.name} flags {bad:#x}")
    script_fd = _int(call, 0)
    fd = t.sfd(call)
    nonblock = script_fd in t.nonblock or bool(flags & S["MSG_DONTWAIT"])

    def attempt() -> SyscallResult | None:
        if not nonblock and _below_lowat(t, fd, n):
            return None
        try:
            data = t.stack.recv_some(fd, n, now=t.now, flags=flags & S["MSG_OOB"])
        except OSError as exc:
            return _err(exc)
        finally:
            t.collect()
        if data is None:
            return SyscallResult(-1, "EAGAIN") if nonblock else None
        res = SyscallResult(len(data), out={"data": data})
        return post(res) if post is not None else res
    first = attempt()
    return first if first is not None else Block(attempt)


def _below_lowat(t: SimTarget, fd: int, n: int) -> bool:
    """A blocking read waits for SO_RCVLOWAT bytes (at most the read's size), unless the
    stream ended or failed (Linux tcp_recvmsg_locked(): target = sock_rcvlowat())."""
    sock = t.stack.socks.get(fd)
    c = sock.conn if sock is not None else None
    if c is None or c.rcv is None or sock is None or sock.opts.rcvlowat <= 1:
        return False
    return (0 < c.recv_q < min(sock.opts.rcvlowat, n) and not c.rcv.fin_received
            and c.error is None and c.state is not State.CLOSED)


def _read_null(t: SimTarget, call: SysCall) -> SyscallResult | None:
    """EFAULT where a read into NULL would copy bytes (tcp_recvmsg's copy fails)."""
    conn = t.stack.connection(t.sfd(call))
    if _null(call, _int(call, 2)) and conn is not None and conn.recv_q:
        return SyscallResult(-1, "EFAULT")
    return None


def _read(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    return _read_null(t, call) or _read_common(t, call, _int(call, 2), 0)


def _recv(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    return _read_null(t, call) or _read_common(t, call, _int(call, 2), _int(call, 3))


def _readv(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    return _read_common(t, call, _iov_len(call, _arg(call, 1)), 0)


def _recvmsg(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    msg = _arg(call, 1)
    if not isinstance(msg, dict) or "msg_iov" not in msg:
        raise Unsupported(f"unsupported: {call.name} message {msg!r}")
    flags = _int(call, 2)
    fd = t.sfd(call)
    has_control = "msg_control" in msg
    if flags & S["MSG_ERRQUEUE"]:
        # Linux ip_recv_error(): the entry's sock_extended_err (and offender) as an
        # IP_RECVERR cmsg, no data, MSG_ERRQUEUE in msg_flags; EAGAIN when empty. An
        # AF_INET6 socket's (ipv6 and ipv4-mapped-ipv6 runs) is ipv6_recv_error()'s:
        # SOL_IPV6 IPV6_RECVERR, the offender a sockaddr_in6.
        ee = t.stack.recv_errqueue(fd)
        if t.stack.socks[fd].family == S["AF_INET6"]:
            err = (S["SOL_IPV6"], S["IPV6_RECVERR"], ee.pack()[:16] + bytes(28))
        else:
            err = (S["SOL_IP"], S["IP_RECVERR"], ee.pack())
        cmsgs = [err] if has_control else []
        if ee.origin == S["SO_EE_ORIGIN_TIMESTAMPING"] and has_control:
            # __sock_recv_timestamp(): SCM_TIMESTAMPING comes before IP_RECVERR.
            cmsgs.insert(0, (S["SOL_SOCKET"], S["SCM_TIMESTAMPING"], ee.scm_timestamping()))
        n = _iov_len(call, msg["msg_iov"])
        mflags = S["MSG_ERRQUEUE"] | (0 if has_control else S["MSG_CTRUNC"]) \
            | (S["MSG_TRUNC"] if ee.payload > n else 0)
        return SyscallResult(min(n, ee.payload), out={"data": bytes(min(n, ee.payload)),
                                                      "msg_flags": mflags, "cmsgs": cmsgs})
    sock = t.stack.socks[fd]

    def with_cmsgs(res: SyscallResult) -> SyscallResult:
        if res.ret < 0:
            return res
        cmsgs: list[tuple[int, int, bytes]] = []
        mflags = 0
        if sock.opts.inq:
            # Linux tcp_recvmsg(): TCP_CM_INQ after every successful read.
            if has_control:
                cmsgs.append((S["SOL_TCP"], S["TCP_CM_INQ"],
                              struct.pack("=i", t.stack.inq(fd))))
            else:
                mflags |= S["MSG_CTRUNC"]
        return SyscallResult(res.ret, res.errno, {**res.out, "msg_flags": mflags,
                                                  "cmsgs": cmsgs})
    return _read_common(t, call, _iov_len(call, msg["msg_iov"]), flags, with_cmsgs)


# --- options and control ---------------------------------------------------------------

_TCP_INFO = S["TCP_INFO"]


def _setsockopt(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    level, opt, val = _int(call, 1), _int(call, 2), _arg(call, 3)
    value: int | bytes
    if isinstance(val, list) and len(val) == 1 and isinstance(val[0], int):
        value = val[0]
    elif isinstance(val, int):
        value = val
    elif isinstance(val, dict) and ("l_onoff" in val or "onoff" in val):
        onoff = val.get("l_onoff", val.get("onoff", 0))
        secs = val.get("l_linger", val.get("linger", 0))
        value = struct.pack("ii", int(onoff or 0), int(secs or 0))  # type: ignore[call-overload]
    elif isinstance(val, bytes):
        value = val
    else:
        raise Unsupported(f"unsupported: setsockopt value {val!r}")
    try:
        t.stack.setsockopt(fd, level, opt, value, now=t.now)
    except TypeError:
        raise Unsupported(f"unsupported: setsockopt {_opt_name(level, opt)} with "
                          f"value {val!r}") from None
    except OSError as exc:
        if exc.errno == errno.ENOPROTOOPT:
            raise Unsupported(f"unsupported: setsockopt {_opt_name(level, opt)}") from None
        raise
    finally:
        t.collect()
    return SyscallResult(0)


def _opt_name(level: int, opt: int) -> str:
    prefixes = {S["SOL_SOCKET"]: "SO_", S["IPPROTO_TCP"]: "TCP_", 0: "IP_"}.get(level, "?")
    for name, value in S.items():
        if name.startswith(prefixes) and value == opt:
            return name
    return f"level {level} option {opt}"


def _getsockopt(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    level, opt = _int(call, 1), _int(call, 2)
    try:
        value = t.stack.getsockopt(fd, level, opt)
    except OSError as exc:
        if exc.errno == errno.ENOPROTOOPT:
            raise Unsupported(f"unsupported: getsockopt {_opt_name(level, opt)}") from None
        raise
    if isinstance(value, int):
        return SyscallResult(0, out={"optval": value, "optlen": 4})
    want = _arg(call, 4)
    n = want[0] if isinstance(want, list) and want and isinstance(want[0], int) else len(value)
    return SyscallResult(0, out={"optval": value[:n], "optlen": min(n, len(value))})


def _fcntl(t: SimTarget, call: SysCall) -> SyscallResult:
    script_fd = _int(call, 0)
    t.sfd(call)
    cmd = _int(call, 1)
    if cmd == S["F_GETFL"]:
        flags = S["O_RDWR"] | (S["O_NONBLOCK"] if script_fd in t.nonblock else 0)
        return SyscallResult(flags)
    if cmd == S["F_SETFL"]:
        if _int(call, 2) & S["O_NONBLOCK"]:
            t.nonblock.add(script_fd)
        else:
            t.nonblock.discard(script_fd)
        return SyscallResult(0)
    raise Unsupported(f"unsupported: fcntl command {cmd}")


def _ioctl(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    req = _int(call, 1)
    conn = t.stack.connection(fd)
    if req == S["SIOCINQ"]:
        value = conn.recv_q if conn is not None else 0
    elif req == S["SIOCOUTQ"]:
        value = conn.send_q if conn is not None else 0
    else:
        raise Unsupported(f"unsupported: ioctl request {req:#x}")
    return SyscallResult(0, out={"value": value})


def _getname(t: SimTarget, call: SysCall) -> SyscallResult:
    fd = t.sfd(call)
    if call.name == "getpeername":
        t.stack.getpeername(fd)
    return SyscallResult(0)


def _poll(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    fds = _arg(call, 0)
    timeout = _int(call, 2, -1)
    if not isinstance(fds, list):
        raise Unsupported("unsupported: poll() without a pollfd list")

    def attempt() -> SyscallResult | None:
        revents = [t.revents(p) for p in fds]
        ready = sum(1 for r in revents if r)
        if ready or timeout == 0:
            return SyscallResult(ready, out={"revents": revents})
        return None

    def timed_out() -> SyscallResult:
        return SyscallResult(0, out={"revents": [0] * len(fds)})
    first = attempt()
    if first is not None:
        return first
    deadline = None if timeout < 0 else t.now + timeout * 1000
    return Block(attempt, deadline, timed_out)


_CALLS: dict[str, Callable[[SimTarget, SysCall], SyscallResult | Block]] = {
    "socket": _socket, "bind": _bind, "listen": _listen, "accept": _accept,
    "accept4": _accept, "connect": _connect, "close": _close, "shutdown": _shutdown,
    "write": _write, "send": _send, "sendto": _send, "writev": _writev, "sendmsg": _sendmsg,
    "read": _read, "recv": _recv, "recvfrom": _recv, "readv": _readv, "recvmsg": _recvmsg,
    "setsockopt": _setsockopt, "getsockopt": _getsockopt, "fcntl": _fcntl, "ioctl": _ioctl,
    "getsockname": _getname, "getpeername": _getname, "poll": _poll,
    "epoll_create": sim_epoll.epoll_create, "epoll_create1": sim_epoll.epoll_create,
    "epoll_ctl": sim_epoll.epoll_ctl, "epoll_wait": sim_epoll.epoll_wait,
    "open": sim_files.open_, "sendfile": sim_files.sendfile, "pipe": sim_files.pipe,
    "splice": sim_files.splice,
}
