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
"""

from __future__ import annotations

import enum

from synack import seq as sq
from synack.tcp.cc.base import CongestionControl
from synack.tcp.scoreboard import Scoreboard

DUPTHRESH = 3  # RFC 5681 3.2; Linux tcp_reordering default


class CaState(enum.Enum):
    """Linux's congestion-avoidance states (TCP_CA_*), as ``ss`` names them."""

    OPEN = 0
    DISORDER = 1
    RECOVERY = 3
    LOSS = 4


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
        "recover",
        "recoveries",
        "state",
    )

    def __init__(self, cc: CongestionControl, board: Scoreboard | None, mss: int) -> None:
        self.cc = cc
        self.board = board            # None when SACK was not agreed
        self.mss = mss
        self.state = CaState.OPEN
        self.dupacks = 0
        self.recover = 0
        self.high_rxt = 0             # RFC 6675 HighRxt: retransmitted below this
        self.head_pending = False     # NewReno: the head segment awaits retransmission
        self.fast_retransmits = 0
        self.recoveries = 0
        self.acked_acc = 0            # bytes acknowledged, not yet a whole segment

    # -- accounting ------------------------------------------------------------
    def pipe(self, snd_una: int, snd_nxt: int, snd_max: int) -> int:
        """Bytes presumed in the network (RFC 6675 SetPipe, or its NewReno analogue)."""
        board = self.board
        if self.state is CaState.LOSS:
            if board is None:
                return sq.diff(snd_nxt, snd_una)
            return sum(sq.diff(b, a) for a, b in board.holes(snd_una, snd_nxt))
        if board is not None:
            if self.state is CaState.RECOVERY:
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
        if acked <= 0 or self.state is CaState.OPEN:
            pass                                     # the usual ACK: nothing to leave
        elif self.state is CaState.RECOVERY and sq.ge(snd_una, self.recover):
            self._exit(now)                          # the full ACK (RFC 6582 3.2 step 3)
        elif self.state is CaState.LOSS and sq.ge(snd_una, self.recover):
            self.state = CaState.OPEN
            self.dupacks = 0
        elif self.state is CaState.RECOVERY:
            # A partial ACK: NewReno retransmits the new head at once (RFC 6582 3.2 step 4).
            self.high_rxt = sq.max_seq(self.high_rxt, snd_una)
            if board is None:
                self.dupacks = max(self.dupacks - max(acked // self.mss, 1), 0)
                self.head_pending = True
        elif self.state is CaState.DISORDER:
            self.state = CaState.OPEN
            self.dupacks = 0
        if dupack or newly_sacked > 0:
            if self.state in (CaState.OPEN, CaState.DISORDER, CaState.RECOVERY):
                self.dupacks += 1
            if self.state is CaState.OPEN:
                self.state = CaState.DISORDER
        if self.state is CaState.DISORDER and self._loss_detected(snd_una):
            self._enter(snd_una, snd_max, now)
        if self.state is not CaState.RECOVERY:
            self.acked_acc += acked + newly_sacked
            segs, self.acked_acc = divmod(self.acked_acc, self.mss)
            if segs:
                self.cc.on_ack(segs, now=now, rtt_us=rtt_us,
                               in_flight=self.pipe(snd_una, snd_max, snd_max) // self.mss,
                               cwnd_limited=cwnd_limited)

    def _loss_detected(self, snd_una: int) -> bool:
        if self.dupacks >= DUPTHRESH:
            return True
        board = self.board
        return board is not None and sq.gt(board.lost_boundary(snd_una), snd_una)

    def _enter(self, snd_una: int, snd_max: int, now: int) -> None:
        self.state = CaState.RECOVERY
        self.recover = snd_max
        self.high_rxt = snd_una
        self.head_pending = True
        self.fast_retransmits += 1
        self.recoveries += 1
        self.cc.on_enter_recovery(now=now, in_flight=sq.diff(snd_max, snd_una) // self.mss)

    def _exit(self, now: int) -> None:
        self.cc.on_exit_recovery(now=now)
        self.state = CaState.OPEN
        self.dupacks = 0
        self.head_pending = False

    def on_rto(self, *, snd_una: int, snd_max: int, now: int) -> None:
        """The retransmission timer fired: slow start from SND.UNA (RFC 5681 3.1)."""
        self.cc.on_rto(now=now, in_flight=sq.diff(snd_max, snd_una) // self.mss)
        self.state = CaState.LOSS
        self.recover = snd_max
        self.high_rxt = snd_una
        self.dupacks = 0
        self.head_pending = False

    # -- what to retransmit ---------------------------------------------------------
    def next_retransmit(self, snd_una: int, snd_max: int) -> tuple[int, int] | None:
        """In RECOVERY, the next (seq, length) to retransmit, or None."""
        if self.state is not CaState.RECOVERY:
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
        """A retransmission of [seq, seq + length) left."""
        self.high_rxt = sq.max_seq(self.high_rxt, sq.add(seq, length))
        self.head_pending = False
