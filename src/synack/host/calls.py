"""The BSD socket calls of a host on a connected socket: send, recv, shutdown, close,
options and queries, shaped like non-blocking sockets and raising what the stdlib
raises. The opening calls (socket, bind, listen, accept, connect) are in
:mod:`synack.host.opencalls`.
"""

from __future__ import annotations

import errno
import socket as _socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.host import errqueue
from synack.host.opencalls import TW_REUSE_DELAY_US  # noqa: F401 - its old home
from synack.host.records import (
    ORPHAN,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    Addr,
    ConnInfo,
    Sock,
    SockAddr,
)
from synack.host.sockaddr import api_addr
from synack.sockopts import get_option, set_option
from synack.sockopts import oserror as _oserror
from synack.tcp.connection import Connection
from synack.tcp.fastopen import TFO_CLIENT_ENABLE
from synack.tcp.state import CAN_SEND, State

# A plain int: `flags & socket.MSG_OOB` would go through the IntFlag's Python-level
# __rand__ on every send() and recv().
_MSG_OOB = int(_socket.MSG_OOB)
_MSG_EOR = int(_socket.MSG_EOR)
_MSG_MORE = 0x8000   # socket.MSG_MORE (Linux)
MSG_ZEROCOPY = 0x4000000   # Linux's; the stdlib has no name for it
_CAN_SEND = tuple(CAN_SEND)  # `in` a tuple: no Enum.__hash__ (Python code) per send()
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_HANDSHAKE = (State.SYN_SENT, State.SYN_RECEIVED)
_CLOSED = State.CLOSED
_LISTEN = State.LISTEN
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT
_TIME_WAIT = State.TIME_WAIT

if TYPE_CHECKING:
    from synack.stack import Stack


MAX_SKB_FRAGS = 17


def _send_frags(conn: Connection, data: bytes | bytearray | memoryview, iov: Sequence[int],
                now: int, flags: int) -> int:
    """A zerocopy write of many buffers: MAX_SKB_FRAGS of them to a segment, each full
    one ending its segment with PSH (tcp_mark_push()), as a record end does here."""
    view = memoryview(data)
    off = 0
    for i in range(0, len(iov), MAX_SKB_FRAGS):
        last = i + MAX_SKB_FRAGS >= len(iov)
        size = sum(iov[i:i + MAX_SKB_FRAGS])
        got = conn.send(view[off:off + size], now=now, oob=bool(last and flags & _MSG_OOB),
                        eor=not last or bool(flags & _MSG_EOR),
                        more=bool(last and flags & _MSG_MORE))
        off += got
        if got < size:
            break
    return off


class SocketCallsMixin:
    """File-descriptor calls for :class:`synack.stack.Stack`."""

    # ============================================================ socket calls
    def _sock(self: Stack, fd: int) -> Sock:
        sock = self.socks.get(fd)
        if sock is None:
            raise _oserror(errno.EBADF)
        return sock

    def sendto_fastopen(self: Stack, fd: int, data: bytes | bytearray | memoryview,
                        addr: Addr | None, *, now: int, flags: int = 0) -> int:
        """sendto(MSG_FASTOPEN) (Linux tcp_sendmsg_fastopen()): connect and put the
        data in the SYN when a cookie is cached for the peer; returns the bytes the SYN
        carries, or raises BlockingIOError(EINPROGRESS) when it carries none (a cookie
        request goes instead). EOPNOTSUPP without net.ipv4.tcp_fastopen 0x1 or an
        address; EALREADY while connecting; on a connected socket an ordinary send().
        ``flags``: MSG_ZEROCOPY as :meth:`send` takes it."""
        sock = self._sock(fd)
        if not self.cfg.int("net.ipv4.tcp_fastopen") & TFO_CLIENT_ENABLE or addr is None:
            raise _oserror(errno.EOPNOTSUPP)
        conn = sock.conn
        if conn is None:
            code = self.connect_ex(fd, addr, now=now, fastopen=True)
            if code == errno.EINPROGRESS:       # no cookie: a cookie request went
                raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            if code:
                raise _oserror(code)
            conn = sock.conn
            assert conn is not None
        tfo = conn.tfo
        if tfo is not None and tfo.defer:
            return self._send_deferred(sock, conn, data, now, flags)
        if conn.state in _HANDSHAKE:
            raise _oserror(errno.EALREADY)
        return self.send(fd, data, now=now, flags=flags)   # connected: MSG_FASTOPEN is moot

    def _send_deferred(self: Stack, sock: Sock, conn: Connection,
                       data: bytes | bytearray | memoryview, now: int, flags: int) -> int:
        start = conn.snd.data_end
        n = conn.send_syn_data(data, now=now)
        if n and flags & MSG_ZEROCOPY and sock.opts.zerocopy:
            errqueue.on_send(sock, start, sq.add(start, n))   # the SYN's data, pinned
        self._collect_key(conn, now)
        if not n:
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
        return n

    def _conn(self: Stack, fd: int) -> tuple[Sock, Connection]:
        sock = self._sock(fd)
        if sock.conn is None:
            raise _oserror(errno.ENOTCONN)
        return sock, sock.conn

    def _raise_error(self: Stack, sock: Sock, conn: Connection) -> None:
        if conn.error is not None and not sock.error_reported:
            sock.error_reported = True
            raise _oserror(conn.error)

    def send(self: Stack, fd: int, data: bytes | bytearray | memoryview, *, now: int,
             flags: int = 0, iov: Sequence[int] | None = None) -> int:
        """Queue bytes; returns how many were taken. Raises when nothing can be.

        ``flags`` may hold ``MSG_OOB``: the last byte is sent as urgent data;
        ``MSG_EOR``: no later data joins these bytes' last segment (Linux: the skb is
        marked ``eor`` and never appended to); ``MSG_ZEROCOPY``: with ``SO_ZEROCOPY``
        set, a completion goes on the error queue once the bytes are acknowledged
        (:mod:`synack.host.errqueue`); without it the flag is ignored, as Linux does.
        ``iov``: the lengths of sendmsg()'s buffers: a MSG_ZEROCOPY send pins each as a
        page fragment, at most MAX_SKB_FRAGS (17) to a segment (Linux
        skb_zerocopy_iter_stream(): a full skb is pushed and a new one started).
        """
        n = self._send(fd, data, now, flags, iov)
        if n < 0:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return n

    def _send(self: Stack, fd: int, data: bytes | bytearray | memoryview, now: int,
              flags: int = 0, iov: Sequence[int] | None = None) -> int:
        """:meth:`send` with ``now`` positional, for synack's own event loops (apps/base.py)
        (CPython 3.11 inlines no call with keywords), and -1 where send() raises
        BlockingIOError (EAGAIN): a writer whose buffer is full raises nothing each poll."""
        sock = self.socks.get(fd)           # _sock(), inline: once per write
        if sock is None:
            raise _oserror(errno.EBADF)
        conn = sock.conn
        if conn is None:
            # Linux sk_stream_wait_connect(): EPIPE, not ENOTCONN, on an unconnected socket.
            raise _oserror(errno.EPIPE)
        rare = conn.rare                    # error and wr_shut are Rare fields (rare.py)
        if rare is not None and conn.error is not None and not sock.error_reported:
            self._raise_error(sock, conn)
        state = conn.state
        if rare is not None and conn.wr_shut or state not in _CAN_SEND \
                and state not in _HANDSHAKE:
            raise _oserror(errno.EPIPE)
        if state in _HANDSHAKE and not conn.tfo_child_pending:
            tfo = conn.tfo
            if tfo is not None and tfo.defer:
                return self._send_deferred(sock, conn, data, now, flags)   # FASTOPEN_CONNECT
            self.wake_on_ack.add(fd)
            return -1                       # EAGAIN
        if not data:
            return 0
        if not flags and (sock.rare is None or sock.errq is None):
            # A plain write (nearly all): no flag to test and no error queue to feed.
            # (errq is a Rare field, read through Python code: the rare slot first.)
            n = conn._app_send(data, now)
            # Linux SOCK_NOSPACE: a writer that got less than it asked for waits for
            # room, so every ACK must wake it (Stack._segment_in touches the sockets in
            # wake_on_ack on pure ACKs too); one that got all it asked for waits for none.
            if n < len(data):
                self.wake_on_ack.add(fd)
            elif self.wake_on_ack:
                self.wake_on_ack.discard(fd)
            if n == 0:
                return -1                   # EAGAIN
            local, remote = conn.local, conn.remote
            key = (local[0], local[1], remote[0], remote[1])    # _collect_key(), inline
            if key in self.conns:
                self._collect_conn(key, conn, now)
            else:
                self._drain(key, conn)
            return n
        start = conn.snd.data_end
        if flags & MSG_ZEROCOPY and sock.opts.zerocopy and iov and len(iov) > MAX_SKB_FRAGS:
            n = _send_frags(conn, data, iov, now, flags)
        else:
            n = conn.send(data, now=now, oob=bool(flags & _MSG_OOB),
                          eor=bool(flags & _MSG_EOR), more=bool(flags & _MSG_MORE))
        # Sticky while the socket sends with flags or has an error queue: zerocopy
        # completions and ACK timestamps come with ACKs (see the plain write above).
        self.wake_on_ack.add(fd)
        if n == 0:
            return -1                       # EAGAIN
        if flags & MSG_ZEROCOPY and sock.opts.zerocopy:
            errqueue.on_send(sock, start, sq.add(start, n))
        if sock.errq is not None and errqueue.on_send_ts(sock, sq.add(start, n)):
            self.tstamping[conn] = sock
            errqueue.tx_events(sock, now)   # what went out in this very write
        self._collect_key(conn, now)
        return n

    def recv(self: Stack, fd: int, n: int, *, now: int, flags: int = 0) -> bytes:
        """Up to ``n`` bytes; b"" at end of stream; BlockingIOError when none yet.

        With ``MSG_OOB`` the urgent byte (Linux: EINVAL when there is none).
        """
        data = self._recv_some(fd, n, now, flags)
        if data is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return data

    def recv_some(self: Stack, fd: int, n: int, *, now: int, flags: int = 0) -> bytes | None:
        """:meth:`recv`, with None where it would raise ``BlockingIOError``: an event loop
        polling a socket that has nothing yet pays for no exception."""
        return self._recv_some(fd, n, now, flags)

    def _recv_some(self: Stack, fd: int, n: int, now: int, flags: int = 0) -> bytes | None:
        """:meth:`recv_some` with ``now`` positional (CPython 3.11 inlines no call with
        keywords)."""
        sock = self.socks.get(fd)           # _conn(), inline: an event loop's every poll
        if sock is None:
            raise _oserror(errno.EBADF)
        conn = sock.conn
        if conn is None:
            raise _oserror(errno.ENOTCONN)
        if n < 0:
            raise ValueError("negative buffersize in recv")
        if flags & _MSG_OOB:
            return bytes([conn.recv_oob()]) if n else b""
        rcv = conn.rcv                      # conn.recv_q and conn.eof, inline (properties)
        if rcv is not None and rcv.ready:
            data = conn._app_recv(n, now)
            if conn.outbox or conn.changes or self.tstamping:
                # A read queues nothing but a window update (Linux tcp_cleanup_rbuf()) and
                # arms no timer sooner: without one there is nothing to collect.
                local, remote = conn.local, conn.remote
                key = (local[0], local[1], remote[0], remote[1])    # _collect_key(), inline
                if key in self.conns:
                    self._collect_conn(key, conn, now)
                else:
                    self._drain(key, conn)
            return data
        if conn.rare is not None:           # error and rd_shut are Rare fields (rare.py)
            if conn.error is not None and not sock.error_reported:
                self._raise_error(sock, conn)
            if conn.rd_shut:
                return b""
        if conn.state is _CLOSED or rcv is not None and rcv.fin_received:   # (ready is empty)
            return b""
        return None

    def _quiet(self: Stack, fd: int) -> bool:
        """recv_some() on the connected socket ``fd`` would return None, and nothing
        else is pending on it (no error, no shutdown): what a server asks of a socket
        it has just accepted before polling it (epoll reports it only once ready)."""
        sock = self.socks.get(fd)
        conn = sock.conn if sock is not None else None
        if conn is None or conn.rare is not None or conn.state is _CLOSED:
            return False
        rcv = conn.rcv
        return rcv is not None and not rcv.ready and not rcv.fin_received

    def recv_errqueue(self: Stack, fd: int) -> errqueue.ExtErr:
        """``recvmsg(MSG_ERRQUEUE)``: the oldest error-queue entry (Linux
        ``sock_recv_errqueue()``); BlockingIOError (EAGAIN) when the queue is empty."""
        got = errqueue.pop(self._sock(fd))
        if got is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return got

    def inq(self: Stack, fd: int) -> int:
        """The TCP_CM_INQ value after a read (Linux ``tcp_inq_hint()``): bytes still
        unread, plus one for a FIN received (so 1 at the end of the stream)."""
        conn = self._sock(fd).conn
        rcv = conn.rcv if conn is not None else None
        if rcv is None:
            return 0
        return len(rcv.ready) + (1 if rcv.fin_received else 0)

    def shutdown(self: Stack, fd: int, how: int, *, now: int) -> None:
        """SHUT_WR sends a FIN after queued data; SHUT_RD stops reading."""
        _sock, conn = self._conn(fd)
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise _oserror(errno.EINVAL)
        if how in (SHUT_RD, SHUT_RDWR):
            conn.rd_shut = True
        if how in (SHUT_WR, SHUT_RDWR):
            conn.shutdown_write(now=now)
        self._collect_key(conn, now)

    def close(self: Stack, fd: int, *, now: int) -> None:
        """Release the descriptor; the connection closes in the background (or resets)."""
        self._close(fd, now)

    def _close(self: Stack, fd: int, now: int) -> None:
        """:meth:`close` with ``now`` positional (see :meth:`_send`)."""
        socks = self.socks
        sock = socks.get(fd)                # _sock(), inline
        if sock is None:
            raise _oserror(errno.EBADF)
        del socks[fd]
        self.ports.remove(sock)
        touched = self.touched
        if touched:                         # (mostly empty: the driver took it)
            touched.discard(fd)
        if self.wake_on_ack:
            self.wake_on_ack.discard(fd)
        if sock.rare is not None and sock.listener is not None:   # (Rare: rare.py)
            lst = sock.listener
            del self.listeners[lst.local]
            # Linux inet_csk_listen_stop(): children waiting for accept() are reset,
            # half-open requests are freed without a word.
            for child in list(lst.syn_queue.values()) + list(lst.accept_queue):
                child.abort(now=now, why="listener closed",
                            send_rst=child.state is not _SYN_RECEIVED
                            or child.tfo_child_pending)
                key = (child.local[0], child.local[1], child.remote[0], child.remote[1])
                self._drain(key, child)
                self.timers.disarm(child)
                child.mem_release()
                self.conns.pop(key, None)
            return
        conn = sock.conn
        if conn is not None:
            conn.fd = -1
            conn._app_close(now)
            state = conn.state
            if state is not _CLOSED and state is not _TIME_WAIT:
                # An orphan now (Linux tcp_close(): counted, and reset at once when
                # there are more than tcp_max_orphans, TcpExtTCPAbortOnMemory).
                conn.fd = ORPHAN
                self.orphans += 1
                if self.orphans > self.cfg.max_orphans:
                    self.cfg.mib["TcpExtTCPAbortOnMemory"] += 1
                    conn.abort(now=now, why="too many orphaned sockets: tcp_max_orphans")
            local, remote = conn.local, conn.remote
            key = (local[0], local[1], remote[0], remote[1])    # _collect_key(), inline
            if key in self.conns:
                self._collect_conn(key, conn, now)
            else:
                self._drain(key, conn)

    def _collect_key(self: Stack, conn: Connection, now: int) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if key in self.conns:
            self._collect_conn(key, conn, now)
        else:
            self._drain(key, conn)

    # ------------------------------------------------------------ options
    def setsockopt(self: Stack, fd: int, level: int, option: int, value: int | bytes, *,
                   now: int = 0) -> None:
        """Set SOL_SOCKET / IPPROTO_TCP options by their Linux constants (:mod:`synack.sockopts`)."""
        set_option(self, self._sock(fd), level, option, value, now=now)

    def getsockopt(self: Stack, fd: int, level: int, option: int) -> int | bytes:
        """Read an option back (SO_ERROR reports and clears a pending error)."""
        return get_option(self, self._sock(fd), level, option)

    # ------------------------------------------------------------ queries
    def getsockname(self: Stack, fd: int) -> SockAddr:
        """The local address (0.0.0.0:0, or ::, before bind)."""
        sock = self._sock(fd)
        if sock.family == _socket.AF_INET:
            return sock.local or ("0.0.0.0", 0)
        return api_addr(sock, sock.local or ("::", 0))

    def getpeername(self: Stack, fd: int) -> SockAddr:
        """The peer's address; ENOTCONN when there is none."""
        sock = self._sock(fd)
        if sock.remote is None or sock.conn is None or sock.conn.state in (
                _SYN_SENT, _CLOSED):
            raise _oserror(errno.ENOTCONN)
        return sock.remote if sock.family == _socket.AF_INET else api_addr(sock, sock.remote)

    def state(self: Stack, fd: int) -> State:
        """The TCP state behind a descriptor."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return _LISTEN
        return sock.conn.state if sock.conn else _CLOSED

    def connection(self: Stack, fd: int) -> Connection | None:
        """The connection behind a descriptor (for statistics and tests)."""
        return self._sock(fd).conn

    def connections(self: Stack) -> list[ConnInfo]:
        """Every socket as ``ss -tan`` lists it: listeners, connections, TIME_WAIT."""
        rows = [ConnInfo(_LISTEN, len(lst.accept_queue), lst.max_backlog, lst.local,
                         ("::" if ":" in lst.local[0] else "0.0.0.0", 0))
                for lst in self.listeners.values()]
        for lst in self.listeners.values():
            rows += [ConnInfo(c.state, 0, 0, c.local, c.remote) for c in lst.syn_queue.values()]
        rows += [ConnInfo(c.state, c.recv_q, c.send_q, c.local, c.remote)
                 for c in self.conns.values()]
        rows += [ConnInfo(_TIME_WAIT, 0, 0, tw.local, tw.remote)
                 for tw in self.timewait.values()]
        return rows

    def readable(self: Stack, fd: int) -> bool:
        """recv()/accept() would not raise BlockingIOError (poll's POLLIN): with
        SO_RCVLOWAT, once that many bytes are queued or the peer has closed (Linux
        tcp_stream_is_readable())."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return bool(sock.listener.accept_queue)
        c = sock.conn
        if c is None:
            return False
        q = c.recv_q
        if q and (q >= sock.opts.rcvlowat or c.rcv is not None and c.rcv.fin_received):
            return True
        return bool(c.eof or c.state is _CLOSED or
                    (c.error is not None and not sock.error_reported))

    def writable(self: Stack, fd: int) -> bool:
        """send() would take at least one byte (or raise an error at once)."""
        sock = self._sock(fd)
        c = sock.conn
        if c is None:
            return False
        if c.state in (_SYN_SENT, _SYN_RECEIVED) and not c.tfo_child_pending:
            return bool(c.tfo is not None and c.tfo.defer)   # a deferred Fast Open connect
        if c.state not in _CAN_SEND or c.error is not None:
            return True
        # Linux tcp_poll(): not writable sets SOCK_NOSPACE, so that ACKs wake the
        # poller once there is room (Stack.wake_on_ack).
        if c.snd.space() <= 0:
            self.wake_on_ack.add(fd)
            return False
        # Linux tcp_stream_memory_free(sk, wake=1): under TCP_NOTSENT_LOWAT, writable
        # once twice the unsent bytes are below the mark.
        lowat = c.opts.notsent_lowat or self.cfg.notsent_lowat
        if 2 * c.snd.unsent() < lowat:
            return True
        self.wake_on_ack.add(fd)
        return False
