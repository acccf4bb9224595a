"""Socket options by their Linux constants: SOL_SOCKET, IPPROTO_TCP, IPV6_V6ONLY.

What ``setsockopt``/``getsockopt`` accept, the ranges Linux enforces (keepalive
idle 1..32767 s, probes 1..127, TCP_MAXSEG 88..32767), and the values read
back: a buffer size as the kernel reports it (doubled), SO_ERROR read once and
cleared, TCP_INFO in ``struct tcp_info`` layout. Errors are the stdlib's:
``OSError(ENOPROTOOPT)`` for an unknown option, ``EINVAL`` out of range,
``TypeError`` for a non-integer where an integer is required.
"""

from __future__ import annotations

import errno
import os
import socket as _socket
import struct
from typing import TYPE_CHECKING

from synack.tcp.state import State
from synack.tcp.tcpinfo import LINUX_STATES, TcpInfo

if TYPE_CHECKING:
    from synack.stack import Sock, Stack

__all__ = ["get_option", "oserror", "set_option"]

# Linux's numbers (include/uapi/asm-generic/socket.h, include/uapi/linux/tcp.h), for
# the options the stdlib's socket module may not name.
SO_MARK = 36
SO_ZEROCOPY = 60
SO_TIMESTAMPING = 37
TCP_USER_TIMEOUT = 18
TCP_NOTSENT_LOWAT = 25
TCP_INQ = 36
IP_FREEBIND = 15
# Linux's numbers (include/uapi/linux/tcp.h); the socket module lacks some of them.
TCP_FASTOPEN = 23
TCP_FASTOPEN_CONNECT = 30
TCP_FASTOPEN_KEY = 33
TCP_FASTOPEN_NO_COOKIE = 34
_FASTOPEN_OPTS = (TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, TCP_FASTOPEN_NO_COOKIE)


def oserror(code: int, detail: str = "") -> OSError:
    """The stdlib's exception for ``code`` (OSError maps errno to the subclass)."""
    msg = os.strerror(code) + (f": {detail}" if detail else "")
    return OSError(code, msg)


def set_option(stack: Stack, sock: Sock, level: int, option: int, value: int | bytes, *,
               now: int) -> None:
    """``setsockopt`` on ``sock`` of ``stack``."""
    # Copy-on-write: the record may be shared (DEFAULT_OPTS, a listener's children).
    o = sock.opts = sock.opts.copy()
    if sock.conn is not None:
        sock.conn.opts = o
    ival = value if isinstance(value, int) else None
    if level == _socket.SOL_SOCKET:
        if option == _socket.SO_KEEPALIVE:
            o.keepalive = bool(_need_int(ival))
        elif option == _socket.SO_REUSEADDR:
            sock.reuseaddr = bool(_need_int(ival))
        elif option == _socket.SO_LINGER:
            if not isinstance(value, (bytes, bytearray)) or len(value) != 8:
                raise oserror(errno.EINVAL, "SO_LINGER takes struct linger (8 bytes)")
            onoff, secs = struct.unpack("ii", value)
            o.linger = max(secs, 0) if onoff else None
        elif option == _socket.SO_RCVBUF:
            o.rcvbuf = max(2 * _need_int(ival), 2304)   # Linux doubles, min SOCK_MIN_RCVBUF
        elif option == _socket.SO_SNDBUF:
            o.sndbuf = max(2 * _need_int(ival), 4608)   # min SOCK_MIN_SNDBUF
            if sock.conn is not None:
                sock.conn.set_sndbuf(o.sndbuf)          # Linux: at once (sk_sndbuf is read live)
        elif option == _socket.SO_OOBINLINE:
            o.oobinline = bool(_need_int(ival))
            if sock.conn is not None and sock.conn.rcv is not None:
                sock.conn.rcv.oobinline = o.oobinline
        elif option == _socket.SO_RCVLOWAT:
            # Linux sock_setsockopt(): negative means INT_MAX, 0 means 1; tcp_set_rcvlowat()
            # caps it at half the largest receive buffer.
            v = _need_int(ival)
            cap = (o.rcvbuf or stack.cfg.triple("net.ipv4.tcp_rmem")[2]) >> 1
            o.rcvlowat = min(2**31 - 1 if v < 0 else v, cap) or 1
        elif option == SO_ZEROCOPY:
            o.zerocopy = bool(_ranged(_need_int(ival), 0, 1))   # Linux: 0 or 1, else EINVAL
        elif option == SO_TIMESTAMPING:
            from synack.host import errqueue
            errqueue.set_timestamping(sock, _need_int(ival))
        elif option == SO_MARK:
            o.mark = _need_int(ival) & 0xFFFFFFFF
        else:
            raise oserror(errno.ENOPROTOOPT)
    elif level == _socket.IPPROTO_IP:
        v = _need_int(ival)
        if option == _socket.IP_TOS:
            o.tos = v & 0xFC              # Linux: a TCP socket's ECN bits stay the stack's
        elif option == IP_FREEBIND:
            o.freebind = bool(v)
        else:
            raise oserror(errno.ENOPROTOOPT)
    elif level == _socket.IPPROTO_TCP and option == _socket.TCP_CONGESTION:
        name = value.rstrip(b"\0").decode() if isinstance(value, bytes) else str(value)
        from synack.tcp.cc import AVAILABLE
        if name not in AVAILABLE:
            raise oserror(errno.ENOENT, f"no congestion control {name!r}")
        o.congestion = name
        if sock.conn is not None:
            sock.conn.set_congestion(name, now=now)
    elif level == _socket.IPPROTO_TCP and option == TCP_FASTOPEN_KEY:
        # Linux do_tcp_setsockopt(): a primary key, or a primary and a backup.
        if not isinstance(value, (bytes, bytearray)) or len(value) not in (16, 32):
            raise oserror(errno.EINVAL, "TCP_FASTOPEN_KEY takes 16 or 32 bytes")
        o.fastopen_key = (bytes(value[:16]),) + ((bytes(value[16:]),) if len(value) == 32
                                                  else ())
    elif level == _socket.IPPROTO_TCP and option in _FASTOPEN_OPTS:
        _set_fastopen(stack, sock, option, _need_int(ival))
    elif level == _socket.IPPROTO_TCP:
        v = _need_int(ival)
        if option == _socket.TCP_NODELAY:
            o.nodelay = bool(v)
            if sock.conn is not None and v:
                sock.conn.push(now=now, force=True)   # Linux __tcp_sock_set_nodelay()
                stack._collect_key(sock.conn, now)
        elif option == _socket.TCP_CORK:
            o.cork = bool(v)
            if sock.conn is not None and not v:
                sock.conn.push(now=now)
                stack._collect_key(sock.conn, now)
        elif option == _socket.TCP_KEEPIDLE:
            o.keepidle = _ranged(v, 1, 32767)
        elif option == _socket.TCP_KEEPINTVL:
            o.keepintvl = _ranged(v, 1, 32767)
        elif option == _socket.TCP_KEEPCNT:
            o.keepcnt = _ranged(v, 1, 127)
        elif option == _socket.TCP_MAXSEG:
            o.maxseg = _ranged(v, 88, 32767)
        elif option == _socket.TCP_SYNCNT:
            o.syncnt = _ranged(v, 1, 127)          # Linux MAX_TCP_SYNCNT
        elif option == _socket.TCP_QUICKACK:
            if sock.conn is not None:
                sock.conn.set_quickack(v, now=now)
        elif option == _socket.TCP_WINDOW_CLAMP:
            if not v:
                if sock.conn is not None and sock.conn.state is not State.CLOSED:
                    raise oserror(errno.EINVAL, "TCP_WINDOW_CLAMP 0 on a connected socket")
                o.window_clamp = 0
            else:
                o.window_clamp = max(v, 1152)   # Linux: at least SOCK_MIN_RCVBUF / 2
                if sock.conn is not None:
                    sock.conn.set_window_clamp(o.window_clamp)
        elif option == _socket.TCP_DEFER_ACCEPT:
            o.defer_accept = _secs_to_retrans(v)
        elif option == TCP_INQ:
            o.inq = bool(_ranged(v, 0, 1))
        elif option == TCP_NOTSENT_LOWAT:
            o.notsent_lowat = v & 0xFFFFFFFF   # Linux stores it as u32
            if sock.conn is not None:
                sock.conn.push(now=now)        # Linux calls sk_write_space()
        elif option == TCP_USER_TIMEOUT:
            if v < 0:
                raise oserror(errno.EINVAL, "TCP_USER_TIMEOUT must not be negative")
            o.user_timeout = v
        else:
            raise oserror(errno.ENOPROTOOPT)
    elif level == _socket.IPPROTO_IPV6 and option == _socket.IPV6_V6ONLY \
            and sock.family == _socket.AF_INET6:
        if sock.local is not None:
            raise oserror(errno.EINVAL, "IPV6_V6ONLY after bind")   # Linux do_ipv6_setsockopt
        sock.v6only = bool(_need_int(ival))
    else:
        raise oserror(errno.ENOPROTOOPT)
    if sock.conn is not None:
        sock.conn.set_keepalive(now=now)
        stack._collect_key(sock.conn, now)     # re-arms its timers in the host's heap


def get_option(stack: Stack, sock: Sock, level: int, option: int) -> int | bytes:
    """``getsockopt`` on ``sock`` of ``stack`` (SO_ERROR reports and clears a pending error)."""
    o, c = sock.opts, stack.cfg
    if level == _socket.SOL_SOCKET:
        if option == _socket.SO_ERROR:
            conn = sock.conn
            if conn is None or conn.error is None or sock.error_reported:
                return 0
            sock.error_reported = True
            return conn.error
        if option == _socket.SO_KEEPALIVE:
            return int(o.keepalive)
        if option == _socket.SO_REUSEADDR:
            return int(sock.reuseaddr)
        if option == _socket.SO_LINGER:
            return struct.pack("ii", int(o.linger is not None), o.linger or 0)
        if option == _socket.SO_RCVBUF:
            return o.rcvbuf or c.triple("net.ipv4.tcp_rmem")[1]
        if option == _socket.SO_SNDBUF:
            return o.sndbuf or c.triple("net.ipv4.tcp_wmem")[1]
        if option == _socket.SO_OOBINLINE:
            return int(o.oobinline)
        if option == SO_ZEROCOPY:
            return int(o.zerocopy)
        if option == _socket.SO_RCVLOWAT:
            return o.rcvlowat
        if option == SO_MARK:
            return o.mark
        if option == SO_TIMESTAMPING:
            return sock.errq.ts_flags if sock.errq is not None else 0
    elif level == _socket.IPPROTO_IP:
        if option == _socket.IP_TOS:
            return o.tos
        if option == IP_FREEBIND:
            return int(o.freebind)
    elif level == _socket.IPPROTO_TCP:
        if option == _socket.TCP_NODELAY:
            return int(o.nodelay)
        if option == _socket.TCP_KEEPIDLE:
            return o.keepidle or c.int("net.ipv4.tcp_keepalive_time")
        if option == _socket.TCP_KEEPINTVL:
            return o.keepintvl or c.int("net.ipv4.tcp_keepalive_intvl")
        if option == _socket.TCP_KEEPCNT:
            return o.keepcnt or c.int("net.ipv4.tcp_keepalive_probes")
        if option == _socket.TCP_MAXSEG:
            return sock.conn.mss if sock.conn else (o.maxseg or 536)
        if option == _socket.TCP_CORK:
            return int(o.cork)
        if option == _socket.TCP_SYNCNT:
            return o.syncnt or c.int("net.ipv4.tcp_syn_retries")
        if option == TCP_INQ:
            return int(o.inq)
        if option == _socket.TCP_QUICKACK:
            return int(sock.conn is None or not sock.conn.ackp.pingpong)
        if option == _socket.TCP_WINDOW_CLAMP:
            # Linux reads tp->window_clamp; synack's bound on the window once connected.
            return o.window_clamp or (sock.conn.rcv_max_capacity if sock.conn else 0)
        if option == _socket.TCP_DEFER_ACCEPT:
            return _retrans_to_secs(o.defer_accept)
        if option == TCP_NOTSENT_LOWAT:
            return o.notsent_lowat or 0      # the per-socket value: 0 until set
        if option == TCP_USER_TIMEOUT:
            return o.user_timeout
        if option == _socket.TCP_CONGESTION:
            name = sock.conn.cc_name if sock.conn else (
                o.congestion or str(c["net.ipv4.tcp_congestion_control"]))
            return name.encode().ljust(16, b"\0")   # TCP_CA_NAME_MAX
        if option == TCP_FASTOPEN:
            if o.fastopen_qlen is not None:
                return o.fastopen_qlen
            return sock.listener.fastopen_qlen if sock.listener else 0
        if option == TCP_FASTOPEN_CONNECT:
            return int(o.fastopen_connect)
        if option == TCP_FASTOPEN_NO_COOKIE:
            return int(o.fastopen_no_cookie)
        if option == TCP_FASTOPEN_KEY:
            from synack.host.fastopen import listener_keys
            return b"".join(listener_keys(stack, sock))
        if option == _socket.TCP_INFO:
            from synack.tcp.info import tcp_info
            if sock.conn is None:
                return TcpInfo(tcpi_state=LINUX_STATES[
                    "LISTEN" if sock.listener else "CLOSED"]).pack()
            return tcp_info(sock.conn, sock.conn.now).pack()
    elif level == _socket.IPPROTO_IPV6 and option == _socket.IPV6_V6ONLY \
            and sock.family == _socket.AF_INET6:
        return int(sock.v6only)
    raise oserror(errno.ENOPROTOOPT)


def _set_fastopen(stack: Stack, sock: Sock, option: int, v: int) -> None:
    """TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, TCP_FASTOPEN_NO_COOKIE as Linux
    do_tcp_setsockopt() checks them: only before connect() (or on a listener)."""
    o = sock.opts
    closed = sock.conn is None or sock.conn.state.value == "CLOSED"
    if option == TCP_FASTOPEN:
        if v < 0 or not closed:
            raise oserror(errno.EINVAL)
        # Linux fastopen_queue_tune(): bounded by somaxconn.
        o.fastopen_qlen = min(v, stack.cfg.int("net.core.somaxconn"))
        return
    if not 0 <= v <= 1:
        raise oserror(errno.EINVAL)
    if option == TCP_FASTOPEN_CONNECT:
        if not stack.cfg.int("net.ipv4.tcp_fastopen") & 0x1:
            raise oserror(errno.EOPNOTSUPP)
        if sock.listener is not None or not closed:
            raise oserror(errno.EINVAL)
        o.fastopen_connect = bool(v)
    else:
        if not closed:
            raise oserror(errno.EINVAL)
        o.fastopen_no_cookie = bool(v)
# TCP_DEFER_ACCEPT's seconds <-> SYN,ACK retransmissions (Linux secs_to_retrans() and
# retrans_to_secs() with TCP_TIMEOUT_INIT 1 s and TCP_RTO_MAX 120 s).
_TIMEOUT_INIT_S, _RTO_MAX_S = 1, 120


def _secs_to_retrans(seconds: int) -> int:
    if seconds <= 0:
        return 0
    timeout, period, res = _TIMEOUT_INIT_S, _TIMEOUT_INIT_S, 1
    while seconds > period and res < 255:
        res += 1
        timeout <<= 1
        timeout = min(timeout, _RTO_MAX_S)
        period += timeout
    return res


def _retrans_to_secs(retrans: int) -> int:
    period = 0
    if retrans > 0:
        timeout = period = _TIMEOUT_INIT_S
        while retrans > 1:
            retrans -= 1
            timeout = min(timeout << 1, _RTO_MAX_S)
            period += timeout
    return period


def _need_int(v: int | None) -> int:
    if v is None:
        raise TypeError("an integer is required")
    return v


def _ranged(v: int, lo: int, hi: int) -> int:
    if not lo <= v <= hi:
        raise oserror(errno.EINVAL, f"value {v} outside [{lo}, {hi}]")
    return v
