"""The application's calls on a connection: send, recv, shutdown, close, abort.

``send`` / ``recv`` / ``recv_oob`` / ``shutdown_write`` / ``close`` / ``abort``,
the socket options that act on a live connection (SO_SNDBUF, TCP_WINDOW_CLAMP,
TCP_QUICKACK, TCP_CONGESTION, the push of TCP_CORK/TCP_NODELAY) and the queries
``ss`` shows (Recv-Q, Send-Q, cwnd, ssthresh). Mixed into
:class:`~synack.tcp.connection.Connection`, which holds the state; what these calls
queue goes out through :mod:`synack.tcp.output`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp import cc as ccmod
from synack.tcp import chrono
from synack.tcp.sender import shared
from synack.tcp.sizing import hystart
from synack.tcp.state import CAN_RECEIVE, Event, State

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

_MASK, _HALF = sq.MASK, sq.HALF   # for the inlined sequence arithmetic
_NEG_HALF = -_HALF
# `state in` a tuple compares identity first; a frozenset of Enum members would call
# Enum.__hash__ (Python code) for every segment.
_CAN_RECEIVE = tuple(CAN_RECEIVE)
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_CLOSED = State.CLOSED
_CLOSE_WAIT = State.CLOSE_WAIT
_ESTABLISHED = State.ESTABLISHED
_FIN_WAIT_1 = State.FIN_WAIT_1
_FIN_WAIT_2 = State.FIN_WAIT_2
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT
_TIME_WAIT = State.TIME_WAIT
# Event members bound once (a member lookup on an Enum class is slow).
_EV_ABORT = Event.ABORT
_EV_CLOSE = Event.CLOSE


class AppCallsMixin:
    """The application's side of a connection: its calls and queries."""

    __slots__ = ()   # Connection's slots hold the state: no __dict__ per connection

    # Set in Connection.__init__; declared here so the types agree across the mixins.
    chrono: list[int] | None
    rare: dict[str, object] | None      # the Rare and Brief fields' dicts (rare.py)
    brief: dict[str, object] | None

    # ------------------------------------------------------------------ the application
    def send(self: Connection, data: bytes | bytearray | memoryview, *, now: int, oob: bool = False,
             eor: bool = False, more: bool = False) -> int:
        """Queue bytes for sending; returns how many fit in the send buffer.

        With ``oob`` (``MSG_OOB``) the last byte taken is urgent: segments up to it
        carry URG and an urgent pointer just past it, as Linux sends them.
        """
        return self._app_send(data, now, oob, eor, more)

    def _app_send(self: Connection, data: bytes | bytearray | memoryview, now: int,
                  oob: bool = False, eor: bool = False, more: bool = False) -> int:
        """:meth:`send` with ``now`` positional, for the host's calls: CPython 3.11 does not
        inline a call with keywords."""
        self.now = now
        room = self.cfg.mem_room()
        if room < len(data):
            # Linux sk_wmem_schedule() fails at tcp_mem[2]: the writer takes what fits and
            # waits, except that a connection with nothing queued may take one segment's
            # worth (Linux forces the first skb of an empty queue) so that it keeps moving.
            if not self.snd.buf:
                room = max(room, self.mss)
            if not room:
                return 0
            data = data[:room]
        lowat = self.opts.notsent_lowat or self.cfg.notsent_lowat
        if lowat < 0xFFFFFFFF:
            n = self._send_lowat(data, lowat, now, eor=eor, more=more)
        else:
            n = self.snd.write(data, eor, more)      # (positional: inlined)
            if n:
                self.mem_sync()
        if n:
            if oob:
                self.snd.snd_up = self.snd.data_end
            ch = self.chrono
            if ch is None:
                self.chrono = [chrono.BUSY, now, 0, 0]
            else:
                chrono.start(ch, chrono.BUSY, now)   # tcp_add_write_queue_tail()
            self._output(now)
        return n

    def size_goal(self: Connection) -> int:
        """Bytes per skb a write fills before starting the next (Linux
        tcp_xmit_size_goal(): 64 KB, at most half the largest window seen, whole MSS)."""
        goal = 65536 - 1 - 320              # GSO_LEGACY_MAX_SIZE - 1 - MAX_TCP_HEADER
        half = self.snd.max_wnd >> 1 if self.snd.max_wnd > 536 else self.snd.max_wnd
        if half and goal > half:
            goal = half
        return max(goal // self.mss * self.mss, self.mss)

    def _send_lowat(self: Connection, data: bytes | bytearray | memoryview, lowat: int, now: int, *,
                    eor: bool, more: bool) -> int:
        """A write under TCP_NOTSENT_LOWAT, as tcp_sendmsg_locked() makes it: bytes go
        into the unsent tail skb while it has room; a new skb is started only while
        fewer than ``lowat`` bytes are unsent (tcp_stream_memory_free()), and each full
        skb is pushed before the next is started."""
        snd = self.snd
        goal = self.size_goal()
        view = memoryview(data)
        taken = 0
        while taken < len(view):
            unsent = snd.unsent()
            fill = unsent % goal
            if not fill and unsent >= lowat:
                break
            piece = view[taken:taken + goal - fill]
            last = taken + len(piece) == len(view)
            n = snd.write(piece, eor=eor and last, more=more and last)
            if not n:
                break
            taken += n
            self.mem_sync()
            if not last:
                self._output(now)
        return taken

    def set_sndbuf(self: Connection, sndbuf: int) -> None:
        """SO_SNDBUF set on a live connection: the new size holds at once and is locked
        (Linux reads sk_sndbuf on every write and stops tcp_sndbuf_expand())."""
        cap = shared(max(sndbuf // 2, 1))
        self.snd.capacity = self.snd_max_capacity = cap

    def set_window_clamp(self: Connection, clamp: int) -> None:
        """TCP_WINDOW_CLAMP on a live connection (Linux tcp_set_window_clamp()): the
        receive window is bounded by ``clamp`` from now on; a smaller clamp shrinks
        what may be offered next (rcv_ssthresh), never the right edge already offered."""
        rmem = self.cfg.triple("net.ipv4.tcp_rmem")
        bound = self.rcvbuf // 2 if self.opts.rcvbuf else rmem[2] // 2
        self.rcv_max_capacity = shared(max(min(bound, clamp), 1))
        self.rcv_capacity = shared(min(self.rcv_capacity, self.rcv_max_capacity))
        rcv = self.rcv
        if rcv is not None:
            rcv.max_capacity = self.rcv_max_capacity
            rcv.capacity = min(rcv.capacity, self.rcv_max_capacity)

    def set_quickack(self: Connection, val: int, *, now: int) -> None:
        """TCP_QUICKACK (Linux __tcp_sock_set_quickack()): 0 enters ping-pong mode
        (ACKs wait for a reply or the delayed-ACK timer); non-zero leaves it and, when an
        ACK is pending and everything received has been read, sends it now
        (tcp_cleanup_rbuf() with ICSK_ACK_PUSHED); an even value re-enters ping-pong."""
        ackp = self.ackp
        if not val:
            ackp.pingpong = True
            return
        ackp.pingpong = False
        if self.state in (_ESTABLISHED, _CLOSE_WAIT) and ackp.deadline is not None:
            if not self.recv_q:
                self.now = now
                self._send_ack()
            if not val & 1:
                ackp.pingpong = True

    def set_congestion(self: Connection, name: str, *, now: int) -> None:
        """TCP_CONGESTION: switch algorithm, keeping cwnd and ssthresh (Linux does)."""
        old = self.rec.cc
        new = ccmod.create(name, mss=self.mss, now=now, hystart=hystart(self.cfg))
        new.cwnd, new.ssthresh = old.cwnd, old.ssthresh
        self.rec.cc = new

    def push(self: Connection, *, now: int, force: bool = False) -> None:
        """TCP_CORK cleared or TCP_NODELAY set: send what was held back. ``force``: even
        what cork holds (Linux: setting TCP_NODELAY pushes with TCP_NAGLE_PUSH; a cork
        still set holds later small writes again)."""
        self.now = now
        if force:
            self.snd.more = False            # TCP_NAGLE_PUSH ends MSG_MORE's hold too
        self._output(now, False, force)   # (probe, push: positional, a call CPython inlines)

    def recv(self: Connection, n: int, *, now: int) -> bytes:
        """Take up to ``n`` in-order bytes; a window update goes out if reading opened it."""
        return self._app_recv(n, now)

    def _app_recv(self: Connection, n: int, now: int) -> bytes:
        """:meth:`recv` with ``now`` positional (see :meth:`_app_send`)."""
        self.now = now
        rcv = self.rcv
        if rcv is None:
            return b""
        # sq.diff(), inline (comparisons: a small difference is not masked)
        before = d if _NEG_HALF <= (d := rcv.rcv_adv - rcv.rcv_nxt) < _HALF \
            else d - sq.MOD if d >= 0 else d + sq.MOD
        data = rcv.read(n)
        if data:
            self.mem_sync()
            if not self.cfg.mem_pressure:     # Linux: no growing under memory pressure
                rcv.autotune(now, self.rtt.srtt)
        if data and self.state in _CAN_RECEIVE:
            # RFC 9293 3.8.6.2.2: announce the reopened window once it grew enough.
            old_adv = rcv.rcv_adv
            after = rcv.window()
            if rcv.rcv_adv != old_adv and (before < self.mss or after >= 2 * before):
                self._send_ack()
        return data

    def recv_oob(self: Connection) -> int:
        """recv(MSG_OOB): the urgent byte; EINVAL without one, EAGAIN before it arrives."""
        rcv = self.rcv
        if rcv is None or self.opts.oobinline:
            raise OSError(errno.EINVAL, "Invalid argument")
        if rcv.oob is None:
            if rcv.urg_seq is not None:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            raise OSError(errno.EINVAL, "Invalid argument")
        byte, rcv.oob = rcv.oob, None
        return byte

    def shutdown_write(self: Connection, *, now: int) -> None:
        """shutdown(SHUT_WR): send a FIN after the queued data; we can still receive."""
        self.now = now
        self.wr_shut = True
        if self.snd.fin_queued:
            return
        if self.state in (_ESTABLISHED, _CLOSE_WAIT, _SYN_RECEIVED):
            self._queue_fin(now)
            self._output(now)

    def close(self: Connection, *, now: int) -> None:
        """close(): orderly release, or RST when unread data or SO_LINGER 0 says so."""
        self._app_close(now)

    def _app_close(self: Connection, now: int) -> None:
        """:meth:`close` with ``now`` positional (see :meth:`_app_send`)."""
        self.now = now
        # self.app_closed = True and self.rd_shut = True without their descriptors'
        # Python code (rare.py): True is no default, so each goes into its dict.
        brief = self.brief
        if brief is None:
            self.brief = {"app_closed": True}
        else:
            brief["app_closed"] = True
        rare = self.rare
        if rare is None:
            self.rare = {"rd_shut": True}
        else:
            rare["rd_shut"] = True
        state = self.state
        if state in (_CLOSED, _TIME_WAIT):
            return
        if state is _SYN_SENT:
            self._change(_EV_CLOSE, now, "close() in SYN_SENT")
            return
        unread = bool(self.rcv and self.rcv.ready)
        if unread or self.opts.linger == 0:
            # Linux tcp_close(): unread data, or linger on with 0 s, means RST instead of FIN.
            why = "close() with unread data: RST" if unread else "close() with SO_LINGER 0: RST"
            self.abort(now=now, why=why)
            return
        if state is _FIN_WAIT_2:
            self._arm_fin_timeout(now)
        elif not self.snd.fin_queued and state in (
            _ESTABLISHED, _CLOSE_WAIT, _SYN_RECEIVED
        ):
            self.snd.fin_queued = True       # _queue_fin(), inline: app_closed is set
            self._change(_EV_CLOSE, now, "close()")
            self._output(now)

    def abort(self: Connection, *, now: int, why: str = "abort", send_rst: bool = True) -> None:
        """Send RST (in states that need one) and drop the connection at once."""
        if send_rst and self.state in (_ESTABLISHED, _CLOSE_WAIT, _FIN_WAIT_1,
                                       _FIN_WAIT_2, _SYN_RECEIVED):
            self._send_active_reset()
        if self.state is not _CLOSED:
            self._change(_EV_ABORT, now, why)

    # ------------------------------------------------------------------ queries
    @property
    def recv_q(self: Connection) -> int:
        """Bytes received and not yet read (``ss`` Recv-Q)."""
        return len(self.rcv.ready) if self.rcv else 0

    @property
    def send_q(self: Connection) -> int:
        """Bytes written and not yet acknowledged (``ss`` Send-Q)."""
        return self.snd.buf.nbytes

    @property
    def cwnd_segments(self: Connection) -> int:
        """The congestion window, in segments."""
        return self.rec.cc.cwnd

    @property
    def ssthresh(self: Connection) -> int:
        """The slow-start threshold, in segments."""
        return self.rec.cc.ssthresh

    @property
    def cc_name(self: Connection) -> str:
        """The congestion control algorithm in use."""
        return self.rec.cc.name

    @property
    def eof(self: Connection) -> bool:
        """The peer has closed its side and every byte has been read."""
        return bool(self.rcv and self.rcv.eof)
