"""The Linux constants scripts name, by name (packetdrill's ``symbols_linux.c``).

Values are Linux's (x86-64/arm64 generic ABI), written out rather than read from
the running Python, so a script means the same on every machine. ``ERRNO`` maps
Linux errno names to numbers and back for results such as ``-1 EINPROGRESS``.
"""

from __future__ import annotations

import errno as _errno
import os

SYMBOLS: dict[str, int] = {
    # sockets
    "AF_UNSPEC": 0, "AF_INET": 2, "AF_INET6": 10, "PF_INET": 2, "PF_INET6": 10,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_NONBLOCK": 0o4000,
    "IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
    "IPPROTO_IPV6": 41, "SOL_IP": 0, "SOL_IPV6": 41, "SOL_SOCKET": 1, "SOL_TCP": 6,
    "SOL_UDP": 17, "INADDR_ANY": 0, "NULL": 0,
    # SOL_SOCKET options
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9,
    "SO_OOBINLINE": 10, "SO_NO_CHECK": 11, "SO_PRIORITY": 12, "SO_LINGER": 13,
    "SO_BSDCOMPAT": 14, "SO_REUSEPORT": 15, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19,
    "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_TIMESTAMP": 29, "SO_SNDBUFFORCE": 32,
    "SO_RCVBUFFORCE": 33, "SO_MARK": 36, "SO_TIMESTAMPING": 37, "SO_MAX_PACING_RATE": 47,
    "SO_INCOMING_CPU": 49, "SO_ZEROCOPY": 60, "SO_TXTIME": 61,
    # IPPROTO_IP options
    "IP_TOS": 1, "IP_TTL": 2, "IP_RECVERR": 11, "IP_MTU_DISCOVER": 10, "IP_MTU": 14,
    "IP_FREEBIND": 15, "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1, "IP_PMTUDISC_DO": 2,
    "IP_PMTUDISC_PROBE": 3, "IPV6_RECVERR": 25, "IPV6_V6ONLY": 26,
    # IPPROTO_TCP options
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8,
    "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11, "TCP_QUICKACK": 12,
    "TCP_CONGESTION": 13, "TCP_MD5SIG": 14, "TCP_THIN_LINEAR_TIMEOUTS": 16,
    "TCP_THIN_DUPACK": 17, "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19,
    "TCP_REPAIR_QUEUE": 20, "TCP_QUEUE_SEQ": 21, "TCP_REPAIR_OPTIONS": 22,
    "TCP_FASTOPEN": 23, "TCP_TIMESTAMP": 24, "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26,
    "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28, "TCP_REPAIR_WINDOW": 29,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_ULP": 31, "TCP_MD5SIG_EXT": 32, "TCP_FASTOPEN_KEY": 33,
    "TCP_FASTOPEN_NO_COOKIE": 34, "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36,
    "TCP_CM_INQ": 36, "TCP_TX_DELAY": 37,
    # send/recv flags
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8,
    "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100,
    "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_ERRQUEUE": 0x2000,
    "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000,
    # shutdown
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    # fcntl
    "F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0o4000,
    # poll
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10,
    "POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100,
    "POLLWRBAND": 0x200, "POLLMSG": 0x400, "POLLRDHUP": 0x2000,
    # epoll
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
    "EPOLLMSG": 0x400, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28,
    "EPOLLWAKEUP": 1 << 29, "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
    "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    # ioctl
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411,
    "SIOCOUTQNSD": 0x894B, "SIOCATMARK": 0x8905, "FIONBIO": 0x5421,
    # tcp_info
    "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64,
    "TCPI_OPT_TFO_CHILD": 128,
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
    "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
    # socket error queue / timestamping
    "SO_EE_ORIGIN_NONE": 0, "SO_EE_ORIGIN_LOCAL": 1, "SO_EE_ORIGIN_ICMP": 2,
    "SO_EE_ORIGIN_ICMP6": 3, "SO_EE_ORIGIN_TIMESTAMPING": 4, "SO_EE_ORIGIN_ZEROCOPY": 5,
    "SO_EE_CODE_ZEROCOPY_COPIED": 1, "SCM_TIMESTAMPING": 37, "SCM_TSTAMP_SND": 0,
    "SCM_TSTAMP_SCHED": 1, "SCM_TSTAMP_ACK": 2,
    "SOF_TIMESTAMPING_TX_HARDWARE": 1, "SOF_TIMESTAMPING_TX_SOFTWARE": 2,
    "SOF_TIMESTAMPING_RX_HARDWARE": 4, "SOF_TIMESTAMPING_RX_SOFTWARE": 8,
    "SOF_TIMESTAMPING_SOFTWARE": 16, "SOF_TIMESTAMPING_OPT_ID": 128,
    "SOF_TIMESTAMPING_TX_SCHED": 256, "SOF_TIMESTAMPING_TX_ACK": 512,
    "SOF_TIMESTAMPING_OPT_TSONLY": 2048,
    "TCP_INFINITE_SSTHRESH": 0x7FFFFFFF,
    "TFO_SERVER_COOKIE_NOT_REQD": 0x200,
}

# Linux errno numbers (asm-generic/errno*.h): the names scripts use.
ERRNO: dict[str, int] = {
    "EPERM": 1, "ENOENT": 2, "EINTR": 4, "EIO": 5, "EBADF": 9, "EAGAIN": 11,
    "EWOULDBLOCK": 11, "ENOMEM": 12, "EACCES": 13, "EFAULT": 14, "EBUSY": 16,
    "EEXIST": 17, "ENODEV": 19, "EINVAL": 22, "EMFILE": 24, "ENOSPC": 28, "EPIPE": 32,
    "ERANGE": 34, "ENOMSG": 42, "ENOTSOCK": 88, "EDESTADDRREQ": 89, "EMSGSIZE": 90,
    "EPROTOTYPE": 91, "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93, "EOPNOTSUPP": 95,
    "ENOTSUP": 95, "EAFNOSUPPORT": 97, "EADDRINUSE": 98, "EADDRNOTAVAIL": 99,
    "ENETDOWN": 100, "ENETUNREACH": 101, "ENETRESET": 102, "ECONNABORTED": 103,
    "ECONNRESET": 104, "ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107,
    "ETIMEDOUT": 110, "ECONNREFUSED": 111, "EHOSTDOWN": 112, "EHOSTUNREACH": 113,
    "EALREADY": 114, "EINPROGRESS": 115,
}
ERRNO_NAME: dict[int, str] = {}
for _name, _num in ERRNO.items():
    ERRNO_NAME.setdefault(_num, _name)


def errno_name(code: int) -> str:
    """Linux's name for an errno number of this host (the stdlib's numbers are the
    host's; on Linux they are the same)."""
    return _errno.errorcode.get(code) or ERRNO_NAME.get(code) or f"errno {code}"


def strerror(name: str | None) -> str:
    """``111 (Connection refused)`` for ``ECONNREFUSED``; ``0 (Success)`` for None."""
    if name is None:
        return "0 (Success)"
    num = ERRNO.get(name) or int(getattr(_errno, name, 0))
    return f"{num} ({os.strerror(num)})"


def symbol(name: str) -> int | None:
    """The value of a constant, or None if the name is unknown."""
    if name in SYMBOLS:
        return SYMBOLS[name]
    if name in ERRNO:
        return ERRNO[name]
    return None
