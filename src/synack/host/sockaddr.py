"""Socket addresses of both families: what the API takes and gives, and what binds clash.

Inside the host every address is text of its own family ("192.0.2.2",
"2001:db8::2"). An AF_INET6 socket speaks in ``(host, port, flowinfo, scope_id)``
tuples and sees IPv4 peers as IPv4-mapped addresses (``::ffff:192.0.2.1``, RFC
4291 2.5.5.2), as Linux's dual-stack sockets do; :func:`ip_of` and
:func:`api_addr` translate at the API's edge.
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import TYPE_CHECKING, Any

from synack.sockopts import oserror

if TYPE_CHECKING:
    from synack.host.records import Addr, Sock, SockAddr
    from synack.stack import Stack

_MAPPED = bytes(10) + b"\xff\xff"


def ip_of(stack: Stack, sock: Sock, addr: Any, call: str) -> Addr:
    """The host's ``(ip, port)`` for an address given to ``bind``/``connect``.

    Raises what the stdlib raises: ``TypeError`` for a tuple of the wrong shape,
    ``socket.gaierror`` for an address of the other family or no address at all.
    """
    if sock.family == _socket.AF_INET:
        if not isinstance(addr, tuple) or len(addr) != 2:
            raise TypeError(f"AF_INET address must be a pair (host, port), not {addr!r}")
        ip, port = addr
        if not isinstance(ip, str) or not isinstance(port, int):
            raise TypeError(f"{call}(): AF_INET address must be (str, int), not {addr!r}")
        if ":" in ip:
            raise _socket.gaierror(_socket.EAI_ADDRFAMILY,
                                   "Address family for hostname not supported")
        return ip or "0.0.0.0", port
    if not isinstance(addr, tuple) or not 2 <= len(addr) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    ip, port = addr[0], addr[1]
    if not isinstance(ip, str) or not isinstance(port, int):
        raise TypeError(f"{call}(): AF_INET6 address must start (str, int), not {addr!r}")
    try:
        packed = _socket.inet_pton(_socket.AF_INET6, ip or "::")
    except OSError:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known") from None
    if packed[:12] == _MAPPED:
        if sock.v6only:
            # Linux: an IPV6_V6ONLY socket has no IPv4 side.
            raise oserror(errno.EADDRNOTAVAIL if call == "bind" else errno.ENETUNREACH)
        return _socket.inet_ntoa(packed[12:]), port
    return _socket.inet_ntop(_socket.AF_INET6, packed), port


def api_addr(sock: Sock, addr: Addr) -> SockAddr:
    """``addr`` as ``sock``'s family shows it: an AF_INET6 socket gets a 4-tuple, an
    IPv4 address in it mapped (0.0.0.0 as ::)."""
    if sock.family == _socket.AF_INET:
        return addr
    ip = addr[0]
    if ":" not in ip:
        ip = "::" if ip == "0.0.0.0" else "::ffff:" + ip
    return (ip, addr[1], 0, 0)


def overlaps(a: str, a_v6only: bool, b: str, b_v6only: bool) -> bool:
    """Do two bindings of one port clash, at least one of them IPv6 (Linux
    inet_bind_conflict() with ipv6_rcv_saddr_equal())? A dual-stack ``::`` holds
    the IPv4 side too; a specific IPv6 address never clashes with IPv4."""
    a6, b6 = ":" in a, ":" in b
    if a6 and b6:
        return a == b or a == "::" or b == "::"
    if a6:
        return a == "::" and not a_v6only
    return b == "::" and not b_v6only
