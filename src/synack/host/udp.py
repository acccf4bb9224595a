"""UDP at the host (RFC 768, RFC 1122 4.1): datagram sockets beside TCP's.

Theory of operation
-------------------
A :class:`UdpHost` belongs to a :class:`~synack.stack.Stack` (``stack.udp``).
Its descriptors come from the stack's counter, so one number names one socket
whatever its protocol, and the drivers' per-descriptor waking
(``stack.touched``, ``loop.wait_fd``) works unchanged. Ports are per protocol,
as on Linux: UDP has a :class:`~synack.host.ports.PortTable` of its own.

* **Receive** (:meth:`UdpHost.receive`): the checksum is checked (unless the
  device vouched for it), then the socket is chosen as Linux's
  ``__udp4_lib_lookup`` scores them: a connected socket whose peer is the
  sender beats one bound to our address, which beats a wildcard bind. A
  datagram for no socket is answered with ICMP port unreachable (RFC 1122
  4.1.3.1), at most 1000 a second after a burst of 50 (Linux's global ICMP
  limit); one that would overflow the receive buffer (``SO_RCVBUF``) is
  dropped and counted (``UdpRcvbufErrors``).
* **Send** (:meth:`UdpHost.sendto`): one IPv4 packet per datagram, DF set,
  or, for one larger than the MTU, IPv4 fragments with DF clear (Linux
  ``ip_fragment``); up to 65507 bytes, ``EMSGSIZE`` beyond. Fragments that
  arrive are put together by :mod:`synack.host.frag` before they get here.
* **ICMP errors** (:meth:`UdpHost.on_icmp_error`): as Linux ``__udp4_lib_err``
  without ``IP_RECVERR``, only a *connected* socket whose peer the error names
  takes it, and only a hard error (port or protocol unreachable, ...): the
  next ``send``/``recv`` raises it once (``ECONNREFUSED`` for port
  unreachable), as ``sock_error()`` does.

* **IPv6** (``socket(AF_INET6)``): addresses in the API are
  ``(host, port, flowinfo, scope_id)``; datagrams carry the IPv6 pseudo-header
  checksum (RFC 8200 8.1; a zero checksum is dropped, as RFC 8200 requires), a
  datagram for no socket is answered with ICMPv6 port unreachable (RFC 4443
  3.1), and one coming back names the socket's error as ``__udp6_lib_err``
  does. A socket without ``IPV6_V6ONLY`` is dual-stack: it takes IPv4
  datagrams for its port and sends to IPv4-mapped addresses over IPv4; its
  peers are shown mapped (``::ffff:a.b.c.d``). IPv6 datagrams larger than the
  link MTU are not fragmented (``EMSGSIZE``).

Readiness: readable while a datagram or an error waits; always writable (the
datagram is handed to the link at once, nothing queues in a send buffer).
"""

from __future__ import annotations

import errno
import socket as _socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synack.host.ports import PortTable
from synack.host.sockaddr import api_addr, ip_of, overlaps
from synack.sockopts import oserror as _oserror
from synack.tcp.icmp_errors import UNREACH_ERRNO
from synack.wire.errors import ParseError
from synack.wire.frag import fragment
from synack.wire.icmp import CODE_PORT_UNREACH, DEST_UNREACH, build_icmp_packet, error_for
from synack.wire.icmp6 import DEST_UNREACH as DEST_UNREACH6
from synack.wire.icmp6 import build_icmp6_packet, error_for6
from synack.wire.ipv4 import PROTO_UDP
from synack.wire.udp import (
    UDP_HEADER_LEN,
    UdpDatagram,
    build_udp6_packet,
    build_udp_packet,
    encode_udp,
    parse_udp,
)

if TYPE_CHECKING:
    from synack.stack import Stack

__all__ = ["UdpHost", "UdpSock"]

Addr = tuple[str, int]
MAX_PAYLOAD = 0xFFFF - 20 - UDP_HEADER_LEN     # 65507, what Linux accepts (with fragments)
MAX_PAYLOAD6 = 0xFFFF - UDP_HEADER_LEN         # 65527: the IPv6 payload length is the limit
_WILD = "0.0.0.0"
_WILD6 = "::"
_PORT_UNREACH6 = 4          # RFC 4443 3.1: port unreachable
# Linux net.core.{r,w}mem_default and _max on a machine with a few GiB of memory.
RMEM_DEFAULT = WMEM_DEFAULT = RMEM_MAX = WMEM_MAX = 212992
# Linux icmp_global_allow(): net.ipv4.icmp_msgs_per_sec 1000, icmp_msgs_burst 50.
ICMP_MSGS_PER_SEC = 1000
ICMP_MSGS_BURST = 50


@dataclass(slots=True)
class UdpSock:
    """What a UDP descriptor refers to."""

    fd: int
    local: Addr | None = None
    remote: Addr | None = None
    queue: deque[tuple[bytes, Addr]] = field(default_factory=deque)
    queued: int = 0             # bytes charged to the receive buffer
    rcvbuf: int = 0
    sndbuf: int = 0
    error: int = 0              # sk_err: reported once by the next call
    rd_shut: bool = False
    broadcast: bool = False
    reuseaddr: bool = False
    family: int = _socket.AF_INET
    v6only: bool = False        # IPV6_V6ONLY: an AF_INET6 socket without its IPv4 side


class UdpHost:
    """The UDP sockets of one stack (see the module docstring)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.socks: dict[int, UdpSock] = {}
        self.ports: PortTable[UdpSock] = PortTable()
        self._icmp_credit = ICMP_MSGS_BURST
        self._icmp_stamp: int | None = None

    # ------------------------------------------------------------ calls
    def _sock(self, fd: int) -> UdpSock:
        sock = self.socks.get(fd)
        if sock is None:
            raise _oserror(errno.EBADF)
        return sock

    def owns(self, fd: int) -> bool:
        """True when ``fd`` is a UDP socket of this host."""
        return fd in self.socks

    def socket(self, family: int = _socket.AF_INET) -> int:
        """A new UDP socket (``AF_INET`` or ``AF_INET6``, dual-stack unless
        ``net.ipv6.bindv6only``); returns its descriptor (from the stack's numbering)."""
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            raise _oserror(errno.EAFNOSUPPORT)
        st = self.stack
        fd = st._next_fd
        st._next_fd += 1
        sock = UdpSock(fd, rcvbuf=RMEM_DEFAULT, sndbuf=WMEM_DEFAULT)
        if family == _socket.AF_INET6:
            sock.family = family
            sock.v6only = st.cfg.int("net.ipv6.bindv6only") == 1
        self.socks[fd] = sock
        return fd

    def _in_use(self, ip: str, port: int, me: UdpSock) -> bool:
        for s in self.ports.on(port):
            # Linux: a shared port needs SO_REUSEADDR on both sockets.
            if s is me or s.local is None or (s.reuseaddr and me.reuseaddr):
                continue
            theirs = s.local[0]
            if ":" in ip or ":" in theirs:
                if overlaps(ip, me.v6only, theirs, s.v6only):
                    return True
            elif theirs == ip or _WILD in (theirs, ip):
                return True
        return False

    def _addr_in(self, sock: UdpSock, addr: Addr | tuple[object, ...], call: str) -> Addr:
        """The host's ``(ip, port)`` for an API address: an AF_INET6 socket's 4-tuple
        with its IPv4-mapped addresses as IPv4 (host/sockaddr.py)."""
        if sock.family == _socket.AF_INET:
            return addr  # type: ignore[return-value]
        return ip_of(self.stack, sock, addr, call)  # type: ignore[arg-type]

    def _addr_out(self, sock: UdpSock, addr: Addr) -> tuple[object, ...]:
        return addr if sock.family == _socket.AF_INET else api_addr(sock, addr)  # type: ignore[arg-type]

    def _wild(self, sock: UdpSock) -> str:
        return _WILD6 if sock.family == _socket.AF_INET6 else _WILD

    def bind(self, fd: int, addr: Addr) -> None:
        """Bind to ``(ip, port)``; port 0 picks an ephemeral port."""
        sock = self._sock(fd)
        if sock.local is not None:
            raise _oserror(errno.EINVAL)
        ip, port = self._addr_in(sock, addr, "bind")
        ip = ip or _WILD
        if ip not in (_WILD, _WILD6) and not self.stack.owns(ip):
            raise _oserror(errno.EADDRNOTAVAIL, ip)
        if port == 0:
            port = self._ephemeral(sock)
        elif self._in_use(ip, port, sock):
            raise _oserror(errno.EADDRINUSE, f"{ip}:{port}")
        sock.local = (ip, port)
        self.ports.add(sock)

    def _ephemeral(self, sock: UdpSock) -> int:
        lo, hi = self.stack.cfg.triple("net.ipv4.ip_local_port_range")
        span = hi - lo + 1
        start = self.stack.rng.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if not any(True for _ in self.ports.on(port)):
                return port
        raise _oserror(errno.EAGAIN, "no free ephemeral port")   # Linux udp_lib_get_port

    def _autobind(self, sock: UdpSock) -> None:
        if sock.local is None:
            sock.local = (self._wild(sock), self._ephemeral(sock))
            self.ports.add(sock)

    def connect(self, fd: int, addr: Addr | tuple[object, ...]) -> None:
        """Fix the peer: send() goes there, only its datagrams are received."""
        sock = self._sock(fd)
        remote = self._addr_in(sock, addr, "connect")
        self._autobind(sock)
        assert sock.local is not None
        if sock.local[0] in (_WILD, _WILD6):
            # Linux: connect picks the source (127.0.0.1 towards loopback).
            src = self.stack.source_for(remote[0])
            if src is None:
                raise _oserror(errno.ENETUNREACH)
            self.ports.remove(sock)
            sock.local = (src, sock.local[1])
            self.ports.add(sock)
        sock.remote = remote

    def sendto(self, fd: int, data: bytes | bytearray | memoryview,
               addr: Addr | tuple[object, ...] | None, *, now: int) -> int:
        """Send one datagram to ``addr`` (or the connected peer); returns its length."""
        sock = self._sock(fd)
        self._raise_error(sock)
        if addr is None:
            if sock.remote is None:
                raise _oserror(errno.EDESTADDRREQ)
            addr = sock.remote
        else:
            addr = self._addr_in(sock, addr, "sendto")
        if ":" in addr[0]:
            return self._sendto6(sock, data, addr)
        payload = bytes(data)
        if len(payload) > MAX_PAYLOAD:
            raise _oserror(errno.EMSGSIZE)
        if addr[0] == "255.255.255.255" and not sock.broadcast:
            raise _oserror(errno.EACCES)
        self._autobind(sock)
        assert sock.local is not None
        st = self.stack
        st._ident = (st._ident + 1) & 0xFFFF
        d = UdpDatagram(sock.local[1], addr[1], payload)
        ttl = st.cfg.int("net.ipv4.ip_default_ttl")
        src = (sock.local[0] if sock.local[0] not in (_WILD, _WILD6)
               else st.source_for(addr[0]) or st.addr)
        if ":" in src:
            raise _oserror(errno.ENETUNREACH)   # bound to an IPv6 address, sent to IPv4
        if st.is_local(addr[0]):
            # Loopback (host/loopback.py): lo's MTU holds any datagram whole.
            st._lo.append(build_udp_packet(src, addr[0], d, ttl=ttl, ident=st._ident))
        elif len(payload) + 28 <= st.mtu:
            st._out.append(build_udp_packet(src, addr[0], d, ttl=ttl, ident=st._ident))
        else:
            # Linux ip_fragment(): larger than the MTU, sent in fragments with DF clear.
            st._out += fragment(src, addr[0], PROTO_UDP, encode_udp(d, src, addr[0]),
                                mtu=st.mtu, ttl=ttl, ident=st._ident)
            st.stats["udp: datagrams fragmented"] += 1
        st.cfg.mib["UdpOutDatagrams"] += 1
        return len(payload)

    def _sendto6(self, sock: UdpSock, data: bytes | bytearray | memoryview, addr: Addr) -> int:
        """One datagram over IPv6 (from an AF_INET6 socket)."""
        st = self.stack
        payload = bytes(data)
        local = st.is_local(addr[0])
        if len(payload) > MAX_PAYLOAD6 or (not local and len(payload) + 48 > st.mtu):
            raise _oserror(errno.EMSGSIZE)     # no IPv6 fragmentation (module docstring)
        self._autobind(sock)
        assert sock.local is not None
        src = sock.local[0] if sock.local[0] != _WILD6 else st.source_for(addr[0])
        if src is None or ":" not in src:
            raise _oserror(errno.ENETUNREACH)
        packet = build_udp6_packet(src, addr[0], UdpDatagram(sock.local[1], addr[1], payload),
                                   hop_limit=st.cfg.int("net.ipv6.conf.all.hop_limit"))
        (st._lo if local else st._out).append(packet)
        st.cfg.mib["Udp6OutDatagrams"] += 1
        return len(payload)

    def recvfrom(self, fd: int, n: int, *, peek: bool = False) -> tuple[bytes, Any] | None:
        """The next datagram cut to ``n`` bytes (the rest is lost, as UDP), with its
        sender; None when none waits. A pending error is raised first."""
        sock = self._sock(fd)
        if not sock.queue:
            self._raise_error(sock)
            if sock.rd_shut:
                return b"", self._addr_out(sock, (_WILD, 0))
            return None
        data, addr = sock.queue[0] if peek else sock.queue.popleft()
        if not peek:
            sock.queued -= len(data)
        return data[:n], self._addr_out(sock, addr)

    def _raise_error(self, sock: UdpSock) -> None:
        if sock.error:
            code, sock.error = sock.error, 0
            raise _oserror(code)

    def shutdown(self, fd: int, how: int) -> None:
        """Linux: ENOTCONN unless connected; SHUT_RD makes recv return b""."""
        sock = self._sock(fd)
        if how not in (0, 1, 2):
            raise _oserror(errno.EINVAL)
        if sock.remote is None:
            raise _oserror(errno.ENOTCONN)
        if how in (0, 2):
            sock.rd_shut = True
            self.stack.touched.add(fd)

    def close(self, fd: int) -> None:
        """Release the descriptor and its port."""
        sock = self._sock(fd)
        del self.socks[fd]
        self.ports.remove(sock)
        self.stack.touched.discard(fd)

    def readable(self, fd: int) -> bool:
        """recv() would not block."""
        sock = self._sock(fd)
        return bool(sock.queue) or bool(sock.error) or sock.rd_shut

    def writable(self, fd: int) -> bool:
        """send() would not block: always (nothing waits in a send buffer)."""
        self._sock(fd)
        return True

    def getsockname(self, fd: int) -> Any:
        """The local address (0.0.0.0:0, or ::, before bind)."""
        sock = self._sock(fd)
        return self._addr_out(sock, sock.local or (self._wild(sock), 0))

    def getpeername(self, fd: int) -> Any:
        """The connected peer; ENOTCONN when there is none."""
        sock = self._sock(fd)
        if sock.remote is None:
            raise _oserror(errno.ENOTCONN)
        return self._addr_out(sock, sock.remote)

    def setsockopt(self, fd: int, level: int, option: int, value: int | bytes) -> None:
        """SOL_SOCKET buffer sizes, SO_BROADCAST, SO_REUSEADDR; ENOPROTOOPT otherwise."""
        sock = self._sock(fd)
        if (level == _socket.IPPROTO_IPV6 and option == _socket.IPV6_V6ONLY
                and sock.family == _socket.AF_INET6 and not isinstance(value, bytes)):
            if sock.local is not None:
                raise _oserror(errno.EINVAL)     # Linux: only before bind
            sock.v6only = bool(value)
            return
        if level != _socket.SOL_SOCKET or isinstance(value, bytes):
            raise _oserror(errno.ENOPROTOOPT)
        if option == _socket.SO_RCVBUF:
            # Linux sock_setsockopt: doubled, capped by rmem_max, at least SOCK_MIN_RCVBUF.
            sock.rcvbuf = max(min(value, RMEM_MAX) * 2, 2304)
        elif option == _socket.SO_SNDBUF:
            sock.sndbuf = max(min(value, WMEM_MAX) * 2, 4608)
        elif option == _socket.SO_BROADCAST:
            sock.broadcast = bool(value)
        elif option == _socket.SO_REUSEADDR:
            sock.reuseaddr = bool(value)
        else:
            raise _oserror(errno.ENOPROTOOPT)

    def getsockopt(self, fd: int, level: int, option: int) -> int:
        """Read an option back (SO_ERROR reports and clears a pending error)."""
        sock = self._sock(fd)
        if level == _socket.SOL_SOCKET:
            if option == _socket.SO_ERROR:
                code, sock.error = sock.error, 0
                return code
            values = {_socket.SO_RCVBUF: sock.rcvbuf, _socket.SO_SNDBUF: sock.sndbuf,
                      _socket.SO_BROADCAST: int(sock.broadcast),
                      _socket.SO_REUSEADDR: int(sock.reuseaddr),
                      _socket.SO_TYPE: int(_socket.SOCK_DGRAM),
                      _socket.SO_DOMAIN: int(sock.family),
                      _socket.SO_PROTOCOL: _socket.IPPROTO_UDP,
                      _socket.SO_ACCEPTCONN: 0}
            if option in values:
                return values[option]
        if (level == _socket.IPPROTO_IPV6 and option == _socket.IPV6_V6ONLY
                and sock.family == _socket.AF_INET6):
            return int(sock.v6only)
        raise _oserror(errno.ENOPROTOOPT)

    # ------------------------------------------------------------ packets
    def _lookup(self, local: Addr, remote: Addr) -> UdpSock | None:
        """Linux __udp4_lib_lookup's preference (and __udp6_lib_lookup's): connected to
        ``remote`` > bound to our address > bound to the wildcard; for an IPv4 datagram
        an AF_INET socket before a dual-stack AF_INET6 one on ``::``."""
        best: UdpSock | None = None
        best_score = -1
        v6 = ":" in local[0]
        for s in self.ports.on(local[1]):
            if s.local is None:
                continue
            mine = s.local[0]
            if mine != local[0]:
                if v6:
                    if mine != _WILD6:
                        continue
                elif mine != _WILD and (mine != _WILD6 or s.v6only):
                    continue
            if s.remote is not None and s.remote != remote:
                continue
            score = (4 if s.remote is not None else 0) + (2 if mine == local[0] else 0) + (
                1 if (s.family == _socket.AF_INET6) == v6 else 0)
            if score > best_score:
                best, best_score = s, score
        return best

    def _icmp_allowed(self, now: int) -> bool:
        """A token bucket as Linux icmp_global_allow(): so a flood of datagrams to
        closed ports cannot make us send a flood of port unreachables."""
        last = self._icmp_stamp
        if last is not None:
            refill = (now - last) * ICMP_MSGS_PER_SEC // 1_000_000
            if refill:
                self._icmp_credit = min(self._icmp_credit + refill, ICMP_MSGS_BURST)
                self._icmp_stamp = now
        else:
            self._icmp_stamp = now
        if self._icmp_credit <= 0:
            return False
        self._icmp_credit -= 1
        return True

    def receive(self, src: str, dst: str, body: memoryview, packet: bytes, *, now: int,
                csum_valid: bool = False) -> None:
        """One UDP datagram for our address. Never raises for anything the peer sent."""
        st = self.stack
        mib = st.cfg.mib
        if ":" in src and len(body) >= UDP_HEADER_LEN and not (body[6] or body[7]):
            # RFC 8200 8.1: over IPv6 the checksum is not optional; zero is dropped.
            st.stats["udp: dropped zero checksum over IPv6"] += 1
            mib["UdpInErrors"] += 1
            return
        try:
            d = parse_udp(body, src, dst, verify_checksum=not csum_valid)
        except ParseError as exc:
            st.stats["udp: dropped " + exc.kind] += 1
            mib["UdpInCsumErrors" if exc.kind == "bad checksum" else "UdpInErrors"] += 1
            return
        sock = self._lookup((dst, d.dst_port), (src, d.src_port))
        if sock is None:
            mib["UdpNoPorts"] += 1
            if not self._icmp_allowed(now):
                st.stats["udp: port unreachable rate limited"] += 1
                return
            st.stats["udp: port unreachable sent"] += 1
            if ":" in src:
                st.queue_out(src, build_icmp6_packet(
                    dst, src, error_for6(packet, DEST_UNREACH6, _PORT_UNREACH6),
                    hop_limit=st.cfg.int("net.ipv6.conf.all.hop_limit")))
                return
            st._ident = (st._ident + 1) & 0xFFFF
            st.queue_out(src, build_icmp_packet(
                dst, src, error_for(packet, DEST_UNREACH, CODE_PORT_UNREACH),
                ttl=st.cfg.int("net.ipv4.ip_default_ttl"), ident=st._ident))
            return
        if sock.queued + len(d.payload) > sock.rcvbuf:
            mib["UdpRcvbufErrors"] += 1
            mib["UdpInErrors"] += 1
            return
        sock.queue.append((d.payload, (src, d.src_port)))
        sock.queued += len(d.payload)
        mib["UdpInDatagrams"] += 1
        st.touched.add(sock.fd)

    def on_icmp_error(self, local: Addr, remote: Addr, type_: int, code: int, *,
                      err6: int = 0) -> str:
        """An ICMP error about a datagram we sent from ``local`` to ``remote``;
        returns what was done (for the stack's counters). ``err6``: an ICMPv6
        destination unreachable, already converted (every one is fatal, as Linux
        icmpv6_err_convert() says); other ICMPv6 errors come with 0."""
        sock = self._lookup(local, remote)
        if sock is None:
            return "dropped no socket"
        if ":" in local[0]:
            code_errno, fatal = err6, err6 != 0
        elif type_ != DEST_UNREACH or code >= len(UNREACH_ERRNO):
            return "ignored"
        else:
            code_errno, fatal = UNREACH_ERRNO[code]
        if sock.remote is None or not fatal:
            return "ignored"        # Linux without IP_RECVERR: connected sockets, hard errors
        sock.error = code_errno
        self.stack.touched.add(sock.fd)
        return "udp error reported"
