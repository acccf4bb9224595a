"""Name resolution for :mod:`synack.socket`: numeric addresses, ``/etc/hosts``, then DNS
over synack.

Theory of operation
-------------------
The stdlib's resolver functions ask the C library, which may send DNS queries
through the kernel's network: a synack program must not leak there. These
functions answer as glibc's ``files`` source does, in order:

1. a numeric IPv4 address (``inet_aton`` rules, as glibc: ``"127.1"`` works);
2. ``/etc/hosts`` (:data:`HOSTS_PATH`; the first name on a line is the
   canonical one, the rest are aliases);
3. DNS over synack UDP (:mod:`synack.dns`) to the nameserver of the synack host
   (``Host.nameserver``), when one was given; without one a name not found so
   far is ``gaierror(EAI_NONAME)``.

Only IPv4 is carried by synack, so only ``AF_INET`` results are returned
(``has_ipv6`` is False); asking for ``AF_INET6`` is ``EAI_FAMILY``. Errors are
the stdlib's classes with glibc's codes and messages. Service names come from
``/etc/services`` through the stdlib (a file lookup, no network).
"""

from __future__ import annotations

import socket as _socket
from typing import Any

__all__ = [
    "HOSTS_PATH",
    "getaddrinfo",
    "getfqdn",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getnameinfo",
    "lookup",
]

HOSTS_PATH = "/etc/hosts"
_TYPES: tuple[tuple[int, int], ...] = (
    (_socket.SOCK_STREAM, _socket.IPPROTO_TCP), (_socket.SOCK_DGRAM, _socket.IPPROTO_UDP),
    (_socket.SOCK_RAW, 0))   # glibc's order for type 0
_PROTO_NAMES: dict[int, str] = {_socket.SOCK_STREAM: "tcp", _socket.SOCK_DGRAM: "udp"}


def _noname() -> _socket.gaierror:
    return _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")


def _hosts() -> list[tuple[str, list[str]]]:
    """``/etc/hosts`` as (IPv4 address, names) lines; IPv6 lines are skipped."""
    rows: list[tuple[str, list[str]]] = []
    try:
        with open(HOSTS_PATH, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return rows
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        ip = _numeric(fields[0])
        if ip is not None:
            rows.append((ip, fields[1:]))
    return rows


def _numeric(name: str) -> str | None:
    """The dotted quad for a numeric IPv4 address (glibc's inet_aton forms), else None."""
    if not name or not all(c.isdigit() or c in ".xXabcdefABCDEF" for c in name):
        return None
    try:
        return _socket.inet_ntoa(_socket.inet_aton(name))
    except OSError:
        return None


def lookup(name: str, host: Any = None) -> tuple[str, list[str], list[str]]:
    """(canonical name, aliases, IPv4 addresses) for ``name``; gaierror when unknown."""
    ip = _numeric(name)
    if ip is not None:
        return name, [], [ip]
    want = name.lower().rstrip(".")
    canon: str | None = None
    aliases: list[str] = []
    addrs: list[str] = []
    for ip, names in _hosts():
        if any(n.lower() == want for n in names):
            if canon is None:
                canon = names[0]
                aliases = names[1:]
            if ip not in addrs:
                addrs.append(ip)
    if canon is not None:
        return canon, aliases, addrs
    found = _dns(name, host)
    if found:
        return name, [], found
    raise _noname()


def _dns(name: str, host: Any) -> list[str]:
    """A and CNAME-followed addresses from the host's nameserver over synack, if any."""
    from synack.api_host import get_default_host

    h = host if host is not None else get_default_host()
    server = getattr(h, "nameserver", None)
    if h is None or not server:
        return []
    from synack.dns import query_a
    return query_a(h, server, name)


def _port(port: Any, socktype: int, flags: int) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, int) and not isinstance(port, bool):
        if not 0 <= port <= 0xFFFF:
            raise OverflowError("getaddrinfo(): port must be 0-65535.")
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        if flags & _socket.AI_NUMERICSERV:
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
        proto = _PROTO_NAMES.get(socktype, "tcp")
        try:
            return _socket.getservbyname(port, proto)
        except OSError:
            raise _socket.gaierror(_socket.EAI_SERVICE,
                                   "Servname not supported for ai_socktype") from None
    raise OSError("Int or String expected")


def getaddrinfo(host: str | bytes | None, port: str | bytes | int | None, family: int = 0,
                type: int = 0, proto: int = 0, flags: int = 0, *,
                synack_host: Any = None) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
    """The stdlib's ``getaddrinfo``, answered from numbers, /etc/hosts and synack DNS."""
    if family not in (_socket.AF_UNSPEC, _socket.AF_INET):
        raise _socket.gaierror(_socket.EAI_FAMILY, "ai_family not supported")
    if isinstance(host, bytes):
        host = host.decode("idna")
    if host is None and port is None:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    types = [(t, p) for t, p in _TYPES if (not type or t == type) and (not proto or p == proto)]
    if not types:
        if type:
            types = [(type, proto)]
        else:
            raise _socket.gaierror(_socket.EAI_SOCKTYPE, "ai_socktype not supported")
    num = _port(port, types[0][0], flags)
    canon = ""
    if host is None or host == "":
        addrs = ["0.0.0.0" if flags & _socket.AI_PASSIVE else "127.0.0.1"]
    elif flags & _socket.AI_NUMERICHOST:
        ip = _numeric(host)
        if ip is None:
            raise _noname()
        addrs = [ip]
    else:
        name, _aliases, addrs = lookup(host, synack_host)
        canon = name if flags & _socket.AI_CANONNAME else ""
    out = []
    for ip in addrs:
        for t, p in types:
            out.append((_socket.AddressFamily.AF_INET, _socket.SocketKind(t), p, canon, (ip, num)))
            canon = ""                  # only the first entry carries it, as glibc
    return out


def gethostbyname(hostname: str) -> str:
    """The first IPv4 address of ``hostname``."""
    return lookup(hostname)[2][0]


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    """``(canonical name, aliases, addresses)`` of ``hostname``."""
    return lookup(hostname)


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    """``(name, aliases, [address])`` for an address (or a name) from /etc/hosts."""
    try:
        ip = lookup(ip_address)[2][0]
    except _socket.gaierror as exc:
        raise _socket.herror(1, "Unknown host") from exc
    for addr, names in _hosts():
        if addr == ip:
            return names[0], names[1:], [ip]
    raise _socket.herror(1, "Unknown host")


def getnameinfo(sockaddr: tuple[str, int], flags: int) -> tuple[str, str]:
    """``(host, port)`` names for an IPv4 socket address, from /etc/hosts and /etc/services."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    ip_name, port = sockaddr[0], sockaddr[1]
    if not isinstance(port, int):
        raise TypeError("'str' object cannot be interpreted as an integer")
    ip = _numeric(ip_name)
    if ip is None:
        addrs = lookup(ip_name)[2]
        ip = addrs[0]
    if flags & _socket.NI_NUMERICHOST:
        hostname = ip
    else:
        names = [n for a, n in _hosts() if a == ip]
        if names:
            hostname = names[0][0]
        elif flags & _socket.NI_NAMEREQD:
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
        else:
            hostname = ip
        if flags & _socket.NI_NOFQDN:
            hostname = hostname.split(".", 1)[0] if names else hostname
    service = str(port)
    if not flags & _socket.NI_NUMERICSERV:
        try:
            service = _socket.getservbyport(port, "udp" if flags & _socket.NI_DGRAM else "tcp")
        except OSError:
            pass
    return hostname, service


def getfqdn(name: str = "") -> str:
    """The fully qualified name of ``name`` (this machine's when empty), as the stdlib's
    ``getfqdn`` but from /etc/hosts only."""
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _socket.gethostname()
    try:
        hostname, aliases, _ = gethostbyaddr(name)
    except OSError:
        return name
    for candidate in [hostname, *aliases]:
        if "." in candidate:
            return candidate
    return hostname
