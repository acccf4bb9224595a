"""The sending half of a connection: SND.* variables and the send buffer.

Theory of operation
-------------------
Bytes written by the application sit in a :class:`SendBuffer` whose first byte has
sequence number ``buf_seq`` (always ``snd_una`` once the SYN is acknowledged).
Everything from ``snd_una`` up is kept until acknowledged, so the buffer *is*
the retransmission queue: a retransmission is a slice of it, and an ACK deletes
a prefix. ``snd_nxt`` is the next sequence number to send and may be pulled back
to ``snd_una`` after a timeout (go-back-N); ``snd_max`` remembers the highest
ever sent, which is what an ACK may legitimately cover.

The SYN and the FIN each occupy one sequence number but no byte of the buffer:
the SYN sits just before ``buf_seq`` while unacknowledged, and the FIN just
after the last byte (``fin_seq``) once the application has closed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from synack import seq as sq
from synack.tcp.rtt import RTO_INITIAL_US, RttEstimator

_MASK, _HALF = sq.MASK, sq.HALF   # for the inlined arithmetic of the per-segment paths
_CHUNK = 64 * 1024                # small writes are gathered into chunks up to this size


_SHARED: dict[int, int] = {}


def shared(value: int) -> int:
    """One int object per value for numbers many connections hold alike (buffer sizes,
    segment sizes, windows); an int above 256 is a 28-byte object each time it is made.
    Bounded: once the table holds 4096 values, new ones are returned as they are."""
    got = _SHARED.get(value)
    if got is not None:
        return got
    if len(_SHARED) < 4096:
        _SHARED[value] = value
    return value


class SendBuffer:
    """The bytes written and not yet acknowledged, as a list of chunks.

    One ``bytearray`` was simpler, but deleting an acknowledged prefix and then
    appending makes CPython copy the whole buffer each time the allocation grows:
    with a 4 MB buffer that is tens of bytes copied per byte sent. Chunks are
    appended and dropped whole instead; a write is copied once, small writes are
    gathered into chunks of up to 64 KiB, and a slice copies only what it returns.
    """

    __slots__ = ("_chunks", "_i", "_off", "nbytes")

    def __init__(self) -> None:
        # An empty tuple until the first write: an idle connection keeps no list.
        self._chunks: list[bytes | bytearray] | tuple[()] = ()
        self._i = 0          # first live chunk
        self._off = 0        # acknowledged bytes at the front of that chunk
        self.nbytes = 0

    def __len__(self) -> int:
        return self.nbytes

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` at the end (copied)."""
        n = len(data)
        chunks = self._chunks
        if not chunks:
            chunks = self._chunks = []
        elif n < _CHUNK:
            last = chunks[-1]
            if type(last) is bytearray and len(last) + n <= _CHUNK:
                last += data
                self.nbytes += n
                return
        chunks.append(bytearray(data) if n < _CHUNK else bytes(data))
        self.nbytes += n

    def drop(self, n: int) -> None:
        """Forget the first ``n`` bytes (acknowledged)."""
        if n >= self.nbytes:
            self._chunks = ()
            self._i = self._off = self.nbytes = 0
            return
        self.nbytes -= n
        chunks, i, off = self._chunks, self._i, self._off + n
        assert isinstance(chunks, list)
        while off >= len(chunks[i]):
            off -= len(chunks[i])
            chunks[i] = b""              # free it now; the list is trimmed below
            i += 1
        if i > 16 and 2 * i > len(chunks):
            del chunks[:i]
            i = 0
        self._i, self._off = i, off

    def slice(self, off: int, length: int) -> bytes:
        """``length`` bytes from offset ``off`` (0: the first unacknowledged byte)."""
        chunks, i = self._chunks, self._i
        pos = off + self._off
        size = len(chunks[i]) if i < len(chunks) else 0
        while pos >= size and i < len(chunks) - 1:
            pos -= size
            i += 1
            size = len(chunks[i])
        c = chunks[i] if i < len(chunks) else b""
        if pos + length <= size:
            return bytes(memoryview(c)[pos:pos + length])
        pieces = [memoryview(c)[pos:]]
        left = length - (size - pos)
        while left > 0 and i < len(chunks) - 1:
            i += 1
            c = chunks[i]
            pieces.append(memoryview(c)[:left])
            left -= len(c)
        return b"".join(pieces)


# The buffer of every sender with nothing written and unacknowledged: shared, so
# never appended to (Sender.write swaps in a SendBuffer of its own first).
NO_DATA = SendBuffer()

_new = object.__new__


def _buffer_of(data: bytes | bytearray | memoryview) -> SendBuffer:
    """``SendBuffer()`` and its first :meth:`~SendBuffer.append`, in one call (no
    ``__init__``): every connection's first write makes one."""
    buf: SendBuffer = _new(SendBuffer)
    n = buf.nbytes = len(data)
    buf._chunks = [bytearray(data) if n < _CHUNK else bytes(data)]
    buf._i = buf._off = 0
    return buf


class Sender(RttEstimator):
    """SND.UNA, SND.NXT, SND.WND, SND.WL1/WL2 and the bytes behind them.

    A sender is also the connection's :class:`RttEstimator` (RFC 6298: timing its
    segments is the sender's business; ``Connection.rtt`` names this same object):
    one object, not two, for each connection.
    """

    __slots__ = (
        "buf",
        "buf_seq",
        "bytes_acked",
        "bytes_retrans",
        "bytes_sent",
        "capacity",
        "eor_marks",
        "fin_queued",
        "iss",
        "max_wnd",
        "more",
        "push_marks",
        "rtx_high",
        "sent_log",
        "snd_max",
        "snd_nxt",
        "snd_sml",
        "snd_una",
        "snd_up",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
    )

    def __init__(self, iss: int, capacity: int) -> None:
        # RttEstimator.__init__(self), inline (once per connection, no call).
        self.srtt: int | None = None
        self.rttvar: int = 0
        self.rto: int = RTO_INITIAL_US
        self.min_rtt: int | None = None
        self.samples = 0
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_wnd = 0
        self.buf = NO_DATA                   # a SendBuffer of its own from the first write
        # The first data byte follows the SYN (sq.add(iss, 1); a compare is cheaper than
        # an AND with a two-digit int).
        self.buf_seq = iss + 1 if iss != 0xFFFFFFFF else 0
        self.capacity = capacity
        self.fin_queued = False
        self.more = False                    # the last write said MSG_MORE: hold its tail
        # Ends of MSG_EOR records not yet acknowledged: () until the first one (checked
        # on every segment sent, so no exception for the common case of none).
        self.eor_marks: deque[int] | tuple[()] = ()
        self.bytes_acked = 0
        self.bytes_sent = 0
        self.bytes_retrans = 0
        # sent_log: (end seq, send time) of every first transmission still unacknowledged:
        # RTT samples per ACK like Linux's skb timestamps, never from retransmitted data.
        # push_marks: the end of each write(), where PSH goes. Both are made on first use
        # and dropped (None) when emptied: an empty deque is 600 bytes, and most
        # connections are idle most of the time.
        self.sent_log: deque[tuple[int, int]] | None = None
        self.push_marks: deque[int] | None = None
        self.rtx_high = iss                  # everything below may have been retransmitted
        self.snd_up: int | None = None       # urgent pointer (MSG_OOB), if any
        self.snd_sml = iss                   # Minshall: end of the last small segment sent

    def after_syn(self) -> int:
        """SND.NXT once the SYN is sent: ``buf_seq`` itself, one int object for both."""
        nxt = sq.add(self.iss, 1)
        return self.buf_seq if nxt == self.buf_seq else nxt

    def log_sent(self, end: int, now: int) -> None:
        """A first transmission ending at ``end`` left at ``now`` (an RTT sample point)."""
        log = self.sent_log
        if log is None:
            self.sent_log = deque(((end, now),))
        else:
            log.append((end, now))

    def record_ends_at(self, seq: int) -> bool:
        """A MSG_EOR write ends at ``seq``."""
        return seq in self.eor_marks

    def mark_after(self, seq: int) -> int | None:
        """The first write end (push mark) after ``seq``, if any. Marks stay until
        acknowledged, so a retransmission that carries a write's end carries its PSH
        again (Linux keeps TCPHDR_PSH in the skb: tcp_mark_push())."""
        marks = self.push_marks
        if not marks:
            return None
        last = marks[-1]
        if last == seq or ((last - seq + _HALF) & _MASK) < _HALF:    # sq.le(last, seq)
            return None                      # every write end is at or before seq
        first = marks[0]
        if ((seq - first + _HALF) & _MASK) < _HALF:                  # sq.gt(first, seq)
            return first                     # the common case: nothing sent is unacked
        return marks[bisect_right(marks, 0, key=lambda m: sq.diff(m, seq))]

    def next_record_end(self, nxt: int) -> int | None:
        """Bytes from ``nxt`` to the end of the next MSG_EOR record, if one is queued."""
        ends = self.eor_marks
        if not ends:
            return None
        for end in ends:
            off = sq.diff(end, nxt)
            if off > 0:
                return off
        return None

    # -- application side -------------------------------------------------
    def space(self) -> int:
        """Bytes the application may still write."""
        room = self.capacity - self.buf.nbytes
        return room if room > 0 else 0  # noqa: FURB136 - max(), without its argument parsing

    def write(self, data: bytes | bytearray | memoryview, eor: bool = False,
              more: bool = False) -> int:
        """Queue as much of ``data`` as fits; returns how many bytes were taken.
        ``eor``: the write ends a record (MSG_EOR): later writes never share its last
        segment. (Not keyword-only: CPython 3.11 inlines no call with keywords, and
        every send() makes this one.)"""
        size = len(data)
        buf = self.buf
        n = self.capacity - buf.nbytes      # space(), inline, without its max()
        if n > size:
            n = size
        elif n <= 0:
            return 0
        if n:
            if buf is NO_DATA:
                buf = self.buf = _buffer_of(data[:n] if n < size else data)
            else:
                buf.append(data[:n] if n < size else data)
            marks = self.push_marks
            if marks is None:
                marks = self.push_marks = deque()
            elif marks and sq.gt(marks[-1], self.snd_nxt) \
                    and not self.record_ends_at(marks[-1]):
                # The last write's end is not sent yet: Linux appends this write to the
                # same skb and clears its PSH (tcp_sendmsg_locked()); PSH moves here.
                marks.pop()
            end = (self.buf_seq + buf.nbytes) & sq.MASK     # data_end, inline
            # MSG_MORE: no PSH, and the short tail waits for the rest (Linux tcp_push()
            # with TCP_NAGLE_CORK), unless the write did not fit whole.
            self.more = more and n == size
            if not self.more:
                marks.append(end)
            if eor and n == size:
                ends = self.eor_marks        # MSG_EOR: the skb is never appended to
                if isinstance(ends, deque):
                    ends.append(end)
                else:
                    self.eor_marks = deque((end,))
        return n

    @property
    def data_end(self) -> int:
        """Sequence number just after the last byte written."""
        return (self.buf_seq + self.buf.nbytes) & sq.MASK   # sq.add(), inline: asked per segment

    @property
    def fin_seq(self) -> int | None:
        """The sequence number of our FIN, once the application has closed."""
        return self.data_end if self.fin_queued else None

    @property
    def fin_sent(self) -> bool:
        """The FIN has been sent at least once."""
        return self.fin_queued and sq.gt(self.snd_max, self.data_end)

    @property
    def fin_acked(self) -> bool:
        """The peer has acknowledged our FIN."""
        return self.fin_queued and sq.gt(self.snd_una, self.data_end)

    # -- wire side ----------------------------------------------------------
    def in_flight(self) -> int:
        """Sequence space sent and not yet acknowledged."""
        return ((self.snd_max - self.snd_una + _HALF) & _MASK) - _HALF   # sq.diff

    def unsent(self) -> int:
        """Bytes written but never sent at ``snd_nxt`` or later."""
        return max(sq.diff(self.data_end, self.snd_nxt), 0)

    def slice(self, seq: int, length: int) -> bytes:
        """``length`` buffered bytes starting at sequence number ``seq``."""
        off = ((seq - self.buf_seq + _HALF) & _MASK) - _HALF   # sq.diff(seq, buf_seq)
        return self.buf.slice(off, length)

    def rtt_sample(self, ack: int, now: int) -> int | None:
        """Forget first transmissions ``ack`` covers; the RTT of the oldest of them that
        was never retransmitted (Karn's rule), as Linux's ``seq_rtt`` does."""
        log = self.sent_log
        if log is None:
            return None
        sample = None
        rtx_high = self.rtx_high
        # sq.le(end, ack) and sq.gt(end, rtx_high), inline: once per segment acknowledged.
        while log and ((log[0][0] - ack + _HALF) & _MASK) <= _HALF:
            end, t = log.popleft()
            if sample is None and ((rtx_high - end + _HALF) & _MASK) < _HALF:
                sample = now - t
        if not log:
            self.sent_log = None
        return sample

    def on_ack(self, ack: int) -> int:
        """Advance SND.UNA to ``ack`` (already validated); returns sequence space acked."""
        # sq.diff(ack, snd_una) <= 0, on the unsigned difference (big-int arithmetic is
        # the cost of these tests: two operations, not four).
        acked = (ack - self.snd_una) & _MASK
        if not acked or acked >= _HALF:
            return 0
        # All acked (the usual state of an idle connection): SND.UNA shares SND.NXT's
        # int object rather than holding the parsed one (28 bytes per connection).
        nxt = self.snd_nxt
        self.snd_una = ack = nxt if ack == nxt else ack
        marks = self.push_marks
        if marks is not None:
            # sq.le(mark, ack), inline: per ACK of data.
            while marks and ((m := marks[0]) == ack or ((m - ack) & _MASK) >= _HALF):
                marks.popleft()
            if not marks:
                self.push_marks = None
        ends = self.eor_marks
        if ends:
            while ends and sq.le(ends[0], ack):
                ends.popleft()             # type: ignore[union-attr]
            if not ends:
                self.eor_marks = ()
        drop = 0 if ack == self.buf_seq else (ack - self.buf_seq) & _MASK
        if 0 < drop < _HALF:                                     # sq.diff(ack, buf_seq) > 0
            buf = self.buf
            n = buf.nbytes                   # (len(buf), without the call)
            if drop < n:
                buf.drop(drop)
                self.buf_seq = ack           # the same value, and the same object
            else:
                # All of it acked: back to the shared empty buffer (an idle connection
                # keeps none of its own).
                self.buf = NO_DATA
                self.buf_seq = ack if drop == n else (self.buf_seq + n) & _MASK
                drop = n
            self.bytes_acked += drop
        if ack != nxt and ((nxt - ack) & _MASK) >= _HALF:        # sq.lt(snd_nxt, ack)
            self.snd_nxt = ack
        return acked

    def may_update_window(self, seq: int, ack: int, wnd: int) -> bool:
        """Whether an ACK would move the window (Linux tcp_may_update_window())."""
        return (sq.gt(ack, self.snd_una) or sq.gt(seq, self.snd_wl1)
                or (seq == self.snd_wl1 and (wnd > self.snd_wnd or not wnd)))

    def update_window(self, seq: int, ack: int, wnd: int) -> bool:
        """RFC 9293 3.10.7.4: take SEG.WND if this segment is newer than the last one used."""
        wl1 = self.snd_wl1
        # sq.lt(wl1, seq) or (wl1 == seq and sq.le(snd_wl2, ack)), inline: every ACK.
        if ((wl1 - seq + _HALF) & _MASK) < _HALF or (
            wl1 == seq and ((self.snd_wl2 - ack + _HALF) & _MASK) <= _HALF
        ):
            changed = wnd != self.snd_wnd
            if changed:
                wnd = shared(wnd)
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            una = self.snd_una
            self.snd_wl2 = una if ack == una else ack   # one object when equal, as in on_ack
            if wnd > self.max_wnd:  # noqa: PLR1730 - cheaper than max() per ACK
                self.max_wnd = wnd
            return changed
        return False

