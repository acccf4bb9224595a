"""The SACK scoreboard of a sender (RFC 6675, with RFC 2018 and RFC 2883).

Theory of operation
-------------------
The sender keeps its unacknowledged bytes in one flat buffer, so the scoreboard
does not mark segments: it keeps ``sacked``, the sorted, disjoint and
non-adjacent ``[start, end)`` ranges of sequence space above ``snd_una`` that
the receiver has reported in SACK blocks. Everything else is derived from those
ranges on demand, in time linear in their number (a handful: a receiver sends
at most four blocks per ACK, RFC 2018 section 3, and the holes between them are
what the sender is repairing):

* ``IsLost`` (RFC 6675 section 4) says an unSACKed byte is lost when more than
  ``(DupThresh - 1) * SMSS`` bytes above it are SACKed, or at least
  ``DupThresh`` discontiguous SACKed ranges lie above it. Both counts only grow
  as the byte moves down, so the lost bytes are exactly the unSACKed bytes below
  one boundary, :meth:`Scoreboard.lost_boundary`: the start of the highest
  SACKed range whose suffix of ranges satisfies the rule.
* ``NextSeg`` rule (1) (RFC 6675 section 4) is the first hole at or above
  ``max(HighRxt, snd_una)`` and below that boundary, cut to one SMSS.
* ``SetPipe`` (RFC 6675 section 4) counts each unSACKed byte in
  ``[snd_una, HighData)`` once if it is not lost and once more if it has been
  retransmitted; that is two range intersections, not a walk over bytes.

``HighRxt`` is taken as an exclusive bound: bytes below ``high_rxt`` have been
retransmitted in this recovery (RFC 6675 sets it to ``HighACK`` on entering
recovery, i.e. nothing retransmitted yet).

Sequence numbers wrap at 2**32. Every comparison goes through :mod:`synack.seq`,
which is sound because the whole scoreboard lies within one send window, far
less than 2**31 wide.

Validation (RFC 2018 section 4, RFC 2883 section 4, Linux
``tcp_is_sackblock_valid``): a block counts only if
``snd_una < start < end <= snd_max``; anything else (reversed, beyond what was
sent, at or below the cumulative ACK) is the peer's mistake or an old ACK and is
ignored without raising. The first block is a D-SACK, reporting a duplicate
rather than new data, when it lies below the cumulative ACK or inside the second
block (RFC 2883 section 4); it is recorded in ``last_dsack`` for the
connection's spurious-retransmission logic and never marks anything SACKed.

Retransmission timeouts: RFC 2018 says a sender SHOULD forget SACK information
after an RTO because the receiver may have reneged; RFC 6675 section 5.1 notes
that this is now seen as too strong and that SACK state may be kept when
reneging is detected otherwise, which is what Linux does (it clears the SACK
marks in ``tcp_enter_loss`` only when it has seen the receiver renege). The
scoreboard therefore keeps its state across an RTO; a connection that wants the
RFC 2018 behaviour calls :meth:`Scoreboard.reset`. A receiver has reneged when
a SACKed range starts exactly at ``snd_una`` after an ACK (it would have
advanced its cumulative ACK over data it still held).
"""

from __future__ import annotations

from collections.abc import Sequence

from synack.seq import add, diff, ge, le, lt, max_seq, min_seq

__all__ = ["DUPTHRESH", "NO_SACKS", "Scoreboard"]

DUPTHRESH = 3  # RFC 6675 section 2 (DupThresh); Linux net.ipv4.tcp_reordering default


class Scoreboard:
    """SACKed ranges above ``snd_una`` and the RFC 6675 rules computed from them."""

    __slots__ = ("dupthresh", "last_dsack", "mss", "sacked", "sacked_bytes")

    def __init__(self, mss: int, dupthresh: int = DUPTHRESH) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        if dupthresh < 1:
            raise ValueError(f"dupthresh must be at least 1, got {dupthresh}")
        self.mss = mss
        self.dupthresh = dupthresh
        # Sorted (in sequence space from snd_una), disjoint, never adjacent.
        self.sacked: list[list[int]] = []
        self.sacked_bytes = 0
        self.last_dsack: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget every SACKed range (RFC 2018's rule after an RTO, or on reneging)."""
        self.sacked.clear()
        self.sacked_bytes = 0
        self.last_dsack = None

    # -- input ---------------------------------------------------------------

    def on_ack(self, snd_una: int, blocks: Sequence[tuple[int, int]], snd_max: int) -> int:
        """Fold in one ACK: its cumulative point and SACK blocks; return newly SACKed bytes.

        ``snd_una`` is the cumulative ACK after this ACK, ``snd_max`` the highest
        sequence number sent. Sets :attr:`last_dsack` to the first block when it
        is a D-SACK (RFC 2883), otherwise to ``None``.
        """
        self.last_dsack = None
        if not blocks and not self.sacked:
            return 0                         # the usual ACK: nothing SACKed, nothing to drop
        self._drop_below(snd_una)
        newly = 0
        for i, (start, end) in enumerate(blocks):
            if i == 0 and _is_dsack(blocks, snd_una, snd_max):
                self.last_dsack = (start, end)
                continue
            if lt(snd_una, start) and lt(start, end) and le(end, snd_max):
                newly += self._insert(start, end)
        return newly

    def _drop_below(self, snd_una: int) -> None:
        sacked = self.sacked
        n = 0
        while n < len(sacked) and le(sacked[n][1], snd_una):
            self.sacked_bytes -= diff(sacked[n][1], sacked[n][0])
            n += 1
        del sacked[:n]
        if sacked and lt(sacked[0][0], snd_una):
            self.sacked_bytes -= diff(snd_una, sacked[0][0])
            sacked[0][0] = snd_una

    def _insert(self, start: int, end: int) -> int:
        """Merge ``[start, end)`` in; return how many of its bytes were not SACKed yet."""
        sacked = self.sacked
        i = 0
        while i < len(sacked) and lt(sacked[i][1], start):
            i += 1
        j = i
        new_start, new_end, covered = start, end, 0
        # Ranges overlapping or touching [start, end) are absorbed into it.
        while j < len(sacked) and le(sacked[j][0], end):
            lo, hi = sacked[j]
            covered += max(0, diff(min_seq(hi, end), max_seq(lo, start)))
            new_start, new_end = min_seq(new_start, lo), max_seq(new_end, hi)
            j += 1
        sacked[i:j] = [[new_start, new_end]]
        newly = diff(end, start) - covered
        self.sacked_bytes += newly
        return newly

    # -- queries -------------------------------------------------------------

    def is_sacked(self, seq: int) -> bool:
        """Whether the byte at ``seq`` lies in a SACKed range."""
        for start, end in self.sacked:
            if lt(seq, start):
                return False
            if lt(seq, end):
                return True
        return False

    def lost_boundary(self, snd_una: int) -> int:
        """The sequence number below which every unSACKed byte is lost (RFC 6675 IsLost).

        An unSACKed byte is lost when more than ``(dupthresh - 1) * mss`` SACKed
        bytes lie above it, or at least ``dupthresh`` discontiguous SACKed
        ranges do. The answer is the start of the highest SACKed range for
        which that holds counting it and every range above; ``snd_una`` when no
        byte is lost.
        """
        limit = (self.dupthresh - 1) * self.mss
        above = 0
        for count, (start, end) in enumerate(reversed(self.sacked), 1):
            if le(end, snd_una):
                break
            start = max_seq(start, snd_una)
            above += diff(end, start)
            if above > limit or count >= self.dupthresh:
                return start
        return snd_una

    def holes(self, start: int, end: int) -> list[tuple[int, int]]:
        """The unSACKed ranges within ``[start, end)``, in order."""
        out: list[tuple[int, int]] = []
        cur = start
        for lo, hi in self.sacked:
            if not lt(cur, end):
                break
            if le(hi, cur):
                continue
            if ge(lo, end):
                break
            if lt(cur, lo):
                out.append((cur, lo))
            cur = hi
        if lt(cur, end):
            out.append((cur, end))
        return out

    def next_seg(
        self, snd_una: int, high_rxt: int, high_data: int, mss: int
    ) -> tuple[int, int] | None:
        """RFC 6675 NextSeg rule (1): ``(start, end)`` of the next lost bytes to resend.

        The first unSACKed, lost range starting at or above
        ``max(high_rxt, snd_una)`` and below ``high_data``, at most ``mss``
        bytes long; ``None`` when there is none. Rules (2) to (4) (new data,
        rescue retransmission) belong to the connection.
        """
        lost_end = min_seq(self.lost_boundary(snd_una), high_data)
        for start, end in self.holes(max_seq(high_rxt, snd_una), lost_end):
            return start, add(start, min(mss, diff(end, start)))
        return None

    def pipe(self, snd_una: int, high_rxt: int, high_data: int) -> int:
        """RFC 6675 SetPipe, in bytes, for the unSACKed bytes in ``[snd_una, high_data)``.

        Each counts once if it is not lost (the original may still be in
        flight) and once more if it is below ``high_rxt`` (the retransmission
        may be).
        """
        lost_end = self.lost_boundary(snd_una)
        not_lost = self._unsacked_within(max_seq(lost_end, snd_una), high_data)
        resent = self._unsacked_within(snd_una, min_seq(high_rxt, high_data))
        return not_lost + resent

    def _unsacked_within(self, start: int, end: int) -> int:
        if not lt(start, end):
            return 0
        total = diff(end, start)
        for lo, hi in self.sacked:
            if ge(lo, end):
                break
            overlap = diff(min_seq(hi, end), max_seq(lo, start))
            if overlap > 0:
                total -= overlap
        return total

    def __repr__(self) -> str:
        ranges = ", ".join(f"{s}:{e}" for s, e in self.sacked)
        return f"Scoreboard(mss={self.mss}, dupthresh={self.dupthresh}, sacked=[{ranges}])"


def _is_dsack(blocks: Sequence[tuple[int, int]], snd_una: int, snd_max: int) -> bool:
    """RFC 2883 section 4: is the first block a report of duplicate data?

    Either it lies below the cumulative ACK (Linux compares the start, as a
    D-SACK of a segment that straddled ``snd_una`` starts below it), or it is
    contained in the second block (a duplicate of out-of-order data).
    """
    start, end = blocks[0]
    if not (lt(start, end) and le(end, snd_max)):
        return False
    if lt(start, snd_una):
        return True
    if len(blocks) > 1:
        start1, end1 = blocks[1]
        return ge(start, start1) and le(end, end1)
    return False


# The board of every connection that agreed on SACK but has not been sent a SACK block
# yet (most connections, and every idle one): nothing SACKed. It is shared, so it is
# read-only: its ranges are a tuple, and the connection swaps in a Scoreboard of its
# own before folding in the first ACK that carries blocks.
NO_SACKS = Scoreboard(1)
NO_SACKS.sacked = ()  # type: ignore[assignment]

