"""A stub resolver over synack UDP: A and AAAA queries (RFC 1035, RFC 3596) to one
nameserver.

:func:`query` sends one recursive query for the A (or AAAA) records of a name
from a synack UDP socket of the given host, waits (a short timeout, two tries, as
``resolv.conf``'s ``timeout``/``attempts`` would), and returns the addresses of
the answer, following CNAMEs within the same answer. A name that does not
exist, a server failure or silence all end in ``gaierror`` as glibc reports
them. :func:`nameserver_from_resolv_conf` reads the first ``nameserver`` line.
"""

from __future__ import annotations

import random
import socket as _socket
import struct
from typing import Any

__all__ = ["build_query", "nameserver_from_resolv_conf", "parse_answer", "query", "query_a"]

TYPE_A, TYPE_CNAME, TYPE_AAAA, CLASS_IN = 1, 5, 28, 1
_HEADER = struct.Struct("!HHHHHH")
RCODE_NXDOMAIN = 3
TIMEOUT = 2.0     # seconds per try (glibc's default is 5; a test host answers fast)
ATTEMPTS = 2


def nameserver_from_resolv_conf(path: str = "/etc/resolv.conf") -> str | None:
    """The first ``nameserver`` of ``path`` (IPv4 or IPv6), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver" and "%" not in fields[1]:
                    return fields[1]
    except OSError:
        pass
    return None


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
        out += bytes([len(raw)]) + raw
    return bytes(out) + b"\0"


def build_query(ident: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A recursive query (RD set) for the A (or ``qtype``) records of ``name``."""
    return _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(
        "!HH", qtype, CLASS_IN)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n == 0:
            return pos + 1
        pos += 1 + n


def parse_answer(msg: bytes, ident: int, qtype: int = TYPE_A) -> tuple[int, list[str]] | None:
    """``(rcode, addresses)`` of a reply to query ``ident`` (the A records, or AAAA
    for ``qtype`` AAAA); None for anything else (not a reply, another id, malformed)."""
    try:
        rid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(msg)
        if rid != ident or not flags & 0x8000:
            return None
        pos = _HEADER.size
        for _ in range(qd):
            pos = _skip_name(msg, pos) + 4
        addrs: list[str] = []
        for _ in range(an):
            pos = _skip_name(msg, pos)
            rtype, rclass, _ttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
            pos += 10
            if rtype == qtype == TYPE_A and rclass == CLASS_IN and rdlen == 4:
                addrs.append(_socket.inet_ntoa(msg[pos:pos + 4]))
            elif rtype == qtype == TYPE_AAAA and rclass == CLASS_IN and rdlen == 16:
                addrs.append(_socket.inet_ntop(_socket.AF_INET6, msg[pos:pos + 16]))
            pos += rdlen
        return flags & 0xF, addrs
    except (struct.error, IndexError, OSError):
        return None         # malformed: as if it never came


def query_a(host: Any, server: str, name: str) -> list[str]:
    """The A addresses of ``name`` asked of ``server`` over ``host`` (a
    :class:`~synack.api_host.Host`) from a UDP socket of its own; raises gaierror."""
    found = query(host, server, name, TYPE_A)
    if not found:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    return found


def query(host: Any, server: str, name: str, qtype: int = TYPE_A) -> list[str]:
    """The A (or AAAA) addresses of ``name`` asked of ``server`` (IPv4, or IPv6 from an
    AF_INET6 socket) over ``host`` from a UDP socket of its own: [] when the name has
    none of that type; gaierror EAI_NONAME when it does not exist, EAI_AGAIN when
    the server fails or is silent."""
    import time

    stack, loop = host.stack, host.loop
    udp = stack.udp
    ident = random.getrandbits(16)
    packet = build_query(ident, name, qtype)
    with loop.lock:
        fd = udp.socket(_socket.AF_INET6 if ":" in server else _socket.AF_INET)
    try:
        try:
            with loop.lock:
                udp.connect(fd, (server, 53))
        except OSError:     # e.g. an IPv6 nameserver from a host without IPv6
            raise _socket.gaierror(_socket.EAI_AGAIN,
                                   "Temporary failure in name resolution") from None
        for _ in range(ATTEMPTS):
            end = time.monotonic() + TIMEOUT
            with loop.lock:
                udp.sendto(fd, packet, None, now=loop.now())
            loop.wake()
            with loop.lock:
                while True:
                    try:
                        got = udp.recvfrom(fd, 4096)
                    except ConnectionRefusedError:
                        got = None
                        end = 0.0
                    if got is not None:
                        answer = parse_answer(got[0], ident, qtype)
                        if answer is not None:
                            return _addresses(*answer)
                        continue
                    left = end - time.monotonic()
                    if left <= 0 or not loop.running:
                        break
                    loop.wait_fd(fd, left)
    finally:
        with loop.lock:
            udp.close(fd)
    raise _socket.gaierror(_socket.EAI_AGAIN, "Temporary failure in name resolution")


def _addresses(rcode: int, addrs: list[str]) -> list[str]:
    """The addresses of an answer: [] when the name has none of the type asked
    (NODATA); NXDOMAIN (no such name at all) is EAI_NONAME."""
    if rcode == RCODE_NXDOMAIN:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    if rcode:
        raise _socket.gaierror(_socket.EAI_AGAIN, "Temporary failure in name resolution")
    return addrs
