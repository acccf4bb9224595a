"""Socket addresses checked as the stdlib checks them (its TypeErrors, OverflowErrors
and messages), names resolved by :mod:`synack.resolve`, never by the kernel's resolver."""

from __future__ import annotations

import ipaddress
import socket as _socket
from typing import TYPE_CHECKING, Any

from synack import resolve as _resolve

if TYPE_CHECKING:
    from synack.api_host import Host

AF_INET6 = _socket.AF_INET6


def check_address(address: Any, call: str, host: Host | None = None) -> tuple[str, int]:
    """Check an AF_INET address as the stdlib does; a name is resolved by
    :mod:`synack.resolve` (/etc/hosts, DNS over synack), never by the kernel's."""
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    ip, port = address
    if isinstance(ip, (bytes, bytearray)):
        ip = bytes(ip).decode("idna")
    if not isinstance(ip, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(ip).__name__}")
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{call}(): port must be 0-65535.")
    if ip in ("", "0.0.0.0"):
        return "0.0.0.0", port
    try:
        return str(ipaddress.IPv4Address(ip)), port
    except ValueError:
        return _resolve.lookup(ip, host)[2][0], port


def check_address6(address: Any, call: str,
                   host: Host | None = None) -> tuple[str, int, int, int]:
    """Check an AF_INET6 address as the stdlib does: ``(host, port[, flowinfo[,
    scope_id]])`` with an IPv6 literal ("" is ::) or a name, resolved to its first
    IPv6 address by :mod:`synack.resolve`."""
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    ip, port, flowinfo, scope_id = (*address, 0, 0)[:4]
    if isinstance(ip, (bytes, bytearray)):
        ip = bytes(ip).decode("idna")
    if not isinstance(ip, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(ip).__name__}")
    for v in (port, flowinfo, scope_id):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{call}(): port must be 0-65535.")
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{call}(): flowinfo must be 0-1048575.")
    try:
        packed = _socket.inet_pton(AF_INET6, ip or "::")
    except OSError:
        if ":" in ip or not ip:
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known") from None
        return _resolve.lookup_all(ip, host, AF_INET6)[2][0], port, flowinfo, scope_id
    return _socket.inet_ntop(AF_INET6, packed), port, flowinfo, scope_id
