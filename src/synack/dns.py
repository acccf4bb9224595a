"""A stub resolver over synack UDP: A queries (RFC 1035) to one nameserver.

:func:`query_a` sends one recursive query for the A records of a name from a
synack UDP socket of the given host, waits (a short timeout, two tries, as
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

__all__ = ["build_query", "nameserver_from_resolv_conf", "parse_answer", "query_a"]

TYPE_A, TYPE_CNAME, CLASS_IN = 1, 5, 1
_HEADER = struct.Struct("!HHHHHH")
RCODE_NXDOMAIN = 3
TIMEOUT = 2.0     # seconds per try (glibc's default is 5; a test host answers fast)
ATTEMPTS = 2


def nameserver_from_resolv_conf(path: str = "/etc/resolv.conf") -> str | None:
    """The first IPv4 ``nameserver`` of ``path``, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver" and ":" not in fields[1]:
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


def build_query(ident: int, name: str) -> bytes:
    """A recursive query (RD set) for the A records of ``name``."""
    return _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(
        "!HH", TYPE_A, CLASS_IN)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n == 0:
            return pos + 1
        pos += 1 + n


def parse_answer(msg: bytes, ident: int) -> tuple[int, list[str]] | None:
    """``(rcode, addresses)`` of a reply to query ``ident``; None for anything else
    (not a reply, another id, malformed)."""
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
            if rtype == TYPE_A and rclass == CLASS_IN and rdlen == 4:
                addrs.append(_socket.inet_ntoa(msg[pos:pos + 4]))
            pos += rdlen
        return flags & 0xF, addrs
    except (struct.error, IndexError, OSError):
        return None         # malformed: as if it never came


def query_a(host: Any, server: str, name: str) -> list[str]:
    """The A addresses of ``name`` asked of ``server`` over ``host`` (a
    :class:`~synack.api_host.Host`) from a UDP socket of its own; raises gaierror."""
    import time

    stack, loop = host.stack, host.loop
    udp = stack.udp
    ident = random.getrandbits(16)
    query = build_query(ident, name)
    with loop.lock:
        fd = udp.socket()
    try:
        with loop.lock:
            udp.connect(fd, (server, 53))
        for _ in range(ATTEMPTS):
            end = time.monotonic() + TIMEOUT
            with loop.lock:
                udp.sendto(fd, query, None, now=loop.now())
            loop.wake()
            with loop.lock:
                while True:
                    try:
                        got = udp.recvfrom(fd, 4096)
                    except ConnectionRefusedError:
                        got = None
                        end = 0.0
                    if got is not None:
                        answer = parse_answer(got[0], ident)
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
    if rcode == RCODE_NXDOMAIN or (rcode == 0 and not addrs):
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    if rcode:
        raise _socket.gaierror(_socket.EAI_AGAIN, "Temporary failure in name resolution")
    return addrs
