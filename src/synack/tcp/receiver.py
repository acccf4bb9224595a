"""The receiving half of a connection: RCV.* variables, reassembly, the window.

Theory of operation
-------------------
In-order bytes the application has not read yet sit in ``ready`` (a
``bytearray``). Segments that arrive ahead of ``rcv_nxt`` wait in ``ooo``, a
sorted list of disjoint ``[seq, bytearray]`` blocks, merged on insert; when the
hole at ``rcv_nxt`` fills, the blocks that now touch it move to ``ready``. The
peer's FIN is remembered by sequence number and counts only once everything
before it has arrived.

Memory is bounded by ``capacity``: we never advertise more than the free space
(RFC 9293 3.8.6.2.2 receiver-side silly window avoidance keeps small openings
back), and anything past the advertised right edge is trimmed, so what is
queued never exceeds what was offered. ``capacity`` itself grows, like Linux's
dynamic right-sizing (``tcp_rcv_space_adjust``), when the application reads
more per round trip than the window allows, up to ``max_capacity``.

SACK blocks (RFC 2018) are the out-of-order blocks, the one holding the most
recently received segment first; a duplicate segment is reported once as a
D-SACK block (RFC 2883). The urgent byte (RFC 9293 3.8.5, as Linux implements
it: one byte, the one just before the urgent pointer) is taken out of the
stream unless the socket has ``SO_OOBINLINE``.
"""

from __future__ import annotations

from typing import Any

from synack import seq as sq
from synack.tcp.ackpolicy import AckPolicy
from synack.tcp.rare import Rare

_MASK, _HALF = sq.MASK, sq.HALF   # for the inlined arithmetic of the per-segment paths
_NONE: Any = ()                   # ooo and recent before they are first needed
_UNITS = tuple(1 << ws for ws in range(32))   # a window scale's unit, 2**ws (RFC 7323: 14 at most)


class Receiver(AckPolicy):
    """RCV.NXT, RCV.WND, the reassembly queue and the application's unread bytes.

    A receiver is also the connection's :class:`AckPolicy` (when to acknowledge what
    it received; ``Connection.ackp`` names this same object once the peer's SYN is
    in): one object, not two, for each connection.
    """

    __slots__ = (
        "bytes_received",
        "capacity",
        "copied",
        "dsack",
        "fin_received",
        "fin_seq",
        "irs",
        "max_capacity",
        "mss",
        "ooo",
        "ooo_bytes",
        "ooo_packets",
        "rare",
        "rcv_adv",
        "rcv_nxt",
        "ready",
        "recent",
        "space",
        "space_copied",
        "space_time",
        "wscale",
    )

    # Urgent data: no slot each (rare.py); read for each segment only once ``rare``
    # holds something (urgent data was announced, or SO_OOBINLINE is set).
    urg_seq = Rare[int | None](None)    # sequence number of the urgent byte, if pending
    oob = Rare[int | None](None)        # the urgent byte, taken out of the stream
    oobinline = Rare[bool](False)       # SO_OOBINLINE: the urgent byte stays in the stream

    def __init__(self, irs: int, capacity: int, mss: int, wscale: int = 0,
                 max_capacity: int | None = None) -> None:
        # AckPolicy.__init__(self, mss), inline (once per connection, no call).
        self.quick = 0
        self.pingpong = False
        self.deadline: int | None = None
        self.rcv_mss = mss
        self.last_data_rcv: int | None = None
        self.irs = irs
        # sq.add(irs, 1), inline (a compare: cheaper than an AND with a two-digit int)
        self.rcv_nxt = nxt = irs + 1 if irs != 0xFFFFFFFF else 0
        self.rcv_adv = nxt  # right edge of the window last advertised
        # b"" (shared) while empty, a bytearray of its own while holding bytes: an idle
        # connection keeps no bytearray (56 bytes).
        self.ready: bytearray | bytes = b""
        # ooo: [[seq, bytearray], ...] sorted, disjoint, not touching; recent: starts of
        # ooo blocks, most recently touched first. Both are () until the first
        # out-of-order segment (an empty list is 56 bytes; most connections never
        # need one), and ooo is () again once it drains.
        self.ooo: list[list] = _NONE
        self.ooo_bytes = 0
        self.ooo_packets = 0               # segments that arrived out of order
        self.rare: dict[str, object] | None = None   # the Rare fields' values, once set
        self.capacity = capacity
        self.wscale = wscale
        self.fin_seq: int | None = None
        self.fin_received = False
        self.bytes_received = 0
        self.mss = mss
        # max(max_capacity or capacity, capacity), without max()'s argument parsing.
        self.max_capacity = max_capacity if max_capacity and max_capacity > capacity \
            else capacity
        self.recent: list[int] = _NONE
        self.dsack: tuple[int, int] | None = None   # duplicate to report in the next ACK
        self.copied = 0                    # bytes handed to the application
        self.space_time: int | None = None
        self.space_copied = 0
        self.space = 0

    # -- the window -----------------------------------------------------------
    def free(self) -> int:
        """Bytes of buffer not holding data (in order or out of order)."""
        return max(self.capacity - len(self.ready) - self.ooo_bytes, 0)

    def window(self) -> int:
        """RCV.WND to advertise now, never shrinking the right edge (RFC 9293 3.8.6.2.2)."""
        # Asked for every segment sent: free() and the sequence arithmetic inline.
        cap = self.capacity
        free = cap - len(self.ready) - self.ooo_bytes
        if free < 0:  # noqa: PLR1730 - a comparison is cheaper than max() per segment
            free = 0
        nxt = self.rcv_nxt
        adv = self.rcv_adv
        grow = ((nxt + free - adv + _HALF) & _MASK) - _HALF       # sq.diff(right, adv)
        # (grow >= min(cap // 2, mss), without min()'s argument parsing)
        if grow > 0 and (grow >= cap // 2 or grow >= self.mss or free == cap):
            adv = self.rcv_adv = (nxt + free) & _MASK
        wnd = ((adv - nxt + _HALF) & _MASK) - _HALF                # sq.diff(adv, nxt)
        if wnd < 0:                                                # sq.lt(adv, nxt)
            self.rcv_adv = nxt
            return 0
        return wnd

    def window_field(self) -> int:
        """The 16-bit window field: RCV.WND >> scale, rounded *up* to the scale's unit.

        Rounding down at every ACK would move the right edge left a little each
        time -- a shrinking window, and a peer that sent into the edge we had
        offered sees its data and the ACKs riding on it dropped. Linux rounds up
        (``ALIGN(window, 1 << rcv_wscale)`` in ``__tcp_select_window`` and
        ``tcp_select_window``), at the cost of at most ``2**wscale - 1`` bytes of
        buffer beyond the free space.
        """
        # wnd = self.window(), inline: once per segment sent.
        cap = self.capacity
        free = cap - len(self.ready) - self.ooo_bytes
        if free < 0:  # noqa: PLR1730 - a comparison is cheaper than max() per segment
            free = 0
        nxt = self.rcv_nxt
        # The sequence differences unsigned, and from one difference of sequence numbers
        # (above 2**30 every operation on one makes a new int; on the small difference
        # it is cheap): sq.diff() is positive below _HALF.
        # (The mask only when a difference is negative: a non-negative one is already its
        # own unsigned value, as both terms are below 2**32; _MASK is no one-digit int, so
        # `& _MASK` takes CPython's general way every time. One comparison, not a chain.)
        offered = self.rcv_adv - nxt                               # sq.diff(adv, nxt)
        if offered < 0:
            offered &= _MASK
        grow = free - offered                                      # sq.diff(right, adv)
        if grow < 0:
            grow &= _MASK
        # (grow >= min(cap // 2, mss), without min()'s argument parsing; grow is not
        # negative here, so `grow` tests 0 < grow without a chained comparison)
        if grow and grow < _HALF and (free == cap or grow >= cap // 2 or grow >= self.mss):
            wnd = free                       # the edge moves to nxt + free
        elif offered < _HALF:
            wnd = offered
        else:                                # sq.lt(adv, nxt): none
            wnd = 0
        ws = self.wscale
        # (by the unit, a product and a quotient of small ints: CPython 3.11 does those
        # the quick way, shifts the general way)
        unit = _UNITS[ws]
        field = (wnd + unit - 1) // unit
        if field > 0xFFFF:  # noqa: PLR1730 - cheaper than min() per segment
            field = 0xFFFF
        adv = nxt + field * unit             # sq.add(), its mask only when it wraps
        self.rcv_adv = adv if adv <= _MASK else adv & _MASK
        return field

    # -- segments ---------------------------------------------------------------
    def acceptable(self, seq: int, seg_len: int) -> bool:
        """RFC 9293 3.10.7.4 first check: the four cases of segment acceptability."""
        nxt = self.rcv_nxt
        wnd = ((self.rcv_adv - nxt + _HALF) & _MASK) - _HALF      # sq.diff(rcv_adv, rcv_nxt)
        if seg_len == 0:
            if wnd <= 0:
                return seq == nxt
            return ((seq - nxt) & _MASK) < wnd                   # sq.between(nxt, seq, nxt+wnd)
        if wnd <= 0:
            # "If the RCV.WND is zero, no segments will be acceptable, but special allowance
            # should be made to accept valid ACKs, URGs, and RSTs." Linux's tcp_sequence()
            # takes a segment that starts at RCV.NXT -- the peer's zero-window probe with
            # data, or data sent into a window we have since filled -- for its ACK and
            # flags; its text is then dropped (no room). Otherwise two full buffers can
            # deadlock: each side discards the segments that carry the other's ACKs.
            return seq == self.rcv_nxt
        end = sq.add(seq, seg_len - 1)
        hi = sq.add(self.rcv_nxt, wnd)
        return sq.between(self.rcv_nxt, seq, hi) or sq.between(self.rcv_nxt, end, hi)

    def accept(self, seq: int, payload: bytes, fin: bool) -> int:
        """Take a segment's text (and FIN); returns how many bytes became readable.

        The caller has checked acceptability; here the text is trimmed to the
        window, duplicates are discarded and out-of-order text is queued.
        """
        if fin:
            self.fin_seq = sq.add(seq, len(payload))
        if payload:
            start = ((self.rcv_nxt - seq + _HALF) & _MASK) - _HALF   # already received
            if start > 0:
                # RFC 2883: report the duplicate part as the first SACK block.
                self.dsack = (seq, sq.add(seq, min(start, len(payload))))
                payload = payload[start:]
                seq = self.rcv_nxt
            room = ((self.rcv_adv - seq + _HALF) & _MASK) - _HALF   # sq.diff(rcv_adv, seq)
            if len(payload) > room:
                payload = payload[:max(room, 0)]
        before = len(self.ready)
        if payload:
            if seq == self.rcv_nxt:
                ready = self.ready
                if isinstance(ready, bytearray):
                    ready += payload
                else:
                    self.ready = bytearray(payload)
                self.rcv_nxt = (seq + len(payload)) & _MASK
                if self.ooo:
                    self._drain_ooo()
            else:
                self.ooo_packets += 1
                self._insert_ooo(seq, payload)
        gained = len(self.ready) - before
        if gained and self.rare is not None and self.urg_seq is not None \
                and not self.oobinline:
            self._take_urgent(gained)
        self.bytes_received += gained
        if self.fin_seq is not None and not self.fin_received and self.rcv_nxt == self.fin_seq:
            self.fin_received = True
            self.rcv_nxt = sq.add(self.rcv_nxt, 1)
            if sq.lt(self.rcv_adv, self.rcv_nxt):
                self.rcv_adv = self.rcv_nxt
        return gained

    def _take_urgent(self, gained: int) -> None:
        """Linux tcp_urg(): pull the urgent byte out of the in-order stream."""
        assert self.urg_seq is not None
        back = sq.diff(self.rcv_nxt, self.urg_seq)   # how far behind RCV.NXT it is
        if 0 < back <= gained:
            ready = self.ready
            assert isinstance(ready, bytearray)     # it just gained bytes
            pos = len(ready) - back
            self.oob = ready[pos]
            del ready[pos]
            self.urg_seq = None

    def on_urgent(self, urg_seq: int) -> None:
        """The peer's urgent pointer says the byte at ``urg_seq`` is urgent."""
        if sq.lt(urg_seq, self.rcv_nxt):
            return                      # already delivered in order
        self.urg_seq = urg_seq
        self.oob = None

    def _insert_ooo(self, seq: int, data: bytes) -> None:
        end = sq.add(seq, len(data))
        for bseq, bdata in self.ooo:     # wholly inside a block we hold: a duplicate
            if sq.le(bseq, seq) and sq.le(end, sq.add(bseq, len(bdata))):
                self.dsack = (seq, end)
                self._touch(bseq)
                return
        blocks = self.ooo
        if blocks is _NONE:
            blocks = self.ooo = []
        i = 0
        while i < len(blocks) and sq.lt(sq.add(blocks[i][0], len(blocks[i][1])), seq):
            i += 1
        # Merge with every block that overlaps or touches [seq, end).
        new_seq, new = seq, bytearray(data)
        j = i
        while j < len(blocks) and sq.le(blocks[j][0], end):
            bseq, bdata = blocks[j]
            bend = sq.add(bseq, len(bdata))
            if sq.lt(bseq, new_seq):
                new = bdata[: sq.diff(new_seq, bseq)] + new
                new_seq = bseq
            if sq.gt(bend, sq.add(new_seq, len(new))):
                new += bdata[sq.diff(sq.add(new_seq, len(new)), bseq):]
            self.ooo_bytes -= len(bdata)
            j += 1
        blocks[i:j] = [[new_seq, new]]
        self.ooo_bytes += len(new)
        self._touch(new_seq)

    def _touch(self, start: int) -> None:
        recent = self.recent
        if recent is _NONE:
            recent = self.recent = []
        if start in recent:
            recent.remove(start)
        recent.insert(0, start)
        del recent[8:]

    def _drain_ooo(self) -> None:
        blocks = self.ooo
        while blocks and sq.le(blocks[0][0], self.rcv_nxt):
            bseq, bdata = blocks.pop(0)
            self.ooo_bytes -= len(bdata)
            skip = sq.diff(self.rcv_nxt, bseq)
            if skip < len(bdata):
                ready = self.ready
                if isinstance(ready, bytearray):
                    ready += bdata[skip:]
                else:
                    self.ready = bytearray(memoryview(bdata)[skip:])
                self.rcv_nxt = sq.add(self.rcv_nxt, len(bdata) - skip)
        if not blocks:
            self.ooo = _NONE

    def sack_blocks(self, limit: int = 4) -> tuple[tuple[int, int], ...]:
        """SACK blocks for the next ACK: a pending D-SACK first, then the out-of-order
        blocks, the most recently changed first (RFC 2018 section 4), at most ``limit``."""
        out: list[tuple[int, int]] = []
        if self.dsack is not None:
            out.append(self.dsack)
        if self.ooo:
            starts = {s: sq.add(s, len(d)) for s, d in self.ooo}
            order = [s for s in self.recent if s in starts]
            order += [s for s in starts if s not in order]
            out += [(s, starts[s]) for s in order]
        return tuple(out[:limit])

    def sent_ack(self) -> None:
        """An ACK went out: a D-SACK is reported only once."""
        self.dsack = None

    # -- application side ---------------------------------------------------------
    def read(self, n: int) -> bytes:
        """Up to ``n`` unread in-order bytes."""
        ready = self.ready
        if n >= len(ready):
            out = bytes(ready)
            self.ready = b""
        else:
            assert isinstance(ready, bytearray)
            out = bytes(ready[:n])
            del ready[:n]
        self.copied += len(out)
        return out

    def autotune(self, now: int, rtt_us: int | None) -> None:
        """Grow the buffer when the application drains more than it per round trip.

        Linux ``tcp_rcv_space_adjust()``: once per RTT, compare the bytes copied to
        the application in that RTT with the last measure (``space``). If it grew,
        size the window for twice what was copied plus 16 segments, plus twice the
        growth seen -- a sender in slow start doubles each RTT and the window must
        stay ahead of it.
        """
        if self.space_time is None:
            self.space_time, self.space_copied = now, self.copied
            space = 10 * self.mss                            # tcp_init_buffer_space()
            self.space = space if space < self.capacity else self.capacity  # noqa: FURB136
            return
        if rtt_us is None or now - self.space_time < rtt_us:
            return
        copied = self.copied - self.space_copied
        self.space_time, self.space_copied = now, self.copied
        if copied <= self.space:
            return
        rcvwin = 2 * copied + 16 * self.mss
        rcvwin += 2 * (rcvwin * (copied - self.space) // max(self.space, 1))
        self.space = copied
        if rcvwin > self.capacity:
            self.capacity = min(rcvwin, self.max_capacity)

    @property
    def eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it has been read."""
        return self.fin_received and not self.ready
