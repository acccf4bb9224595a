"""What comes in: a segment in SYN_SENT and in the synchronized states, the ACK field.

Theory of operation
-------------------
:meth:`InputMixin._rcv_slow` follows RFC 9293 3.10.7.4 step by step --
PAWS (RFC 7323 5.3), sequence acceptability, RST (RFC 5961 3.2: exact match or a
challenge ACK), SYN (RFC 5961 4.2), the ACK field (:meth:`InputMixin._process_ack`:
RTT samples, the congestion controller, loss recovery, the send window), the
urgent pointer, the text (reassembly and the ACK policy) and the FIN -- and does
what Linux does where the RFC leaves a choice. :meth:`InputMixin._rcv_syn_sent`
is the handshake's side (3.10.7.3). The usual segment of an established connection
takes a shorter way (:mod:`synack.tcp.fastpath`, Linux's header prediction), with
the same outcome. :class:`~synack.tcp.connection.Connection` holds the state; this
module only processes what arrives.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.fastpath import rcv_handshake_ack, rcv_last_ack, rcv_synchronized
from synack.tcp.options import TS_HALF
from synack.tcp.rack import IDLE as IDLE_RACK
from synack.tcp.rack import Rack
from synack.tcp.recovery import CaState
from synack.tcp.rtt import RTO_FALLBACK_US
from synack.tcp.scoreboard import NO_SACKS, Scoreboard
from synack.tcp.sender import shared
from synack.tcp.state import CAN_RECEIVE, Event, State
from synack.wire.tcp import ACK, ECE, FIN, RST, SYN, URG, TcpSegment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

# `state in` a tuple compares identity first; a frozenset of Enum members would call
# Enum.__hash__ (Python code) for every segment.
_CAN_RECEIVE = tuple(CAN_RECEIVE)
_MASK, _HALF = sq.MASK, sq.HALF   # for the inlined arithmetic of the per-segment paths
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_CLOSE_WAIT = State.CLOSE_WAIT
_CLOSING = State.CLOSING
_FIN_WAIT_1 = State.FIN_WAIT_1
_FIN_WAIT_2 = State.FIN_WAIT_2
_LAST_ACK = State.LAST_ACK
_SYN_RECEIVED = State.SYN_RECEIVED
# State, Event, CaState members bound once (a member lookup on an Enum class is slow).
_EV_ABORT = Event.ABORT
_EV_RCV_ACK_OF_FIN = Event.RCV_ACK_OF_FIN
_EV_RCV_ACK_OF_SYN = Event.RCV_ACK_OF_SYN
_EV_RCV_FIN = Event.RCV_FIN
_EV_RCV_FIN_ACK_OF_FIN = Event.RCV_FIN_ACK_OF_FIN
_EV_RCV_RST = Event.RCV_RST
_EV_RCV_SYN = Event.RCV_SYN
_EV_RCV_SYN_ACK = Event.RCV_SYN_ACK
_CA_LOSS = CaState.LOSS
_CA_OPEN = CaState.OPEN


class InputMixin:
    """The receive side's processing, for :class:`~synack.tcp.connection.Connection`."""

    __slots__ = ()   # Connection's slots hold the state

    # Set here as well as in Connection.__init__; declared so that mypy types them alike.
    retrans_stamp: int | None
    delack: int | None     # Timers' (a connection is its own Timers)
    persist: int | None
    ut_start: int | None
    probe_start: int | None
    rtt_seq: int | None
    persist_backoff: int
    brief: dict[str, object] | None

    # A segment in a synchronized state: the fast path's entry (tcp/fastpath.py), which
    # hands what it does not predict to _rcv_slow.
    _rcv_synchronized = rcv_synchronized
    # The predictions of SYN_RECEIVED's and LAST_ACK's usual segment, likewise.
    _rcv_handshake_ack = rcv_handshake_ack
    _rcv_last_ack = rcv_last_ack

    def _rcv_syn_sent(self: Connection, seg: TcpSegment, now: int) -> None:
        snd = self.snd
        flags = seg.flags
        if flags & ACK and (sq.le(seg.ack, snd.iss) or sq.gt(seg.ack, snd.snd_max)):
            if not flags & RST:
                self._send_reset_reply(seg)   # <SEQ=SEG.ACK><CTL=RST>
            return
        if flags & RST:
            if flags & ACK:
                self._fail(errno.ECONNREFUSED, now, _EV_RCV_RST, "rcv RST: connection refused")
            return
        if not flags & SYN:
            return
        ts = seg.timestamps
        if flags & ACK and ts is not None and ts[1] and self.offer_ts \
                and self.retrans_stamp is not None:
            # RFC 7323 3.2 / Linux tcp_rcv_synsent_state_process(): a SYN,ACK must echo
            # a TSval of one of our SYNs; otherwise RST, and keep waiting.
            first = self.tsval(self.retrans_stamp)
            if (ts[1] - first) & 0xFFFFFFFF > (self.tsval(now) - first) & 0xFFFFFFFF:
                self.cfg.mib["TcpExtPAWSActiveRejected"] += 1
                self._send_reset_reply(seg)
                return
        self._take_syn_options(seg, now)
        rcv = self.rcv
        assert rcv is not None
        if flags & ACK:
            self._on_new_ack(seg.ack, now)
            if self.ts_ok and seg.timestamps is not None and self.retransmits:
                # RFC 7323 4.1: the echo times even a retransmitted SYN.
                self.rtt.sample(max((self.tsval(now) - seg.timestamps[1]) & 0xFFFFFFFF,
                                    1) * 1000)
            self._start_data_rto()
            snd.snd_wnd = shared(seg.window)  # never scaled in a SYN (RFC 7323 2.2)
            snd.max_wnd = snd.snd_wnd
            snd.snd_wl1 = seg.seq
            snd.snd_wl2 = snd.snd_una if seg.ack == snd.snd_una else seg.ack  # shared int
            if self.ecn is not None:
                self._ecn_rcv_synack(seg)
            self._change(_EV_RCV_SYN_ACK, now, "rcv SYN,ACK")
            self.last_rcv = now
            tfo = self.tfo
            if (seg.payload or flags & FIN) and tfo is not None \
                    and (tfo.cookie is not None or tfo.data_len):
                # Linux takes a SYN,ACK's data (and FIN) only after a Fast Open SYN
                # (tcp_fastopen_add_skb()); otherwise the peer sends it again. The
                # window is the one our SYN offered (no right edge is set before).
                rcv.rcv_adv = sq.add(rcv.rcv_nxt, min(self.rcv_capacity, 0xFFFF))
                rcv.accept(sq.add(seg.seq, 1), seg.payload, bool(flags & FIN))
                if rcv.fin_received:
                    self._change(_EV_RCV_FIN, now, "rcv FIN (in the SYN,ACK)")
            if tfo is None or not self._tfo_synack(seg, now):
                self._send_ack()     # else the SYN's data goes again, with this ACK
            if self.wr_shut:
                self._queue_fin(now)
            self._arm_keepalive(now)
        else:
            # Simultaneous open (RFC 9293 3.5, Figure 8): answer SYN,ACK with our ISS.
            snd.snd_wnd = seg.window
            snd.snd_wl1, snd.snd_wl2 = seg.seq, 0
            self._change(_EV_RCV_SYN, now, "rcv SYN (simultaneous open)")
            self.retransmits = 0
            self.backoff = 0
            self._send_synack(now)

    def _rcv_slow(self: Connection, seg: TcpSegment, now: int) -> None:
        """Any segment in a synchronized state that the fast path
        (:meth:`~synack.tcp.fastpath.FastPathMixin._rcv_synchronized`, Linux's header
        prediction) does not take: RFC 9293 3.10.7.4 step by step."""
        rcv = self.rcv
        snd = self.snd
        assert rcv is not None
        flags = seg.flags
        state = self.state
        # The peer's own SYN,ACK completing a simultaneous open (RFC 9293 Figure 8): its
        # SYN is old, but Linux tcp_validate_incoming() lets it through ("tcp: Don't drop
        # SYN+ACK for simultaneous connect()") and acknowledges it.
        simultaneous = (
            state is _SYN_RECEIVED
            and flags & (SYN | ACK | RST | FIN) == SYN | ACK and not self.passive
            and not seg.payload
            and seg.seq == rcv.irs and seg.ack == snd.snd_nxt
        )
        # RFC 7323 5.3: PAWS drops an old duplicate before anything else looks at it.
        # (paws_reject() is asked only when the TSval is older than TS.Recent: the rare case.)
        neg = self
        ts = seg.timestamps
        if not simultaneous and ts is not None and neg.ts_ok \
                and ((ts[0] - neg.ts_recent) & 0xFFFFFFFF) >= TS_HALF \
                and neg.paws_reject(seg, now) and self._paws_drop(seg, now):
            return
        # First: sequence number acceptability (a segment at RCV.NXT always passes).
        if not simultaneous and seg.seq != rcv.rcv_nxt and not rcv.acceptable(
                seg.seq, len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)):
            if flags & RST:
                return
            if flags & SYN and state is _SYN_RECEIVED and seg.seq == rcv.irs:
                # The peer retransmitted its SYN (Linux tcp_check_req(): the SYN,ACK is
                # sent again, at most once per tcp_invalid_ratelimit).
                if not self._oow_limited(seg, now, "TcpExtTCPACKSkippedSynRecv"):
                    self._send_synack(now)
                return
            if flags & SYN:
                self._send_challenge_ack(now)   # Linux tcp_validate_incoming(): syn_challenge
                return
            if seg.payload and self.sack_ok and self.cfg.int("net.ipv4.tcp_dsack") \
                    and sq.le(sq.add(seg.seq, len(seg.payload)), rcv.rcv_nxt):
                rcv.dsack = (seg.seq, sq.add(seg.seq, len(seg.payload)))  # RFC 2883
            if not self._oow_limited(seg, now, "TcpExtTCPACKSkippedSeq"):
                self._send_ack()
            return
        self.last_rcv = now
        brief = self.brief                   # (the Rare fields of brief: rare.py)
        if brief is not None and "probes_out" in brief:
            self.probes_out = 0
        recent = None
        if ts is not None and neg.ts_ok:
            ts_recent = neg.ts_recent
            recent = (ts_recent, neg.ts_recent_stamp)
            # RFC 7323 4.3 (2): the TSval of a segment at the left window edge (and not
            # older than TS.Recent) becomes TS.Recent.
            seq, left = seg.seq, self.last_ack_sent
            if (seq == left or ((seq - left) & 0xFFFFFFFF) >= TS_HALF) \
                    and ((ts[0] - ts_recent) & 0xFFFFFFFF) < TS_HALF:
                neg.ts_recent = ts[0]
                neg.ts_recent_stamp = now
        # Second: RST, exact match only (RFC 5961 3.2).
        if flags & RST:
            if seg.seq != rcv.rcv_nxt:
                self._send_challenge_ack(now)
                return
            if state is _SYN_RECEIVED and self.passive and self.tfo is None:
                self._fail(errno.ECONNREFUSED, now, _EV_RCV_RST, "rcv RST")
            else:
                # Linux tcp_reset(): EPIPE in CLOSE_WAIT, ECONNRESET elsewhere.
                err = errno.EPIPE if state is _CLOSE_WAIT else errno.ECONNRESET
                self._fail(err, now, _EV_RCV_RST, "rcv RST")
            return
        # Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2).
        if flags & SYN and not simultaneous:
            if state is _SYN_RECEIVED and self.passive:
                # Linux tcp_check_req() (embryonic_reset): a new SYN resets a half-open
                # connection and drops it; RFC 9293 3.10.7.4 returns it to LISTEN silently.
                self._send_reset_reply(seg)
                self._change(_EV_ABORT, now, "rcv SYN in SYN_RECEIVED: RST")
                return
            self._send_challenge_ack(now)
            return
        # Fifth: the ACK field.
        if not flags & ACK:
            return
        # RFC 7323 2.2: the window of a SYN is never scaled.
        wnd = seg.window if flags & SYN else seg.window << self.snd_wscale
        # snd.fin_acked, inline (a property, and sq.gt() under it): sq.gt(snd_una, data_end).
        fin_was_acked = snd.fin_queued and (
            (snd.buf_seq + snd.buf.nbytes - snd.snd_una + _HALF) & _MASK) < _HALF
        if state is _SYN_RECEIVED:
            ack = seg.ack     # sq.lt(snd_una, ack) and sq.le(ack, snd_max), inline:
            if not (((snd.snd_una - ack + _HALF) & _MASK) < _HALF and (
                    ack == snd.snd_max or ((ack - snd.snd_max + _HALF) & _MASK) < _HALF)):
                self._send_reset_reply(seg)
                return
            self._on_new_ack(ack, now)
            # self._start_data_rto(), inline: RFC 6298 (5.7) without an RTT sample.
            if self.rtt.srtt is None:
                self.rtt.rto = RTO_FALLBACK_US
            self.backoff = 0
            # RFC 9293 3.10.7.4: set SND.WND, WL1, WL2 from this ACK outright. A passive
            # child never set WL1, so the "newer segment" test of update_window() would
            # wrongly ignore the window whenever the peer's ISN lies 2**31 past zero.
            # (snd.update_window() after WL1 = SEG.SEQ - 1, inline: it always takes it.)
            # RCV.NXT's own int object when equal: one 32-byte int less per connection.
            snd.snd_wl1 = rcv.rcv_nxt if seg.seq == rcv.rcv_nxt else seg.seq
            una = snd.snd_una
            snd.snd_wl2 = una if ack == una else ack    # one object when equal
            if wnd != snd.snd_wnd:
                wnd = shared(wnd)
            snd.snd_wnd = wnd
            if wnd > snd.max_wnd:  # noqa: PLR1730 - cheaper than max()
                snd.max_wnd = wnd
            self._change(_EV_RCV_ACK_OF_SYN, now, "rcv ACK of SYN")
            self._arm_keepalive(now)
            if self.rare is not None and self.wr_shut and not snd.fin_queued:  # (rare.py)
                self._queue_fin(now)
            elif not seg.payload and not flags & (SYN | FIN | URG) and self.ecn is None \
                    and not snd.fin_queued:
                # The handshake's bare ACK (the usual one): no urgent pointer, no text,
                # no FIN, no FIN of ours to be acked, no ECN: of what follows only the
                # delayed-ACK timer's test is left.
                if self.ackp.deadline is not None and self.delack is None \
                        and self.last_ack_sent != rcv.rcv_nxt:
                    self.delack = self.ackp.deadline
                return
            state = self.state
        elif ((snd.snd_max - seg.ack + _HALF) & _MASK) < _HALF or (  # sq.gt(ack, snd_max)
                (seg.ack - snd.snd_una + (snd.max_wnd or 1) + _HALF) & _MASK) < _HALF:
            # Acks something not yet sent, or too old to be plausible (RFC 5961 5.2,
            # sq.lt(ack, snd_una - max_wnd)): dropped with a challenge ACK, and its TSval
            # is not TS.Recent (Linux tcp_ack() returns before tcp_replace_ts_recent()).
            if recent is not None:
                neg.ts_recent, neg.ts_recent_stamp = recent
            self._send_challenge_ack(now)
            return
        elif state is _LAST_ACK and seg.ack == snd.snd_max and self.trace is None \
                and (brief := self.brief) is not None and "app_closed" in brief \
                and ((snd.buf_seq + snd.buf.nbytes - snd.snd_max + _HALF) & _MASK) < _HALF:
            # The ACK of our FIN, to an orphan in LAST_ACK (close() called; the FIN is
            # sent, as SND.MAX lies past the data): the connection ends here (Linux
            # tcp_rcv_state_process(): tcp_ack(), then tcp_done()). What _process_ack()
            # would update besides SND.UNA -- RTT, congestion window, RACK records,
            # delivery rate -- ends with it, unread (it counts no MIB event and sends
            # nothing): only SND.UNA moves, the memory charged goes back, CLOSED.
            snd.on_ack(snd.snd_max)
            self.mem_release()
            self._change(_EV_RCV_ACK_OF_FIN, now)
            return
        else:
            self._process_ack(seg, wnd, now)
        fin_acked_now = snd.fin_queued and not fin_was_acked and (
            (snd.buf_seq + snd.buf.nbytes - snd.snd_una + _HALF) & _MASK) < _HALF
        if state is _LAST_ACK and fin_acked_now:
            self._change(_EV_RCV_ACK_OF_FIN, now)
            return
        if state is _CLOSING and fin_acked_now:
            self._change(_EV_RCV_ACK_OF_FIN, now)
            return
        # Sixth: the urgent pointer (Linux: the urgent byte is the one before it).
        if flags & URG and seg.urgent and state in _CAN_RECEIVE:
            rcv.on_urgent(sq.add(seg.seq, seg.urgent - 1))
        # Seventh: segment text.
        payload = seg.payload
        if (payload and self.brief is not None and self.app_closed and state in _CAN_RECEIVE
                and state in (_FIN_WAIT_1, _FIN_WAIT_2)
                and sq.gt(sq.add(seg.seq, len(payload)), rcv.rcv_nxt)):
            # RFC 1122 4.2.2.13 / Linux: new data for a closed socket is answered by RST.
            self._send_reset_reply(seg)
            self._fail(errno.ECONNRESET, now, _EV_ABORT, "data after close: RST")
            return
        fin_was_received = rcv.fin_received
        ack_now = False
        if payload and rcv.ready and state in _CAN_RECEIVE and self.cfg.mem_over_limit():
            # Linux tcp_data_queue(): no memory for it while the queue holds data
            # already: dropped (TcpExtTCPRcvQDrop) and an ACK at once.
            self.cfg.mib["TcpExtTCPRcvQDrop"] += 1
            self._send_ack()
            return
        if (payload or flags & FIN) and state in _CAN_RECEIVE:
            seq = seg.seq
            in_order = seq == rcv.rcv_nxt
            had_ooo = bool(rcv.ooo)
            gained = rcv.accept(seq, payload, bool(flags & FIN))
            if payload:
                self.mem_sync()
            if not payload and not in_order:
                ack_now = True               # an out-of-order FIN: a duplicate ACK at once
            if payload:
                ackp = self.ackp
                # Linux tcp_measure_rcv_mss(): at most advmss, so a GRO super-segment
                # counts as the full-sized segments it stands for.
                ackp.observe(min(len(payload), self.adv_mss))
                ooo = not in_order or had_ooo or bool(rcv.ooo) or rcv.dsack is not None
                if ooo:
                    ackp.enter_quickack(rcv.capacity)
                ack_now = ackp.on_data(   # unacked: sq.diff(rcv_nxt, last_ack_sent), inline
                    unacked=((rcv.rcv_nxt - self.last_ack_sent + _HALF) & _MASK) - _HALF,
                    out_of_order=ooo, now=now)
                if in_order and not gained:
                    ack_now = True           # no room (zero window): say so at once, as Linux
        elif payload or flags & (SYN | FIN):   # (the segment occupies sequence space)
            ack_now = True                   # a duplicate FIN: say where we are
            if simultaneous and neg.sack_ok and self.cfg.int("net.ipv4.tcp_dsack"):
                # The peer's SYN again (Linux tcp_data_queue(): an old segment gets a
                # D-SACK block, RFC 2883).
                rcv.dsack = (seg.seq, sq.add(seg.seq, 1))
        fin_now = rcv.fin_received and not fin_was_received
        ecn = self.ecn
        if ecn is not None and ecn.ok and self._ecn_rcv(seg):
            ack_now = True
        # Eighth: FIN, and the transitions it makes with the ACK of ours.
        if state is _FIN_WAIT_1:
            if fin_acked_now and fin_now:
                self._change(_EV_RCV_FIN_ACK_OF_FIN, now)
            elif fin_acked_now:
                self._change(_EV_RCV_ACK_OF_FIN, now)
            elif fin_now:
                self._change(_EV_RCV_FIN, now)
            ack_now = ack_now or fin_now     # Linux tcp_fin(): ACK at once in FIN_WAIT_*
        elif fin_now:
            if state is _FIN_WAIT_2:
                ack_now = True
            elif not ack_now:
                ack_now = self.ackp.on_fin(now=now)   # ESTABLISHED: ping-pong, may wait
            self._change(_EV_RCV_FIN, now)
        if ack_now:
            self._send_ack()
        elif self.ackp.deadline is not None and self.delack is None \
                and self.last_ack_sent != rcv.rcv_nxt:
            self.delack = self.ackp.deadline

    def _paws_drop(self: Connection, seg: TcpSegment, now: int) -> bool:
        """A segment that failed PAWS (never a RST: those pass): True when it is dropped,
        as Linux tcp_validate_incoming() drops it after tcp_disordered_ack_check()."""
        rcv = self.rcv
        snd = self.snd
        assert rcv is not None
        flags = seg.flags
        seq = seg.seq
        tsval = seg.timestamps[0] if seg.timestamps is not None else 0
        if flags & ACK and not seg.payload and not flags & (SYN | FIN):
            if seq != rcv.rcv_nxt:
                if sq.lt(seq, rcv.rcv_nxt):
                    # An old pure ACK: common (reordering); dropped without an answer.
                    self.cfg.mib["TcpExtPAWSOldAck"] += 1
                    return True
            elif seg.ack == snd.snd_una \
                    and not snd.may_update_window(seq, seg.ack, seg.window << self.snd_wscale) \
                    and sq.diff(self.ts_recent, tsval) <= self.rtt.rto * 1200 // 1_000_000:
                # A duplicate ACK overtaken by a newer one (within the replay window of
                # about an RTO in TSval ticks): processed as if PAWS had passed.
                return False
        if flags & SYN:
            self._send_challenge_ack(now)
            return True
        self.cfg.mib["TcpExtPAWSEstabRejected"] += 1
        if not self._oow_limited(seg, now, "TcpExtTCPACKSkippedPAWS"):
            self._send_ack()
        return True

    def _process_ack(self: Connection, seg: TcpSegment, wnd: int, now: int) -> None:
        """An acceptable ACK in a synchronized state: SND.UNA, SACK, RTT, recovery, window."""
        snd = self.snd
        rec = self.rec
        una_before = snd.snd_una
        old_wnd = snd.snd_wnd
        ack = seg.ack
        if ack == una_before and ack == snd.snd_max and rec.state is _CA_OPEN \
                and not seg.sack_blocks and not seg.flags & ECE and self.trace is None \
                and (rec.board is None or rec.board is NO_SACKS) \
                and (rec.rack is None or not rec.rack.recs):
            # Nothing in flight, nothing new acknowledged (a FIN, data, a window update):
            # no RTT sample, no duplicate ACK, nothing delivered; only the window may
            # move (what the rest of this method would do with it).
            snd.update_window(seg.seq, ack, wnd)
            if snd.snd_wnd > 0 and self.persist is not None:
                self.persist = None   # the window opened: stop probing
                self.persist_backoff = 0
                self.probe_start = None      # Linux tcp_ack_probe(): icsk_probes_tstamp = 0
            return
        # The sequence comparisons of this method are inline: it runs for every ACK.
        dupack = (ack == una_before and not seg.payload and not seg.flags & (SYN | FIN)
                  and wnd == old_wnd
                  and ((una_before - snd.snd_max + _HALF) & _MASK) < _HALF)  # sq.gt(max, una)
        acked = 0
        rtt_us: int | None = None
        if ((una_before - ack + _HALF) & _MASK) < _HALF:                # sq.gt(ack, una)
            rtt_us = snd.rtt_sample(seg.ack, now)
            if rtt_us is None and self.ts_ok and seg.timestamps is not None \
                    and seg.timestamps[1]:
                rtt_us = ((self.tsval(now) - seg.timestamps[1]) & 0xFFFFFFFF or 1) * 1000
            acked = ((ack - una_before + _HALF) & _MASK) - _HALF
            self._on_new_ack(ack, now, rtt_us)
        newly_sacked = 0
        board = rec.board
        dsack: tuple[int, int] | None = None
        if board is not None and (board is not NO_SACKS or seg.sack_blocks):
            if board is NO_SACKS:
                board = rec.board = Scoreboard(self.mss)
            newly_sacked = board.on_ack(snd.snd_una, seg.sack_blocks, snd.snd_max)
            dsack = board.last_dsack
            if dsack is not None:
                self.dsack_dups += 1
        rack = rec.rack
        if rack is not None and (rack.recs or seg.sack_blocks):
            if rack is IDLE_RACK:
                rec.rack = Rack(self.mss)    # SACK blocks for nothing sent: its own, still
            self._rack_ack(seg, una_before, acked, dupack, dsack, rtt_us, wnd, now)
            return
        if ((snd.snd_una - ack + _HALF) & _MASK) <= _HALF:              # sq.ge(ack, una)
            snd.update_window(seg.seq, ack, wnd)
            if snd.snd_wnd > 0 and self.persist is not None:
                self.persist = None   # the window opened: stop probing
                self.persist_backoff = 0
                self.probe_start = None      # Linux tcp_ack_probe(): icsk_probes_tstamp = 0
        # The SYN's sequence number is no data (counted only while the SYN was unacked:
        # a bound from ISS would wrap after 2**31 bytes and stop counting altogether).
        data_acked = acked - 1 if acked and una_before == snd.iss else acked
        self.delivered += data_acked + newly_sacked
        if acked or newly_sacked or dupack:
            rec.on_ack(snd_una=snd.snd_una, acked=data_acked, newly_sacked=newly_sacked,
                       dupack=dupack, snd_max=snd.snd_max, now=now, rtt_us=rtt_us,
                       cwnd_limited=self._is_cwnd_limited())
        if seg.flags & ECE and self.ecn is not None and self.ecn.ok:
            self._ecn_echo(now)
        if rec.state is _CA_LOSS and sq.gt(snd.snd_una, snd.snd_nxt):
            snd.snd_nxt = snd.snd_una
        if self.trace is not None:
            self._trace("ack", now)
        if acked:
            self.mem_sync()
            self._update_rate(now)
            if snd.capacity < self.snd_max_capacity and not self.cfg.mem_pressure:
                # Linux tcp_sndbuf_expand(): room for two windows of payload.
                want = 2 * rec.cc.cwnd * self.mss
                if want > snd.capacity:
                    snd.capacity = min(want, self.snd_max_capacity)

    def _rack_ack(self: Connection, seg: TcpSegment, una_before: int, acked: int,
                  dupack: bool, dsack: tuple[int, int] | None, rtt_us: int | None, wnd: int,
                  now: int) -> None:
        """The rest of :meth:`_process_ack` with RACK (Linux tcp_ack() from
        tcp_sacktag_write_queue() on): records, loss detection, PRR, undo, TLP."""
        snd = self.snd
        rec = self.rec
        rack = rec.rack
        assert rack is not None
        rtt = self.rtt
        min_rtt = rtt.min_rtt or 0
        una, smax = snd.snd_una, snd.snd_max
        blocks: list[tuple[int, int]] = []
        if seg.sack_blocks:
            first = 1 if dsack is not None else 0
            blocks = [(a, b) for a, b in seg.sack_blocks[first:]
                      if sq.lt(una, a) and sq.lt(a, b) and sq.le(b, smax)]
        newly_sacked = rack.on_ack(una, blocks, dsack is not None, now, min_rtt)
        if (acked or newly_sacked or dsack is not None) and (
                rack.dsack_seen or rack.reo_wnd_steps != 1):
            rack.update_reo_wnd(now)         # (nothing to do in the usual case)
        if ((snd.snd_una - seg.ack + _HALF) & _MASK) <= _HALF:          # sq.ge(ack, una)
            snd.update_window(seg.seq, seg.ack, wnd)
            if snd.snd_wnd > 0 and self.persist is not None:
                self.persist = None
                self.persist_backoff = 0
        data_acked = acked - 1 if acked and una_before == snd.iss else acked   # (the SYN)
        self.delivered += data_acked + newly_sacked
        # D-SACKed retransmissions (Linux tcp_check_dsack(): undo_retrans).
        dsack_undo = 0
        if dsack is not None and rec.undo_marker is not None \
                and sq.gt(dsack[1], rec.undo_marker):
            dsack_undo = max(-(-sq.diff(dsack[1], dsack[0]) // self.mss), 1)
        # tcp_packet_delayed(): the peer echoes a time before the first retransmission.
        delayed = False
        ts = seg.timestamps
        undo_stamp = rack.undo_stamp         # (rec.undo_stamp, without the property)
        if undo_stamp is not None and self.ts_ok and ts is not None and ts[1]:
            delayed = sq.lt(ts[1], self.tsval(undo_stamp))
        if rack.tlp_high_seq is not None:
            rec.on_tlp_ack(ack=seg.ack, una_advanced=acked > 0, dsack=dsack is not None,
                           dupack=dupack and not newly_sacked, now=now)
        if dsack is None and rec.state is _CA_OPEN and not newly_sacked and not dupack \
                and not rack.sacked_bytes and not rack.lost_bytes and not rack.retrans_bytes:
            # What Recovery.on_ack_rack() does with an ACK in the Open state with nothing
            # SACKed, lost or retransmitted (the usual one): no loss detection, no state
            # change, cwnd grows on forward progress (Linux tcp_cong_control()).
            timeout = 0
            segs = rack.delivered_pkts
            if segs and data_acked > 0:
                mss = self.mss
                flight = ((smax - una + _HALF) & _MASK) - _HALF    # Recovery.pipe() here
                rec.cc.on_ack(segs, now, rtt_us, flight // mss if flight > 0 else 0,
                              self._is_cwnd_limited())     # (positional: inlined)
        else:
            timeout = rec.on_ack_rack(
                snd_una=una, acked=data_acked, newly_sacked=newly_sacked,
                dupack=dupack, snd_max=smax, now=now, rtt_us=rtt_us,
                cwnd_limited=self._is_cwnd_limited(), min_rtt=min_rtt, srtt=rtt.srtt or 0,
                delayed=delayed, dsack_undo=dsack_undo)
        if seg.flags & ECE and self.ecn is not None and self.ecn.ok:
            self._ecn_echo(now)              # RFC 3168 6.1.2: once per window of data
        if not rack.recs:
            rack.fack = None
        if timeout:
            self._arm_reo_timeout(now, timeout)
        elif acked:
            self._schedule_loss_probe(now, advancing_rto=True)  # tcp_set_xmit_timer()
        if self.trace is not None:
            self._trace("ack", now)
        if acked:
            self.mem_sync()
            self._update_rate(now)
            if snd.capacity < self.snd_max_capacity and not self.cfg.mem_pressure:
                want = 2 * rec.cc.cwnd * self.mss    # Linux tcp_sndbuf_expand()
                if want > snd.capacity:
                    snd.capacity = min(want, self.snd_max_capacity)

    def _update_rate(self: Connection, now: int) -> None:
        """Delivery rate over the last RTT or so (``ss`` delivery_rate)."""
        span = now - self.rate_mark_time
        if span >= (self.rtt.srtt or 100_000):
            self.delivery_rate = (self.delivered - self.rate_mark_delivered) * 1_000_000 \
                // max(span, 1)
            self.rate_mark_time, self.rate_mark_delivered = now, self.delivered

    def _on_new_ack(self: Connection, ack: int, now: int, rtt_us: int | None = None) -> None:
        """SND.UNA advances: RTT sample (Karn), reset backoff, re-arm the RTO."""
        snd = self.snd
        brief = self.brief                   # the Brief fields' dict read directly (rare.py)
        rtt_seq: int | None = brief.get("rtt_seq") if brief is not None \
            else None  # type: ignore[assignment]
        if rtt_seq is not None and ((rtt_seq - ack + _HALF) & _MASK) < _HALF:  # sq.gt()
            assert brief is not None
            # The SYN or SYN,ACK, timed once. (self.rtt_seq = None, inline: the Brief
            # field and its drop, rtt_time, out of the dict; rare.py.)
            rtt_us = now - brief.pop("rtt_time", 0)  # type: ignore[operator]
            del brief["rtt_seq"]
            if not brief:
                self.brief = None
        if rtt_us is not None:
            self.rtt.sample(rtt_us)
            # Karn / RFC 6298 (5.5): a backed-off RTO stays until a valid sample; Linux
            # tcp_ack_update_rtt() resets icsk_backoff only here.
            self.backoff = 0
        snd.on_ack(ack)
        self.retransmits = 0
        brief = self.brief
        if brief is not None and ("retrans_stamp" in brief or "ut_start" in brief):
            # self.retrans_stamp = self.ut_start = None, inline (rare.py's Brief.__set__).
            brief.pop("retrans_stamp", None)
            brief.pop("ut_start", None)
            if not brief:
                self.brief = None
        self._rearm_rto(now)

    def _start_data_rto(self: Connection) -> None:
        """The handshake is over: RFC 6298 (5.7), as Linux tcp_init_metrics() applies it.

        Without an RTT sample (the SYN or SYN,ACK was retransmitted, so Karn's rule
        forbade one) data starts with a 3 s RTO; the handshake's backoff ends here.
        """
        if self.rtt.srtt is None:
            self.rtt.rto = RTO_FALLBACK_US
        self.backoff = 0
