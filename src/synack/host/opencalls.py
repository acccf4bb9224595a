"""The opening calls of a host's sockets: socket, bind, listen, accept, connect.

Descriptors and their addresses: a new socket, its bind (ports from the host's
:class:`~synack.host.ports.PortTable`, ephemeral ones picked as Linux picks them,
TIME_WAIT reuse under ``tcp_tw_reuse``), the listener and its accept queue, and the
active open. Mixed into :class:`~synack.stack.Stack`; what the connection does
afterwards (send, recv, shutdown, close, options, queries) is in
:mod:`synack.host.calls`.
"""

from __future__ import annotations

import errno
import socket as _socket
from collections.abc import Sized
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.host.fastopen import start_client
from synack.host.records import Addr, Key, Sock, SockAddr, shared_addr
from synack.host.sockaddr import api_addr, ip_of, overlaps
from synack.sockopts import oserror as _oserror
from synack.tcp.connection import Connection
from synack.tcp.fastopen import TFO_CLIENT_ENABLE, TFO_SERVER_ENABLE, TFO_SERVER_WO_SOCKOPT1
from synack.tcp.listener import Listener
from synack.tcp.rare import pooled
from synack.tcp.state import State

if TYPE_CHECKING:
    from synack.stack import Stack

TW_REUSE_DELAY_US = 1_000_000  # Linux net.ipv4.tcp_tw_reuse_delay default, 1000 ms
_NO_RARE: dict[str, object] = {}    # a Sock's rare dict while it holds nothing (never written)
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_CLOSED = State.CLOSED
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT


class OpenCallsMixin:
    """Socket, bind, listen, accept and connect calls for :class:`synack.stack.Stack`."""

    def socket(self: Stack, family: int = _socket.AF_INET) -> int:
        """A new TCP socket (``AF_INET``, or ``AF_INET6`` on a host with :attr:`addr6`;
        its IPV6_V6ONLY starts as ``net.ipv6.bindv6only``); returns its descriptor."""
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            raise _oserror(errno.EAFNOSUPPORT)
        fd = self._next_fd
        self._next_fd += 1
        sock = Sock(fd)
        if family == _socket.AF_INET6:
            sock.family = family
            sock.v6only = self.cfg.int("net.ipv6.bindv6only") == 1
        self.socks[fd] = sock
        return fd

    def _port_in_use(self: Stack, ip: str, port: int, v6only: bool = False, *,
                     reuse: bool = False) -> bool:
        """Another socket holds ``ip:port`` (across the families as Linux: a wildcard or
        IPv4-mapped IPv6 bind without IPV6_V6ONLY overlaps IPv4). With ``reuse``
        (SO_REUSEADDR on the socket binding), a socket that also has it and is not
        listening does not count (Linux inet_bind_conflict(): sk_reuse on both and sk2
        not in TCP_LISTEN)."""
        for s in self.ports.on(port):
            if (s.local and s.local[1] == port
                    and (overlaps(ip, v6only, s.local[0], s.v6only)
                         if ":" in ip or ":" in s.local[0]
                         else s.local[0] in (ip, "0.0.0.0") or ip == "0.0.0.0")
                    and (s.conn is None or s.conn.state is not _CLOSED)
                    and not (reuse and s.reuseaddr and s.listener is None)):
                return True
        return False

    def bind(self: Stack, fd: int, addr: SockAddr) -> None:
        """Bind to ``(ip, port)`` (AF_INET6: ``(ip, port[, flowinfo, scope_id])``);
        port 0 picks an ephemeral port."""
        sock = self._sock(fd)
        if sock.local is not None:
            raise _oserror(errno.EINVAL, "already bound")
        ip, port = ip_of(self, sock, addr, "bind")
        if ip not in ("0.0.0.0", "::") and not self.owns(ip):
            raise _oserror(errno.EADDRNOTAVAIL, ip)
        if not 0 <= port <= 0xFFFF:
            raise OverflowError("bind(): port must be 0-65535.")
        if port == 0:
            port = self._ephemeral(None, local_ip=ip)
        elif self._port_in_use(ip, port, sock.v6only, reuse=sock.reuseaddr) or (
            not sock.reuseaddr and port in self.ports.timewait and (
                not sock.v6only or any(k[1] == port and ":" in k[0] for k in self.timewait))):
            # An IPV6_V6ONLY socket clashes only with IPv6 TIME_WAIT entries.
            raise _oserror(errno.EADDRINUSE, f"{ip}:{port}")
        sock.local = (ip, port)
        self.ports.add(sock)

    def listen(self: Stack, fd: int, backlog: int = 128) -> None:
        """Start listening; the accept queue holds min(backlog, somaxconn) connections."""
        sock = self._sock(fd)
        if sock.conn is not None:
            raise _oserror(errno.EINVAL, "socket is connected")
        if sock.local is None:
            self.bind(fd, ("::" if sock.family == _socket.AF_INET6 else "0.0.0.0", 0))
        assert sock.local is not None
        if sock.listener is not None:
            sock.listener.max_backlog = max(min(backlog, self.cfg.int("net.core.somaxconn")), 0)
            return
        lst = Listener(sock.local, backlog, self.cfg)
        lst.fd = fd
        tfo = self.cfg.int("net.ipv4.tcp_fastopen")
        if tfo & TFO_SERVER_WO_SOCKOPT1 and tfo & TFO_SERVER_ENABLE:
            # Linux __inet_listen_sk(): every listener gets a Fast Open queue.
            lst.fastopen_qlen = lst.max_backlog
        sock.listener = lst
        self.listeners[sock.local] = lst

    def accept(self: Stack, fd: int) -> tuple[int, SockAddr]:
        """Take an established connection from the accept queue."""
        got = self.accept_some(fd)
        if got is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return got

    def accept_some(self: Stack, fd: int) -> tuple[int, SockAddr] | None:
        """:meth:`accept`, with None where it would raise ``BlockingIOError``."""
        sock = self.socks.get(fd)           # _sock(), inline
        if sock is None:
            raise _oserror(errno.EBADF)
        # Sock's Rare and Pooled fields (rare.py) read from their dict and tuple: no
        # descriptor call each, at every accept and every poll of a listener.
        rare = sock.rare or _NO_RARE
        lst: Listener | None = rare.get("listener")  # type: ignore[assignment]
        if lst is None:
            raise _oserror(errno.EINVAL, "socket is not listening")
        queue = lst.accept_queue
        if not queue:
            return None
        conn = queue.popleft()
        fd = self._next_fd              # socket()'s descriptor, without its throwaway Sock
        self._next_fd = fd + 1
        # The child is a copy of the listener (Linux sk_clone_lock()): SO_REUSEADDR and the
        # family too, so it shares the listener's Pooled tuple (reuseaddr, connecting,
        # family): a listener never has a connect() pending.
        pool = sock.pool
        child = Sock.child(fd, conn, pool if not pool[1] else pooled((pool[0], False, pool[2])))
        if rare.get("v6only"):
            child.v6only = True
        self.socks[fd] = child
        self.ports.add(child)
        conn.fd = fd
        remote = conn.remote
        return fd, remote if pool[2] == _socket.AF_INET else api_addr(sock, remote)

    def _accept_queue(self: Stack, fd: int) -> Sized:
        """The accept queue of the listening socket ``fd``, to look at only: an event
        loop accepts while it is not empty instead of calling :meth:`accept_some` once
        more to hear None. The same object for as long as the socket listens."""
        lst = self._sock(fd).listener
        if lst is None:
            raise _oserror(errno.EINVAL, "socket is not listening")
        return lst.accept_queue

    def _ephemeral(self: Stack, remote: Addr | None, now: int | None = None, *,
                   local_ip: str | None = None) -> int:
        lo, hi = self.cfg.triple("net.ipv4.ip_local_port_range")
        me = local_ip or self.addr
        if local_ip is None and remote is not None and ":" in remote[0] and self.addr6:
            me = self.addr6
        span = hi - lo + 1
        start = self.rng.randrange(span)
        reusable: int | None = None
        for i in range(span):
            port = lo + (start + i) % span
            if remote is None:
                if not self._port_in_use(me, port):
                    return port
                continue
            key = (me, port, remote[0], remote[1])
            if key in self.timewait and reusable is None and self._tw_reusable(key, now):
                reusable = port
            if key in self.conns or key in self.timewait or (me, port) in self.listeners:
                continue
            if any(s.remote is None for s in self.ports.on(port)):
                continue
            return port
        if reusable is not None:       # every port is taken, but a TIME_WAIT may be reused
            return reusable
        raise _oserror(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def _tw_reusable(self: Stack, key: Key, now: int | None) -> bool:
        """Linux tcp_twsk_unique(): may connect() take over this TIME_WAIT 4-tuple?

        Only with net.ipv4.tcp_tw_reuse (2: loopback peers only), only if the old
        connection used timestamps (PAWS then rejects its stray segments), and only
        once the TIME_WAIT is a second old (Linux's tcp_tw_reuse_delay default).
        """
        reuse = self.cfg.int("net.ipv4.tcp_tw_reuse")
        tw = self.timewait.get(key)
        if tw is None or now is None or reuse == 0 or not tw.ts:
            return False
        if reuse == 2 and not key[2].startswith("127.") and key[2] != "::1":
            return False
        return now - tw.since >= TW_REUSE_DELAY_US

    def connect_ex(self: Stack, fd: int, addr: SockAddr, *, now: int,
                   fastopen: bool = False) -> int:
        """Start an active open; returns EINPROGRESS (or another errno) like the stdlib.

        With TCP_FASTOPEN_CONNECT set and a Fast Open cookie cached for the peer, no
        SYN goes yet and 0 is returned: the first send() puts its data in the SYN
        (Linux tcp_fastopen_defer_connect()). ``fastopen`` (for :meth:`sendto_fastopen`):
        the same deferral whatever the option says; 0 then means deferred."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return errno.EISCONN            # Linux: a listener is not TCP_CLOSE
        conn = sock.conn
        if conn is not None:
            if conn.tfo is not None and conn.tfo.defer:
                return errno.EISCONN        # Linux: a deferred Fast Open connect "is" connected
            if conn.state in (_SYN_SENT, _SYN_RECEIVED):
                return errno.EALREADY
            if sock.connecting:
                # Linux __inet_stream_connect(): the first call after the handshake
                # ended reports how it ended (0 or the error); later ones say EISCONN.
                sock.connecting = False
                if conn.error is not None and not sock.error_reported:
                    sock.error_reported = True
                    return conn.error
                return errno.ECONNABORTED if conn.state is _CLOSED else 0
            return errno.EISCONN
        try:
            ip, port = ip_of(self, sock, addr, "connect")
        except _socket.gaierror:
            raise
        except OSError as exc:          # an IPV6_V6ONLY socket and a mapped address
            return exc.errno or errno.EINVAL
        v6 = ":" in ip
        me = self.source_for(ip)       # 127.0.0.1 / ::1 towards loopback (host/loopback.py)
        bound = sock.local[0] if sock.local is not None else "::"
        if me is None or (bound not in ("0.0.0.0", "::") and (":" in bound) != v6):
            return errno.ENETUNREACH       # no IPv6 address, or bound to the other family
        if sock.local is None or sock.local[1] == 0:
            sock.local = (me, self._ephemeral((ip, port), now, local_ip=me))
            self.ports.add(sock)
        local = (me if sock.local[0] in ("0.0.0.0", "::") else sock.local[0], sock.local[1])
        key = (local[0], local[1], ip, port)
        iss: int | None = None
        if key in self.timewait and self._tw_reusable(key, now):
            # Linux tcp_twsk_unique(): start beyond anything the old connection sent.
            iss = sq.add(self.timewait[key].snd_nxt, 65535 + 2)
            self._end_timewait(key, now, "reused by connect(): tcp_tw_reuse")
        if key in self.conns or key in self.timewait:
            return errno.EADDRNOTAVAIL
        self.ports.remove(sock)
        sock.local, sock.remote = local, shared_addr((ip, port))
        self.ports.add(sock)
        # Connection(local=, remote=, cfg=, opts=, iss=, now=, mtu=, ts_offset=), by
        # position: a class called with keywords builds a dict of them.
        conn = Connection(local, sock.remote, self.cfg, sock.opts,
                          self.isn(local[0], local[1], ip, port, now) if iss is None else iss,
                          now, self.route_mtu(ip), self.rng.getrandbits(32))
        conn.tso_max = self._tso_max()
        if not self.record_changes:
            conn.changes = None
        conn.fd = fd
        sock.conn = conn
        sock.connecting = True
        self.conns[key] = conn
        defer = False
        if (fastopen or sock.opts.fastopen_connect) \
                and self.cfg.int("net.ipv4.tcp_fastopen") & TFO_CLIENT_ENABLE:
            defer = start_client(self, sock, conn, ip)
            if conn.tfo is not None:
                conn.tfo.defer = defer
        conn.open_active(now=now, defer=defer)
        self._collect_conn(key, conn, now)
        return 0 if defer else errno.EINPROGRESS

    def connect(self: Stack, fd: int, addr: SockAddr, *, now: int) -> None:
        """Non-blocking connect(): raises BlockingIOError(EINPROGRESS) as the stdlib does."""
        code = self.connect_ex(fd, addr, now=now)
        if code:
            raise _oserror(code)
