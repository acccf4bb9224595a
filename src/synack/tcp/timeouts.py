"""What a connection does when its timers fire.

Retransmission (RFC 6298 and RFC 5681 3.1), zero-window probes (the persist
timer, RFC 9293 3.8.6.1), the delayed ACK, the orphaned FIN_WAIT_2 timeout
(``tcp_fin_timeout``), keepalive (RFC 1122 4.2.3.6, Linux's parameters) and
TIME_WAIT's 2*MSL. Mixed into :class:`~synack.tcp.connection.Connection`; the
deadlines themselves are data in :class:`~synack.tcp.timers.Timers`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.rack import TIMEOUT_MIN_US
from synack.tcp.rack import XMIT as _XMIT
from synack.tcp.recovery import CaState
from synack.tcp.rtt import RTO_INITIAL_US, RTO_MAX_US, RTO_MIN_US, retries_timeout_us
from synack.tcp.state import Event, State
from synack.tcp.timers import REO, RTO, TLP
from synack.wire.tcp import ACK

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

SECOND = 1_000_000
TIME_WAIT_US = 60 * SECOND  # Linux TCP_TIMEWAIT_LEN: 2 * MSL with MSL = 30 s
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_CLOSED = State.CLOSED
_FIN_WAIT_2 = State.FIN_WAIT_2
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT
_TIME_WAIT = State.TIME_WAIT
# State, Event, CaState members bound once (a member lookup on an Enum class is slow).
_EV_TIMEOUT = Event.TIMEOUT
_CA_CWR = CaState.CWR
_CA_OPEN = CaState.OPEN
_HALF, _MASK = sq.HALF, sq.MASK
_DIGIT = (1 << 30) - 1            # the largest int of one CPython digit


class TimeoutsMixin:
    """Timer handlers of a connection."""

    __slots__ = ()   # Connection's slots hold the state: no __dict__ per connection

    persist_backoff: int   # declared so that mypy types it as Connection does
    # Timers' deadlines, set here on the connection itself (it is its own Timers).
    rtx: int | None
    rtx_kind: int
    persist: int | None
    delack: int | None
    keepalive: int | None

    # Set in Connection.__init__; declared here so the types agree across the mixins.
    error: int | None
    retrans_stamp: int | None
    ut_start: int | None
    probe_start: int | None
    rtt_seq: int | None

    def next_deadline(self: Connection) -> int | None:
        """When :meth:`tick` must next be called, or None."""
        return self.next()

    def tick(self: Connection, *, now: int) -> None:
        """Run every timer that is due at ``now``."""
        self.now = now
        t = self                             # self.timers: a property naming self
        if t.rtx is not None and t.rtx <= now:
            t.rtx = None
            kind = t.rtx_kind
            if kind == TLP:
                self._send_loss_probe(now)
            elif kind == REO:
                self._on_reo_timeout(now)
            else:
                self._on_rto(now)
        if t.persist is not None and t.persist <= now:
            t.persist = None
            self._on_persist(now)
        if t.delack is not None and t.delack <= now:
            t.delack = None
            self.ackp.on_timer()
            if self.rcv is not None and self.state not in (_CLOSED, _TIME_WAIT):
                self._send_ack()
        if t.finwait2 is not None and t.finwait2 <= now:
            t.finwait2 = None
            if self.state is _FIN_WAIT_2:
                self._change(_EV_TIMEOUT, now, "tcp_fin_timeout")
        if t.keepalive is not None and t.keepalive <= now:
            t.keepalive = None
            self._on_keepalive(now)
        if t.timewait is not None and t.timewait <= now:
            t.timewait = None
            if self.state is _TIME_WAIT:
                self._change(_EV_TIMEOUT, now, "2*MSL")

    def _timeout_errno(self: Connection) -> int:
        """Linux tcp_write_err(): a remembered ICMP soft error, else ETIMEDOUT."""
        return self.soft_error or errno.ETIMEDOUT

    def _on_rto(self: Connection, now: int) -> None:
        state = self.state
        snd = self.snd
        self.rtt_seq = None                  # Karn: never time a retransmitted segment
        if state is _SYN_SENT:
            if self.retransmits >= (self.opts.syncnt or self.cfg.int("net.ipv4.tcp_syn_retries")):
                self._fail(self._timeout_errno(), now, _EV_TIMEOUT, "tcp_syn_retries exhausted")
                return
            self.retransmits += 1
            self.backoff += 1
            self.total_retrans += 1
            self._send_syn(now)
            return
        if state is _SYN_RECEIVED:
            if self.retransmits >= self.cfg.int("net.ipv4.tcp_synack_retries"):
                self._fail(self._timeout_errno(), now, _EV_TIMEOUT,
                           "tcp_synack_retries exhausted")
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
        user_timeout = self.opts.user_timeout * 1000
        if self.ut_start is None:
            # Linux retrans_stamp: when the head was first sent, one RTO before now.
            self.ut_start = now - self.rtt.backed_off(self.backoff)
        if user_timeout:
            # Linux retransmits_timed_out() with icsk_user_timeout: it replaces the
            # tcp_retries2 / tcp_orphan_retries bound.
            if self.retransmits and now - (self.ut_start or 0) >= user_timeout:
                self._fail(self._timeout_errno(), now, _EV_TIMEOUT, "TCP_USER_TIMEOUT")
                return
        else:
            limit = self.cfg.int("net.ipv4.tcp_retries2")
            if self.app_closed:
                limit = self.cfg.int("net.ipv4.tcp_orphan_retries") or 8
            if self.retransmits and now - self.retrans_stamp >= retries_timeout_us(limit):
                self._fail(self._timeout_errno(), now, _EV_TIMEOUT, "tcp_retries2 exhausted")
                return
        self.retransmits += 1
        self.backoff += 1
        self.rto_count += 1
        # RFC 5681 3.1 / Linux tcp_enter_loss(): cwnd 1, resend from SND.UNA in slow start.
        self.rec.on_rto(snd_una=snd.snd_una, snd_max=snd.snd_max, now=now)
        snd.rtx_high = snd.snd_max            # Karn: nothing outstanding can be timed now
        if self.rec.rack is None:
            snd.snd_nxt = snd.snd_una         # go back N; with RACK, resend the lost marks
        self.rtx = now + self._clamp_to_user_timeout(self.rtt.backed_off(self.backoff),
                                                            self.ut_start, now)
        self.rtx_kind = RTO
        if self.trace is not None:
            self._trace("rto", now)
        self._output(now)

    def _rearm_rto(self: Connection, now: int) -> None:
        """Linux tcp_rearm_rto(): the RTO from now, or, replacing a loss probe or a
        reordering timer, from when the head segment was last sent."""
        t = self                             # self.timers: a property naming self
        snd = self.snd
        if ((snd.snd_max - snd.snd_una + sq.HALF) & sq.MASK) - sq.HALF <= 0:   # in_flight()
            t.rtx = None
            t.rtx_kind = RTO
            return
        rto = self.rtt.rto << self.backoff   # rtt.backed_off(), inline: per ACK
        if rto > RTO_MAX_US:  # noqa: PLR1730 - cheaper than min()
            rto = RTO_MAX_US
        rack = self.rec.rack
        if t.rtx_kind != RTO and rack is not None:
            head = rack.head_xmit()
            if head is not None:
                rto = head + rto - now           # tcp_rto_delta_us(), at least 1
                if rto < 1:  # noqa: PLR1730 - cheaper than max()
                    rto = 1
        t.rtx = now + rto
        t.rtx_kind = RTO

    def _schedule_loss_probe(self: Connection, now: int, advancing_rto: bool) -> bool:
        """Linux tcp_schedule_loss_probe(): arm the tail loss probe (RFC 8985 7.2) in
        place of the RTO, 2 * SRTT ahead (plus the delayed-ACK allowance when one
        segment is in flight), never later than the RTO would fire."""
        rec = self.rec
        rack = rec.rack
        state = rec.state
        if rack is None or not rack.recs or (state is not _CA_OPEN
                                             and state is not _CA_CWR) \
                or self.cfg.early_retrans not in (3, 4):
            return False
        snd = self.snd
        flight = snd.snd_max - snd.snd_una     # in_flight(): the plain difference ...
        if not -_DIGIT <= flight <= _DIGIT:     # ... unless large (the quick test) or wrapped
            flight = ((flight + _HALF) & _MASK) - _HALF
        if flight <= 0 or (st := self.state) is _SYN_SENT or st is _SYN_RECEIVED:
            return False
        rtt = self.rtt
        srtt = rtt.srtt
        if srtt:
            timeout = 2 * srtt + (RTO_MIN_US if flight <= self.mss else TIMEOUT_MIN_US)
            timeout = -(-timeout // 1000) * 1000          # usecs_to_jiffies() rounds up
        else:
            timeout = RTO_INITIAL_US
        rto = rtt.rto << self.backoff                     # rtt.backed_off(), inline
        if rto > RTO_MAX_US:  # noqa: PLR1730 - cheaper than min()
            rto = RTO_MAX_US
        if not advancing_rto:
            # tcp_rto_delta_us(): the RTO runs from the head's send time (rack.head_xmit(),
            # inline: recs is not empty here).
            rto += rack.recs[0][_XMIT] - now
        if 0 < rto < timeout:
            timeout = rto
        self.rtx = now + timeout
        self.rtx_kind = TLP
        return True

    def _send_loss_probe(self: Connection, now: int) -> None:
        """Linux tcp_send_loss_probe(): one segment of new data if the window allows,
        else the last segment again; its ACK (or SACK) lets RACK find a tail loss."""
        rec = self.rec
        snd = self.snd
        rack = rec.rack
        if rack is None or rec.tlp_high_seq is not None or snd.in_flight() <= 0:
            self._rearm_rto(now)             # at most one probe outstanding
            return
        mss = self.mss
        rec.tlp_retrans = False
        left = snd.unsent()
        usable = sq.diff(sq.add(snd.snd_una, snd.snd_wnd), snd.snd_nxt)
        if left and usable >= min(mss, left):
            n = min(mss, left)
            self._transmit(snd.snd_nxt, n, now, fin=snd.fin_queued and n == left)
        else:
            last = rack.last()
            if last is None:
                self._rearm_rto(now)
                return
            start, end = last[0], last[1]
            data_end = snd.data_end
            fin = snd.fin_queued and sq.gt(end, data_end)
            data = sq.diff(end, start) - (1 if fin else 0)
            pcount = max(-(-data // mss), 1)
            seq = sq.add(start, (pcount - 1) * mss)   # the last MSS of it
            self._transmit(seq, sq.diff(end, seq) - (1 if fin else 0), now, fin=fin)
            rec.tlp_retrans = True
        rec.tlp_high_seq = snd.snd_nxt
        self.cfg.mib["TcpExtTCPLossProbes"] += 1
        if self.trace is not None:
            self._trace("tlp", now)
        self.rtx_kind = RTO           # icsk_pending = 0: the RTO runs from now
        self.rtx = None
        self._rearm_rto(now)

    def _arm_reo_timeout(self: Connection, now: int, timeout: int) -> None:
        """Linux tcp_rack_mark_lost(): wait out the reordering window (whole jiffies,
        plus TCP_TIMEOUT_MIN), never longer than the RTO."""
        timeout = -(-timeout // 1000) * 1000 + TIMEOUT_MIN_US
        self.rtx = now + min(timeout, self.rtt.backed_off(self.backoff))
        self.rtx_kind = REO

    def _on_reo_timeout(self: Connection, now: int) -> None:
        """Linux tcp_rack_reo_timeout(): mark what is overdue now, resend it."""
        snd = self.snd
        rtt = self.rtt
        self.rec.on_reo_timeout(snd_una=snd.snd_una, snd_max=snd.snd_max, now=now,
                                min_rtt=rtt.min_rtt or 0, srtt=rtt.srtt or 0)
        self._output(now)
        if self.rtx is None or self.rtx_kind != RTO:
            self.rtx_kind = REO
            self._rearm_rto(now)

    def _clamp_to_user_timeout(self: Connection, when: int, start: int | None,
                               now: int) -> int:
        """Linux tcp_clamp_rto_to_user_timeout() / tcp_clamp_probe0_to_user_timeout():
        never wait past the TCP_USER_TIMEOUT deadline (at least TCP_TIMEOUT_MIN, 2 ms)."""
        user_timeout = self.opts.user_timeout * 1000
        if not user_timeout or start is None:
            return when
        return min(when, max(user_timeout - (now - start), 2000))

    def _arm_persist(self: Connection, now: int) -> None:
        """Zero window with data waiting and nothing in flight: probe (RFC 9293 3.8.6.1)."""
        if self.persist is None:
            rto = min(self.rtt.rto << self.persist_backoff, RTO_MAX_US)
            self.persist = now + self._clamp_to_user_timeout(rto, self.probe_start, now)

    def _on_persist(self: Connection, now: int) -> None:
        """Linux tcp_probe_timer() / tcp_write_wakeup(): send a window probe and back off.

        If part of the window is open the probe carries data; otherwise it is an ACK
        one byte behind SND.UNA, which the peer must answer with its current window.
        """
        snd = self.snd
        if self.state in (_CLOSED, _TIME_WAIT) or snd.unsent() == 0 and \
                not (snd.fin_queued and not snd.fin_sent):
            self.persist_backoff = 0
            self.probe_start = None
            return
        if snd.in_flight() > 0:
            return                           # the retransmission timer is in charge
        # Linux tcp_probe_timer(): the first probe starts icsk_probes_tstamp; once
        # TCP_USER_TIMEOUT has passed since then the connection is dropped.
        if self.probe_start is None:
            self.probe_start = now
        elif self.opts.user_timeout and now - self.probe_start >= self.opts.user_timeout * 1000:
            self._fail(self._timeout_errno(), now, _EV_TIMEOUT, "TCP_USER_TIMEOUT (probes)")
            return
        if snd.snd_wnd > 0:
            self._output(now, probe=True)
        else:
            self._segment(ACK, sq.add(snd.snd_una, -1))
            self.probes_out += 1
        self.persist_backoff += 1
        self._arm_persist(now)

    def _keepalive_params(self: Connection) -> tuple[int, int, int]:
        o, c = self.opts, self.cfg
        idle = o.keepidle if o.keepidle is not None else c.int("net.ipv4.tcp_keepalive_time")
        intvl = o.keepintvl if o.keepintvl is not None else c.int("net.ipv4.tcp_keepalive_intvl")
        cnt = o.keepcnt if o.keepcnt is not None else c.int("net.ipv4.tcp_keepalive_probes")
        return idle * SECOND, intvl * SECOND, cnt

    def _arm_keepalive(self: Connection, now: int) -> None:
        if self.opts.keepalive and self.state not in (_CLOSED, _SYN_SENT,
                                                      _TIME_WAIT):
            idle, _, _ = self._keepalive_params()
            self.keepalive = self.last_rcv + idle
        else:
            self.keepalive = None

    def set_keepalive(self: Connection, *, now: int) -> None:
        """SO_KEEPALIVE or its parameters changed: re-arm from the last segment received."""
        self._arm_keepalive(now)

    def _on_keepalive(self: Connection, now: int) -> None:
        """Linux tcp_keepalive_timer(): probe an idle peer, give up after TCP_KEEPCNT."""
        if not self.opts.keepalive or self.state in (_CLOSED, _SYN_SENT,
                                                     _TIME_WAIT):
            return
        idle, intvl, cnt = self._keepalive_params()
        elapsed = now - self.last_rcv
        if elapsed < idle:
            self.keepalive = self.last_rcv + idle
            return
        if self.probes_out >= cnt:
            self.abort(now=now, why="keepalive: peer dead")
            self.error = self._timeout_errno()
            return
        if self.snd.in_flight() == 0:
            # A probe is an ACK one byte behind SND.UNA: the peer must answer with an ACK.
            self._segment(ACK, sq.add(self.snd.snd_una, -1))
            self.probes_out += 1
        self.keepalive = now + intvl
