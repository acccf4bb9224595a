"""RACK: loss detection by transmission time (RFC 8985), as Linux's tcp_recovery.c.

Theory of operation
-------------------
The scoreboard (:mod:`synack.tcp.scoreboard`) knows *which* bytes the peer holds;
RACK also needs *when* each byte was last sent. :class:`Rack` keeps one record per
transmission unit still unacknowledged, in sequence order, like Linux's skbs in
the retransmission queue: ``[start, end, xmit_us, flags, order]``, where
``order`` counts transmissions: the simulator sends many segments in the same
microsecond, and of two sent then the later one must still count as later
(Linux's clock would tell them apart; comparing sequence numbers, its tie-break,
would make a retransmission older than new data sent just before it). A TSO super-segment
is one record; a record is split when a SACK block, a cumulative ACK or a
retransmission covers only part of it (Linux ``tcp_fragment``). The flags are
Linux's ``sacked`` bits:

``SACKED``  the peer reported it in a SACK block (TCPCB_SACKED_ACKED);
``LOST``    presumed lost (TCPCB_LOST), set by RACK or by a timeout;
``RTX``     a retransmission of it is in flight (TCPCB_SACKED_RETRANS);
``EVER``    it was retransmitted at some point (TCPCB_EVER_RETRANS).

Byte counts of each kind are kept as they change, so the sender's estimate of
what is in the network is Linux's ``tcp_packets_in_flight`` in bytes:
``flight - sacked - lost + retransmitted``.

Loss detection (RFC 8985 6.2, Linux ``tcp_rack_advance`` and
``tcp_rack_detect_loss``): each ACK that delivers (cumulatively or by SACK) a
segment remembers the most recently sent of them, ``xmit`` and ``end``, and the
RTT measured on it, ``rtt``. A retransmitted segment whose RTT is below the
minimum RTT is skipped: the ACK was probably for the original. Then every
segment sent before that one and not delivered, whose send time is more than
``rtt + reo_wnd`` ago, is lost; one sent less long ago is given a timer, the
reordering timeout, for the rest of the wait (:meth:`Rack.detect`). This covers
retransmissions too: a retransmission that is lost again is found once a later
transmission is delivered, without waiting for the RTO.

The reordering window (Linux ``tcp_rack_reo_wnd``): zero as long as no
reordering was seen and either recovery is under way or as many segments as
``tcp_reordering`` (3) are SACKed -- the DupThresh rule, kept as a fast path --
otherwise ``min_rtt / 4`` times ``reo_wnd_steps``, at most SRTT. D-SACKs widen it
one step at a time, at most once per round trip, and it decays back to one step
after 16 recoveries without one (Linux ``tcp_rack_update_reo_wnd``).
"""

from __future__ import annotations

from collections.abc import Sequence

from synack import seq as sq

START, END, XMIT, FLAGS, ORDER = 0, 1, 2, 3, 4
SACKED, LOST, RTX, EVER = 1, 2, 4, 8

REORDERING = 3            # Linux net.ipv4.tcp_reordering default
MAX_REORDERING = 300      # Linux net.ipv4.tcp_max_reordering default
RECOVERY_THRESH = 16      # Linux TCP_RACK_RECOVERY_THRESH
_MASK, _HALF = sq.MASK, sq.HALF
JIFFY_US = 1000           # HZ = 1000
TIMEOUT_MIN_US = 2 * JIFFY_US  # Linux TCP_TIMEOUT_MIN (2 jiffies)


class Rack:
    """Per-transmission records and RACK's state for one SACK-capable sender."""

    __slots__ = (
        "advanced",
        "delivered_pkts",
        "dsack_seen",
        "end",
        "fack",
        "last_step",
        "lost_bytes",
        "lost_retrans",
        "mss",
        "newly_acked",
        "order",
        "prior_cwnd",
        "prior_ssthresh",
        "recs",
        "reo_wnd_persist",
        "reo_wnd_steps",
        "reord_seen",
        "reordering",
        "retrans_bytes",
        "rtt",
        "sacked_bytes",
        "sent",
        "tlp_high_seq",
        "tlp_retrans",
        "undo_marker",
        "undo_retrans",
        "undo_stamp",
        "undos",
        "xmit",
    )

    def __init__(self, mss: int) -> None:
        self.mss = mss
        # Recovery's undo and tail-loss-probe state lives here: only a sender that has
        # sent data needs it (see Recovery's properties of the same names).
        self.prior_ssthresh = 0
        self.prior_cwnd = 0
        self.undo_marker: int | None = None
        self.undo_retrans = 0
        self.undo_stamp: int | None = None
        self.undos = 0
        self.tlp_high_seq: int | None = None
        self.tlp_retrans = False
        self.recs: list[list[int]] = []
        self.sacked_bytes = 0
        self.lost_bytes = 0
        self.retrans_bytes = 0
        self.xmit = -1                  # RACK.xmit_ts; -1: nothing delivered yet
        self.order = 0                  # the transmission count at RACK.xmit_ts
        self.sent = 0                   # transmissions so far
        self.end = 0                    # RACK.end_seq
        self.rtt = 0                    # RACK.rtt (microseconds)
        self.advanced = False
        self.fack: int | None = None    # the highest SACKed sequence number
        self.reord_seen = 0             # Linux tp->reord_seen
        self.reordering = REORDERING    # Linux tp->reordering (segments)
        self.reo_wnd_steps = 1
        self.reo_wnd_persist = 0
        self.dsack_seen = False
        self.last_step = -1             # when reo_wnd last widened (Linux rack.last_delivered)
        self.lost_retrans = 0           # LINUX_MIB_TCPLOSTRETRANSMIT
        self.newly_acked = 0            # bytes the last ACK acknowledged, not SACKed before
        self.delivered_pkts = 0         # segments the last ACK delivered (acked or SACKed)

    # -- records -----------------------------------------------------------------
    def _find(self, seq: int) -> int:
        """Index of the first record ending after ``seq`` (len(recs) if none)."""
        recs = self.recs
        lo, hi = 0, len(recs)
        while lo < hi:
            mid = (lo + hi) // 2
            if sq.le(recs[mid][END], seq):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _split(self, seq: int) -> int:
        """Make a record boundary at ``seq``; index of the record starting there."""
        i = self._find(seq)
        recs = self.recs
        if i < len(recs) and sq.lt(recs[i][START], seq):
            r = recs[i]
            recs.insert(i + 1, [seq, r[END], r[XMIT], r[FLAGS], r[ORDER]])
            r[END] = seq
            i += 1
        return i

    def on_send(self, seq: int, end: int, now: int, *, retrans: bool) -> None:
        """[seq, end) left now: new data appends a record, a retransmission restamps."""
        recs = self.recs
        self.sent += 1
        if not retrans:
            recs.append([seq, end, now, 0, self.sent])
            return
        i = self._split(seq)
        j = self._split(end)
        for r in recs[i:j]:
            flags = r[FLAGS]
            if flags & SACKED:
                continue
            if not flags & RTX:
                self.retrans_bytes += sq.diff(r[END], r[START])
            r[FLAGS] = flags | RTX | EVER
            r[XMIT] = now
            r[ORDER] = self.sent
        # Linux keeps skbs in send-time order: here the records stay in sequence order
        # and detect() scans them all.

    def _forget(self, r: list[int]) -> None:
        n = sq.diff(r[END], r[START])
        flags = r[FLAGS]
        if flags & SACKED:
            self.sacked_bytes -= n
        if flags & LOST:
            self.lost_bytes -= n
        if flags & RTX:
            self.retrans_bytes -= n

    # -- ACK processing --------------------------------------------------------------
    def on_ack(self, una: int, blocks: Sequence[tuple[int, int]], dsack: bool, now: int,
               min_rtt: int) -> int:
        """Fold one ACK in: mark what ``blocks`` SACK, then drop what ``una`` covers
        (Linux tcp_sacktag_write_queue(), then tcp_clean_rtx_queue()).

        ``blocks`` are the valid, non-D-SACK blocks. Returns the bytes newly SACKed.
        Advances RACK's most recent delivery (Linux tcp_rack_advance) and notes
        reordering (Linux tcp_check_sack_reordering).
        """
        recs = self.recs
        prior_fack = self.fack
        mss = self.mss
        if not blocks and prior_fack is None and recs \
                and ((last := recs[-1][END]) == una                  # sq.le(end, una)
                     or ((last - una) & _MASK) >= _HALF):
            # The usual ACK: it covers every record, none ever SACKed, lost or resent
            # (what the general path below does then, without its bookkeeping).
            for r in recs:
                if r[FLAGS]:
                    break
            else:
                acked = pkts = 0
                for start, end, xmit, _flags, order in recs:
                    n = (end - start) & _MASK        # sq.diff(end, start): a record is < _HALF
                    acked += n
                    pkts += -(-n // mss)
                    # self._advance(r, now, min_rtt), inline: never retransmitted, so
                    # not ambiguous; _sent_after() only for a tie in time.
                    self.rtt = now - xmit
                    last = self.xmit
                    if last < 0 or xmit > last or (xmit == last and _sent_after(
                            xmit, order, end, last, self.order, self.end)):
                        self.xmit = xmit
                        self.order = order
                        self.end = end
                self.advanced = True
                recs.clear()
                self.newly_acked = acked
                if dsack:
                    self.dsack_seen = True
                self.delivered_pkts = pkts
                return 0
        reord: int | None = None
        newly = 0
        pkts = 0
        if len(blocks) > 1:
            blocks = sorted(blocks, key=lambda b: sq.diff(b[0], una))
        for start, end in blocks:
            i = self._split(start)
            j = self._split(end)
            for r in recs[i:j]:
                flags = r[FLAGS]
                if flags & SACKED:
                    continue
                n = sq.diff(r[END], r[START])
                newly += n
                pkts += -(-n // mss)
                self.sacked_bytes += n
                if flags & LOST:
                    self.lost_bytes -= n
                if flags & RTX:
                    self.retrans_bytes -= n
                r[FLAGS] = (flags | SACKED) & ~(LOST | RTX)
                self._advance(r, now, min_rtt)
                if not flags & EVER and prior_fack is not None and sq.lt(r[START], prior_fack) \
                        and (reord is None or sq.lt(r[START], reord)):
                    reord = r[START]
            if self.fack is None or sq.gt(end, self.fack):
                self.fack = end
        self.newly_acked = 0
        if recs and sq.gt(una, recs[0][START]):
            # Records ACKed whole, from the front (the usual case: no bisection needed).
            upto = 0
            n_recs = len(recs)
            # sq.le(end, una), inline: once per record acknowledged.
            while upto < n_recs and ((una - recs[upto][END] + _HALF) & _MASK) >= _HALF:
                upto += 1
            if upto < n_recs and sq.lt(recs[upto][START], una):
                r = recs[upto]               # una falls inside it: split it there
                recs.insert(upto + 1, [una, r[END], r[XMIT], r[FLAGS], r[ORDER]])
                r[END] = una
                upto += 1
            for r in recs[:upto]:
                flags = r[FLAGS]
                if not flags & SACKED:
                    n = sq.diff(r[END], r[START])
                    self.newly_acked += n
                    pkts += -(-n // mss)
                    self._advance(r, now, min_rtt)
                    if not flags & EVER and (reord is None or sq.lt(r[START], reord)):
                        reord = r[START]         # a hole filled by the original
                self._forget(r)
            del recs[:upto]
        if self.fack is not None and sq.le(self.fack, una):
            self.fack = None
        if reord is not None and prior_fack is not None and sq.lt(reord, prior_fack):
            self._reordered(reord, prior_fack if self.fack is None else
                            sq.max_seq(self.fack, prior_fack))
        if dsack:
            self.dsack_seen = True       # Linux tcp_check_dsack(): rack.dsack_seen
        self.delivered_pkts = pkts
        return newly

    def _reordered(self, low: int, fack: int) -> None:
        """Linux tcp_check_sack_reordering(): a segment below the highest SACK arrived."""
        metric = sq.diff(fack, low)
        if metric > self.reordering * self.mss:
            self.reordering = min(MAX_REORDERING, -(-metric // self.mss))
        self.reord_seen += 1

    def _advance(self, r: list[int], now: int, min_rtt: int) -> None:
        """Linux tcp_rack_advance(): RACK.rtt from every delivered segment (in the order
        the ACK is processed), RACK.xmit from the most recently sent of them."""
        xmit, end = r[XMIT], r[END]
        rtt = now - xmit
        if r[FLAGS] & EVER and rtt < min_rtt:
            return                       # probably the original's ACK: ambiguous
        self.advanced = True
        self.rtt = rtt
        if self.xmit < 0 or _sent_after(xmit, r[ORDER], end, self.xmit, self.order, self.end):
            self.xmit = xmit
            self.order = r[ORDER]
            self.end = end

    def update_reo_wnd(self, now: int) -> None:
        """Linux tcp_rack_update_reo_wnd(): widen the window after a D-SACK, at most once
        per round trip; back to one step after RECOVERY_THRESH recoveries without one.

        Linux asks whether the delivered packet was sent before the last widening by
        comparing delivery counts; here by comparing the send time of the most
        recently sent segment this ACK delivered with the time of that widening."""
        if self.xmit < self.last_step:
            self.dsack_seen = False      # not a round trip since the last step
        if self.dsack_seen:
            self.reo_wnd_steps = min(0xFF, self.reo_wnd_steps + 1)
            self.dsack_seen = False
            self.last_step = now
            self.reo_wnd_persist = RECOVERY_THRESH
        elif not self.reo_wnd_persist:
            self.reo_wnd_steps = 1

    def reo_wnd(self, *, in_recovery: bool, min_rtt: int, srtt: int) -> int:
        """Linux tcp_rack_reo_wnd(): the reordering settling time, microseconds."""
        if not self.reord_seen:
            if in_recovery:
                return 0
            if self.sacked_bytes and self.sacked_packets() >= self.reordering:
                return 0                 # the DupThresh rule (tcp_recovery without bit 2)
        return min((min_rtt >> 2) * self.reo_wnd_steps, srtt)

    def detect(self, now: int, reo_wnd: int) -> tuple[int, int]:
        """Linux tcp_rack_detect_loss(): mark lost what was sent before the last delivered
        segment and not delivered within rtt + reo_wnd; (bytes newly lost, timeout us).
        Only called once something was delivered (RACK.xmit_ts is set)."""
        newly = 0
        timeout = 0
        rxmit, rorder, rend, rrtt = self.xmit, self.order, self.end, self.rtt
        for r in self.recs:
            flags = r[FLAGS]
            if flags & SACKED or flags & LOST and not flags & RTX:
                continue
            xmit = r[XMIT]
            if not _sent_after(rxmit, rorder, rend, xmit, r[ORDER], r[END]):
                continue
            remaining = rrtt + reo_wnd - (now - xmit)
            if remaining <= 0:
                n = sq.diff(r[END], r[START])
                if flags & RTX:
                    self.retrans_bytes -= n  # a retransmission lost again
                    self.lost_retrans += 1
                    flags &= ~RTX
                if not flags & LOST:
                    self.lost_bytes += n
                r[FLAGS] = flags | LOST
                newly += n
            else:
                timeout = max(timeout, remaining)
        return newly, timeout

    def mark_all_lost(self) -> None:
        """A retransmission timeout (Linux tcp_timeout_mark_lost): every byte not SACKed
        is lost and no retransmission is in flight."""
        lost = 0
        for r in self.recs:
            flags = r[FLAGS]
            if flags & SACKED:
                continue
            r[FLAGS] = (flags | LOST) & ~RTX
            lost += sq.diff(r[END], r[START])
        self.lost_bytes = lost
        self.retrans_bytes = 0

    def unmark_lost(self) -> None:
        """Undo (Linux tcp_undo_cwnd_reduction(unmark_loss)): nothing is presumed lost."""
        for r in self.recs:
            r[FLAGS] &= ~LOST
        self.lost_bytes = 0

    # -- queries ------------------------------------------------------------------------
    def sacked_packets(self) -> int:
        """Linux sacked_out: SACKed segments, a short one counting as one."""
        mss = self.mss
        return sum(-(-sq.diff(r[END], r[START]) // mss) for r in self.recs
                   if r[FLAGS] & SACKED)

    def in_flight(self, flight: int) -> int:
        """Linux tcp_packets_in_flight(), in bytes, for ``flight`` bytes outstanding."""
        return max(flight - self.sacked_bytes - self.lost_bytes + self.retrans_bytes, 0)

    def next_lost(self, limit: int) -> tuple[int, int] | None:
        """The first lost range not being retransmitted: (seq, length) of at most
        ``limit`` contiguous bytes, or None (Linux tcp_xmit_retransmit_queue)."""
        start = None
        length = 0
        for r in self.recs:
            flags = r[FLAGS]
            lost = flags & LOST and not flags & (RTX | SACKED)
            if start is None:
                if lost:
                    start = r[START]
                    length = sq.diff(r[END], r[START])
            elif lost and r[START] == sq.add(start, length):
                length += sq.diff(r[END], r[START])
            else:
                break
            if length >= limit:
                break
        if start is None:
            return None
        return start, min(length, limit)

    def last(self) -> list[int] | None:
        """The highest record (the TLP's retransmission candidate)."""
        return self.recs[-1] if self.recs else None

    def head_xmit(self) -> int | None:
        """Send time of the first unacknowledged record (Linux tcp_rto_delta_us)."""
        return self.recs[0][XMIT] if self.recs else None


def _sent_after(t1: int, o1: int, end1: int, t2: int, o2: int, end2: int) -> bool:
    """Linux tcp_skb_sent_after(): sent later, or at the same time with a higher end."""
    if t1 != t2:
        return t1 > t2
    if o1 != o2:
        return o1 > o2
    return sq.gt(end1, end2)


# The records of every RACK sender that has not sent data yet (most connections, and
# every one that only receives): nothing in flight. Shared, so read-only: its records
# are a tuple, and the connection swaps in a Rack of its own before the first
# transmission or the first ACK carrying SACK blocks (as the scoreboard's NO_SACKS).
IDLE = Rack(1)
IDLE.recs = ()  # type: ignore[assignment]
