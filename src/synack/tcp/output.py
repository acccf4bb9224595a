"""What a connection sends next: retransmissions, new data, the FIN.

Theory of operation
-------------------
:meth:`OutputMixin._output` runs after every input and sends as long as
everything allows it:

1. In fast recovery the scoreboard names lost ranges to retransmit (RFC 6675
   NextSeg; NewReno's head segment without SACK). The first one goes at once,
   the rest while ``pipe < cwnd`` (:mod:`synack.tcp.recovery`).
2. Otherwise the bytes at SND.NXT: new data, or, after a timeout pulled SND.NXT
   back, old data again -- skipping what the peer has SACKed. A segment needs
   room in the congestion window (``pipe < cwnd * MSS``) and in the peer's
   window. Small segments wait when

   * only part of the peer's window is open and less than half its largest
     window would be sent (sender-side silly window avoidance, RFC 9293
     3.8.6.2.1);
   * Nagle's algorithm holds them: a small segment is still unacknowledged
     (Linux's Minshall variant of RFC 896), unless ``TCP_NODELAY``;
   * ``TCP_CORK`` is set.

   The FIN goes with the last byte, or alone once all data is out.
3. If data waits, nothing is in flight and the peer's window is too small, the
   persist timer is armed (:mod:`synack.tcp.timeouts`).

PSH marks the segment that carries the last byte of each ``send()``; URG and
the urgent pointer go on every segment before the urgent mark (``MSG_OOB``).

New data that would leave as several full-sized segments back to back leaves
as one super-segment of whole MSS pieces instead (:meth:`OutputMixin._tso_length`),
up to ``tso_max`` bytes of IP packet: the device's TSO limit, or 64 KB when the
link cuts it in software (:mod:`synack.wire.gso`). Either way it is cut into
exactly the segments listed above. Retransmissions stay at MSS size.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp import chrono
from synack.tcp.ackpolicy import DELACK_MIN_US
from synack.tcp.rack import IDLE as IDLE_RACK
from synack.tcp.rack import TIMEOUT_MIN_US, Rack
from synack.tcp.rack import XMIT as _XMIT
from synack.tcp.recovery import CaState
from synack.tcp.rtt import RTO_INITIAL_US, RTO_MAX_US, RTO_MIN_US
from synack.tcp.state import State
from synack.tcp.timers import RTO, TLP
from synack.wire.tcp import ACK, CWR, FIN, PSH, URG, TcpSegment, make_segment

_HALF = sq.HALF
_CHRONO_NONE, _CHRONO_BUSY = chrono.NONE, chrono.BUSY
_MASK = sq.MASK
# The largest int of one CPython digit: tests against it are the quick ones (_HALF,
# _MASK have two digits); a difference within it is its own sq.diff().
_DIGIT = (1 << 30) - 1

if TYPE_CHECKING:
    from synack.tcp.connection import Connection, OutTs

IP_TCP_HEADERS = 40   # IPv4 and TCP headers without options
SOFT_GSO_ROOM = 0xFFFF  # a super-segment without a device: the host's stack.SOFT_GSO_MAX
MAX_TCP_OPTIONS = 40  # RFC 9293 3.1: data offset 15 words; SACK blocks may fill it
_QUIET = (State.SYN_SENT, State.SYN_RECEIVED, State.CLOSED, State.TIME_WAIT, State.LISTEN)
# State, Event, CaState members bound once (a member lookup on an Enum class is slow).
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT
_ESTABLISHED = State.ESTABLISHED
_CLOSED = State.CLOSED
_TIME_WAIT = State.TIME_WAIT
_LISTEN = State.LISTEN
_CA_OPEN = CaState.OPEN
_CA_CWR = CaState.CWR


class OutputMixin:
    """The sending half's decisions."""

    __slots__ = ()   # Connection's slots hold the state: no __dict__ per connection

    def out_record(self: Connection, seg: TcpSegment | OutTs) -> TcpSegment:
        """An outbox entry as a :class:`TcpSegment` (an OutTs tuple made a record)."""
        if type(seg) is not tuple:
            return seg  # type: ignore[return-value]
        flags, seq, ack, window, urgent, payload, tsval, tsecr = seg
        return make_segment(self.local[1], self.remote[1], seq, ack, flags, window, urgent,
                            payload, None, None, False, (), (tsval, tsecr), (), 0, 0, 0, ())

    def _output(self: Connection, now: int, probe: bool = False, push: bool = False) -> None:
        """Send whatever the windows, Nagle and cork allow right now; ``push`` sends
        what Nagle or cork hold back, once (Linux TCP_NAGLE_PUSH)."""
        # (No keyword-only parameters: CPython 3.11 inlines a call to a function with
        # positional defaults only; keyword-only ones send every call the slow way.)
        # (Identity tests: `in` over Enum members compares each one that differs the slow
        # way, through the rich comparison's fallbacks; ESTABLISHED first.)
        if (state := self.state) is not _ESTABLISHED and (
                state is _SYN_RECEIVED or state is _SYN_SENT or state is _CLOSED
                or state is _TIME_WAIT or state is _LISTEN) and not (      # _QUIET
                state is _SYN_RECEIVED and self.tfo is not None and self.tfo.child):
            return   # (a Fast Open child sends before the handshake's last ACK)
        snd = self.snd
        smax_before = snd.snd_max
        # (data_end == snd_max by equality when the buffer is empty, the usual case:
        # no sum of sequence numbers, which makes a new int above 2**30.)
        if snd.snd_nxt == smax_before and not probe and not snd.fin_queued \
                and ((nb := snd.buf.nbytes) == 0 and snd.buf_seq == smax_before
                     or nb and (snd.buf_seq + nb) & _MASK == smax_before) \
                and (rack := self.rec.rack) is not None and not rack.lost_bytes:
            # Nothing to send and all of it sent (no FIN either), nothing lost: nothing
            # below has anything to do (the common case after a segment comes in) but
            # the time accounting at the end: chrono.stop(), inline, as there.
            ch = self.chrono
            if ch is not None and (st := ch[0]) != _CHRONO_NONE:
                ch[1 + st] += now - ch[1]
                ch[0] = _CHRONO_BUSY if nb else _CHRONO_NONE
                ch[1] = now
            return
        rec = self.rec
        mss = self.mss
        limited = False                      # stopped by cwnd (Linux is_cwnd_limited)
        blocked_by_window = False
        rwnd_limited = False                 # tcp_snd_wnd_test() failed (tcp_write_xmit())
        full_sent = False                    # a whole segment of new data went in this pass
        rack = rec.rack
        after = -1                           # in flight after the usual path's send
        if rack is not None and not rack.lost_bytes and not probe \
                and snd.snd_nxt == smax_before:
            # The usual cases, decided without the general loop below (which would reach
            # the same decisions): nothing to retransmit and nothing re-sent after a
            # timeout; either nothing to send, or less than a segment of new data (and
            # the FIN, if queued) that the windows and Nagle let go at once (Linux
            # tcp_push_one()'s case), or the FIN alone.
            nxt = smax_before
            una = snd.snd_una
            if una == nxt and snd.buf_seq == nxt:
                # Nothing in flight, the buffer starting at SND.NXT (a request/reply's
                # way): the differences are known without sequence sums (new ints).
                flight = 0
                left = snd.buf.nbytes
                usable = snd.snd_wnd
            else:
                flight = ((nxt - una + _HALF) & _MASK) - _HALF            # in_flight()
                left = ((snd.buf_seq + snd.buf.nbytes - nxt + _HALF) & _MASK) - _HALF
                usable = ((una + snd.snd_wnd - nxt + _HALF) & _MASK) - _HALF
            fin_due = snd.fin_queued and left >= 0                      # sq.le(nxt, end)
            if left <= 0 and not fin_due:
                left = -1                    # nothing to send: skip the loop
            elif left == 0:
                if usable >= 0:              # the FIN alone (not held by cwnd, as Linux)
                    self._transmit(nxt, 0, now, True)
                    after = flight + 1
                    left = -1
            elif left < mss and not snd.eor_marks and usable >= left \
                    and rec.cc.cwnd * mss > (0 if (p := flight - rack.sacked_bytes
                                                    + rack.retrans_bytes) < 0
                                             else p) \
                    and (fin_due or push or not (
                        # self._nagle_holds(left), inline: once per small write
                        (opts := self.opts).cork or snd.more or not opts.nodelay
                        and flight > 0                                       # in_flight()
                        and ((una - (sml := snd.snd_sml) + _HALF) & _MASK) < _HALF  # sq.gt
                        and ((sml - nxt + _HALF) & _MASK) <= _HALF)):              # sq.le
                self._transmit(nxt, left, now, fin_due)
                after = flight + left + (1 if fin_due else 0)
                left = -1
        else:
            left = 0
        while left >= 0:
            una, nxt, smax = snd.snd_una, snd.snd_nxt, snd.snd_max
            rtx = rec.next_retransmit(una, smax)
            if rtx is not None and rec.rack is not None:
                if self._retransmit_lost(rtx[0], now):
                    continue
                limited = True
                break
            if rtx is not None:
                seq, length = rtx
                rec_end = snd.next_record_end(seq)
                if rec_end is not None and rec_end < length:
                    length = rec_end             # a retransmission keeps a record's end
                if rec.head_pending or rec.budget(una, nxt, smax) >= length:
                    self._transmit(seq, length, now, fin=False)
                    rec.retransmitted(seq, length)
                    continue
                limited = True
                break
            data_end = snd.data_end
            left = max(sq.diff(data_end, nxt), 0)
            fin_due = snd.fin_queued and sq.le(nxt, data_end)
            if left == 0 and not fin_due:
                break
            board = rec.board
            cap = mss
            if board is not None and left and sq.lt(nxt, smax):
                # Resending after a timeout: skip what the peer already holds.
                holes = board.holes(nxt, sq.min_seq(smax, sq.add(nxt, mss)))
                if not holes:
                    snd.snd_nxt = sq.min_seq(smax, sq.add(nxt, mss))
                    continue
                if holes[0][0] != nxt:
                    snd.snd_nxt = holes[0][0]
                    continue
                cap = sq.diff(holes[0][1], nxt)
            rec_end = snd.next_record_end(nxt)
            if rec_end is not None and rec_end < cap:
                cap = rec_end                    # a record's last piece goes alone
            budget = rec.budget(una, nxt, smax)
            # Linux tcp_cwnd_test(): not strict about cwnd for the final FIN (the last
            # segment, one MSS at most, that carries it).
            if budget <= 0 and not probe and not (fin_due and left <= mss):
                limited = True
                break
            usable = sq.diff(sq.add(una, snd.snd_wnd), nxt)
            n = min(left, cap, max(usable, 0))
            if n == mss and nxt == smax and not probe:
                big = self._tso_length(nxt, left, usable, budget, push=push)
                if big > mss:
                    fin = fin_due and big == left
                    if self.tso_max:
                        self._transmit(nxt, big, now, fin=fin)
                    else:
                        # No super-segments (a test's switch): the same segments, one
                        # MSS at a time, as a device would cut the super-segment.
                        pieces = -(-big // mss)
                        for i in range(pieces):
                            last = i == pieces - 1
                            self._transmit(sq.add(nxt, i * mss), min(mss, big - i * mss), now,
                                           fin=fin and last, push=last)
                    full_sent = True
                    if fin:
                        break
                    continue
            # Window-limited: a piece smaller than a segment goes only as the tail of
            # whole segments just sent, unless Nagle holds it (Linux: tcp_snd_wnd_test()
            # wants the first MSS of a buffer to fit; tcp_mss_split_point() then sends up
            # to the window's edge, tcp_nagle_check() permitting). Linux has no
            # sender-side "half the max window" rule (RFC 9293 3.8.6.2.1).
            if n < left and n < cap and not probe and (
                    n <= 0 or not full_sent or (not push and self._nagle_holds(n))):
                blocked_by_window = rwnd_limited = True
                break
            if 0 < n < mss and n == left and not fin_due and not probe \
                    and not push and self._nagle_holds(n):
                # Held by Nagle, cork or MSG_MORE. With nothing in flight no ACK will
                # release it: the probe timer will (Linux tcp_check_probe_timer(): the
                # 200 ms ceiling on TCP_CORK).
                blocked_by_window = True
                break
            fin = fin_due and n == left and usable >= n
            if n == 0 and not fin:
                blocked_by_window = rwnd_limited = True
                break
            self._transmit(nxt, n, now, fin=fin, push=probe)   # tcp_write_wakeup(): PSH
            if n >= mss:
                full_sent = True
            if fin or probe:
                break
        if blocked_by_window and snd.in_flight() == 0:
            self._arm_persist(now)
        sent = snd.snd_max != smax_before
        # (snd.data_end: buf_seq itself when the buffer is empty, no sum)
        if sent or limited or snd.snd_nxt != (
                (snd.buf_seq + nb) & _MASK if (nb := snd.buf.nbytes) else snd.buf_seq):
            # Linux tcp_write_xmit() (it runs when data waits): the window counts as used
            # when the pipe fills it.
            una, smax = snd.snd_una, snd.snd_max
            if after >= 0:
                flight = after               # known: what was in flight and what just went
            elif not -_DIGIT <= (flight := smax - una) <= _DIGIT:  # snd.in_flight(), plain
                flight = ((flight + _HALF) & _MASK) - _HALF     # ... unless it wrapped
            if not limited:
                rack = rec.rack
                if rack is not None:
                    # rec.pipe(), inline: Linux tcp_packets_in_flight() in bytes
                    pipe = flight + rack.retrans_bytes - rack.sacked_bytes - rack.lost_bytes
                    if pipe < 0:  # noqa: PLR1730 - cheaper than max()
                        pipe = 0
                else:
                    pipe = rec.pipe(una, snd.snd_nxt, smax)
                limited = -(-pipe // mss) >= rec.cc.cwnd
            if sent or limited:
                # self._cwnd_validate(limited), inline: after every send
                usage = self.cwnd_usage_seq
                packets_out = -(-flight // mss)
                # (sq.ge(una, usage), the unsigned difference, after the tests on small ints)
                if una == usage or limited or (
                        not self.cwnd_limited and packets_out > self.max_packets_out) \
                        or ((usage - una) & _MASK) >= _HALF:
                    self.cwnd_limited = limited
                    self.max_packets_out = packets_out
                    self.cwnd_usage_seq = snd.snd_nxt
            if sent and not probe and (rack := rec.rack) is not None and rack.recs \
                    and ((ca := rec.state) is _CA_OPEN or ca is _CA_CWR) \
                    and self.cfg.early_retrans in (3, 4) and flight > 0 \
                    and (cs := self.state) is not _SYN_SENT and cs is not _SYN_RECEIVED:
                # self._schedule_loss_probe(now, False), inline (tcp_write_xmit(): after
                # every send), its in-flight the one above: Linux tcp_schedule_loss_probe()
                # arms the tail loss probe 2 * SRTT ahead (plus the delayed-ACK allowance
                # when one segment is in flight), never later than the RTO would fire.
                rtt = self.rtt
                if srtt := rtt.srtt:
                    timeout = 2 * srtt + (RTO_MIN_US if flight <= mss else TIMEOUT_MIN_US)
                    timeout = -(-timeout // 1000) * 1000      # usecs_to_jiffies() rounds up
                else:
                    timeout = RTO_INITIAL_US
                # rtt.backed_off(), inline (no shift by 0: it takes the general way)
                rto = rtt.rto << b if (b := self.backoff) else rtt.rto
                if rto > RTO_MAX_US:  # noqa: PLR1730 - cheaper than min()
                    rto = RTO_MAX_US
                # tcp_rto_delta_us(): the RTO runs from the head's send time
                rto += rack.recs[0][_XMIT] - now
                if 0 < rto < timeout:
                    timeout = rto
                timers = self                # self.timers: a property naming self
                timers.rtx = now + timeout
                timers.rtx_kind = TLP
        ch = self.chrono
        if ch is not None:
            if rwnd_limited:
                chrono.start(ch, chrono.RWND, now)
            elif (st := ch[0]) != _CHRONO_NONE:
                # chrono.stop(ch, RWND or BUSY, queued, now), inline: after every send.
                # It switches a running RWND or BUSY to BUSY while data is queued, else
                # to none (its _switch() adds the time spent in the state that ends).
                ch[1 + st] += now - ch[1]
                ch[0] = _CHRONO_BUSY if snd.buf.nbytes > 0 else _CHRONO_NONE
                ch[1] = now

    def _cwnd_validate(self: Connection, limited: bool) -> None:
        """Linux tcp_cwnd_validate(): remember, per window of data, whether cwnd was
        the limit, or else the most packets that were out."""
        snd = self.snd
        una, usage = snd.snd_una, self.cwnd_usage_seq
        packets_out = -(-(((snd.snd_max - una + _HALF) & _MASK) - _HALF) // self.mss)  # in_flight
        if una == usage or ((usage - una + _HALF) & _MASK) < _HALF or limited or (  # sq.ge()
                not self.cwnd_limited and packets_out > self.max_packets_out):
            self.cwnd_limited = limited
            self.max_packets_out = packets_out
            self.cwnd_usage_seq = snd.snd_nxt

    def _is_cwnd_limited(self: Connection) -> bool:
        """Linux tcp_is_cwnd_limited(): may an ACK grow cwnd? Yes if cwnd was the limit
        in this window; in slow start, also until cwnd is twice the most packets out."""
        if self.cwnd_limited:
            return True
        cc = self.rec.cc
        if cc.cwnd < cc.ssthresh:
            return cc.cwnd < 2 * self.max_packets_out
        return False

    def _retransmit_lost(self: Connection, seq: int, now: int) -> bool:
        """Resend the lost range at ``seq`` as far as PRR's window allows, as one
        super-segment when the device cuts them (Linux tcp_xmit_retransmit_queue():
        up to cwnd - in_flight segments of a lost skb at once). False: no room."""
        snd = self.snd
        rec = self.rec
        rack = rec.rack
        assert rack is not None
        mss = self.mss
        budget = rec.budget(snd.snd_una, snd.snd_nxt, snd.snd_max)
        if budget <= 0:
            return False
        quota = -(-budget // mss)
        if self.tso_max:
            room = (self.tso_max - IP_TCP_HEADERS - MAX_TCP_OPTIONS) // mss
            quota = min(quota, max(room, 1))
        else:
            quota = 1
        seq, length = rack.next_lost(quota * mss) or (seq, mss)   # the range at seq
        rec_end = snd.next_record_end(seq)
        if rec_end is not None and rec_end < length:
            length = rec_end                 # a retransmission keeps a record's end
        data_end = snd.data_end
        fin = False
        if snd.fin_queued and sq.gt(sq.add(seq, length), data_end):
            length = sq.diff(data_end, seq)  # the range holds the FIN
            fin = True
        if length > mss and snd.snd_up is not None:
            length = mss
        self._transmit(seq, length, now, fin=fin)
        return True

    def _tso_length(self: Connection, nxt: int, left: int, usable: int, budget: int, *,
                    push: bool = False) -> int:
        """Bytes of new data for one TSO super-segment at ``nxt``: whole MSS segments,
        as many as an MSS-at-a-time sender would send back to back right now.

        That sender sends while ``budget > 0``, so ceil(budget / MSS) segments;
        whole ones while the data and the peer's window last (the short tail goes
        the ordinary way, through the silly-window and Nagle checks); and stops at
        the segment that carries the end of a write, whose PSH the device only
        keeps on the last piece. No TSO across urgent data: each segment needs its
        own urgent pointer; nor while a D-SACK waits, which only the first segment
        carries (Receiver.sent_ack()). Room is kept for SACK blocks, which the TS
        option length leaves out.
        """
        snd = self.snd
        mss = self.mss
        if snd.snd_up is not None and sq.gt(snd.snd_up, nxt):
            return 0
        rcv = self.rcv
        if rcv is not None and rcv.dsack is not None:
            return 0
        room = (self.tso_max or SOFT_GSO_ROOM) - IP_TCP_HEADERS - MAX_TCP_OPTIONS
        quota = -(-budget // mss)
        edge = min(left, usable)             # the data's end or the window's edge
        record = False
        segs = min(quota, room // mss, left // mss, usable // mss)
        rec_end = snd.next_record_end(nxt)
        if rec_end is not None and rec_end < edge:
            edge, record = rec_end, True         # a record's end: nothing crosses it
            segs = min(segs, rec_end // mss)
        else:
            mark = snd.mark_after(nxt)
            if mark is not None:
                segs = min(segs, -(-sq.diff(mark, nxt) // mss))
        length = segs * mss
        tail = edge - length
        if 0 < tail < mss and segs < quota and edge <= room \
                and (record or push or not self._nagle_holds(tail)):
            # The short piece up to the edge goes in the same super-segment, as Linux's
            # tcp_mss_split_point() sends up to it when tcp_nagle_check() lets it (a
            # record's end is no queue tail: Nagle does not hold it back).
            length = edge
        return length if length > mss else 0


    def _nagle_holds(self: Connection, n: int) -> bool:
        """Hold back a small segment? (Linux tcp_nagle_check, Minshall's variant)."""
        if self.opts.cork or self.snd.more:
            return True
        if self.opts.nodelay:
            return False
        snd = self.snd
        return snd.in_flight() > 0 and sq.gt(snd.snd_sml, snd.snd_una) \
            and sq.le(snd.snd_sml, snd.snd_nxt)

    def _transmit(self: Connection, seq: int, n: int, now: int, fin: bool,
                  push: bool = False) -> None:
        """Send [seq, seq + n) (and the FIN) from the buffer and do the bookkeeping.

        PSH goes on the segment that ends a write and, as Linux __tcp_transmit_skb()
        forces it "to expedite GRO flush at the receiver", on every super-segment (a
        device keeps it on the last piece only): ``push`` marks the MSS segment that
        ends one when the stack builds them one at a time."""
        snd = self.snd
        smax = snd.snd_max
        # sq.lt(seq, snd_max): new data (seq == snd_max) decided by the equality,
        # else the unsigned difference (two operations, not four)
        retrans = seq != smax and ((seq - smax) & _MASK) >= _HALF
        if not retrans and n and smax == snd.snd_una:               # nothing in flight
            # RFC 5681 4.1 / Linux tcp_cwnd_restart(): after an idle RTO, restart slow.
            self.rec.cc.on_idle_restart(now, self.rtt.rto)   # (positional: inlined)
        if (end := seq + n) > _MASK:         # sq.add(seq, n): the mask only when it wraps
            end &= _MASK
        flags = ACK
        # snd.mark_after(seq), inline for its usual answers (marks are kept until acked:
        # retransmissions too): no marks, none after seq, or the first one.
        marks = snd.push_marks
        # (sq.le(last, seq): the mark at this segment's end, the usual one, is after seq
        # with no difference to take: n > 0 there, as end == seq was the test before)
        if not marks or (last := marks[-1]) == seq \
                or last != end and ((last - seq) & _MASK) >= _HALF:       # sq.le(last, seq)
            mark = None
        elif (first := marks[0]) is last or ((seq - first) & _MASK) >= _HALF:  # sq.gt(first, seq)
            mark = first
        else:
            mark = snd.mark_after(seq)
        if push or (n > self.mss and not retrans) or (
                mark is not None and (mark == end or ((mark - end) & _MASK) >= _HALF)):  # sq.le
            flags |= PSH
        if fin:
            flags |= FIN
        urgent = 0
        if snd.snd_up is not None and sq.gt(snd.snd_up, seq):
            flags |= URG
            urgent = min(sq.diff(snd.snd_up, seq), 0xFFFF)
        # snd.slice(seq, n), its offset inline
        if not n:
            payload = b""
        elif seq == (b := snd.buf_seq):      # the buffer's first byte: no difference to take
            payload = snd.buf.slice(0, n)
        elif -_DIGIT <= (off := seq - b) <= _DIGIT:            # sq.diff: the plain one
            payload = snd.buf.slice(off, n)
        else:
            payload = snd.buf.slice(((off + _HALF) & _MASK) - _HALF, n)
        ecn = self.ecn
        rcv = self.rcv
        if ecn is None and self.ts_ok and rcv is not None and not rcv.ooo and not rcv.dsack:
            # self._segment(flags, seq, payload, urgent), inline for the usual segment
            # (the timestamp its only option, no SACK blocks, no ECN): its OutTs entry
            # (flags has ACK), then the bookkeeping of an ACK sent.
            ack = rcv.rcv_nxt
            if (tsval := self.now // 1000 + self.ts_offset) > 0xFFFFFFFF:  # (mask if it wraps)
                tsval &= 0xFFFFFFFF
            entry = (flags, seq, ack, rcv.window_field(), urgent, payload, tsval, self.ts_recent)
            conn = self                      # (Connection's attributes, as mypy sees them)
            out = conn.outbox
            if out:
                out.append(entry)  # type: ignore[union-attr,arg-type]
            else:
                conn.outbox = [entry]  # type: ignore[list-item]
            conn.segs_out += 1
            conn.last_ack_sent = ack
            ackp = conn.ackp                 # ackp.on_ack_sent(), inline
            ackp.deadline = None
            if ackp.quick:
                ackp.quick -= 1
            conn.delack = None               # (rcv.dsack is None already)
        else:
            if ecn is not None and ecn.queue_cwr and n and not retrans:
                flags |= CWR                 # RFC 3168 6.1.2: the window was reduced
                ecn.queue_cwr = False
            seg = self._segment(flags, seq, payload, urgent)
            if retrans and ecn is not None and ecn.ok:
                ecn.no_ect.add(id(seg))  # Linux tcp_ecn_send(): no ECT on a retransmission
        if fin:
            end = end + 1 if end != _MASK else 0                    # sq.add(end, 1)
        mss = self.mss
        segs = -(-n // mss) if n > mss else 1   # a TSO super-segment stands for several
        if segs > 1:
            self.segs_out += segs - 1
            ackp = self.ackp
            if ackp.quick:
                # Linux tcp_dec_quickack_mode(): each segment carrying the ACK counts.
                ackp.quick = max(ackp.quick - (segs - 1), 0)
        if n:
            self.data_segs_out += segs
            self.last_data_sent = now
            ackp = self.ackp                 # ackp.on_data_sent(now), inline
            if (last_rcv := ackp.last_data_rcv) is not None and now - last_rcv < DELACK_MIN_US:
                ackp.pingpong = True         # Linux tcp_event_data_sent(): interactive
            if n % mss and not retrans:
                # Its last piece is short (Linux tcp_minshall_update(): len < pcount * mss;
                # tcp_write_xmit() calls it for new data only, not retransmissions).
                snd.snd_sml = end
        rec = self.rec
        rack = rec.rack
        if rack is not None and (n or fin):
            if rack is IDLE_RACK:
                rack = rec.rack = Rack(self.mss)   # the first data: records of its own
            if retrans:
                rack.on_send(seq, end, now, retrans=True)
            else:
                rack.sent = sent = rack.sent + 1   # rack.on_send(), inline: a new record
                rack.recs.append([seq, end, now, 0, sent])
        if rec.prr is not None:
            rec.prr.out += segs                  # Linux prr_out: sent during recovery
        if retrans:
            self.total_retrans += 1
            snd.bytes_retrans += n
            if sq.gt(end, snd.rtx_high):
                snd.rtx_high = end
            if rack is not None:
                if rec.undo_stamp is None:
                    rec.undo_stamp = now         # Linux retrans_stamp
                rec.undo_retrans += segs
        else:
            snd.bytes_sent += n
            if segs > 1:
                # One RTT sample point per segment, as if they had left one by one.
                log = snd.sent_log
                if log is None:
                    log = snd.sent_log = deque()
                log.extend(((seq + i * mss) & _MASK, now) for i in range(1, segs))
            if n:
                log = snd.sent_log           # snd.log_sent(), inline
                point = (end if not fin else (seq + n) & _MASK, now)
                if log is None:
                    snd.sent_log = deque((point,))
                else:
                    log.append(point)
        nxt = snd.snd_nxt
        if seq == nxt or ((nxt - end) & _MASK) >= _HALF:            # sq.gt(end, nxt)
            snd.snd_nxt = end
        # sq.gt(end, snd_max); new data (seq == snd_max, n < _HALF) goes past it unless empty
        if (end != smax) if seq == smax else 0 < ((end - smax) & _MASK) <= _HALF:
            snd.snd_max = end
        timers = self                        # self.timers: a property naming self
        if timers.rtx is None:
            # rtt.backed_off(), inline (no shift by 0: it takes the general way)
            rto = self.rtt.rto << b if (b := self.backoff) else self.rtt.rto
            timers.rtx = now + (rto if rto < RTO_MAX_US else RTO_MAX_US)  # noqa: FURB136
            timers.rtx_kind = RTO
        timers.persist = None
