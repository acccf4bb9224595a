"""One TCP connection (a TCB): segments and calls in, segments and state changes out.

Theory of operation
-------------------
A :class:`Connection` is pure state: it never reads a clock, sleeps or does I/O.
Every input carries ``now`` (integer microseconds):

* ``on_segment(seg, now=)`` -- a validated :class:`TcpSegment` for this 4-tuple;
* ``send`` / ``recv`` / ``shutdown_write`` / ``close`` / ``abort`` -- the application;
* ``tick(now=)`` -- timers that fell due.

Outputs are read back by the owner (the :class:`~synack.stack.Stack`):
``outbox`` holds segments to send, ``changes`` the state transitions with their
reasons, ``error`` the errno a socket call should raise, and
:meth:`next_deadline` says when ``tick`` is next needed.

Incoming segments follow RFC 9293 3.10.7 step by step (sequence check, RST,
SYN, ACK, text, FIN), hardened by RFC 5961 (challenge ACKs). Where the RFC
leaves a choice the connection does what Linux does, and says so.

The work is split: :class:`~synack.tcp.sender.Sender` holds SND.* and the send
buffer, :class:`~synack.tcp.receiver.Receiver` holds RCV.* and reassembly,
:class:`~synack.tcp.rtt.RttEstimator` the RTO; the timers live in
:mod:`synack.tcp.timers`. This module coordinates them and owns the state.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from synack import seq as sq
from synack.config import Sysctl
from synack.tcp.receiver import Receiver
from synack.tcp.rtt import RTO_FALLBACK_US, RttEstimator, retries_timeout_us
from synack.tcp.sender import Sender
from synack.tcp.state import CAN_RECEIVE, Event, State, next_state
from synack.tcp.timers import Timers
from synack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment

DEFAULT_MSS = 536  # RFC 9293 3.7.1: assume 536 when the peer sends no MSS option
SECOND = 1_000_000


@dataclass(slots=True)
class SockOpts:
    """Per-socket options, named after their Linux constants (None: use the sysctl)."""

    keepalive: bool = False          # SO_KEEPALIVE
    keepidle: int | None = None      # TCP_KEEPIDLE, seconds
    keepintvl: int | None = None     # TCP_KEEPINTVL, seconds
    keepcnt: int | None = None       # TCP_KEEPCNT
    linger: int | None = None        # SO_LINGER seconds when on, None when off
    nodelay: bool = False            # TCP_NODELAY
    maxseg: int | None = None        # TCP_MAXSEG
    rcvbuf: int | None = None        # SO_RCVBUF as stored (Linux doubles the value set)
    sndbuf: int | None = None        # SO_SNDBUF as stored


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition of one connection, for logs, ladders and timelines."""

    now: int
    old: State
    new: State
    why: str


class Connection:
    """A TCP control block driven by segments, calls and time."""

    def __init__(
        self,
        *,
        local: tuple[str, int],
        remote: tuple[str, int],
        cfg: Sysctl,
        opts: SockOpts,
        iss: int,
        now: int,
        mtu: int = 1500,
    ) -> None:
        self.local = local
        self.remote = remote
        self.cfg = cfg
        self.opts = opts
        self.state = State.CLOSED
        self.passive = False
        self.created = now
        rmem = cfg.triple("net.ipv4.tcp_rmem")
        wmem = cfg.triple("net.ipv4.tcp_wmem")
        self.rcvbuf = opts.rcvbuf or rmem[1]
        sndbuf = opts.sndbuf or wmem[1]
        # Linux keeps half of the receive buffer for overhead (tcp_adv_win_scale = 1).
        self.rcv_capacity = max(self.rcvbuf // 2, 1)
        self.snd = Sender(iss, max(sndbuf // 2, 1))
        self.rcv: Receiver | None = None
        self.rtt = RttEstimator()
        self.timers = Timers()
        self.outbox: list[TcpSegment] = []
        self.changes: list[StateChange] = []
        self.error: int | None = None
        # Handshake results.
        self.adv_mss = opts.maxseg or (mtu - 40)   # what we announce in our SYN
        self.peer_mss = DEFAULT_MSS
        self.mss = min(DEFAULT_MSS, self.adv_mss)  # effective send MSS
        want_ws = cfg.int("net.ipv4.tcp_window_scaling") == 1
        self.rcv_wscale_offer: int | None = _wscale_for(
            opts.rcvbuf or rmem[2]) if want_ws else None
        self.snd_wscale = 0
        # Retransmission bookkeeping.
        self.backoff = 0
        self.retransmits = 0                 # consecutive timeouts of the head segment
        self.retrans_stamp: int | None = None
        self.rtt_seq: int | None = None      # the one segment being timed (Karn's rule)
        self.rtt_time = 0
        # Application-side flags.
        self.app_closed = False              # close() called: the socket is an orphan
        self.wr_shut = False
        self.rd_shut = False
        # Keepalive.
        self.last_rcv = now
        self.probes_out = 0
        # Counters, as `nstat` / `ss -ti` would show them.
        self.segs_in = 0
        self.segs_out = 0
        self.total_retrans = 0
        self.challenge_acks = 0

    # ------------------------------------------------------------------ helpers
    def _change(self, event: Event, now: int, why: str = "") -> None:
        old = self.state
        self.state = next_state(old, event)
        self.changes.append(StateChange(now, old, self.state, why or event.value))
        if self.state is State.CLOSED:
            self.timers.clear()
        elif self.state is State.TIME_WAIT:
            self.timers.clear()
            self.timers.timewait = now + TIME_WAIT_US
        elif self.state is State.FIN_WAIT_2 and self.app_closed:
            self._arm_fin_timeout(now)

    def _arm_fin_timeout(self, now: int) -> None:
        # Linux tcp_close()/tcp_rcv_state_process(): an orphan waits tcp_fin_timeout in FIN_WAIT_2.
        self.timers.finwait2 = now + self.cfg.int("net.ipv4.tcp_fin_timeout") * SECOND

    def _segment(self, flags: int, seq: int, payload: bytes = b"", **options: object) -> TcpSegment:
        rcv = self.rcv
        ack = rcv.rcv_nxt if (rcv is not None and flags & ACK) else 0
        if flags & SYN:
            window = min(rcv.window() if rcv else self.rcv_capacity, 0xFFFF)
            if rcv is not None:
                # The right edge is what the SYN,ACK announced, not the 16-bit overflow.
                rcv.rcv_adv = sq.add(rcv.rcv_nxt, window)
        else:
            window = rcv.window_field() if rcv else 0
        seg = TcpSegment(
            src_port=self.local[1], dst_port=self.remote[1], seq=seq, ack=ack,
            flags=flags, window=window, payload=payload, **options,  # type: ignore[arg-type]
        )
        self.outbox.append(seg)
        self.segs_out += 1
        return seg

    def _send_ack(self) -> None:
        self._segment(ACK, self.snd.snd_nxt)

    def _send_challenge_ack(self) -> None:
        # RFC 5961 3.2 / 4.2; Linux rate-limits these with tcp_challenge_ack_limit (2^31 - 1).
        self.challenge_acks += 1
        self._send_ack()

    def _send_reset_reply(self, seg: TcpSegment) -> None:
        """RST in reply to ``seg`` (RFC 9293 3.10.7.1), built as Linux tcp_v4_send_reset()
        builds it: <SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        without an ACK, and a zero window either way."""
        if seg.flags & ACK:
            rst = TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=seg.ack,
                             flags=RST)
        else:
            rst = TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=0,
                             ack=sq.add(seg.seq, seg.seg_len), flags=RST | ACK)
        self.outbox.append(rst)
        self.segs_out += 1

    def _send_active_reset(self) -> None:
        # Linux tcp_send_active_reset(): RST|ACK at SND.NXT acknowledging RCV.NXT.
        self._segment(RST | ACK, self.snd.snd_nxt)

    def _syn_options(self) -> dict[str, object]:
        return {"mss": self.adv_mss, "wscale": self.rcv_wscale_offer}

    def _take_syn_options(self, seg: TcpSegment) -> None:
        self.peer_mss = seg.mss if seg.mss else DEFAULT_MSS
        self.mss = max(min(self.peer_mss, self.adv_mss), 64)
        if seg.wscale is not None and self.rcv_wscale_offer is not None:
            self.snd_wscale = min(seg.wscale, 14)  # RFC 7323 2.3: values above 14 mean 14
        else:
            self.rcv_wscale_offer = None
        wscale = self.rcv_wscale_offer or 0
        self.rcv = Receiver(seg.seq, self.rcv_capacity, self.mss, wscale)

    def _fail(self, err: int, now: int, event: Event, why: str) -> None:
        self.error = err
        self._change(event, now, why)

    # ------------------------------------------------------------------ opening
    def open_active(self, *, now: int) -> None:
        """connect(): send a SYN and wait in SYN_SENT (RFC 9293 3.10.1)."""
        self._change(Event.ACTIVE_OPEN, now, "connect()")
        self._send_syn(now)

    def _send_syn(self, now: int) -> None:
        snd = self.snd
        self._segment(SYN, snd.iss, **self._syn_options())
        snd.snd_nxt = snd.snd_max = sq.add(snd.iss, 1)
        if self.retransmits == 0:
            self.rtt_seq, self.rtt_time = snd.iss, now
        self.timers.rtx = now + self.rtt.backed_off(self.backoff)

    def open_passive(self, syn: TcpSegment, *, now: int) -> None:
        """A listener's child for an incoming SYN: answer SYN-ACK, enter SYN_RECEIVED."""
        self.passive = True
        self.state = State.LISTEN
        self._take_syn_options(syn)
        self._change(Event.RCV_SYN, now, "rcv SYN")
        self._send_synack(now)

    def _send_synack(self, now: int) -> None:
        snd = self.snd
        options = self._syn_options()
        if self.rcv_wscale_offer is None:
            options["wscale"] = None
        self._segment(SYN | ACK, snd.iss, **options)
        snd.snd_nxt = snd.snd_max = sq.add(snd.iss, 1)
        if self.retransmits == 0:
            self.rtt_seq, self.rtt_time = snd.iss, now
        self.timers.rtx = now + self.rtt.backed_off(self.backoff)

    # ------------------------------------------------------------------ segments in
    def on_segment(self, seg: TcpSegment, *, now: int) -> None:
        """Process one incoming segment (RFC 9293 3.10.7)."""
        self.segs_in += 1
        if self.state is State.SYN_SENT:
            self._rcv_syn_sent(seg, now)
        elif self.state is not State.CLOSED:
            self._rcv_synchronized(seg, now)
        if self.state is not State.CLOSED:
            self._output(now)

    def _rcv_syn_sent(self, seg: TcpSegment, now: int) -> None:
        snd = self.snd
        flags = seg.flags
        if flags & ACK and (sq.le(seg.ack, snd.iss) or sq.gt(seg.ack, snd.snd_max)):
            if not flags & RST:
                self._send_reset_reply(seg)   # <SEQ=SEG.ACK><CTL=RST>
            return
        if flags & RST:
            if flags & ACK:
                self._fail(errno.ECONNREFUSED, now, Event.RCV_RST, "rcv RST: connection refused")
            return
        if not flags & SYN:
            return
        self._take_syn_options(seg)
        rcv = self.rcv
        assert rcv is not None
        if flags & ACK:
            self._on_new_ack(seg.ack, now)
            self._start_data_rto()
            snd.snd_wnd = seg.window  # never scaled in a SYN (RFC 7323 2.2)
            snd.max_wnd = snd.snd_wnd
            snd.snd_wl1, snd.snd_wl2 = seg.seq, seg.ack
            self._change(Event.RCV_SYN_ACK, now, "rcv SYN,ACK")
            self.last_rcv = now
            if seg.payload:
                rcv.accept(sq.add(seg.seq, 1), seg.payload, bool(flags & FIN))
            self._send_ack()
            if self.wr_shut:
                self._queue_fin(now)
            self._arm_keepalive(now)
        else:
            # Simultaneous open (RFC 9293 3.5, Figure 8): answer SYN,ACK with our ISS.
            snd.snd_wnd = seg.window
            snd.snd_wl1, snd.snd_wl2 = seg.seq, 0
            self._change(Event.RCV_SYN, now, "rcv SYN (simultaneous open)")
            self.retransmits = 0
            self.backoff = 0
            self._send_synack(now)

    def _rcv_synchronized(self, seg: TcpSegment, now: int) -> None:
        rcv = self.rcv
        snd = self.snd
        assert rcv is not None
        flags = seg.flags
        seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        state = self.state
        # The peer's own SYN,ACK completing a simultaneous open (RFC 9293 Figure 8): its
        # SYN is old, but Linux tcp_validate_incoming() lets it through ("tcp: Don't drop
        # SYN+ACK for simultaneous connect()") and acknowledges it.
        simultaneous = (
            state is State.SYN_RECEIVED and not self.passive
            and flags & (SYN | ACK | RST | FIN) == SYN | ACK and not seg.payload
            and seg.seq == rcv.irs and seg.ack == snd.snd_nxt
        )
        # First: sequence number acceptability.
        if not simultaneous and not rcv.acceptable(seg.seq, seg_len):
            if flags & RST:
                return
            if flags & SYN and state is State.SYN_RECEIVED and seg.seq == rcv.irs:
                self._send_synack(now)       # the peer retransmitted its SYN
                return
            self._send_ack()
            return
        self.last_rcv = now
        self.probes_out = 0
        # Second: RST, exact match only (RFC 5961 3.2).
        if flags & RST:
            if seg.seq != rcv.rcv_nxt:
                self._send_challenge_ack()
                return
            if state is State.SYN_RECEIVED and self.passive:
                self._fail(errno.ECONNREFUSED, now, Event.RCV_RST, "rcv RST")
            else:
                # Linux tcp_reset(): EPIPE in CLOSE_WAIT, ECONNRESET elsewhere.
                err = errno.EPIPE if state is State.CLOSE_WAIT else errno.ECONNRESET
                self._fail(err, now, Event.RCV_RST, "rcv RST")
            return
        # Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2).
        if flags & SYN and not simultaneous:
            if state is State.SYN_RECEIVED and self.passive:
                # Linux tcp_check_req() (embryonic_reset): a new SYN resets a half-open
                # connection and drops it; RFC 9293 3.10.7.4 returns it to LISTEN silently.
                self._send_reset_reply(seg)
                self._change(Event.ABORT, now, "rcv SYN in SYN_RECEIVED: RST")
                return
            self._send_challenge_ack()
            return
        # Fifth: the ACK field.
        if not flags & ACK:
            return
        # RFC 7323 2.2: the window of a SYN is never scaled.
        wnd = seg.window if flags & SYN else seg.window << self.snd_wscale
        if state is State.SYN_RECEIVED:
            if not (sq.lt(snd.snd_una, seg.ack) and sq.le(seg.ack, snd.snd_max)):
                self._send_reset_reply(seg)
                return
            self._on_new_ack(seg.ack, now)
            self._start_data_rto()
            snd.update_window(seg.seq, seg.ack, wnd)
            self._change(Event.RCV_ACK_OF_SYN, now, "rcv ACK of SYN")
            self._arm_keepalive(now)
            if self.wr_shut and not snd.fin_queued:
                self._queue_fin(now)
            state = self.state
        elif sq.gt(seg.ack, snd.snd_max):
            self._send_ack()                 # acks something not yet sent
            return
        elif sq.lt(seg.ack, sq.add(snd.snd_una, -max(snd.max_wnd, 1))):
            self._send_ack()                 # RFC 5961 5.2: too old to be plausible
            return
        fin_was_acked = snd.fin_acked
        if sq.gt(seg.ack, snd.snd_una):
            self._on_new_ack(seg.ack, now)
        if sq.ge(seg.ack, snd.snd_una):
            snd.update_window(seg.seq, seg.ack, wnd)
        fin_acked_now = snd.fin_acked and not fin_was_acked
        if state is State.LAST_ACK and fin_acked_now:
            self._change(Event.RCV_ACK_OF_FIN, now)
            return
        if state is State.CLOSING and fin_acked_now:
            self._change(Event.RCV_ACK_OF_FIN, now)
            return
        # Seventh: segment text.
        if seg.payload and state in CAN_RECEIVE:
            if self.app_closed and state in (State.FIN_WAIT_1, State.FIN_WAIT_2) and sq.gt(
                sq.add(seg.seq, len(seg.payload)), rcv.rcv_nxt
            ):
                # RFC 1122 4.2.2.13 / Linux: new data for a closed socket is answered by RST.
                self._send_reset_reply(seg)
                self._fail(errno.ECONNRESET, now, Event.ABORT, "data after close: RST")
                return
        fin_was_received = rcv.fin_received
        if state in CAN_RECEIVE and (seg.payload or flags & FIN):
            rcv.accept(seg.seq, seg.payload, bool(flags & FIN))
        fin_now = rcv.fin_received and not fin_was_received
        # Eighth: FIN, and the transitions it makes with the ACK of ours.
        if state is State.FIN_WAIT_1:
            if fin_acked_now and fin_now:
                self._change(Event.RCV_FIN_ACK_OF_FIN, now)
            elif fin_acked_now:
                self._change(Event.RCV_ACK_OF_FIN, now)
            elif fin_now:
                self._change(Event.RCV_FIN, now)
        elif fin_now:
            self._change(Event.RCV_FIN, now)
        if seg_len:
            self._send_ack()

    def _on_new_ack(self, ack: int, now: int) -> None:
        """SND.UNA advances: RTT sample (Karn), reset backoff, re-arm the RTO."""
        snd = self.snd
        if self.rtt_seq is not None and sq.gt(ack, self.rtt_seq):
            self.rtt.sample(now - self.rtt_time)
            self.rtt_seq = None
            # Karn / RFC 6298 (5.5): a backed-off RTO stays until a valid sample; Linux
            # tcp_ack_update_rtt() resets icsk_backoff only here.
            self.backoff = 0
        snd.on_ack(ack)
        self.retransmits = 0
        self.retrans_stamp = None
        if snd.in_flight() > 0:
            self.timers.rtx = now + self.rtt.backed_off(self.backoff)
        else:
            self.timers.rtx = None

    def _start_data_rto(self) -> None:
        """The handshake is over: RFC 6298 (5.7), as Linux tcp_init_metrics() applies it.

        Without an RTT sample (the SYN or SYN,ACK was retransmitted, so Karn's rule
        forbade one) data starts with a 3 s RTO; the handshake's backoff ends here.
        """
        if self.rtt.srtt is None:
            self.rtt.rto = RTO_FALLBACK_US
        self.backoff = 0

    # ------------------------------------------------------------------ sending
    def _output(self, now: int) -> None:
        """Send what the windows allow: new data, retransmissions after go-back, the FIN."""
        state = self.state
        if state in (State.SYN_SENT, State.SYN_RECEIVED, State.CLOSED, State.TIME_WAIT):
            return
        snd = self.snd
        while True:
            nxt = snd.snd_nxt
            data_end = snd.data_end
            left = max(sq.diff(data_end, nxt), 0)
            usable = sq.diff(sq.add(snd.snd_una, snd.snd_wnd), nxt)
            n = min(left, self.mss, max(usable, 0))
            fin = snd.fin_queued and n == left and sq.le(nxt, data_end)
            if n == 0 and not fin:
                break
            flags = ACK
            if n and n == left:
                flags |= PSH
            if fin:
                flags |= FIN
            payload = snd.slice(nxt, n) if n else b""
            retrans = sq.lt(nxt, snd.snd_max)
            self._segment(flags, nxt, payload)
            end = sq.add(nxt, n + (1 if fin else 0))
            snd.snd_nxt = end
            if sq.gt(end, snd.snd_max):
                snd.snd_max = end
            if retrans:
                self.total_retrans += 1
                snd.bytes_retrans += n
            else:
                snd.bytes_sent += n
                if self.rtt_seq is None:
                    self.rtt_seq, self.rtt_time = nxt, now
            if self.timers.rtx is None:
                self.timers.rtx = now + self.rtt.backed_off(self.backoff)
            if fin:
                break

    def _queue_fin(self, now: int) -> None:
        self.snd.fin_queued = True
        self._change(Event.CLOSE, now, "close()" if self.app_closed else "shutdown(SHUT_WR)")

    # ------------------------------------------------------------------ the application
    def send(self, data: bytes | bytearray | memoryview, *, now: int) -> int:
        """Queue bytes for sending; returns how many fit in the send buffer."""
        n = self.snd.write(data)
        if n:
            self._output(now)
        return n

    def recv(self, n: int, *, now: int) -> bytes:
        """Take up to ``n`` in-order bytes; a window update goes out if reading opened it."""
        rcv = self.rcv
        if rcv is None:
            return b""
        before = sq.diff(rcv.rcv_adv, rcv.rcv_nxt)
        data = rcv.read(n)
        if data and self.state in CAN_RECEIVE:
            # RFC 9293 3.8.6.2.2: announce the reopened window once it grew enough.
            old_adv = rcv.rcv_adv
            after = rcv.window()
            if rcv.rcv_adv != old_adv and (before < self.mss or after >= 2 * before):
                self._send_ack()
        return data

    def shutdown_write(self, *, now: int) -> None:
        """shutdown(SHUT_WR): send a FIN after the queued data; we can still receive."""
        self.wr_shut = True
        if self.snd.fin_queued:
            return
        if self.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED):
            self._queue_fin(now)
            self._output(now)

    def close(self, *, now: int) -> None:
        """close(): orderly release, or RST when unread data or SO_LINGER 0 says so."""
        self.app_closed = True
        self.rd_shut = True
        state = self.state
        if state in (State.CLOSED, State.TIME_WAIT):
            return
        if state is State.SYN_SENT:
            self._change(Event.CLOSE, now, "close() in SYN_SENT")
            return
        unread = bool(self.rcv and self.rcv.ready)
        if unread or self.opts.linger == 0:
            # Linux tcp_close(): unread data, or linger on with 0 s, means RST instead of FIN.
            why = "close() with unread data: RST" if unread else "close() with SO_LINGER 0: RST"
            self.abort(now=now, why=why)
            return
        if state is State.FIN_WAIT_2:
            self._arm_fin_timeout(now)
        elif not self.snd.fin_queued and state in (
            State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED
        ):
            self._queue_fin(now)
            self._output(now)

    def abort(self, *, now: int, why: str = "abort", send_rst: bool = True) -> None:
        """Send RST (in states that need one) and drop the connection at once."""
        if send_rst and self.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1,
                                       State.FIN_WAIT_2, State.SYN_RECEIVED):
            self._send_active_reset()
        if self.state is not State.CLOSED:
            self._change(Event.ABORT, now, why)

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> int | None:
        """When :meth:`tick` must next be called, or None."""
        return self.timers.next()

    def tick(self, *, now: int) -> None:
        """Run every timer that is due at ``now``."""
        t = self.timers
        if t.rtx is not None and t.rtx <= now:
            t.rtx = None
            self._on_rto(now)
        if t.finwait2 is not None and t.finwait2 <= now:
            t.finwait2 = None
            if self.state is State.FIN_WAIT_2:
                self._change(Event.TIMEOUT, now, "tcp_fin_timeout")
        if t.keepalive is not None and t.keepalive <= now:
            t.keepalive = None
            self._on_keepalive(now)
        if t.timewait is not None and t.timewait <= now:
            t.timewait = None
            if self.state is State.TIME_WAIT:
                self._change(Event.TIMEOUT, now, "2*MSL")

    def _on_rto(self, now: int) -> None:
        state = self.state
        snd = self.snd
        self.rtt_seq = None                  # Karn: never time a retransmitted segment
        if state is State.SYN_SENT:
            if self.retransmits >= self.cfg.int("net.ipv4.tcp_syn_retries"):
                self._fail(errno.ETIMEDOUT, now, Event.TIMEOUT, "tcp_syn_retries exhausted")
                return
            self.retransmits += 1
            self.backoff += 1
            self.total_retrans += 1
            self._send_syn(now)
            return
        if state is State.SYN_RECEIVED:
            if self.retransmits >= self.cfg.int("net.ipv4.tcp_synack_retries"):
                self._fail(errno.ETIMEDOUT, now, Event.TIMEOUT, "tcp_synack_retries exhausted")
                return
            self.retransmits += 1
            self.backoff += 1
            self.total_retrans += 1
            self._send_synack(now)
            return
        if snd.in_flight() == 0:
            return
        if self.retrans_stamp is None:
            self.retrans_stamp = now
        limit = self.cfg.int("net.ipv4.tcp_retries2")
        if self.app_closed:
            limit = self.cfg.int("net.ipv4.tcp_orphan_retries") or 8
        if self.retransmits and now - self.retrans_stamp >= retries_timeout_us(limit):
            self._fail(errno.ETIMEDOUT, now, Event.TIMEOUT, "tcp_retries2 exhausted")
            return
        self.retransmits += 1
        self.backoff += 1
        snd.snd_nxt = snd.snd_una             # go back: resend from the oldest unacked byte
        self.timers.rtx = now + self.rtt.backed_off(self.backoff)
        self._output(now)

    def _keepalive_params(self) -> tuple[int, int, int]:
        o, c = self.opts, self.cfg
        idle = o.keepidle if o.keepidle is not None else c.int("net.ipv4.tcp_keepalive_time")
        intvl = o.keepintvl if o.keepintvl is not None else c.int("net.ipv4.tcp_keepalive_intvl")
        cnt = o.keepcnt if o.keepcnt is not None else c.int("net.ipv4.tcp_keepalive_probes")
        return idle * SECOND, intvl * SECOND, cnt

    def _arm_keepalive(self, now: int) -> None:
        if self.opts.keepalive and self.state not in (State.CLOSED, State.SYN_SENT,
                                                      State.TIME_WAIT):
            idle, _, _ = self._keepalive_params()
            self.timers.keepalive = self.last_rcv + idle
        else:
            self.timers.keepalive = None

    def set_keepalive(self, *, now: int) -> None:
        """SO_KEEPALIVE or its parameters changed: re-arm from the last segment received."""
        self._arm_keepalive(now)

    def _on_keepalive(self, now: int) -> None:
        """Linux tcp_keepalive_timer(): probe an idle peer, give up after TCP_KEEPCNT."""
        if not self.opts.keepalive or self.state in (State.CLOSED, State.SYN_SENT,
                                                     State.TIME_WAIT):
            return
        idle, intvl, cnt = self._keepalive_params()
        elapsed = now - self.last_rcv
        if elapsed < idle:
            self.timers.keepalive = self.last_rcv + idle
            return
        if self.probes_out >= cnt:
            self.abort(now=now, why="keepalive: peer dead")
            self.error = errno.ETIMEDOUT
            return
        if self.snd.in_flight() == 0:
            # A probe is an ACK one byte behind SND.UNA: the peer must answer with an ACK.
            self._segment(ACK, sq.add(self.snd.snd_una, -1))
            self.probes_out += 1
        self.timers.keepalive = now + intvl

    # ------------------------------------------------------------------ queries
    @property
    def recv_q(self) -> int:
        """Bytes received and not yet read (``ss`` Recv-Q)."""
        return len(self.rcv.ready) if self.rcv else 0

    @property
    def send_q(self) -> int:
        """Bytes written and not yet acknowledged (``ss`` Send-Q)."""
        return len(self.snd.buf)

    @property
    def eof(self) -> bool:
        """The peer has closed its side and every byte has been read."""
        return bool(self.rcv and self.rcv.eof)


TIME_WAIT_US = 60 * SECOND  # Linux TCP_TIMEWAIT_LEN: 2 * MSL with MSL = 30 s


def _wscale_for(space: int) -> int:
    """Linux tcp_select_initial_window(): the smallest shift that fits ``space`` in 16 bits."""
    ws = 0
    while space > 0xFFFF and ws < 14:
        space >>= 1
        ws += 1
    return ws
