"""Header prediction: the usual segment of an established connection, without the checks.

Theory of operation
-------------------
Mirrors the fast path of Linux tcp_rcv_established() (Van Jacobson's header
prediction): most segments of an established connection are the next one in
sequence, carry only ACK (and PSH), a window that is not zero and a fresh
timestamp, and acknowledge new data or nothing new. For such a segment the steps of
RFC 9293 3.10.7.4 that :meth:`InputMixin._rcv_slow <synack.tcp.input.InputMixin._rcv_slow>`
takes -- PAWS, acceptability, RST, SYN, the SYN_RECEIVED and challenge-ACK
branches, the urgent pointer, the FIN, data after close -- have nothing to do, and
neither has most of the ACK's bookkeeping (:meth:`_process_ack` and
:meth:`_rack_ack`: no SACK blocks, no scoreboard, recovery Open with nothing SACKed,
lost or retransmitted, no tail loss probe out, no zero-window probing).
:func:`rcv_synchronized` (``Connection._rcv_synchronized``) tests the prediction
before it changes anything and, when it holds, does only what the general path would
do with that segment, in the same order, with the same results (state, counters,
timers, segments sent; tests/test_fastpath.py compares the two); otherwise it hands
the segment to the general path.

What differs from Linux: Linux predicts on one word of the header (flags, data
offset and window at once) and takes pure ACKs and in-order data that the reader is
waiting for; here the prediction is a series of tests of the fields, the data need
not be awaited (it is queued as the general path would queue it), and a segment
with data is taken only when it fits the window, nothing is out of order, no FIN
was seen and no urgent data is pending. A zero window, ECN agreed, a
duplicate ACK, an ACK of new data without RACK records (no SACK, or tcp_recovery 0),
D-SACKs seen, Brief fields in use (the handshake's RTT sample, a retransmission's
clocks, keepalive probes, an orphaned socket) or trace recording send it to the
general path too. Where the general path stores an equal value anew (the unchanged
send window) this path leaves the field as it is.

Three more segments of every short connection have predictions of their own, which
Linux (tcp_rcv_state_process(), no header prediction outside ESTABLISHED) has not:
the handshake's bare ACK in SYN_RECEIVED (:func:`rcv_handshake_ack`), the peer's FIN
in ESTABLISHED with nothing of ours in flight (:func:`rcv_fin`) and the ACK of our
FIN to an orphan in LAST_ACK (:func:`rcv_last_ack`). Each tests what makes the
general path's early steps (PAWS, acceptability, RST, SYN, the ACK's checks) pass
without effect, then does the rest as the general path would, or hands the segment
over unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.ackpolicy import DELACK_MIN_US
from synack.tcp.options import TS_HALF
from synack.tcp.records import make_change
from synack.tcp.recovery import CaState
from synack.tcp.rtt import RTO_FALLBACK_US, RTO_MAX_US, RTO_MIN_US
from synack.tcp.scoreboard import NO_SACKS
from synack.tcp.sender import shared
from synack.tcp.state import Event, State, next_state
from synack.tcp.timers import RTO
from synack.wire.tcp import ACK, FIN, PSH, TcpSegment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

# Sequence arithmetic inline. Sequence numbers past 2**30 are multi-digit ints, and each
# operation on them makes a new one: most of a comparison's cost. So the tests here use
# the unsigned difference, ((a - b) & _MASK) >= _HALF for sq.lt(a, b) (two operations,
# where sq.diff()'s form takes four), and skip the arithmetic where equality decides.
_MASK, _HALF = sq.MASK, sq.HALF
# The same test without the mask: for a and b in [0, 2**32), ((a - b) & _MASK) >= _HALF
# is d >= _HALF or _NEG_HALF <= d < 0 with d = a - b (comparisons only: a small
# difference masked by the two-digit _MASK makes a new int, a comparison does not).
_NEG_HALF = -_HALF
_MOD = sq.MOD
_ACK_PSH = ACK | PSH
_ACK_PSH_FIN = ACK | PSH | FIN
_ESTABLISHED = State.ESTABLISHED      # members bound once (an Enum lookup is slow)
_LAST_ACK = State.LAST_ACK
_SYN_RECEIVED = State.SYN_RECEIVED
_CA_OPEN = CaState.OPEN
_EV_RCV_FIN = Event.RCV_FIN
_EV_RCV_ACK_OF_FIN = Event.RCV_ACK_OF_FIN
_EV_RCV_ACK_OF_SYN = Event.RCV_ACK_OF_SYN
# Where the predicted handshake ACK and FIN lead (the table's moves, read once): states
# for which Connection._change() has nothing to do but record the change.
_SYN_ACKED = next_state(_SYN_RECEIVED, _EV_RCV_ACK_OF_SYN)     # ESTABLISHED
_FIN_IN = next_state(_ESTABLISHED, _EV_RCV_FIN)                # CLOSE_WAIT
_FIN_ACKED = next_state(_LAST_ACK, _EV_RCV_ACK_OF_FIN)         # CLOSED


def rcv_synchronized(self: Connection, seg: TcpSegment, now: int) -> None:
    """A segment in a synchronized state: the predicted one here, any other by the
    general path (:meth:`~synack.tcp.input.InputMixin._rcv_slow`). A method of
    :class:`~synack.tcp.input.InputMixin` (``_rcv_synchronized``)."""
    # The prediction, tested before anything changes: flags and state first (a segment
    # in a closing state goes at once; the peer's FIN has a prediction of its own).
    flags = seg.flags | PSH
    state = self.state
    if flags != _ACK_PSH or state is not _ESTABLISHED:
        if flags == _ACK_PSH_FIN and state is _ESTABLISHED:
            rcv_fin(self, seg, now)
        else:
            self._rcv_slow(seg, now)
        return
    rcv = self.rcv
    snd = self.snd
    rec = self.rec
    assert rcv is not None
    seq = seg.seq
    ts = seg.timestamps
    payload = seg.payload
    n = len(payload)
    wnd = seg.window << self.snd_wscale
    ecn = self.ecn
    if seq != rcv.rcv_nxt or not wnd \
            or seg.sack_blocks or self.brief is not None \
            or rec.state is not _CA_OPEN or self.persist is not None \
            or (self.ts_ok and (ts is None
                                or (ts[0] != self.ts_recent and   # not older (PAWS)
                                    ((d := ts[0] - self.ts_recent) >= TS_HALF
                                     or _NEG_HALF <= d < 0)))) \
            or (ecn is not None and ecn.ok) or self.trace is not None \
            or (n and (rcv.ooo or rcv.dsack is not None or rcv.fin_seq is not None
                       or rcv.rare is not None
                       # beyond the window (n > sq.diff(rcv_adv, seq))
                       or (room := rcv.rcv_adv - seq) >= _HALF or _NEG_HALF <= room < 0
                       or n > (room if room >= 0 else room + _MOD))):
        self._rcv_slow(seg, now)
        return
    board = rec.board
    rack = rec.rack
    ack = seg.ack
    una = snd.snd_una
    smax = snd.snd_max
    # sq.diff(ack, una), unsigned: in (0, _HALF) when new data is acknowledged.
    acked = 0 if ack == una else ack - una
    if acked < 0:
        acked += _MOD
    if not acked:
        # Nothing new acknowledged. A duplicate ACK, or an ACK with RACK records to
        # fold in, is for the general path.
        if (not n and una != smax and wnd == snd.snd_wnd) or (rack is not None and rack.recs) \
                or (board is not None and board is not NO_SACKS):
            self._rcv_slow(seg, now)
            return
    elif not (acked < _HALF and (ack == smax                             # una < ack <= max
                                 or acked <= ((smax - una + _HALF) & _MASK) - _HALF)
              and rack is not None and rack.recs and rack.tlp_high_seq is None
              and not (rack.sacked_bytes or rack.lost_bytes or rack.retrans_bytes)
              and not rack.dsack_seen and rack.reo_wnd_steps == 1
              and (board is None or board is NO_SACKS)
              # all of it data (the general path's data_acked is acked)
              and una != snd.iss):
        self._rcv_slow(seg, now)
        return
    self.last_rcv = now
    if ts is not None and self.ts_ok:
        # RFC 7323 4.3 (2), as the general path: the TSval (not older than TS.Recent,
        # as predicted) of a segment at the left window edge becomes TS.Recent.
        left = self.last_ack_sent
        if seq == left or ((seq - left) & 0xFFFFFFFF) >= TS_HALF:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
    if acked:
        # _process_ack(), then _rack_ack(), with what the prediction rules out left out.
        assert rack is not None
        rtt_us: int | None = None
        log = snd.sent_log
        if log is not None:
            # snd.rtt_sample(ack, now), inline: forget the first transmissions acked;
            # the RTT of the oldest never retransmitted (Karn's rule).
            rtx_high = snd.rtx_high
            while log and ((end := log[0][0]) == ack                      # sq.le(end, ack)
                           or ((end - ack) & _MASK) >= _HALF):
                end, sent = log.popleft()
                if rtt_us is None and ((d := rtx_high - end) >= _HALF     # sq.lt(rtx_high, end)
                                       or _NEG_HALF <= d < 0):
                    rtt_us = now - sent
            if not log:
                snd.sent_log = None
        if rtt_us is None and self.ts_ok and ts is not None and ts[1]:
            rtt_us = ((self.tsval(now) - ts[1]) & 0xFFFFFFFF or 1) * 1000   # at least 1 ms
        # _on_new_ack(), no Brief field set: no SYN timed, no retransmission's clocks.
        rtt = self.rtt
        if rtt_us is not None:
            # rtt.sample(rtt_us), inline (tcp/rtt.py, RFC 6298 2.2 and 2.3): per ACK of data.
            m = rtt_us if rtt_us > 1 else 1  # noqa: FURB136 - cheaper than max()
            rtt.samples += 1
            low = rtt.min_rtt
            if low is None or m < low:
                rtt.min_rtt = m
            srtt = rtt.srtt
            if srtt is None:
                srtt = rtt.srtt = m
                var = rtt.rttvar = m // 2
            else:
                var = rtt.rttvar = (3 * rtt.rttvar + abs(srtt - m)) // 4
                srtt = rtt.srtt = (7 * srtt + m) // 8
            var *= 4
            rto = srtt + (var if var > RTO_MIN_US else RTO_MIN_US)  # noqa: FURB136
            rtt.rto = rto if rto < RTO_MAX_US else RTO_MAX_US  # noqa: FURB136
            self.backoff = 0
        snd.on_ack(ack)
        self.retransmits = 0
        if ack == smax:
            self.rtx = None              # _rearm_rto(): nothing in flight
            self.rtx_kind = RTO
        else:
            self._rearm_rto(now)
        una = snd.snd_una
        # Nothing SACKed: 0 newly SACKed; no D-SACK seen, so no update_reo_wnd().
        rack.on_ack(una, (), False, now, rtt.min_rtt or 0)
        self.delivered += acked
        segs = rack.delivered_pkts
        if segs:
            # Recovery.on_ack_rack() in Open with nothing SACKed, lost or resent: the
            # congestion controller hears of it (Linux tcp_cong_control()).
            cc = rec.cc
            flight = 0 if una == smax else ((smax - una + _HALF) & _MASK) - _HALF
            # (now, rtt_us, in_flight, cwnd_limited: positional, a call CPython inlines)
            cc.on_ack(segs, now, rtt_us, flight // self.mss if flight > 0 else 0,
                      self.cwnd_limited or (                # _is_cwnd_limited()
                          cc.cwnd < cc.ssthresh and cc.cwnd < 2 * self.max_packets_out))
        if not rack.recs:
            rack.fack = None             # (and no loss probe: nothing in flight)
        else:
            self._schedule_loss_probe(now, True)    # (advancing_rto: positional, inlined)
        if rcv.ooo:
            self.mem_sync()
        else:
            # self.mem_sync(), inline: the send buffer and the unread bytes.
            used = snd.buf.nbytes + len(rcv.ready)
            if used != self.mem_charged:
                self.cfg.mem_add(used - self.mem_charged)
                self.mem_charged = used
        if now - self.rate_mark_time >= (rtt.srtt or 100_000):
            self._update_rate(now)       # (its own test, inline: a new interval is due)
        if snd.capacity < self.snd_max_capacity and not self.cfg.mem_pressure:
            want = 2 * rec.cc.cwnd * self.mss    # Linux tcp_sndbuf_expand()
            if want > snd.capacity:
                cap = self.snd_max_capacity
                snd.capacity = want if want < cap else cap  # noqa: FURB136 - min()
    una = snd.snd_una
    wl1 = snd.snd_wl1                    # snd.update_window(), inline
    # (a newer segment: sq.lt(wl1, seq), or the same one with sq.le(wl2, ack))
    if (((wl2 := snd.snd_wl2) == ack or (d := wl2 - ack) >= _HALF or _NEG_HALF <= d < 0)
            if wl1 == seq else (d := wl1 - seq) >= _HALF or _NEG_HALF <= d < 0):
        if wnd != snd.snd_wnd:
            wnd = snd.snd_wnd = shared(wnd)
            if wnd > snd.max_wnd:  # noqa: PLR1730 - cheaper than max() per segment
                snd.max_wnd = wnd
        snd.snd_wl1 = seq
        snd.snd_wl2 = una if ack == una else ack
    ackp = self.ackp
    if n:
        ready = rcv.ready
        if ready and self.cfg.mem_over_limit():
            # Linux tcp_data_queue(): no memory (as the general path: dropped, ACK now).
            self.cfg.mib["TcpExtTCPRcvQDrop"] += 1
            self._send_ack()
            return
        # rcv.accept(), in order and inside the window, nothing else to do.
        if isinstance(ready, bytearray):
            ready += payload
        else:
            rcv.ready = bytearray(payload)
        nxt = seq + n
        if nxt > _MASK:
            nxt -= _MOD
        rcv.rcv_nxt = nxt
        rcv.bytes_received += n
        # self.mem_sync(), inline: the send buffer and the unread bytes (nothing out of
        # order, as predicted).
        used = snd.buf.nbytes + len(rcv.ready)
        if used != self.mem_charged:
            self.cfg.mem_add(used - self.mem_charged)
            self.mem_charged = used
        m = n if n < self.adv_mss else self.adv_mss  # noqa: FURB136 - tcp_measure_rcv_mss()
        if m > ackp.rcv_mss:  # noqa: PLR1730 - cheaper than max() per segment
            ackp.rcv_mss = m
        ackp.last_data_rcv = now         # ackp.on_data(), in order
        # (sq.diff(nxt, last_ack_sent) > rcv_mss: a positive difference past rcv_mss)
        if ((d := nxt - self.last_ack_sent) >= 0 and _HALF > d > ackp.rcv_mss
                or d < 0 and _HALF > d + _MOD > ackp.rcv_mss) \
                or (ackp.quick > 0 and not ackp.pingpong):
            self._send_ack()
            return
        if ackp.deadline is None:
            ackp.deadline = now + DELACK_MIN_US
    if ackp.deadline is not None and self.delack is None \
            and self.last_ack_sent != rcv.rcv_nxt:
        self.delack = ackp.deadline


def rcv_fin(self: Connection, seg: TcpSegment, now: int) -> None:
    """The peer's FIN in ESTABLISHED, predicted: in order, without text, acknowledging
    everything we sent (nothing in flight), with the usual conditions of the prediction
    above; what the general path does with it, in its order (the window, the FIN taken,
    CLOSE_WAIT, the ACK now or delayed as Linux tcp_fin() decides). Else the general
    path."""
    rcv = self.rcv
    snd = self.snd
    rec = self.rec
    assert rcv is not None
    seq = seg.seq
    ack = seg.ack
    ts = seg.timestamps
    ecn = self.ecn
    rack = rec.rack
    board = rec.board
    if seq != rcv.rcv_nxt or seg.payload or ack != snd.snd_una or ack != snd.snd_max \
            or seg.sack_blocks or self.brief is not None or snd.fin_queued \
            or rec.state is not _CA_OPEN or self.persist is not None \
            or (self.ts_ok and (ts is None
                                or (ts[0] != self.ts_recent and   # not older (PAWS)
                                    ((d := ts[0] - self.ts_recent) >= TS_HALF
                                     or _NEG_HALF <= d < 0)))) \
            or (ecn is not None and ecn.ok) or self.trace is not None \
            or rcv.ooo or rcv.fin_seq is not None \
            or (rack is not None and rack.recs) \
            or (board is not None and board is not NO_SACKS):
        self._rcv_slow(seg, now)
        return
    self.last_rcv = now
    if ts is not None and self.ts_ok:
        left = self.last_ack_sent        # RFC 7323 4.3 (2), as in rcv_synchronized()
        if seq == left or ((seq - left) & 0xFFFFFFFF) >= TS_HALF:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
    # _process_ack(): nothing in flight and nothing new acknowledged, so only the window
    # may move (snd.update_window(), inline; no zero-window probe to stop).
    wnd = seg.window << self.snd_wscale
    wl1 = snd.snd_wl1
    # (a newer segment: sq.lt(wl1, seq), or the same one with sq.le(wl2, ack))
    if (((wl2 := snd.snd_wl2) == ack or (d := wl2 - ack) >= _HALF or _NEG_HALF <= d < 0)
            if wl1 == seq else (d := wl1 - seq) >= _HALF or _NEG_HALF <= d < 0):
        if wnd != snd.snd_wnd:
            wnd = snd.snd_wnd = shared(wnd)
            if wnd > snd.max_wnd:  # noqa: PLR1730 - cheaper than max()
                snd.max_wnd = wnd
        snd.snd_wl1 = seq
        una = snd.snd_una
        snd.snd_wl2 = una if ack == una else ack
    # rcv.accept(seq, b"", True), inline: the FIN at RCV.NXT, nothing out of order.
    rcv.fin_seq = seq
    rcv.fin_received = True
    nxt = seq + 1
    if nxt > _MASK:
        nxt = 0
    rcv.rcv_nxt = nxt
    if (d := rcv.rcv_adv - nxt) >= _HALF or _NEG_HALF <= d < 0:   # sq.lt(rcv_adv, nxt)
        rcv.rcv_adv = nxt
    # ackp.on_fin(now=now), inline (Linux tcp_fin(): ping-pong; the ACK waits, unless
    # no data came before).
    ackp = self.ackp
    ackp.pingpong = True
    ack_now = ackp.last_data_rcv is None
    if not ack_now and ackp.deadline is None:
        ackp.deadline = now + DELACK_MIN_US
    # self._change(_EV_RCV_FIN, now), inline: CLOSE_WAIT (no timer to arm or clear).
    self.state = _FIN_IN
    changes = self.changes
    if changes is not None:
        change = make_change(now, _ESTABLISHED, _FIN_IN, _EV_RCV_FIN._value_)
        if isinstance(changes, list):
            changes.append(change)
        else:
            self.changes = [change]
    if ack_now:
        self._send_ack()
    elif ackp.deadline is not None and self.delack is None and self.last_ack_sent != nxt:
        self.delack = ackp.deadline


def rcv_last_ack(self: Connection, seg: TcpSegment, now: int) -> None:
    """A segment in LAST_ACK (``Connection._rcv_last_ack``): the ACK of our FIN to an
    orphan predicted -- at RCV.NXT with a fresh timestamp, acknowledging SND.MAX past
    our data -- and what the general path does with it (its shortcut for this segment,
    after the steps that have nothing to do): SND.UNA moves, the memory charged goes
    back, CLOSED (Linux tcp_rcv_state_process(): tcp_ack(), then tcp_done()). Any
    other segment: the general path."""
    if seg.flags | PSH != _ACK_PSH:
        self._rcv_slow(seg, now)
        return
    rcv = self.rcv
    snd = self.snd
    assert rcv is not None
    seq = seg.seq
    ack = seg.ack
    ts = seg.timestamps
    smax = snd.snd_max
    brief = self.brief
    if seq != rcv.rcv_nxt or ack != smax or self.trace is not None \
            or brief is None or "app_closed" not in brief \
            or (self.ts_ok and (ts is None
                                or (ts[0] != self.ts_recent and   # not older (PAWS)
                                    ((d := ts[0] - self.ts_recent) >= TS_HALF
                                     or _NEG_HALF <= d < 0)))) \
            or ((snd.buf_seq + snd.buf.nbytes - smax) & _MASK) < _HALF \
            or ((ack - snd.snd_una + (snd.max_wnd or 1)) & _MASK) >= _HALF:
        # (the last: an ACK the general path finds implausibly old, RFC 5961 5.2)
        self._rcv_slow(seg, now)
        return
    self.last_rcv = now
    if "probes_out" in brief:
        self.probes_out = 0
    if ts is not None and self.ts_ok:
        left = self.last_ack_sent        # RFC 7323 4.3 (2), as in rcv_synchronized()
        if seq == left or ((seq - left) & 0xFFFFFFFF) >= TS_HALF:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
    snd.on_ack(smax)
    charged = self.mem_charged           # self.mem_release(), inline
    if charged:
        self.cfg.mem_add(-charged)
        self.mem_charged = 0
    # self._change(_EV_RCV_ACK_OF_FIN, now), inline: CLOSED, every timer disarmed.
    self.state = _FIN_ACKED
    changes = self.changes
    if changes is not None:
        change = make_change(now, _LAST_ACK, _FIN_ACKED, _EV_RCV_ACK_OF_FIN._value_)
        if isinstance(changes, list):
            changes.append(change)
        else:
            self.changes = [change]
    self.clear()


def rcv_handshake_ack(self: Connection, seg: TcpSegment, now: int) -> None:
    """A segment in SYN_RECEIVED (``Connection._rcv_handshake_ack``): the handshake's
    last ACK predicted -- bare (no text, no FIN), at RCV.NXT with a fresh timestamp,
    acknowledging our SYN, no ECN, no FIN of ours to send -- and what the general path
    does with it, after the steps that have nothing to do (PAWS, acceptability, RST,
    SYN): the ACK taken, the window set outright, ESTABLISHED, keepalive, the
    delayed-ACK timer's test. Any other segment: the general path."""
    if seg.flags | PSH != _ACK_PSH:
        self._rcv_slow(seg, now)
        return
    rcv = self.rcv
    snd = self.snd
    assert rcv is not None
    seq = seg.seq
    ack = seg.ack
    ts = seg.timestamps
    smax = snd.snd_max
    if seq != rcv.rcv_nxt or seg.payload or self.ecn is not None or snd.fin_queued \
            or (self.rare is not None and self.wr_shut) \
            or (self.ts_ok and (ts is None
                                or (ts[0] != self.ts_recent and   # not older (PAWS)
                                    ((d := ts[0] - self.ts_recent) >= TS_HALF
                                     or _NEG_HALF <= d < 0)))) \
            or not (((d := snd.snd_una - ack) >= _HALF or _NEG_HALF <= d < 0)   # una < ack
                    and (ack == smax or (d := ack - smax) >= _HALF
                         or _NEG_HALF <= d < 0)):                           # ack <= max
        self._rcv_slow(seg, now)
        return
    self.last_rcv = now
    brief = self.brief
    if brief is not None and "probes_out" in brief:
        self.probes_out = 0
    if ts is not None and self.ts_ok:
        left = self.last_ack_sent        # RFC 7323 4.3 (2), as in rcv_synchronized()
        if seq == left or ((seq - left) & 0xFFFFFFFF) >= TS_HALF:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
    # self._on_new_ack(ack, now), inline: the SYN,ACK timed once (Karn), SND.UNA, the
    # retransmission's clocks and the RTO.
    brief = self.brief
    if brief is not None:
        rtt_seq: int | None = brief.get("rtt_seq")  # type: ignore[assignment]
        if rtt_seq is not None and ((d := rtt_seq - ack) >= _HALF       # sq.gt(ack, rtt_seq)
                                    or _NEG_HALF <= d < 0):
            # (self.rtt_seq = None, inline: the Brief field and its drop, rtt_time)
            self.rtt.sample(now - brief.pop("rtt_time", 0))  # type: ignore[operator]
            del brief["rtt_seq"]
            if not brief:
                self.brief = brief = None
            self.backoff = 0
    snd.on_ack(ack)
    self.retransmits = 0
    if brief is not None and ("retrans_stamp" in brief or "ut_start" in brief):
        # self.retrans_stamp = self.ut_start = None, inline (rare.py's Brief.__set__).
        brief.pop("retrans_stamp", None)
        brief.pop("ut_start", None)
        if not brief:
            self.brief = None
    if (smax := snd.snd_max) == (una := snd.snd_una) \
            or ((smax - una) & _MASK) >= _HALF:        # in_flight() <= 0
        self.rtx = None                  # _rearm_rto(): nothing in flight
        self.rtx_kind = RTO
    else:
        self._rearm_rto(now)
    # As the general path's SYN_RECEIVED branch from here: RFC 6298 (5.7) without an
    # RTT sample, then SND.WND, WL1, WL2 from this ACK outright (one int object each
    # where the values are equal).
    if self.rtt.srtt is None:
        self.rtt.rto = RTO_FALLBACK_US
    self.backoff = 0
    snd.snd_wl1 = rcv.rcv_nxt            # (= SEG.SEQ)
    una = snd.snd_una
    snd.snd_wl2 = una if ack == una else ack
    wnd = seg.window << self.snd_wscale
    if wnd != snd.snd_wnd:
        wnd = shared(wnd)
    snd.snd_wnd = wnd
    if wnd > snd.max_wnd:  # noqa: PLR1730 - cheaper than max()
        snd.max_wnd = wnd
    # self._change(_EV_RCV_ACK_OF_SYN, now, "rcv ACK of SYN"), inline: ESTABLISHED (no
    # timer to arm or clear).
    self.state = _SYN_ACKED
    changes = self.changes
    if changes is not None:
        change = make_change(now, _SYN_RECEIVED, _SYN_ACKED, "rcv ACK of SYN")
        if isinstance(changes, list):
            changes.append(change)
        else:
            self.changes = [change]
    if self.opts.keepalive:
        self._arm_keepalive(now)
    else:
        self.keepalive = None            # self._arm_keepalive(now), inline: none
    ackp = self.ackp
    if ackp.deadline is not None and self.delack is None \
            and self.last_ack_sent != rcv.rcv_nxt:
        self.delack = ackp.deadline
