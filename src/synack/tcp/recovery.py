"""Loss detection and recovery: fast retransmit, NewReno, SACK recovery, RTO.

Theory of operation
-------------------
Like Linux's ``tcp_fastretrans_alert`` the sender is in one of four states:

``OPEN``      nothing suspicious;
``DISORDER``  duplicate ACKs or SACKs arrived but not enough to call a loss; each
              one lets a new segment out beyond cwnd (limited transmit, RFC 3042);
``RECOVERY``  fast retransmit happened (RFC 5681 3.2): three duplicate ACKs, or
              with SACK a segment with DupThresh * SMSS sacked above it (RFC 6675
              IsLost). ``ssthresh`` drops, ``recover = SND.MAX``, and until an ACK
              covers ``recover`` the sender retransmits what is lost while
              ``pipe < cwnd`` (RFC 6675 5). Without SACK, lost means the first
              unacknowledged segment, again after every partial ACK (NewReno,
              RFC 6582), and each duplicate ACK stands for one segment that left
              the network (Linux's "reno SACK" emulation);
``LOSS``      the retransmission timer fired (RFC 5681 3.1, Linux tcp_enter_loss):
              cwnd = 1, everything outstanding is presumed lost and resent from
              SND.UNA in slow start, skipping what the peer has SACKed.

:meth:`pipe` is RFC 6675's estimate of bytes in the network; the connection sends
while ``pipe + segment <= cwnd * MSS``. The congestion controller only hears of
ACKs outside ``RECOVERY`` (there the window is fixed at ssthresh).

RACK (``net.ipv4.tcp_recovery`` = 1, Linux's default, with SACK)
----------------------------------------------------------------------
With a :class:`~synack.tcp.rack.Rack` attached, loss is what RACK marks lost
(time-based, RFC 8985; the DupThresh count survives as its zero reordering
window), and a loss is enough to enter ``RECOVERY`` (Linux
``tcp_time_to_recover``: "the loss is proven"). The pipe is Linux's
``tcp_packets_in_flight`` and the window during recovery follows PRR
(:mod:`synack.tcp.prr`). What to retransmit is every range marked lost, in
sequence order, in ``RECOVERY`` and ``LOSS`` alike (Linux
``tcp_xmit_retransmit_queue``). A reduction proven spurious is undone
(:meth:`Recovery.undo`): by timestamps (the peer echoes a time from before the
first retransmission: the originals arrived, Linux ``tcp_packet_delayed``) or
by D-SACKs covering every retransmission (``undo_retrans`` reaching zero).
Without SACK, or with ``tcp_recovery`` = 0, the RFC 6675 / NewReno rules above
apply.
"""

from __future__ import annotations

import enum

from synack import seq as sq
from synack.tcp.cc.base import INFINITE_SSTHRESH, CongestionControl
from synack.tcp.prr import Prr
from synack.tcp.rack import Rack
from synack.tcp.scoreboard import Scoreboard

DUPTHRESH = 3  # RFC 5681 3.2; Linux tcp_reordering default


class CaState(enum.Enum):
    """Linux's congestion-avoidance states (TCP_CA_*), as ``ss`` names them."""

    OPEN = 0
    DISORDER = 1
    CWR = 2
    RECOVERY = 3
    LOSS = 4


# CaState members bound once (a member lookup on an Enum class is slow).
_CA_DISORDER = CaState.DISORDER
_CA_LOSS = CaState.LOSS
_CA_OPEN = CaState.OPEN
_CA_RECOVERY = CaState.RECOVERY


class Recovery:
    """Duplicate ACK counting, the recovery point, and the retransmission cursor."""

    __slots__ = (
        "acked_acc",
        "board",
        "cc",
        "dupacks",
        "fast_retransmits",
        "head_pending",
        "high_rxt",
        "mss",
        "prr",
        "rack",
        "recover",
        "recoveries",
        "state",
    )

    def __init__(self, cc: CongestionControl, board: Scoreboard | None, mss: int) -> None:
        self.cc = cc
        self.board = board            # None when SACK was not agreed
        self.mss = mss
        self.state = _CA_OPEN
        self.dupacks = 0
        self.recover = 0
        self.high_rxt = 0             # RFC 6675 HighRxt: retransmitted below this
        self.head_pending = False     # NewReno: the head segment awaits retransmission
        self.fast_retransmits = 0
        self.recoveries = 0
        self.acked_acc = 0            # bytes acknowledged, not yet a whole segment
        self.rack: Rack | None = None  # RACK's records: SACK agreed and tcp_recovery = 1
        self.prr: Prr | None = None    # PRR's counters while in RECOVERY (with RACK)

    # Undo and TLP state, kept in the Rack (only a sender of data needs it; the shared
    # idle Rack is never written: every writer runs with data in flight, which has
    # records of its own).
    @property
    def prior_ssthresh(self) -> int:
        """Linux prior_ssthresh: what an undo restores."""
        return self.rack.prior_ssthresh if self.rack is not None else 0

    @prior_ssthresh.setter
    def prior_ssthresh(self, value: int) -> None:
        assert self.rack is not None
        self.rack.prior_ssthresh = value

    @property
    def undo_marker(self) -> int | None:
        """Linux undo_marker: SND.UNA when the reduction began (None: nothing to undo)."""
        return self.rack.undo_marker if self.rack is not None else None

    @undo_marker.setter
    def undo_marker(self, value: int | None) -> None:
        assert self.rack is not None
        self.rack.undo_marker = value

    @property
    def undo_retrans(self) -> int:
        """Linux undo_retrans: segments retransmitted and not yet D-SACKed."""
        return self.rack.undo_retrans if self.rack is not None else 0

    @undo_retrans.setter
    def undo_retrans(self, value: int) -> None:
        assert self.rack is not None
        self.rack.undo_retrans = value

    @property
    def undo_stamp(self) -> int | None:
        """Linux retrans_stamp: when the first retransmission of the episode left."""
        return self.rack.undo_stamp if self.rack is not None else None

    @undo_stamp.setter
    def undo_stamp(self, value: int | None) -> None:
        assert self.rack is not None
        self.rack.undo_stamp = value

    @property
    def undos(self) -> int:
        """Reductions undone (Linux's TcpExtTCP*Undo counters, summed)."""
        return self.rack.undos if self.rack is not None else 0

    @property
    def tlp_high_seq(self) -> int | None:
        """Linux tlp_high_seq: SND.NXT when the loss probe left (None: no probe out)."""
        return self.rack.tlp_high_seq if self.rack is not None else None

    @tlp_high_seq.setter
    def tlp_high_seq(self, value: int | None) -> None:
        assert self.rack is not None
        self.rack.tlp_high_seq = value

    @property
    def tlp_retrans(self) -> bool:
        """Linux tlp_retrans: the probe was a retransmission, not new data."""
        return self.rack.tlp_retrans if self.rack is not None else False

    @tlp_retrans.setter
    def tlp_retrans(self, value: bool) -> None:
        assert self.rack is not None
        self.rack.tlp_retrans = value

    # -- accounting ------------------------------------------------------------
    def pipe(self, snd_una: int, snd_nxt: int, snd_max: int) -> int:
        """Bytes presumed in the network (RFC 6675 SetPipe, or its NewReno analogue)."""
        rack = self.rack
        if rack is not None:
            # Linux tcp_packets_in_flight() in bytes (Rack.in_flight(), inline: per ACK).
            flight = ((snd_max - snd_una + sq.HALF) & sq.MASK) - sq.HALF
            flight += rack.retrans_bytes - rack.sacked_bytes - rack.lost_bytes
            return flight if flight > 0 else 0  # noqa: FURB136
        board = self.board
        if self.state is _CA_LOSS:
            if board is None:
                return sq.diff(snd_nxt, snd_una)
            return sum(sq.diff(b, a) for a, b in board.holes(snd_una, snd_nxt))
        if board is not None:
            if self.state is _CA_RECOVERY:
                return board.pipe(snd_una, self.high_rxt, snd_max)
            if not board.sacked:             # the usual case: one hole, all of the flight
                flight = ((snd_max - snd_una + sq.HALF) & sq.MASK) - sq.HALF  # sq.diff
                return max(0, flight)
            return sum(sq.diff(b, a) for a, b in board.holes(snd_una, snd_max))
        flight = sq.diff(snd_max, snd_una)
        pipe = flight - self.dupacks * self.mss
        if self.head_pending:
            pipe -= self.mss
        return max(pipe, 0)

    def budget(self, snd_una: int, snd_nxt: int, snd_max: int) -> int:
        """Bytes that may still enter the network now."""
        return self.cc.cwnd * self.mss - self.pipe(snd_una, snd_nxt, snd_max)

    # -- events ------------------------------------------------------------------
    def on_ack(self, *, snd_una: int, acked: int, newly_sacked: int, dupack: bool,
               snd_max: int, now: int, rtt_us: int | None, cwnd_limited: bool) -> None:
        """Digest one ACK (after SND.UNA and the scoreboard were updated)."""
        board = self.board
        if acked <= 0 or self.state is _CA_OPEN:
            pass                                     # the usual ACK: nothing to leave
        elif self.state is _CA_RECOVERY and sq.ge(snd_una, self.recover):
            self._exit(now)                          # the full ACK (RFC 6582 3.2 step 3)
        elif self.state is _CA_LOSS and sq.ge(snd_una, self.recover):
            self.state = _CA_OPEN
            self.dupacks = 0
        elif self.state is _CA_RECOVERY:
            # A partial ACK: NewReno retransmits the new head at once (RFC 6582 3.2 step 4).
            self.high_rxt = sq.max_seq(self.high_rxt, snd_una)
            if board is None:
                self.dupacks = max(self.dupacks - max(acked // self.mss, 1), 0)
                self.head_pending = True
        elif self.state is _CA_DISORDER:
            self.state = _CA_OPEN
            self.dupacks = 0
        if dupack or newly_sacked > 0:
            if self.state in (_CA_OPEN, _CA_DISORDER, _CA_RECOVERY):
                self.dupacks += 1
            if self.state is _CA_OPEN:
                self.state = _CA_DISORDER
        if self.state is _CA_DISORDER and self._loss_detected(snd_una):
            self._enter(snd_una, snd_max, now)
        if self.state is not _CA_RECOVERY:
            self.acked_acc += acked + newly_sacked
            segs, self.acked_acc = divmod(self.acked_acc, self.mss)
            if segs:
                self.cc.on_ack(segs, now=now, rtt_us=rtt_us,
                               in_flight=self.pipe(snd_una, snd_max, snd_max) // self.mss,
                               cwnd_limited=cwnd_limited)

    def on_ack_rack(self, *, snd_una: int, acked: int, newly_sacked: int, dupack: bool,
                    snd_max: int, now: int, rtt_us: int | None, cwnd_limited: bool,
                    min_rtt: int, srtt: int, delayed: bool, dsack_undo: int) -> int:
        """Digest one ACK with RACK (mirrors tcp_fastretrans_alert() and
        tcp_cong_control()); the rack records were updated already. Returns the
        reordering timeout to arm, in microseconds (0: none)."""
        rack = self.rack
        assert rack is not None
        mss = self.mss
        if dsack_undo and self.undo_marker is not None:
            self.undo_retrans = max(self.undo_retrans - dsack_undo, 0)
        state = self.state
        if state in (_CA_RECOVERY, _CA_LOSS) and sq.ge(snd_una, self.recover) \
                and acked > 0:
            # The recovery point is acknowledged (Linux: snd_una reached high_seq).
            if state is _CA_RECOVERY:
                if self._may_undo(delayed):
                    self.undo(unmark=False)          # tcp_try_undo_recovery()
                elif rack.reo_wnd_persist:
                    rack.reo_wnd_persist -= 1
                self._exit(now)                      # tcp_end_cwnd_reduction()
            else:
                if self._may_undo(delayed):
                    self.undo(unmark=True)
                self.state = _CA_OPEN
                self.prr = None
        elif state is _CA_LOSS and acked > 0 and self._may_undo(delayed):
            self.undo(unmark=True)                   # tcp_try_undo_loss()
            self.state = _CA_OPEN
        elif state is _CA_RECOVERY and acked > 0 and self.undo_marker is not None \
                and delayed and self.undo_stamp is not None and not rack.retrans_bytes:
            self.undo(unmark=True)                   # tcp_try_undo_partial()
            self._leave_recovery()
        if self.state is _CA_RECOVERY and self.undo_marker is not None \
                and dsack_undo and not self.undo_retrans:
            self.undo(unmark=False)                  # tcp_try_undo_dsack()
            self._leave_recovery()
        newly_lost = 0
        timeout = 0
        if rack.advanced and (self.state is not _CA_OPEN or newly_sacked or dupack
                              or rack.sacked_bytes):
            # Linux tcp_identify_packet_loss() -> tcp_rack_mark_lost().
            rack.advanced = False
            reo = rack.reo_wnd(in_recovery=self.state in (_CA_RECOVERY, _CA_LOSS),
                               min_rtt=min_rtt, srtt=srtt)
            newly_lost, timeout = rack.detect(now, reo)
        if self.state in (_CA_OPEN, _CA_DISORDER):
            if rack.lost_bytes:
                self._enter_prr(snd_una, snd_max, now)   # "the loss is proven"
            elif rack.sacked_bytes or rack.retrans_bytes:
                self.state = _CA_DISORDER        # tcp_try_keep_open()
            elif self.state is _CA_DISORDER:
                self.state = _CA_OPEN
        # Linux counts what this ACK delivered: cumulatively acknowledged bytes that
        # were not SACKed before, and newly SACKed ones (tcp_newly_delivered()).
        segs = rack.delivered_pkts
        if self.state is _CA_RECOVERY:
            prr = self.prr
            assert prr is not None
            cwnd = prr.on_ack(newly_acked_sacked=segs, newly_lost=newly_lost > 0,
                              una_advanced=acked > 0,
                              in_flight=-(-self.pipe(snd_una, snd_max, snd_max) // mss),
                              ssthresh=self.cc.ssthresh)
            if cwnd is not None:
                self.cc.cwnd = max(cwnd, 1)
        elif segs and (acked > 0 or rack.reordering > 3 and newly_sacked):
            # Linux tcp_may_raise_cwnd(): only on forward progress of SND.UNA, unless
            # reordering was seen to be high.
            self.cc.on_ack(segs, now=now, rtt_us=rtt_us,
                           in_flight=self.pipe(snd_una, snd_max, snd_max) // mss,
                           cwnd_limited=cwnd_limited)
        return timeout

    def on_reo_timeout(self, *, snd_una: int, snd_max: int, now: int, min_rtt: int,
                       srtt: int) -> int:
        """RACK's reordering timer fired (Linux tcp_rack_reo_timeout()): mark what is now
        overdue; a new loss starts recovery. Returns the next timeout, 0 for none."""
        rack = self.rack
        assert rack is not None
        reo = rack.reo_wnd(in_recovery=self.state in (_CA_RECOVERY, _CA_LOSS),
                           min_rtt=min_rtt, srtt=srtt)
        newly, timeout = rack.detect(now, reo)
        if newly and self.state is not _CA_RECOVERY and self.state is not _CA_LOSS:
            self._enter_prr(snd_una, snd_max, now)
            prr = self.prr
            assert prr is not None
            cwnd = prr.on_ack(newly_acked_sacked=1, newly_lost=False, una_advanced=False,
                              in_flight=-(-self.pipe(snd_una, snd_max, snd_max) // self.mss),
                              ssthresh=self.cc.ssthresh)
            if cwnd is not None:
                self.cc.cwnd = max(cwnd, 1)
        return timeout

    def _enter_prr(self, snd_una: int, snd_max: int, now: int) -> None:
        """Linux tcp_enter_recovery() + tcp_init_cwnd_reduction()."""
        cc = self.cc
        prior_cwnd = cc.cwnd
        self._init_undo(snd_una)
        self.tlp_high_seq = None
        self.state = _CA_RECOVERY
        self.recover = snd_max
        self.fast_retransmits += 1
        self.recoveries += 1
        cc.on_enter_recovery(now=now, in_flight=sq.diff(snd_max, snd_una) // self.mss)
        self.prr = Prr(prior_cwnd)

    def _init_undo(self, snd_una: int) -> None:
        """Linux tcp_init_undo(): remember what a proven-spurious reduction restores."""
        cc = self.cc
        if self.state in (_CA_OPEN, _CA_DISORDER):
            # Linux tcp_current_ssthresh(): at least 3/4 of the current window.
            self.prior_ssthresh = max(cc.ssthresh, (cc.cwnd >> 1) + (cc.cwnd >> 2))
            assert self.rack is not None
            self.rack.prior_cwnd = cc.cwnd   # Linux prior_cwnd
        self.undo_marker = snd_una
        self.undo_retrans = 0
        rack = self.rack
        if rack is None or not rack.retrans_bytes:
            self.undo_stamp = None

    def _may_undo(self, delayed: bool) -> bool:
        """Linux tcp_may_undo(): every retransmission D-SACKed, or the originals arrived
        (``delayed``: an echoed timestamp older than the first retransmission)."""
        if self.undo_marker is None:
            return False
        if self.undo_stamp is None:
            return True                  # nothing was retransmitted at all
        return not self.undo_retrans or delayed

    def undo(self, *, unmark: bool) -> None:
        """Linux tcp_undo_cwnd_reduction(): the reduction was spurious; restore cwnd
        and ssthresh (and, ``unmark``, forget which segments were presumed lost)."""
        cc = self.cc
        rack = self.rack
        if unmark and rack is not None:
            rack.unmark_lost()
        prior_cwnd = rack.prior_cwnd if rack is not None else cc.cwnd
        if self.prior_ssthresh:
            cc.cwnd = max(cc.cwnd, prior_cwnd)
            cc.ssthresh = max(cc.ssthresh, self.prior_ssthresh)
        cc._in_recovery = False
        self.undo_marker = None
        if rack is not None:
            rack.undos += 1
            rack.advanced = True

    def _leave_recovery(self) -> None:
        """Linux tcp_try_keep_open(): Disorder while anything is SACKed or resent."""
        rack = self.rack
        self.prr = None
        self.state = _CA_DISORDER if rack is not None and (
            rack.sacked_bytes or rack.retrans_bytes) else _CA_OPEN

    def on_tlp_ack(self, *, ack: int, una_advanced: bool, dsack: bool, dupack: bool,
                   now: int) -> None:
        """Linux tcp_process_tlp_ack(): did the loss probe repair a loss?"""
        high = self.tlp_high_seq
        if high is None or sq.lt(ack, high):
            return
        if not self.tlp_retrans or dsack:
            self.tlp_high_seq = None         # new data, or both copies arrived: no loss
        elif sq.gt(ack, high):
            # The probe repaired a loss: a one-shot reduction (tcp_init_cwnd_reduction,
            # CWR, tcp_end_cwnd_reduction).
            self.tlp_high_seq = None
            cc = self.cc
            cc.ssthresh = cc.ssthresh_after_loss()
            cc._on_loss(now, 0, timeout=False)
            cc.cwnd = min(cc.cwnd, cc.ssthresh) if cc.ssthresh < INFINITE_SSTHRESH \
                else cc.cwnd
            cc.cwnd_cnt = 0
            self.recoveries += 1
        elif dupack and not una_advanced:
            self.tlp_high_seq = None         # a pure duplicate: both copies arrived

    def _loss_detected(self, snd_una: int) -> bool:
        if self.dupacks >= DUPTHRESH:
            return True
        board = self.board
        return board is not None and sq.gt(board.lost_boundary(snd_una), snd_una)

    def _enter(self, snd_una: int, snd_max: int, now: int) -> None:
        self.state = _CA_RECOVERY
        self.recover = snd_max
        self.high_rxt = snd_una
        self.head_pending = True
        self.fast_retransmits += 1
        self.recoveries += 1
        self.cc.on_enter_recovery(now=now, in_flight=sq.diff(snd_max, snd_una) // self.mss)

    def _exit(self, now: int) -> None:
        self.cc.on_exit_recovery(now=now)
        self.state = _CA_OPEN
        self.dupacks = 0
        self.head_pending = False
        self.prr = None
        rack = self.rack
        if rack is not None and (rack.sacked_bytes or rack.retrans_bytes):
            self.state = _CA_DISORDER

    def on_rto(self, *, snd_una: int, snd_max: int, now: int) -> None:
        """The retransmission timer fired: slow start from SND.UNA (RFC 5681 3.1)."""
        rack = self.rack
        if rack is not None:
            # Linux tcp_enter_loss(): undo data kept unless recovery already lowered
            # ssthresh; every byte not SACKed is lost.
            if self.state in (_CA_OPEN, _CA_DISORDER):
                self._init_undo(snd_una)     # (a timeout in recovery keeps its undo data)
            rack.mark_all_lost()
            self.prr = None
            self.tlp_high_seq = None
        self.cc.on_rto(now=now, in_flight=sq.diff(snd_max, snd_una) // self.mss)
        self.state = _CA_LOSS
        self.recover = snd_max
        self.high_rxt = snd_una
        self.dupacks = 0
        self.head_pending = False

    # -- what to retransmit ---------------------------------------------------------
    def next_retransmit(self, snd_una: int, snd_max: int) -> tuple[int, int] | None:
        """In RECOVERY, the next (seq, length) to retransmit, or None."""
        rack = self.rack
        if rack is not None:
            return rack.next_lost(self.mss) if rack.lost_bytes else None
        if self.state is not _CA_RECOVERY:
            return None
        if self.board is None:
            if self.head_pending:
                return snd_una, min(self.mss, sq.diff(snd_max, snd_una))
            return None
        start = sq.max_seq(self.high_rxt, snd_una)
        hole = self.board.next_seg(snd_una, start, snd_max, self.mss)
        if hole is None:
            return None
        return hole[0], sq.diff(hole[1], hole[0])

    def retransmitted(self, seq: int, length: int) -> None:
        """A retransmission of [seq, seq + length) left (called from OutputMixin)."""
        self.high_rxt = sq.max_seq(self.high_rxt, sq.add(seq, length))
        self.head_pending = False
